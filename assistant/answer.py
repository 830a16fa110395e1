"""The answer stage: from a question and its retrieved chunks to a verified :class:`Answer`.

Two steps, whatever the mode:

1. :meth:`AnswerStage.generate` writes a :class:`~assistant.types.Draft`: with an LLM,
   the prompt (numbered sources fenced as data, under a token budget) is streamed
   through the model, each marker held back until it is known to point to a source;
   offline, or when the LLM fails, the extractive answerer quotes report sentences
   (never from a chunk flagged as holding instructions).  A stream that breaks after
   text was shown is followed by a :class:`~assistant.types.StreamReset`.  A refusal is
   data (:class:`~assistant.types.Refusal`), never a phrase to match later.
2. :meth:`AnswerStage.finish` verifies the draft (markers to no source dropped; each
   sentence's numbers, ranks, years and directions found in what it cites; sentences that
   fail are marked), checks cited figures against other reports for the same city and
   year, and returns the :class:`Answer` with typed warnings.

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

from .config import AnswerSettings
from .conflicts import find_conflicts
from .context import Source, assemble, budget, cite, prompt_tokens, render_sources
from .errors import LLMAuthError, LLMError, LLMModelNotFoundError
from .extractive import SentenceScorer
from .extractive import answer as extractive_answer
from .llm import LLM, Completion, Message
from .prompts import PromptLibrary
from .query import QueryInfo
from .retrieval import Corpus
from .types import (
    REFUSAL_PHRASE,
    Answer,
    Chunk,
    Citation,
    Draft,
    ScoredChunk,
    SentenceCheck,
    StreamReset,
    Warning,
    WarningKind,
)
from .verification import MarkerGate, mark_unsupported, split_answer_sentences, verify_answer

_PROMPT_SLACK = 200  # tokens for the chat format and the filter line
_YEAR_RE = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


@dataclass(frozen=True)
class Request:
    """What the answer stage is asked: the question as typed, as understood (after a
    follow-up is rewritten), its analysis and the retrieved chunks, best first."""

    question: str
    standalone: str
    info: QueryInfo
    contexts: tuple[ScoredChunk, ...]


def unsupported_warning(text: str, reason: str) -> Warning:
    return Warning(WarningKind.UNSUPPORTED, f"未被引文支持的句子（{reason}）: {text}")


class AnswerStage:
    """Generates and finishes answers. Thread-safe: it holds only read-only state."""

    def __init__(self, settings: AnswerSettings, prompts: PromptLibrary, llm: LLM | None,
                 tokenize: Callable[[str], list[str]], *, max_answer_tokens: int = 800) -> None:
        self.settings = settings
        self.prompts = prompts
        self.llm = llm
        self.tokenize = tokenize
        self.max_answer_tokens = max_answer_tokens

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

    def generate(self, req: Request, corpus: Corpus, scorer: SentenceScorer | None = None, *,
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
        spent: tuple[tuple[str, float], ...] = ()
        if self.llm is not None:
            t = time.perf_counter()
            shown = False
            failure: LLMError | None = None
            try:
                for part in self._generate_llm(req, self.llm, deadline):
                    shown = shown or (isinstance(part, str) and bool(part))
                    yield part
                return
            except (LLMAuthError, LLMModelNotFoundError):
                raise
            except LLMError as exc:
                failure = exc
            elapsed = time.perf_counter() - t
            spent = (*(("llm_attempt", a.seconds) for a in failure.attempts), ("llm_failed", elapsed))
            if shown:
                yield StreamReset(failure.message)
            fallback = (Warning(WarningKind.FALLBACK, f"LLM 调用失败（{failure.message}；共用时 {elapsed:.1f} 秒），"
                                                      "已改用离线抽取模式回答。"),)
        t = time.perf_counter()
        # Text that reads as instructions to a model (or comes from a report holding such
        # text) is never quoted as an answer.
        contexts = tuple(sc for sc in req.contexts if not sc.chunk.suspect)
        draft = extractive_answer(req.info, contexts, corpus.keyword, self.tokenize, self.settings,
                                  sentence_scorer=scorer, corpus=[c for c in corpus.chunks if not c.suspect])
        if draft.refusal is not None and not contexts and req.contexts:
            draft = replace(draft, refusal=replace(draft.refusal, closest=req.contexts[:3]))
        draft = replace(draft, warnings=fallback + draft.warnings,
                        timings=(*spent, ("generate", time.perf_counter() - t)))
        yield draft

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

    def _generate_llm(self, req: Request, llm: LLM, deadline: float | None) -> Iterator[str | Draft]:
        t = time.perf_counter()
        messages, sources = self.prompt(req, llm.context_window)
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
        warnings: tuple[Warning, ...] = ()
        if completion.truncated:
            why = ("到达回答长度上限（finish_reason=length）" if completion.finish_reason == "length"
                   else f"服务器未说明结束原因（finish_reason={completion.finish_reason}）" if completion.finish_reason
                   else "数据流在没有结束标记的情况下中止")
            warnings = (Warning(WarningKind.TRUNCATED, f"大模型的回答不完整：{why}；以下只是已收到的部分。"),)
        yield Draft(text=completion.text, mode="llm", evidence=tuple((s.number, s.sc.chunk.text) for s in sources),
                    sources=tuple(s.sc for s in sources), usage=completion.usage, model=completion.model,
                    timings=tuple(timings), warnings=warnings, truncated=completion.truncated)

    # --- finishing --------------------------------------------------------------------

    def finish(self, draft: Draft, req: Request, *, timings: Sequence[tuple[str, float]] = (),
               warnings: Sequence[Warning] = ()) -> Answer:
        """Verify ``draft`` and build the :class:`Answer` (the only place one is built)."""
        t = time.perf_counter()
        cited_chunks = self._cited_chunks(draft, req)
        verified = verify_answer(draft.text, dict(draft.evidence),
                                 years={m: _years_of(ch) for m, ch in cited_chunks.items()})
        refusal = draft.refusal
        if refusal is None and draft.mode == "llm" and REFUSAL_PHRASE in draft.text and not verified.cited:
            # The model said the sources do not answer: keep its words, point to the nearest sections.
            refusal = req.info.refusal("model", draft.sources or req.contexts)
            refusal = replace(refusal, model_text=verified.text)
        notes = list(warnings) + list(draft.warnings)
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
            pool = [sc.chunk for sc in req.contexts]
            notes += [Warning(WarningKind.CONFLICT, c.describe())
                      for c in find_conflicts(sentences, cited_chunks, pool, self.tokenize)]
        return Answer(
            question=req.question, text=text, citations=citations, mode=draft.mode, refusal=refusal,
            warnings=tuple(notes), sentences=sentences, contexts=tuple(contexts), filters=req.info.filters,
            standalone_question=req.standalone if req.standalone != req.question else None, usage=draft.usage,
            timings=(*timings, *draft.timings, ("verify", time.perf_counter() - t)), model=draft.model,
            truncated=draft.truncated,
        )

    @staticmethod
    def _cited_chunks(draft: Draft, req: Request) -> dict[int, Chunk]:
        """Marker → the chunk it stands for (LLM: the numbered sources; extractive: the
        chunk each quote was taken from)."""
        if draft.sources:
            return {i: sc.chunk for i, sc in enumerate(draft.sources, start=1)}
        by_id = {sc.chunk.chunk_id: sc.chunk for sc in req.contexts}
        return {c.marker: by_id[c.chunk_id] for c in draft.citations if c.chunk_id in by_id}

    def _cite(self, text: str, sentences: Sequence[SentenceCheck],
              sources: Sequence[ScoredChunk]) -> tuple[Citation, ...]:
        """LLM drafts: for each marker, the source sentence that best supports what cites it."""
        per_sentence: list[tuple[str, tuple[int, ...]]] = [(s.text, s.markers) for s in sentences] \
            or [(x, ()) for x in split_answer_sentences(text)]
        numbered = [Source(i, sc) for i, sc in enumerate(sources, start=1)]
        return cite(per_sentence, numbered, self.tokenize)


def _years_of(chunk: Chunk) -> frozenset[int]:
    """The years a source speaks for besides those in its text: its section's when the
    section names one (一、2019年工作总结), else its report's and those in its title."""
    if chunk.year is not None:
        return frozenset({chunk.year})
    return frozenset({*chunk.doc_years, *(int(y) for y in _YEAR_RE.findall(chunk.title))})


__all__ = ["AnswerStage", "Request", "unsupported_warning"]
