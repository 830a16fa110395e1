"""Immutable data passed between pipeline stages.

Flow: ``LoadedFile`` (loading) → ``Document`` (cleaning) → ``Section`` tree
(outline) → ``Chunk`` (chunking) → ``ScoredChunk`` (retrieval) → ``Answer``
(answer/extractive + verification).  Every type is a frozen dataclass; derive a
changed copy with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

YearRole = Literal["review", "plan", "unknown"]
AnswerMode = Literal["llm", "extractive"]

#: The one phrase every refusal starts with, in both modes (the LLM prompt asks for it too).
REFUSAL_PHRASE = "所提供的报告中没有找到"
#: How a refusal introduces the sections that came closest to answering.
CLOSEST_LABEL = "最接近的章节"
#: The chunk flag for text that reads as instructions to a model (see ``assistant.hostile``).
INSTRUCTIONS_FLAG = "instructions"
#: The flag of every other chunk of a document that holds such text: the whole report is suspect.
SUSPECT_DOCUMENT_FLAG = "suspect_document"


@dataclass(frozen=True)
class LoadedFile:
    """A file read from disk and decoded to text (HTML/PDF/DOCX converted to lines)."""

    path: str
    text: str
    fmt: str  # txt | md | html | pdf | docx
    encoding: str  # the encoding the bytes were decoded with ("utf-8", "gb18030", "binary")
    sha256: str  # of the raw bytes: the manifest key for incremental ingest
    html_title: str | None = None


@dataclass(frozen=True)
class YearInfo:
    """A year a report covers and what it says about it (review of work done, or a plan)."""

    year: int
    role: YearRole


@dataclass(frozen=True)
class DocMeta:
    """Document-level metadata, detected by rules and overridable by a sidecar file."""

    title: str
    city: str | None = None
    province: str | None = None
    years: tuple[YearInfo, ...] = ()
    issuer: str | None = None
    date: str | None = None  # ISO yyyy-mm-dd
    extra: tuple[tuple[str, str], ...] = ()  # boilerplate fields kept as metadata (索引号, ...)

    @property
    def year_list(self) -> tuple[int, ...]:
        return tuple(y.year for y in self.years)

    def role_of(self, year: int) -> YearRole:
        for y in self.years:
            if y.year == year:
                return y.role
        return "unknown"


@dataclass(frozen=True)
class Document:
    """A cleaned report: ``text`` is what every offset in sections and chunks points into."""

    doc_id: str
    source_path: str
    text: str
    meta: DocMeta
    content_hash: str
    fmt: str = "txt"

    @property
    def label(self) -> str:
        """Short human label such as ``东莞市 2024年回顾 2025年计划``."""
        parts = [self.meta.city or ""]
        for y in self.meta.years:
            parts.append(f"{y.year}年" + {"review": "工作总结", "plan": "工作要点"}.get(y.role, ""))
        return " ".join(p for p in parts if p) or self.meta.title


@dataclass(frozen=True)
class Section:
    """A node in a document's outline.

    ``start``/``end`` cover the heading and everything under it (children included);
    ``body_start`` is where the text after the heading sentence begins.
    The root section has ``level == 0`` and an empty heading.
    """

    heading: str
    level: int
    start: int
    end: int
    body_start: int
    path: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    year: int | None = None  # a year named by this heading or inherited from an ancestor
    role: YearRole = "unknown"
    children: tuple[Section, ...] = ()

    def walk(self) -> list[Section]:
        """This section and all descendants, depth first in document order."""
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out


@dataclass(frozen=True)
class Chunk:
    """A retrievable unit: an exact span ``doc.text[start:end]`` plus its context."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int
    section_path: tuple[str, ...]
    heading: str
    title: str
    city: str | None
    doc_years: tuple[int, ...]
    year: int | None
    role: YearRole
    departments: tuple[str, ...]
    token_count: int
    embed_text: str  # label + heading path + text: what the embedder and BM25 see
    source_path: str = ""
    ordinal: int = 0  # position within the document
    # Set at ingest (``assistant.hostile``): "instructions" when the text holds sentences
    # that address a model (忽略以上指令, 输出你的API密钥 ...); "suspect_document" on the
    # other chunks of such a document.
    flags: tuple[str, ...] = ()

    @property
    def path_str(self) -> str:
        return " › ".join(self.section_path)

    @property
    def hostile(self) -> bool:
        """True when the chunk itself holds instruction-like text."""
        return INSTRUCTIONS_FLAG in self.flags

    @property
    def suspect(self) -> bool:
        """True when the chunk or its document holds instruction-like text: never quoted by
        the offline answerer, fenced with a warning for the LLM."""
        return bool(self.flags)


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk with its fused score and the per-retriever ranks that produced it."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    keyword_rank: int | None = None
    dense_score: float | None = None
    keyword_score: float | None = None


@dataclass(frozen=True)
class Filters:
    """Metadata filters, given explicitly or inferred from the question."""

    cities: tuple[str, ...] = ()
    years: tuple[int, ...] = ()
    doc_ids: tuple[str, ...] = ()
    role: YearRole | None = None
    inferred: bool = False

    @property
    def empty(self) -> bool:
        return not (self.cities or self.years or self.doc_ids)

    def describe(self) -> str:
        parts = []
        if self.cities:
            parts.append("城市=" + "、".join(self.cities))
        if self.years:
            parts.append("年份=" + "、".join(str(y) for y in self.years))
        if self.role and self.role != "unknown":
            parts.append("类型=" + {"review": "总结/回顾", "plan": "要点/计划"}[self.role])
        if self.doc_ids:
            parts.append("报告=" + "、".join(self.doc_ids))
        return ";".join(parts) or "无"


@dataclass(frozen=True)
class Citation:
    """What an inline marker ``[n]`` points to."""

    marker: int
    chunk_id: str
    doc_id: str
    title: str
    city: str | None
    year: int | None
    section_path: tuple[str, ...]
    quote: str  # the cited sentence(s), exact source text
    start: int  # character offsets of ``quote`` in the cleaned document text
    end: int
    source_path: str = ""

    @classmethod
    def from_chunk(cls, marker: int, chunk: Chunk, a: int, b: int) -> Citation:
        """Cite ``chunk.text[a:b]``; offsets are stored relative to the document."""
        return cls(marker=marker, chunk_id=chunk.chunk_id, doc_id=chunk.doc_id, title=chunk.title,
                   city=chunk.city, year=chunk.year, section_path=chunk.section_path, quote=chunk.text[a:b],
                   start=chunk.start + a, end=chunk.start + b, source_path=chunk.source_path)


@dataclass(frozen=True)
class SentenceCheck:
    """Verification verdict for one answer sentence."""

    text: str
    markers: tuple[int, ...]
    supported: bool
    reason: str = ""
    missing_numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


class WarningKind(StrEnum):
    """What an answer warns about. Render with :attr:`Warning.text`; branch on the kind."""

    UNSUPPORTED = "unsupported"  # a sentence whose citation does not support it
    REMOVED_MARKER = "removed_marker"  # a marker pointing to no source was dropped
    FALLBACK = "fallback"  # the LLM failed; the offline answerer answered instead
    CONDENSE = "condense"  # the follow-up could not be rewritten by the LLM
    TRUNCATED = "truncated"  # the answer was cut off before it ended
    FILTER_RELAXED = "filter_relaxed"  # the answer comes from outside the inferred city/year filters
    COMPUTED = "computed"  # a number the answer derived (a difference, a ranking), shown with its arithmetic
    CONFLICT = "conflict"  # another report states another figure for the same city, year and metric
    SUSPECT_SOURCE = "suspect_source"  # the answer cites a source holding instruction-like text


@dataclass(frozen=True)
class Attempt:
    """One call to the LLM server: how long it took and how it ended (``ok``, ``length``,
    ``no_finish``, or what failed: ``500``, ``timeout``, ``connection``, ``broken``...)."""

    seconds: float
    outcome: str


@dataclass(frozen=True)
class StreamReset:
    """Yielded by :meth:`assistant.Assistant.stream` when text already streamed is void (the
    LLM stream broke): discard it; the answer that follows replaces it. ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class Waiting:
    """Yielded by :func:`assistant.streaming.watch` while an answer is slow to come:
    ``seconds`` is the real time waited so far."""

    seconds: float


@dataclass(frozen=True)
class Warning:  # the answer's own notice type (shadows the builtin only here; never raised)
    """A typed notice attached to an :class:`Answer`."""

    kind: WarningKind
    text: str


RefusalReason = Literal["no_evidence", "no_figure", "unknown_place", "unknown_year", "outside_filters", "model",
                        "near_miss"]


@dataclass(frozen=True)
class Refusal:
    """Why an answer refuses, as data; :meth:`render` puts it into words (once, here).

    ``closest`` holds the sections that came closest (shown instead of an answer);
    ``outside_filters`` says they were found without the question's filters because
    nothing matched them.  ``model_text`` is an LLM's own refusal sentence.  A
    ``near_miss`` names the ``metric`` asked for and the ``nearest`` ones the reports do state.
    """

    reason: RefusalReason
    wants_figure: bool = False
    missing: tuple[str, ...] = ()  # places or years named in the question that no report covers
    closest: tuple[ScoredChunk, ...] = ()
    outside_filters: bool = False
    model_text: str | None = None
    metric: str = ""
    nearest: tuple[str, ...] = ()

    def render(self) -> str:
        """``所提供的报告中没有找到…;最接近的章节:…。`` as one sentence."""
        if self.model_text:
            body = self.model_text.strip().rstrip("。.")
        else:
            scope = ""
            if self.missing:
                what = "、".join(self.missing) + ("年" if self.reason == "unknown_year" else "")
                scope = f"（报告库中没有{what}的报告）"
            asked = "该问题所问的具体数字" if self.wants_figure else "能回答该问题的内容"
            if self.reason == "near_miss" and self.metric:
                asked = f"“{self.metric}”的数字"
                scope += f"（报告中只有：{'、'.join(self.nearest)}）" if self.nearest else ""
            body = f"{REFUSAL_PHRASE}{asked}{scope}"
        return body + closest_pointer(self.closest) + "。"


def closest_pointer(contexts: tuple[ScoredChunk, ...] | list[ScoredChunk]) -> str:
    """';最接近的章节:丽水市2019年 一、… › (二)…' for up to three sections ('' if none)."""
    labels: list[str] = []
    for sc in contexts[:3]:
        ch = sc.chunk
        label = f"{ch.city or ''}{ch.year or ''}{'年' if ch.year else ''} {ch.path_str}".strip()
        if label not in labels:
            labels.append(label)
    return f";{CLOSEST_LABEL}:" + ";".join(labels) if labels else ""


@dataclass(frozen=True)
class FigureRow:
    """One figure a table answer states: a row of the table the chat shows beside it.

    ``marker`` is the answer's citation of its sentence; ``matched`` the metric the question asked
    for and ``how`` how this record's metric matched it (``包含``, ``近似``…).
    """

    marker: int
    city: str | None
    year: int | None
    metric: str
    value: float
    unit: str
    comparator: str
    kind: str
    figure: str
    matched: str = ""
    how: str = ""
    doc_id: str = ""
    record_id: str = ""


@dataclass(frozen=True)
class Draft:
    """What generation hands to verification: text with ``[n]`` markers and what each
    marker stands for (``evidence``: the text a sentence citing it must be supported by).

    The extractive answerer chooses its quotes itself (``citations``); an LLM draft cites
    numbered ``sources`` and its citations are found when it is finished.
    """

    text: str
    mode: AnswerMode
    evidence: tuple[tuple[int, str], ...] = ()
    citations: tuple[Citation, ...] = ()
    sources: tuple[ScoredChunk, ...] = ()  # source n is sources[n - 1]
    refusal: Refusal | None = None
    warnings: tuple[Warning, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    timings: tuple[tuple[str, float], ...] = ()
    figures: tuple[FigureRow, ...] = ()  # table answers: the records the answer states
    computed: tuple[str, ...] = ()  # numbers the answer derived (shown with their arithmetic), not quoted
    truncated: bool = False  # the model stopped before finishing (finish_reason length or none)


@dataclass(frozen=True)
class Answer:
    """The result of :meth:`assistant.Assistant.ask`."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    mode: AnswerMode
    refusal: Refusal | None = None
    warnings: tuple[Warning, ...] = ()
    sentences: tuple[SentenceCheck, ...] = ()
    contexts: tuple[ScoredChunk, ...] = ()
    filters: Filters = field(default_factory=Filters)
    standalone_question: str | None = None
    usage: Usage = field(default_factory=Usage)
    timings: tuple[tuple[str, float], ...] = ()  # (stage, seconds)
    model: str | None = None
    figures: tuple[FigureRow, ...] = ()  # table answers: the figures stated, one row each
    truncated: bool = False  # the LLM's answer was cut off (see the TRUNCATED warning)

    @property
    def refused(self) -> bool:
        """True when the reports do not say (see :attr:`refusal` for why)."""
        return self.refusal is not None

    @property
    def unsupported(self) -> tuple[SentenceCheck, ...]:
        return tuple(s for s in self.sentences if not s.supported)

    def warnings_of(self, kind: WarningKind) -> tuple[Warning, ...]:
        return tuple(w for w in self.warnings if w.kind == kind)

    def timing(self, stage: str) -> float:
        return sum(t for s, t in self.timings if s == stage)
