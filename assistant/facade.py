"""The public API: :class:`Assistant` ties the stages together.

>>> from assistant import Assistant                                     # doctest: +SKIP
>>> a = Assistant.from_settings()                                       # doctest: +SKIP
>>> a.ingest(["seeds/"])                                                # doctest: +SKIP
>>> ans = a.ask("丽水市2019年市级医院排队平均时间缩短到多少?")           # doctest: +SKIP
>>> ans.text, ans.citations[0].section_path                             # doctest: +SKIP

Thread-safe: questions may be asked from many threads at once; ingests are
serialised.  Construction is cheap; the embedding model, jieba and the corpus
load on first use or in :meth:`Assistant.warm_up`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .context import assemble, budget, cite, prompt_tokens, render_sources
from .embedding import Embedder, make_embedder
from .errors import AssistantError, LLMAuthError, LLMError, LLMModelNotFoundError
from .extractive import REFUSAL, ExtractiveSettings, closest_pointer, refusal_text
from .extractive import answer as extractive_answer
from .gazetteer import Gazetteer
from .index import ChunkStore, ManifestEntry, drop_index
from .ingest import Ingestor, IngestProgress, IngestReport
from .llm import LLM, Completion, Message, OpenAIChatLLM
from .prompts import PromptLibrary
from .query import QueryInfo, analyze, carry_over
from .retrieval import HybridRetriever
from .text import terms, warm_up
from .types import Answer, Filters, ScoredChunk, Usage
from .verification import split_answer_sentences, verify_answer

History = Sequence[tuple[str, str]]  # (role, text), role in {"user", "assistant"}
_SOURCES_CAP = 6000  # tokens of sources per prompt, whatever the window: cost and focus


@dataclass(frozen=True)
class DocInfo:
    """An indexed document as listed by ``assistant docs`` and the UI browser."""

    doc_id: str
    path: str
    title: str
    city: str | None
    years: tuple[tuple[int, str], ...]
    issuer: str | None
    date: str | None
    chunks: int
    fmt: str
    ingested_at: float


class Assistant:
    """Question answering over the indexed reports. See the module docstring."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, llm: LLM | None = None,
                 store: ChunkStore | None = None, gazetteer: Gazetteer | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or make_embedder(
            settings.embedding,
            llm_api_key=settings.llm.api_key.get_secret_value() if settings.llm.api_key else None,
            llm_base_url=settings.llm.base_url)
        self._store = store
        self._llm = llm
        self._llm_checked = llm is not None
        self._gazetteer = gazetteer or Gazetteer.default()
        self._prompts = PromptLibrary(settings.prompts_dir)
        self._ingest_lock = threading.Lock()
        self._init_lock = threading.Lock()
        self._retriever: HybridRetriever | None = None
        self.extractive_settings = ExtractiveSettings()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: object) -> Assistant:
        """Build from :class:`Settings` (default: environment and ``.env``), with
        per-section overrides, e.g. ``from_settings(index={"collection": "test"})``."""
        s = settings or Settings.load()
        if overrides:
            data = s.model_dump()
            for k, v in overrides.items():
                data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
            s = Settings.model_validate(data)
        return cls(s)

    # --- resources ---------------------------------------------------------------

    @property
    def store(self) -> ChunkStore:
        if self._store is None:
            with self._init_lock:
                if self._store is None:
                    self._store = ChunkStore(self.settings.index, embed_model=self.embedder.model_id,
                                             dim=self.embedder.dim)
        return self._store

    @property
    def retriever(self) -> HybridRetriever:
        if self._retriever is None:
            store = self.store
            with self._init_lock:
                if self._retriever is None:
                    self._retriever = HybridRetriever(store, self.embedder, self.settings.retrieval, terms)
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
    def mode(self) -> str:
        return "llm" if self.llm is not None else "extractive"

    def warm_up(self) -> None:
        """Load the embedding model, jieba, prompts and the corpus now."""
        warm_up()
        self.embedder.embed_query("warm up")
        _ = self.retriever.corpus
        self._prompts.warm_up()

    # --- documents ---------------------------------------------------------------

    def ingest(self, paths: Sequence[str | Path], *, prune: bool = False, rebuild: bool = False,
               progress: IngestProgress | None = None) -> IngestReport:
        """Index files or folders incrementally (see :mod:`assistant.ingest`)."""
        with self._ingest_lock:
            if rebuild:
                # Not self.store: opening the store checks the embedding model, and a
                # rebuild is exactly how an index of another model gets replaced.
                with self._init_lock:
                    store, self._store, self._retriever = self._store, None, None
                if store is not None:
                    store.reset()
                else:
                    drop_index(self.settings.index)
            report = Ingestor(self.store, self.embedder, self.settings).run(paths, prune=prune, progress=progress)
            self.retriever.refresh()
            return report

    def documents(self) -> list[DocInfo]:
        counts = self.store.chunk_doc_counts()
        return [_doc_info(e, counts.get(e.doc_id, 0)) for e in self.store.manifest()]

    def find_document(self, ref: str) -> DocInfo:
        """A document by id, id prefix, file name or stem."""
        docs = self.documents()
        hits = [d for d in docs if ref in (d.doc_id, Path(d.path).name, Path(d.path).stem)] or \
               [d for d in docs if d.doc_id.startswith(ref)]
        if len(hits) != 1:
            known = ", ".join(f"{d.doc_id} ({Path(d.path).name})" for d in docs) or "none"
            raise AssistantError(f"No single document matches {ref!r}.", f"Indexed documents: {known}.")
        return hits[0]

    def remove(self, ref: str) -> DocInfo:
        """Remove a document and its chunks from the index."""
        d = self.find_document(ref)
        with self._ingest_lock:
            self.store.delete_manifest(d.path)
            self.store.delete_doc(d.doc_id)
            self.retriever.refresh()
        return d

    def chunks_of(self, ref: str) -> list:
        d = self.find_document(ref)
        return [c for c in self.retriever.corpus.chunks if c.doc_id == d.doc_id]

    def refresh(self) -> None:
        """Reload the corpus if another process changed the index."""
        if self.retriever.corpus.version != self.store.version():
            self.retriever.refresh()

    # --- questions ----------------------------------------------------------------

    def ask(self, question: str, *, city: str | None = None, year: int | None = None, doc: str | None = None,
            history: History | None = None) -> Answer:
        """Answer ``question`` from the reports, with citations (see :class:`Answer`)."""
        final: Answer | None = None
        for part in self.stream(question, city=city, year=year, doc=doc, history=history):
            if isinstance(part, Answer):
                final = part
        assert final is not None
        return final

    def stream(self, question: str, *, city: str | None = None, year: int | None = None,
               doc: str | None = None, history: History | None = None) -> Iterator[str | Answer]:
        """Yield text deltas, then the final :class:`Answer` (LLM mode streams tokens;
        extractive mode yields its answer in one piece)."""
        question = (question or "").strip()
        if not question:
            raise AssistantError("The question is empty.", "Type a question about the reports.")
        if len(question) > 2000:
            raise AssistantError("The question is longer than 2,000 characters.", "Shorten it.")
        timings: list[tuple[str, float]] = []
        warnings: list[str] = []
        llm = self.llm
        t = time.perf_counter()
        standalone = question
        if history:
            standalone = self._condense(question, history, llm, warnings)
            timings.append(("condense", time.perf_counter() - t))
        t = time.perf_counter()
        corpus = self.retriever.corpus
        if not corpus.chunks:
            raise AssistantError(f"No reports are indexed in {self.store.location}.",
                                 "Run `assistant ingest [PATHS...]` (default seeds/) or `make run` first.")
        explicit = Filters(cities=(city,) if city else (), years=(int(year),) if year else (),
                           doc_ids=(self.find_document(doc).doc_id,) if doc else ())
        info = analyze(standalone, corpus_cities=corpus.cities(), corpus_years=corpus.years(),
                       gazetteer=self._gazetteer, explicit=explicit, infer=self.settings.retrieval.infer_filters)
        timings.append(("analyze", time.perf_counter() - t))
        t = time.perf_counter()
        qv = self.embedder.embed_query(standalone)
        timings.append(("embed", time.perf_counter() - t))
        t = time.perf_counter()
        contexts = self.retriever.retrieve(standalone, info.filters, groups=info.groups, query_vector=qv)
        timings.append(("retrieve", time.perf_counter() - t))
        if not contexts:
            # Nothing under these filters (a city or year the reports don't cover): refuse
            # without asking anyone, naming the closest sections found without filters.
            closest = self.retriever.retrieve(standalone, Filters(), top_k=3, query_vector=qv)
            text = refusal_text(info, closest)
            yield text
            yield Answer(question=question, text=text, citations=(), refused=True, mode=self.mode,  # type: ignore[arg-type]
                         warnings=tuple(warnings), contexts=tuple(closest), filters=info.filters,
                         standalone_question=standalone if standalone != question else None,
                         timings=tuple(timings), model=llm.model if llm else None)
            return
        if llm is not None:
            try:
                yield from self._generate_llm(info, contexts, llm, timings, warnings, question, standalone)
                return
            except (LLMAuthError, LLMModelNotFoundError):
                raise
            except LLMError as exc:
                warnings.append(f"LLM 调用失败，已改用离线抽取模式回答（{exc.message}）。")
        answer = self._extractive(info, contexts, timings, warnings, question, standalone)
        yield answer.text
        yield answer

    def _condense(self, question: str, history: History, llm: LLM | None, warnings: list[str]) -> str:
        if llm is not None:
            hist = "\n".join(f"{'用户' if r == 'user' else '助手'}: {txt[:500]}" for r, txt in history[-6:])
            prompt = self._prompts.render("condense", history=hist, question=question)
            try:
                out = llm.complete([Message("user", prompt)]).text.strip()
                return out.splitlines()[0].strip() if out else question
            except (LLMAuthError, LLMModelNotFoundError):
                raise
            except LLMError as exc:
                warnings.append(f"追问改写失败（{exc.message}），按上一问题的主题处理。")
        return carry_over(question, history, corpus_cities=self.retriever.corpus.cities(),
                          gazetteer=self._gazetteer)

    def _extractive(self, info: QueryInfo, contexts: list[ScoredChunk], timings: list[tuple[str, float]],
                    warnings: list[str], question: str, standalone: str) -> Answer:
        t = time.perf_counter()
        corpus = self.retriever.corpus
        ex = extractive_answer(info, contexts, corpus.keyword, terms, self.extractive_settings,
                               sentence_scorer=self._sentence_sims, corpus=corpus.chunks)
        timings.append(("generate", time.perf_counter() - t))
        t = time.perf_counter()
        sources: dict[int, str] = {}
        for c in ex.citations:  # one marker may cite several sentences of its chunk
            sources[c.marker] = f"{sources.get(c.marker, '')}\n{c.quote}".strip()
        verified = verify_answer(ex.text, sources)
        timings.append(("verify", time.perf_counter() - t))
        warnings += [f"未被引文支持的句子: {s.text}" for s in verified.sentences if not s.supported]
        return Answer(
            question=question, text=verified.text, citations=ex.citations, refused=ex.refused, mode="extractive",
            warnings=tuple(warnings), sentences=verified.sentences, contexts=tuple(contexts), filters=info.filters,
            standalone_question=standalone if standalone != question else None, usage=Usage(),
            timings=tuple(timings), model=None,
        )

    def _sentence_sims(self, question: str, sentences: list[str]) -> list[float]:
        qv = self.embedder.embed_query(question)
        return [float(x) for x in self.embedder.embed_passages(sentences) @ qv]

    def _generate_llm(self, info: QueryInfo, contexts: list[ScoredChunk], llm: LLM,
                      timings: list[tuple[str, float]], warnings: list[str], question: str,
                      standalone: str) -> Iterator[str | Answer]:
        t = time.perf_counter()
        template = "comparison" if info.comparison else "qa"
        system = self._prompts.render("system")
        overhead = prompt_tokens(system, self._prompts.get(template).text, standalone) + 200
        sources = assemble(contexts, budget(llm.context_window, self.settings.llm.max_answer_tokens, overhead,
                                            self.settings.retrieval.context_tokens or _SOURCES_CAP))
        if not sources:
            text = refusal_text(info, contexts)
            yield text
            yield Answer(question=question, text=text, citations=(), refused=True, mode="llm",
                         warnings=tuple(warnings), contexts=tuple(contexts), filters=info.filters,
                         standalone_question=standalone if standalone != question else None,
                         timings=tuple(timings), model=llm.model)
            return
        user = self._prompts.render(
            template, question=standalone, sources=render_sources(sources),
            valid_markers=" ".join(f"[{s.number}]" for s in sources), filters=info.filters.describe())
        messages = [Message("system", system), Message("user", user)]
        completion: Completion | None = None
        first = True
        for part in llm.stream(messages):
            if isinstance(part, Completion):
                completion = part
            elif part:
                if first:
                    timings.append(("first_token", time.perf_counter() - t))
                    first = False
                yield part
        if completion is None:
            raise LLMError("The LLM stream ended without a final message.", retryable=True)
        timings.append(("generate", time.perf_counter() - t))
        t = time.perf_counter()
        by_num = {s.number: s.sc.chunk.text for s in sources}
        verified = verify_answer(completion.text, by_num)
        refused = REFUSAL in completion.text and not verified.cited
        text = verified.text
        if refused and "最接近的章节" not in text:  # the model refused: still point to the nearest sections
            text = text.rstrip().rstrip("。.") + closest_pointer([s.sc for s in sources]) + "。"
        per_sentence = [(s.text, s.markers) for s in verified.sentences]
        if not per_sentence:
            per_sentence = [(txt, ()) for txt in split_answer_sentences(verified.text)]
        citations = cite(per_sentence, sources, terms)
        timings.append(("verify", time.perf_counter() - t))
        if verified.removed_markers:
            warnings.append("已删除指向不存在来源的引用标记: " + " ".join(f"[{m}]" for m in verified.removed_markers))
        warnings += [f"未被引文支持的句子（{s.reason}）: {s.text}" for s in verified.sentences if not s.supported]
        yield Answer(
            question=question, text=text, citations=citations, refused=refused, mode="llm",
            warnings=tuple(warnings), sentences=verified.sentences,
            contexts=tuple(s.sc for s in sources), filters=info.filters,
            standalone_question=standalone if standalone != question else None, usage=completion.usage,
            timings=tuple(timings), model=completion.model,
        )


def _doc_info(e: ManifestEntry, chunks: int) -> DocInfo:
    return DocInfo(doc_id=e.doc_id, path=e.key, title=e.meta.title, city=e.meta.city,
                   years=tuple((y.year, y.role) for y in e.meta.years), issuer=e.meta.issuer, date=e.meta.date,
                   chunks=chunks, fmt=e.fmt, ingested_at=e.ingested_at)


__all__ = ["Assistant", "DocInfo"]
