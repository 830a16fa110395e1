"""The answer stage: from a question and its retrieved chunks to a verified :class:`Answer`.

Two steps, whatever the mode:

1. :meth:`AnswerStage.generate` writes a :class:`~assistant.types.Draft`: with an LLM,
   the prompt (numbered sources fenced as data, under a token budget) is streamed
   through the model; offline, or when the LLM fails, the extractive answerer quotes
   report sentences.  A refusal is data (:class:`~assistant.types.Refusal`), never a
   phrase to match later.
2. :meth:`AnswerStage.finish` verifies the draft (markers to no source dropped; each
   sentence's numbers found in what it cites), picks the cited sentences and returns the
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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .config import AnswerSettings
from .context import Source, assemble, budget, cite, prompt_tokens, render_sources
from .embedding import Embedder
from .errors import LLMAuthError, LLMError, LLMModelNotFoundError
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
from .llm import LLM, Completion, Message
from .prompts import PromptLibrary
from .query import QueryInfo
from .retrieval import Corpus
from .types import REFUSAL_PHRASE, Answer, Citation, Draft, ScoredChunk, SentenceCheck, Warning, WarningKind
from .verification import split_answer_sentences, verify_answer

_PROMPT_SLACK = 200  # tokens for the chat format and the filter line


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


class AnswerStage:
    """Generates and finishes answers. Thread-safe: it holds only read-only state."""

    def __init__(self, settings: AnswerSettings, prompts: PromptLibrary, llm: LLM | None,
                 tokenize: Callable[[str], list[str]], *, max_answer_tokens: int = 800,
                 model: SentenceModel | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.model = model or (load_model(settings.model_path) if settings.model_path else default_model())
        self.prompts = prompts
        self.llm = llm
        self.tokenize = tokenize
        self.max_answer_tokens = max_answer_tokens
        self.embedder = embedder

    @property
    def mode(self) -> str:
        return "llm" if self.llm is not None else "extractive"

    # --- generation -------------------------------------------------------------------

    def refuse(self, req: Request, closest: Sequence[ScoredChunk], *, outside_filters: bool) -> Draft:
        """A refusal without asking anyone (nothing matched the question's filters)."""
        return Draft(text="", mode="llm" if self.llm else "extractive",
                     refusal=req.info.refusal("outside_filters" if outside_filters else "no_evidence", closest,
                                              outside_filters=outside_filters),
                     model=self.llm.model if self.llm else None)

    def generate(self, req: Request, corpus: Corpus) -> Iterator[str | Draft]:
        """Yield text deltas (LLM mode), then one :class:`Draft`.

        An LLM failure that a retry could not fix falls back to the extractive answerer
        with a :attr:`WarningKind.FALLBACK` warning; a rejected key or an unknown model
        is raised, since every later question would fail the same way.
        """
        fallback: tuple[Warning, ...] = ()
        if self.llm is not None:
            try:
                yield from self._generate_llm(req, self.llm)
                return
            except (LLMAuthError, LLMModelNotFoundError):
                raise
            except LLMError as exc:
                fallback = (Warning(WarningKind.FALLBACK, f"LLM 调用失败，已改用离线抽取模式回答（{exc.message}）。"),)
        t = time.perf_counter()
        weights = term_weights(question_terms(req.info, self.tokenize), corpus.keyword)
        draft = extractive_answer(req.info, req.contexts, self.evidence(req, corpus), weights, self.tokenize,
                                  self.settings, self.model, corpus=corpus.chunks)
        draft = replace(draft, warnings=fallback + draft.warnings,
                        timings=(("generate", time.perf_counter() - t),))
        yield draft

    def evidence(self, req: Request, corpus: Corpus) -> tuple[Candidate, ...]:
        """The scored sentences of ``req.contexts`` (computed once per request)."""
        if req.evidence is not None:
            return req.evidence
        similarity = None
        if self.embedder is not None and req.query_vector is not None:
            emb, qv = self.embedder, req.query_vector

            def similarity(texts: list[str]) -> list[float]:
                return [float(x) for x in emb.embed_passages(texts) @ qv]

        cands = candidates(req.info, req.contexts, corpus.keyword, self.tokenize, similarity=similarity)
        return tuple(score(cands, self.model))

    def assess(self, req: Request, corpus: Corpus, widen: Callable[[], Sequence[ScoredChunk]] | None = None) -> Request:
        """Score the evidence; when inferred filters left none good enough, look in the
        whole corpus (``widen``) and keep what does not contradict them (see :func:`relax`)."""
        ev = self.evidence(req, corpus)
        req = replace(req, evidence=ev)
        if widen is None or not req.info.filters.inferred or req.info.filters.empty:
            return req
        if max((c.score for c in ev), default=0.0) >= self.model.threshold:
            return req
        wide = tuple(widen())
        wide_req = replace(req, contexts=wide, evidence=None)
        wide_ev = tuple(c for c in self.evidence(wide_req, corpus) if consistent(c, req.info))
        if max((c.score for c in wide_ev), default=0.0) < self.model.threshold:
            return req
        note = Warning(WarningKind.FILTER_RELAXED,
                       f"在推断的筛选条件（{req.info.filters.describe()}）下没有找到答案，已在全部报告中检索。")
        return replace(wide_req, evidence=wide_ev, notes=(*req.notes, note))

    def prompt(self, req: Request, context_window: int) -> tuple[list[Message], list[Source]]:
        """The chat messages for ``req`` and the numbered sources they hold (none: refuse)."""
        template = "comparison" if req.info.comparison else "qa"
        system = self.prompts.render("system")
        overhead = prompt_tokens(system, self.prompts.get(template).text, req.standalone) + _PROMPT_SLACK
        sources = assemble(req.contexts, budget(context_window, self.max_answer_tokens, overhead,
                                                self.settings.source_tokens))
        user = self.prompts.render(
            template, question=req.standalone, sources=render_sources(sources),
            valid_markers=" ".join(f"[{s.number}]" for s in sources), filters=req.info.filters.describe())
        return [Message("system", system), Message("user", user)], sources

    def _generate_llm(self, req: Request, llm: LLM) -> Iterator[str | Draft]:
        t = time.perf_counter()
        messages, sources = self.prompt(req, llm.context_window)
        if not sources:
            yield Draft(text="", mode="llm", refusal=req.info.refusal("no_evidence", req.contexts), model=llm.model)
            return
        completion: Completion | None = None
        timings: list[tuple[str, float]] = []
        for part in llm.stream(messages):
            if isinstance(part, Completion):
                completion = part
            elif part:
                if not timings:
                    timings.append(("first_token", time.perf_counter() - t))
                yield part
        if completion is None:
            raise LLMError("The LLM stream ended without a final message.", retryable=True)
        timings.append(("generate", time.perf_counter() - t))
        yield Draft(text=completion.text, mode="llm", evidence=tuple((s.number, s.sc.chunk.text) for s in sources),
                    sources=tuple(s.sc for s in sources), usage=completion.usage, model=completion.model,
                    timings=tuple(timings))

    # --- finishing --------------------------------------------------------------------

    def finish(self, draft: Draft, req: Request) -> Answer:
        """Verify ``draft`` and build the :class:`Answer` (the only place one is built)."""
        t = time.perf_counter()
        verified = verify_answer(draft.text, dict(draft.evidence))
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
            text, sentences = verified.text, verified.sentences
            citations = draft.citations or self._cite(verified.text, verified.sentences, draft.sources)
            contexts = draft.sources or req.contexts
            if verified.removed_markers:
                notes.append(Warning(WarningKind.REMOVED_MARKER, "已删除指向不存在来源的引用标记: "
                                     + " ".join(f"[{m}]" for m in verified.removed_markers)))
            notes += [unsupported_warning(s.text, s.reason) for s in verified.sentences if not s.supported]
        return Answer(
            question=req.question, text=text, citations=citations, mode=draft.mode, refusal=refusal,
            warnings=tuple(notes), sentences=sentences, contexts=tuple(contexts), filters=req.info.filters,
            standalone_question=req.standalone if req.standalone != req.question else None, usage=draft.usage,
            timings=(*req.timings, *draft.timings, ("verify", time.perf_counter() - t)), model=draft.model,
        )

    def _cite(self, text: str, sentences: Sequence[SentenceCheck],
              sources: Sequence[ScoredChunk]) -> tuple[Citation, ...]:
        """LLM drafts: for each marker, the source sentence that best supports what cites it."""
        per_sentence: list[tuple[str, tuple[int, ...]]] = [(s.text, s.markers) for s in sentences] \
            or [(x, ()) for x in split_answer_sentences(text)]
        numbered = [Source(i, sc) for i, sc in enumerate(sources, start=1)]
        return cite(per_sentence, numbered, self.tokenize)


__all__ = ["AnswerStage", "Request", "unsupported_warning"]
