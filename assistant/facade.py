"""The public API: :class:`Assistant` calls the pipeline stages in order (usage: README).

Thread-safe: questions may be asked from many threads at once; ingests are
serialised.  Construction is cheap; the embedding model, jieba and the corpus
load on first use or in :meth:`Assistant.warm_up`.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .answer import AnswerStage, Request, check_question
from .clock import Laps
from .config import Settings
from .embedding import Embedder, make_embedder
from .errors import AssistantError
from .evidence import SentenceModel
from .gazetteer import Gazetteer
from .index import ChunkStore, DocInfo, Store, find_doc, reset_index, with_claims
from .indicator_match import IndicatorMatch
from .indicator_store import IndicatorStore
from .indicator_table import IndicatorTable
from .ingest import Ingestor, IngestProgress, IngestReport, repair_indicators
from .llm import LLM, OpenAIChatLLM
from .prompts import PromptLibrary
from .query import analyze, condense
from .retrieval import HybridRetriever
from .snapshot import snapshot_root
from .table_answer import TableAnswerer
from .text import terms, warm_up
from .types import Answer, Chunk, Draft, Filters, ScoredChunk, StreamReset, Warning

History = Sequence[tuple[str, str]]  # (role, text), role in {"user", "assistant"}


class Assistant:
    """Question answering over the indexed reports. See the module docstring."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, llm: LLM | None = None,
                 store: Store | None = None, gazetteer: Gazetteer | None = None,
                 indicators: IndicatorStore | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or make_embedder(
            settings.embedding,
            llm_api_key=settings.llm.api_key.get_secret_value() if settings.llm.api_key else None,
            llm_base_url=settings.llm.base_url)
        self._store = store
        # An injected store (a test's, the eval's copy) is read afresh and gets an in-memory
        # indicator table unless given one; the settings' store keeps its corpus between starts.
        self._snapshots = None if store is not None else snapshot_root(settings.index)
        self._indicators = indicators if indicators is not None else IndicatorStore(None) if store else None
        self._table: IndicatorTable | None = None
        self._llm = llm
        self._llm_checked = llm is not None
        self._gazetteer = gazetteer or Gazetteer.default()
        self._prompts = PromptLibrary(settings.prompts_dir)
        self._ingest_lock = threading.Lock()
        self._init_lock = threading.Lock()
        self._retriever: HybridRetriever | None = None
        self._stage: AnswerStage | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> Assistant:
        """From :class:`Settings` (default: environment, ``.env``) with overrides: ``index={"collection": "t"}``."""
        s = settings or Settings.load()
        return cls(s.with_overrides(**overrides) if overrides else s)

    # --- resources ---------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._init_lock:
                if self._store is None:
                    self._store = ChunkStore(self.settings.index, embed_model=self.embedder.model_id,
                                             dim=self.embedder.dim)
        return self._store

    @property
    def indicator_table(self) -> IndicatorTable:
        """The indicator table (``DATA_DIR/indicators/<collection>.sqlite3``), matched with the embedder;
        completed from the stored chunks on first use (another machine may have ingested them)."""
        with self._init_lock:
            fresh = self._table is None
            table = self._table = self._table or IndicatorTable.beside(self.settings.index, self.embedder,
                                                                       self._indicators)
        if fresh:
            repair_indicators(self.store, table.store)
        return table

    @property
    def retriever(self) -> HybridRetriever:
        if self._retriever is None:
            s = self.store
            with self._init_lock:
                if self._retriever is None:
                    self._retriever = HybridRetriever(s, self.embedder, self.settings.retrieval, terms, self._snapshots)
        return self._retriever

    @property
    def llm(self) -> LLM | None:
        """The configured LLM, or None in offline extractive mode."""
        if not self._llm_checked:
            with self._init_lock:
                if not self._llm_checked:
                    self._llm = OpenAIChatLLM(self.settings.llm) if self.settings.llm.enabled else None
                    self._llm_checked = True
        return self._llm

    @property
    def answer_stage(self) -> AnswerStage:
        if self._stage is None:
            stage = self._make_stage()
            with self._init_lock:
                if self._stage is None:
                    self._stage = stage
        return self._stage

    def _make_stage(self, model: SentenceModel | None = None) -> AnswerStage:
        return AnswerStage(self.settings.answer, self._prompts, self.llm, terms,
                           max_answer_tokens=self.settings.llm.max_answer_tokens, model=model,
                           embedder=self.embedder, table=TableAnswerer(self.indicator_table))

    def with_answer_model(self, model: SentenceModel) -> Assistant:
        """This assistant (same index, corpus in memory, embedder and LLM) answering with another
        sentence model: to compare models or refusal thresholds on one index without loading it
        again. The two share their resources and are independent otherwise."""
        retriever, table = self.retriever, self.indicator_table  # loaded once, shared
        other = copy.copy(self)
        other._retriever, other._table = retriever, table
        other._stage = other._make_stage(model)
        return other

    @property
    def mode(self) -> str:  # "llm" or "extractive"
        return "llm" if self.llm is not None else "extractive"

    def warm_up(self) -> None:
        """Load the embedding model, jieba, prompts and the corpus now."""
        warm_up()
        self.embedder.embed_query("warm up")
        _ = self.answer_stage.floor
        _ = self.retriever.corpus
        self._prompts.warm_up()

    # --- documents ---------------------------------------------------------------

    def ingest(self, paths: Sequence[str | Path], *, prune: bool = False, rebuild: bool = False,
               progress: IngestProgress | None = None) -> IngestReport:
        """Index files or folders incrementally (see :mod:`assistant.ingest`)."""
        with self._ingest_lock:
            note = None
            if rebuild:
                # Not self.store: opening it checks the model, and a rebuild replaces another model's index.
                with self._init_lock:
                    store, self._store, self._retriever = self._store, None, None
                note = reset_index(self.settings.index, store)
                self.indicator_table.store.reset()
            report = Ingestor(self.store, self.embedder, self.settings, self.indicator_table.store).run(
                paths, prune=prune, progress=progress)
            self.retriever.refresh()
            return replace(report, repaired=(note, *report.repaired)) if note else report

    def documents(self) -> list[DocInfo]:
        """Indexed documents, each with its flagged chunks and the reports claiming its city and year."""
        self.refresh()  # the chunk counts come from the corpus in memory, not a read of every chunk
        counts = self.retriever.corpus.doc_counts
        return with_claims([DocInfo.of(e, counts.get(e.doc_id, 0)) for e in self.store.manifest()])

    def find_document(self, ref: str) -> DocInfo:
        """A document by id, id prefix, file name or stem."""
        return find_doc(self.documents(), ref)

    def remove(self, ref: str) -> DocInfo:
        """Remove a document, its chunks and its indicator records from the index."""
        d = self.find_document(ref)
        with self._ingest_lock:
            self.store.delete_manifest(d.path)
            self.store.delete_doc(d.doc_id)
            self.indicator_table.store.delete_doc(d.doc_id)
            self.retriever.refresh()
        return d

    def chunks_of(self, ref: str) -> list[Chunk]:
        doc_id = self.find_document(ref).doc_id
        return [c for c in self.retriever.corpus.chunks if c.doc_id == doc_id]

    def refresh(self) -> None:
        """Reload the corpus if another process changed the index."""
        if self.retriever.corpus.version != self.store.version():
            self.retriever.refresh()

    def indicators(self, metric: str | None = None, city: str | None = None, year: int | None = None,
                   kind: str | None = None) -> list[IndicatorMatch]:
        """Indicator records by city, year and kind; with ``metric``, those whose metric matches it, best
        first, each labelled (``签约率 → 重点人群签约率（包含）``). See :mod:`assistant.indicator_table`."""
        return self.indicator_table.query(metric, city, year, kind, known_cities=self.retriever.corpus.cities())

    # --- questions ----------------------------------------------------------------

    def ask(self, question: str, *, city: str | None = None, year: int | None = None, doc: str | None = None,
            history: History | None = None) -> Answer:
        """Answer ``question`` from the reports, with citations (see :class:`Answer`)."""
        *_, final = self.stream(question, city=city, year=year, doc=doc, history=history)
        assert isinstance(final, Answer)
        return final

    def stream(self, question: str, *, city: str | None = None, year: int | None = None,
               doc: str | None = None, history: History | None = None) -> Iterator[str | StreamReset | Answer]:
        """Yield text deltas, then the final :class:`Answer`; a :class:`StreamReset` voids the text
        streamed so far (the LLM stream broke; the fallback follows). Stages: condense → analyze →
        embed (once) → retrieve → assess → generate → finish, in one time budget (``LLM_DEADLINE``)."""
        deadline = time.monotonic() + self.settings.llm.deadline
        req = self.prepare(question, city=city, year=year, doc=doc, history=history, deadline=deadline)
        yield from self.respond(req, deadline=deadline)

    def respond(self, req: Request, *, deadline: float | None = None) -> Iterator[str | StreamReset | Answer]:
        """:meth:`stream` for a request :meth:`prepare` made: assess → generate → finish. The
        search is not repeated, so one prepared request can be answered by several assistants
        (:meth:`with_answer_model`)."""
        stage, corpus = self.answer_stage, self.retriever.corpus
        req = self._assess(req)
        streamed = False
        for part in stage.generate(req, corpus, deadline=deadline):
            if isinstance(part, Draft):
                draft = part
            else:
                streamed = isinstance(part, str)  # after a reset, nothing of this answer is shown
                yield part
        answer = stage.finish(draft, req, corpus)
        if not streamed:
            yield answer.text
        yield answer

    def assess(self, question: str, *, city: str | None = None, year: int | None = None, doc: str | None = None,
               history: History | None = None, deadline: float | None = None) -> Request:
        """:meth:`prepare`, then the evidence scored: the sentences the answer is drawn from,
        inside the inferred filters or, where that is better, from the whole corpus."""
        return self._assess(self.prepare(question, city=city, year=year, doc=doc, history=history,
                                         deadline=deadline))

    def _assess(self, req: Request) -> Request:
        return self.answer_stage.assess(req, self.retriever.corpus, widen=lambda: self.widen(req))

    def widen(self, req: Request) -> list[ScoredChunk]:
        """``req``'s search again over the whole corpus, no filter inferred or given."""
        return self.retriever.retrieve(req.standalone, Filters(), query_vector=req.query_vector)

    def prepare(self, question: str, *, city: str | None = None, year: int | None = None, doc: str | None = None,
                history: History | None = None, deadline: float | None = None) -> Request:
        """Everything before generation: the question understood (a follow-up rewritten,
        within ``deadline``, filters inferred), embedded once, and the chunks retrieved for it."""
        question, corpus, clock = check_question(question), self.retriever.corpus, Laps()
        standalone, notes = question, tuple[Warning, ...]()
        if history:
            standalone, notes = condense(question, history, llm=self.answer_stage.llm, prompts=self._prompts,
                                         corpus_cities=corpus.cities(), gazetteer=self._gazetteer,
                                         deadline=deadline)
            clock.lap("condense")
        if not corpus.chunks:
            raise AssistantError(f"No reports are indexed in {self.store.location}.",
                                 "Run `assistant ingest PATHS...` (or `assistant ingest --demo`) first.")
        clock.skip()
        explicit = Filters(cities=(city,) if city else (), years=(int(year),) if year else (),
                           doc_ids=(self.find_document(doc).doc_id,) if doc else ())
        info = analyze(standalone, corpus_cities=corpus.cities(), corpus_years=corpus.years(),
                       gazetteer=self._gazetteer, explicit=explicit, infer=self.settings.retrieval.infer_filters)
        clock.lap("analyze")
        qv = self.embedder.embed_query(standalone)
        clock.lap("embed")
        # Keyword search also looks for the reports' terms for the question's words (an English
        # question's glossary terms, a Chinese question's everyday words: query.bridge_terms).
        words = f"{standalone} {' '.join(info.bridge)}" if info.bridge else standalone
        contexts = self.retriever.retrieve(words, info.filters, groups=info.groups, query_vector=qv)
        clock.lap("retrieve")
        return Request(question, standalone, info, tuple(contexts), query_vector=qv, timings=clock.timings,
                       notes=notes)


__all__ = ["Assistant", "DocInfo"]
