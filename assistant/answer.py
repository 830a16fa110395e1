"""The answer stage: from a question and its retrieved chunks to a verified :class:`Answer`.

Two steps, whatever the mode:

1. :meth:`AnswerStage.generate` writes a :class:`~assistant.types.Draft`.  The indicator
   table is consulted first (:mod:`assistant.table_answer`): comparisons, rankings, trends
   and near-miss metrics are answered (or refused) from its records.  Otherwise, with an
   LLM, the prompt (numbered sources fenced as data, under a token budget; the matched
   records as a table when there are any) is streamed through the model, each marker held
   back until it is known to point to a source; offline, or when the LLM fails, the
   extractive answerer quotes report sentences (never from a chunk flagged as holding
   instructions).  A stream that breaks after text was shown is followed by a
   :class:`~assistant.types.StreamReset`.  A refusal is data
   (:class:`~assistant.types.Refusal`), never a phrase to match later.
2. :meth:`AnswerStage.finish` verifies the draft (markers to no source dropped; each
   sentence's numbers, ranks, years and directions found in what it cites, except numbers
   the draft computed, which are marked as such; sentences that fail are marked), checks
   cited figures against other reports for the same city and year, and returns the
   :class:`Answer` with typed warnings.

>>> from assistant.types import Draft
>>> stage = AnswerStage(AnswerSettings(), PromptLibrary(), None, lambda t: list(t))
>>> req = Request("问题", "问题", QueryInfo("问题"), ())
>>> ans = stage.finish(Draft("甲达80%[1]。", "extractive", evidence=((1, "甲达80%。"),)), req)
>>> ans.refused, ans.unsupported
(False, ())
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .chunking import sentence_inputs
from .config import AnswerSettings
from .conflicts import find_conflicts
from .context import Source, assemble, budget, cite, prompt_tokens, render_sources
from .embedding import Embedder, similarity_floor
from .errors import AssistantError, IndexError_, LLMAuthError, LLMError, LLMModelNotFoundError
from .evidence import (
    Candidate,
    SentenceModel,
    candidates,
    default_model,
    load_model,
    question_terms,
    score,
    term_weights,
)
from .extractive import answer as extractive_answer
from .extractive import eligible, standing
from .llm import LLM, Completion, Message
from .numbers import number_supported, numbers_to_check
from .prompts import PromptLibrary
from .query import QueryInfo
from .retrieval import Corpus, matches
from .table_answer import TableAnswerer, TableResult, computed_numbers, figures_table
from .table_answer import draft as table_draft
from .types import (
    REFUSAL_PHRASE,
    Answer,
    Chunk,
    Citation,
    Draft,
    FigureRow,
    ScoredChunk,
    SentenceCheck,
    StreamReset,
    Warning,
    WarningKind,
)
from .verification import MarkerGate, mark_unsupported, split_answer_sentences, verify_answer

_PROMPT_SLACK = 200  # tokens for the chat format and the filter line
_YEAR_RE = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


MAX_QUESTION_CHARS = 2000


def check_question(question: str | None) -> str:
    """The question stripped; :class:`AssistantError` when it is empty or too long."""
    q = (question or "").strip()
    if not q:
        raise AssistantError("The question is empty.", "Type a question about the reports.")
    if len(q) > MAX_QUESTION_CHARS:
        raise AssistantError(f"The question is longer than {MAX_QUESTION_CHARS:,} characters.", "Shorten it.")
    return q


@dataclass(frozen=True)
class Request:
    """What the answer stage is asked: the question as typed, as understood (after a
    follow-up is rewritten), its analysis and the retrieved chunks, best first; the stages
    before it add their timings and notices."""

    question: str
    standalone: str
    info: QueryInfo
    contexts: tuple[ScoredChunk, ...]
    query_vector: Any = None  # np.ndarray of the standalone question, embedded once
    timings: tuple[tuple[str, float], ...] = ()
    notes: tuple[Warning, ...] = ()
    evidence: tuple[Candidate, ...] | None = None  # scored sentences of ``contexts`` (assess)
    closest: tuple[ScoredChunk, ...] = ()  # no context matched the filters: the nearest sections anywhere


#: Evidence found by relaxing an inferred filter must name at least this share of each thing
#: the question names (``piece_min``: the longest part of each found in its section).
WIDEN_MIN_NAMED = 0.5


def consistent(c: Candidate, info: QueryInfo) -> bool:
    """Evidence found outside the inferred filters may stand only if it does not contradict
    them: its chunk has no city/year of its own for the relaxed filter, or the sentence
    itself names the asked place or year (a date-line news item, a district report filed
    under its parent city). 丽水2021年 is never answered from 丽水2020年."""
    ch, f = c.sc.chunk, info.filters
    text = c.text
    if f.cities and ch.city not in f.cities and ch.city is not None:
        names = {n for city in f.cities for n in (city, re.sub(r"(市|县|区)$", "", city))}
        if not any(n in text for n in names):
            return False
    if f.years:
        years = (ch.year,) if ch.year is not None else ch.doc_years
        if years and not set(years) & set(f.years) and not any(str(y) in text for y in f.years):
            return False
    return True


def unsupported_warning(text: str, reason: str) -> Warning:
    return Warning(WarningKind.UNSUPPORTED, f"未被引文支持的句子（{reason}）: {text}")


def score_sides(cands: Sequence[Candidate], model: SentenceModel, info: QueryInfo) -> list[Candidate]:
    """:func:`assistant.evidence.score` the candidates; a comparison's sides each on their own, so
    a side's best sentence is judged against that side's others, not against the other side's
    best (湖州2022年和西湖区2023年的…分别是多少: 湖州's sentence is not a runner-up to 西湖区's)."""
    def ok(c: Candidate) -> bool:
        return eligible(c, info)

    if not (info.comparison and info.groups):
        return score(cands, model, ok)
    sides: dict[int, list[Candidate]] = {}
    for c in cands:
        side = next((i for i, g in enumerate(info.groups) if matches(c.sc.chunk, g)), -1)
        sides.setdefault(side, []).append(c)
    out = [c for part in sides.values() for c in score(part, model, ok)]
    return sorted(out, key=lambda c: -c.rank_score)


class AnswerStage:
    """Generates and finishes answers. Thread-safe: it holds read-only state, and the
    embedder's similarity floor, measured at most once behind a lock."""

    def __init__(self, settings: AnswerSettings, prompts: PromptLibrary, llm: LLM | None,
                 tokenize: Callable[[str], list[str]], *, max_answer_tokens: int = 800,
                 model: SentenceModel | None = None, embedder: Embedder | None = None,
                 table: TableAnswerer | None = None) -> None:
        self.settings = settings
        self.model = model or (load_model(settings.model_path) if settings.model_path else default_model())
        self.prompts = prompts
        self.llm = llm
        self.tokenize = tokenize
        self.max_answer_tokens = max_answer_tokens
        self.embedder = embedder
        self.table = table
        self._floor: float | None = None
        self._floor_lock = threading.Lock()

    @property
    def mode(self) -> str:
        return "llm" if self.llm is not None else "extractive"

    @property
    def floor(self) -> float:
        """The embedder's similarity floor (:func:`assistant.embedding.similarity_floor`), which
        the retrieval similarity the gate reads is measured above: the one the sentence model
        recorded when it was fitted with this embedder, else measured once (0.0 without one)."""
        if self._floor is None:
            with self._floor_lock:
                if self._floor is None:
                    meta = dict(self.model.meta)
                    if self.embedder is None:
                        self._floor = 0.0
                    elif meta.get("embedder") == self.embedder.model_id and "floor" in meta:
                        self._floor = float(meta["floor"])
                    else:
                        self._floor = similarity_floor(self.embedder)
        return self._floor

    # --- generation -------------------------------------------------------------------

    def refuse(self, req: Request, closest: Sequence[ScoredChunk], *, outside_filters: bool) -> Draft:
        """A refusal without asking anyone (nothing matched the question's filters)."""
        return Draft(text="", mode="llm" if self.llm else "extractive",
                     refusal=req.info.refusal("outside_filters" if outside_filters else "no_evidence", closest,
                                              outside_filters=outside_filters),
                     model=self.llm.model if self.llm else None)

    def generate(self, req: Request, corpus: Corpus, *,
                 deadline: float | None = None) -> Iterator[str | StreamReset | Draft]:
        """Yield text deltas (LLM mode), then one :class:`Draft`.

        An LLM failure that a retry could not fix (within ``deadline``, a
        :func:`time.monotonic` instant) falls back to the extractive answerer with a
        :attr:`WarningKind.FALLBACK` warning that says what happened and how long it took;
        when text had already been streamed, a :class:`StreamReset` comes first.  A
        rejected key or an unknown model is raised, since every later question would fail
        the same way.
        """
        fallback: tuple[Warning, ...] = ()
        t = time.perf_counter()
        table = (self.table.lookup(req.standalone, req.info, corpus.chunks, corpus.suspect_ids)
                 if self.table is not None else None)
        spent: tuple[tuple[str, float], ...] = (("table", time.perf_counter() - t),) if self.table is not None else ()
        if table is not None and (table.refusal is not None or self.llm is None):
            draft = table_draft(table)
            if draft.refusal is not None:  # point to the sections that came closest, as every refusal does
                draft = replace(draft, refusal=replace(draft.refusal, closest=tuple(req.contexts[:3])))
            yield replace(draft, mode="llm" if self.llm else "extractive", model=self.llm.model if self.llm else None,
                          timings=spent)
            return
        if not req.contexts:  # nothing under these filters (a city or year no report covers)
            yield self.refuse(req, req.closest, outside_filters=True)
            return
        if self.llm is not None:
            t = time.perf_counter()
            shown = False
            failure: LLMError | None = None
            try:
                for part in self._generate_llm(req, self.llm, deadline, table, corpus):
                    shown = shown or (isinstance(part, str) and bool(part))
                    yield replace(part, timings=(*spent, *part.timings)) if isinstance(part, Draft) else part
                return
            except (LLMAuthError, LLMModelNotFoundError):
                raise
            except LLMError as exc:
                failure = exc
            elapsed = time.perf_counter() - t
            spent = (*spent, *(("llm_attempt", a.seconds) for a in failure.attempts), ("llm_failed", elapsed))
            if shown:
                yield StreamReset(failure.message)
            fallback = (Warning(WarningKind.FALLBACK, f"LLM 调用失败（{failure.message}；共用时 {elapsed:.1f} 秒），"
                                                      "已改用离线抽取模式回答。"),)
            if table is not None:
                offline = table_draft(table)
                yield replace(offline, warnings=fallback + offline.warnings, timings=spent)
                return
        t = time.perf_counter()
        # Text that reads as instructions to a model (or comes from a report holding such
        # text) is never quoted as an answer: evidence() leaves those chunks out.
        contexts = tuple(sc for sc in req.contexts if not sc.chunk.suspect)
        weights = term_weights(question_terms(req.info, self.tokenize), corpus.keyword)
        draft = extractive_answer(req.info, contexts, self.evidence(req, corpus), weights, self.tokenize,
                                  self.settings, self.model, corpus=corpus.clean)
        if draft.refusal is not None and not contexts and req.contexts:
            draft = replace(draft, refusal=replace(draft.refusal, closest=req.contexts[:3]))
        draft = replace(draft, warnings=fallback + draft.warnings,
                        timings=(*spent, ("generate", time.perf_counter() - t)))
        yield draft

    def evidence(self, req: Request, corpus: Corpus) -> tuple[Candidate, ...]:
        """The scored sentences of ``req.contexts`` (computed once per request)."""
        if req.evidence is not None:
            return req.evidence
        similarity, floor = None, 0.0
        if self.embedder is not None and req.query_vector is not None:
            emb, qv, floor = self.embedder, np.asarray(req.query_vector, dtype=np.float32), self.floor

            def similarity(chunk: Chunk, texts: list[str]) -> list[float]:
                # Stored at ingest (each sentence under its nearest heading); a chunk of an
                # index written before sentence vectors were stored is embedded now.
                vectors = corpus.sentence_vectors(chunk.chunk_id)
                if vectors is None or len(vectors) != len(texts):
                    vectors = emb.embed_passages(sentence_inputs(chunk))
                return [float(x) for x in vectors @ qv]

        contexts = tuple(sc for sc in req.contexts if not sc.chunk.suspect)
        cands = candidates(req.info, contexts, corpus.keyword, self.tokenize, similarity=similarity, floor=floor)
        return tuple(score_sides(cands, self.model, req.info))

    def assess(self, req: Request, corpus: Corpus, widen: Callable[[], Sequence[ScoredChunk]] | None = None) -> Request:
        """Score the evidence; with inferred filters, also weigh the whole corpus (``widen``):
        what lies outside them and does not contradict them (see :func:`consistent`) answers
        when nothing inside stands or the ranker puts it above the best inside.
        When nothing matched the filters at all, the nearest sections anywhere are kept for the
        refusal to name."""
        t = time.perf_counter()
        ev = self.evidence(req, corpus)
        req = replace(req, evidence=ev, timings=(*req.timings, ("assess", time.perf_counter() - t)))
        if widen is None:
            return req
        if not req.info.filters.inferred or req.info.filters.empty:
            return req if req.contexts else replace(req, closest=tuple(widen())[:3])
        t = time.perf_counter()
        out = self._outside_filters(req, corpus, widen)
        return replace(out, timings=(*out.timings, ("widen", time.perf_counter() - t)))

    def widened(self, req: Request, corpus: Corpus,
                wide: Sequence[ScoredChunk]) -> tuple[Request, tuple[Candidate, ...]]:
        """``req`` over the whole corpus's ``wide`` contexts, and the evidence among them that
        may stand in for the inferred filters' (scored, whatever the threshold).

        Only sections outside the filters are new: those inside were weighed already, or
        ranked below those that were, and weighing them again among other contexts must not
        overturn that. Relaxing a filter asks more of the evidence: its section names at
        least half of every thing the question names (a 2024 question about 健康小屋 is not
        answered by a sentence on 智慧药房 that happens to say 2024)."""
        wide_req = replace(req, contexts=tuple(wide), evidence=None)
        return wide_req, tuple(c for c in self.evidence(wide_req, corpus)
                               if not matches(c.sc.chunk, req.info.filters) and consistent(c, req.info)
                               and c.feature("piece_min") >= WIDEN_MIN_NAMED)

    def _outside_filters(self, req: Request, corpus: Corpus, widen: Callable[[], Sequence[ScoredChunk]]) -> Request:
        """``req`` (its evidence scored inside the inferred filters) answered from the whole
        corpus when that is better, with a note naming the relaxed filter; else ``req``."""
        stand = standing(req.evidence or (), req.info, self.model.threshold)
        try:
            wide = tuple(widen())
        except IndexError_:
            if stand:  # the rest of the corpus is out of reach (a Chroma server down): what stands inside answers
                return req
            raise
        if not stand:
            req = replace(req, closest=wide[:3])
        wide_req, wide_ev = self.widened(req, corpus, wide)
        wide_stand = standing(wide_ev, req.info, self.model.threshold)
        # An inferred filter is a preference, not a wall: evidence outside it that does not
        # contradict it wins when the ranker puts it above the best inside (a year a passage
        # mentions is not the year it was filed under).
        if not wide_stand or (stand and wide_stand[0].rank_score <= stand[0].rank_score):
            return req
        why = "下的内容不如其外的内容切题" if stand else "下没有找到答案"
        note = Warning(WarningKind.FILTER_RELAXED,
                       f"在推断的筛选条件（{req.info.filters.describe()}）{why}，已在全部报告中检索。")
        return replace(wide_req, evidence=wide_ev, notes=(*req.notes, note))

    def prompt(self, req: Request, context_window: int, table: TableResult | None = None,
               corpus: Corpus | None = None) -> tuple[list[Message], list[Source]]:
        """The chat messages for ``req`` and the numbered sources they hold (none: refuse).

        With a ``table`` result the chunks holding its records come first among the sources and the
        ``figures`` template lists the records as a table that cites them."""
        template = "figures" if table is not None else "comparison" if req.info.comparison else "qa"
        contexts = req.contexts
        if table is not None and corpus is not None:
            held = [ScoredChunk(corpus.by_id[m.record.chunk_id], 1.0) for m in table.rows
                    if m.record.chunk_id in corpus.by_id]
            first = list({sc.chunk.chunk_id: sc for sc in held}.values())
            contexts = (*first, *(sc for sc in req.contexts if sc.chunk.chunk_id not in {x.chunk.chunk_id
                                                                                          for x in first}))
        system = self.prompts.render("system")
        overhead = prompt_tokens(system, self.prompts.get(template).text, req.standalone) + _PROMPT_SLACK
        sources = assemble(contexts, budget(context_window, self.max_answer_tokens, overhead,
                                            self.settings.source_tokens))
        values = {"question": req.standalone, "sources": render_sources(sources),
                  "valid_markers": " ".join(f"[{s.number}]" for s in sources), "filters": req.info.filters.describe()}
        if table is not None:
            values["figures"] = figures_table(table, {s.sc.chunk.chunk_id: s.number for s in sources})
        return [Message("system", system), Message("user", self.prompts.render(template, **values))], sources

    def _generate_llm(self, req: Request, llm: LLM, deadline: float | None, table: TableResult | None = None,
                      corpus: Corpus | None = None) -> Iterator[str | Draft]:
        t = time.perf_counter()
        messages, sources = self.prompt(req, llm.context_window, table, corpus)
        if not sources:
            yield Draft(text="", mode="llm", refusal=req.info.refusal("no_evidence", req.contexts), model=llm.model)
            return
        completion: Completion | None = None
        timings: list[tuple[str, float]] = []
        gate = MarkerGate({s.number for s in sources})
        for part in llm.stream(messages, deadline=deadline):
            if isinstance(part, Completion):
                completion = part
            elif part:
                if not timings:
                    timings.append(("first_token", time.perf_counter() - t))
                if shown := gate.feed(part):
                    yield shown
        if completion is None:
            raise LLMError("The LLM stream ended without a final message.", retryable=True)
        if rest := gate.flush():
            yield rest
        timings = [("llm_attempt", a.seconds) for a in completion.attempts] + timings
        timings.append(("generate", time.perf_counter() - t))
        figures: tuple[FigureRow, ...] = ()
        notes: tuple[Warning, ...] = ()
        if table is not None:
            numbers = {s.sc.chunk.chunk_id: s.number for s in sources}
            base = table_draft(table)
            figures = tuple(replace(f, marker=numbers.get(m.record.chunk_id, 0))
                            for f, m in zip(base.figures, table.rows, strict=True))
            notes = base.warnings
        if completion.truncated:
            why = ("到达回答长度上限（finish_reason=length）" if completion.finish_reason == "length"
                   else f"服务器未说明结束原因（finish_reason={completion.finish_reason}）" if completion.finish_reason
                   else "数据流在没有结束标记的情况下中止")
            notes += (Warning(WarningKind.TRUNCATED, f"大模型的回答不完整：{why}；以下只是已收到的部分。"),)
        yield Draft(text=completion.text, mode="llm", evidence=tuple((s.number, s.sc.chunk.text) for s in sources),
                    sources=tuple(s.sc for s in sources), usage=completion.usage, model=completion.model,
                    timings=tuple(timings), figures=figures, warnings=notes, truncated=completion.truncated,
                    computed=computed_numbers(table) if table is not None else ())

    # --- finishing --------------------------------------------------------------------

    def finish(self, draft: Draft, req: Request, corpus: Corpus | None = None) -> Answer:
        """Verify ``draft`` and build the :class:`Answer` (the only place one is built).
        ``corpus`` resolves quotes taken outside ``req.contexts`` (table answers)."""
        t = time.perf_counter()
        cited_chunks = self._cited_chunks(draft, req, corpus)
        verified = verify_answer(draft.text, dict(draft.evidence),
                                 years={m: _years_of(ch) for m, ch in cited_chunks.items()})
        if draft.computed:
            verified = replace(verified, sentences=tuple(_computed(s, draft.computed) for s in verified.sentences))
        refusal = draft.refusal
        if refusal is None and draft.mode == "llm" and REFUSAL_PHRASE in draft.text and not verified.cited:
            # The model said the sources do not answer: keep its words, point to the nearest sections.
            refusal = req.info.refusal("model", draft.sources or req.contexts)
            refusal = replace(refusal, model_text=verified.text)
        notes = list(req.notes) + list(draft.warnings)
        citations: tuple[Citation, ...] = ()
        sentences: tuple[SentenceCheck, ...] = ()
        if refusal is not None:
            text = refusal.render()
            contexts = refusal.closest if refusal.outside_filters else (draft.sources or req.contexts)
        else:
            sentences = verified.sentences
            # A sentence its citations do not support is marked where it stands, never passed as checked.
            text = mark_unsupported(verified.text, sentences)
            citations = draft.citations or self._cite(verified.text, verified.sentences, draft.sources)
            contexts = draft.sources or req.contexts
            if verified.removed_markers:
                notes.append(Warning(WarningKind.REMOVED_MARKER, "已删除指向不存在来源的引用标记: "
                                     + " ".join(f"[{m}]" for m in verified.removed_markers)))
            notes += [unsupported_warning(s.text, s.reason) for s in verified.sentences if not s.supported]
            suspect = sorted(m for m in verified.cited if m in cited_chunks and cited_chunks[m].suspect)
            if suspect:
                notes.append(Warning(WarningKind.SUSPECT_SOURCE, "所引资料 " + " ".join(f"[{m}]" for m in suspect)
                                     + " 出自含有疑似针对模型的指令文字的报告，其内容可能是伪造的，请核对原文。"))
            if not draft.figures:  # a table answer lists every report's figure and its conflicts itself
                pool = [sc.chunk for sc in req.contexts]
                notes += [Warning(WarningKind.CONFLICT, c.describe())
                          for c in find_conflicts(sentences, cited_chunks, pool, self.tokenize)]
        return Answer(
            question=req.question, text=text, citations=citations, mode=draft.mode, refusal=refusal,
            warnings=tuple(notes), sentences=sentences, contexts=tuple(contexts), filters=req.info.filters,
            standalone_question=req.standalone if req.standalone != req.question else None, usage=draft.usage,
            timings=(*req.timings, *draft.timings, ("verify", time.perf_counter() - t)), model=draft.model,
            figures=draft.figures if refusal is None else (), truncated=draft.truncated,
        )

    @staticmethod
    def _cited_chunks(draft: Draft, req: Request, corpus: Corpus | None) -> dict[int, Chunk]:
        """Marker → the chunk it stands for (LLM: the numbered sources; extractive: the
        chunk each quote was taken from)."""
        if draft.sources:
            return {i: sc.chunk for i, sc in enumerate(draft.sources, start=1)}
        by_id: Mapping[str, Chunk] = corpus.by_id if corpus is not None else \
            {sc.chunk.chunk_id: sc.chunk for sc in req.contexts}
        return {c.marker: by_id[c.chunk_id] for c in draft.citations if c.chunk_id in by_id}

    def _cite(self, text: str, sentences: Sequence[SentenceCheck],
              sources: Sequence[ScoredChunk]) -> tuple[Citation, ...]:
        """LLM drafts: for each marker, the source sentence that best supports what cites it."""
        per_sentence: list[tuple[str, tuple[int, ...]]] = [(s.text, s.markers) for s in sentences] \
            or [(x, ()) for x in split_answer_sentences(text)]
        numbered = [Source(i, sc) for i, sc in enumerate(sources, start=1)]
        return cite(per_sentence, numbered, self.tokenize)


def _computed(check: SentenceCheck, computed: Sequence[str]) -> SentenceCheck:
    """A sentence flagged only for numbers the draft computed (and shows the arithmetic of) is
    supported, with reason ``computed``: marked, not hidden."""
    if check.supported or not check.missing_numbers:
        return check
    derived = "\n".join(computed)
    for raw in check.missing_numbers:
        mentions = numbers_to_check(raw)
        if not mentions or not all(number_supported(n, derived) for n in mentions):
            return check
    return replace(check, supported=True, reason="computed")


def _years_of(chunk: Chunk) -> frozenset[int]:
    """The years a source speaks for besides those in its text: its section's when the
    section names one (一、2019年工作总结), else its report's and those in its title."""
    if chunk.year is not None:
        return frozenset({chunk.year})
    return frozenset({*chunk.doc_years, *(int(y) for y in _YEAR_RE.findall(chunk.title))})


__all__ = ["MAX_QUESTION_CHARS", "AnswerStage", "Request", "check_question", "unsupported_warning"]
