"""Everything the chat page does that is not a widget: pure, testable functions.

``app.py`` lays out widgets and calls these; nothing in ``assistant.ui`` but
``app.py`` imports Streamlit.  Uploads and the document browser live in
:mod:`assistant.ui.documents`, the eval dashboard in :mod:`assistant.ui.evals_view`,
answer feedback in :mod:`assistant.ui.feedback`.

* inline ``[n]`` markers → HTML citation chips; the cited sentence highlighted inside
  its section text by character offsets (always HTML-escaped);
* labels in Chinese, or English when the question is mostly ASCII;
* the conversation state and the one-Assistant-per-configuration resource.

>>> highlight("a<b>c", 1, 4)
'a<mark class="cite-quote">&lt;b&gt;</mark>c'
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.numbers import MARKER_RE
from assistant.text import is_foreign
from assistant.types import CLOSEST_LABEL, Answer, Chunk, Citation, ScoredChunk, StreamReset, Waiting, WarningKind
from assistant.verification import marker_numbers

if TYPE_CHECKING:
    from assistant.facade import Assistant

# --- labels -------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "sources": "来源", "refusal": "无法根据报告回答", "closest": CLOSEST_LABEL,
        "closest_other": "其他报告中最接近的章节（不符合筛选条件）",
        "no_closest": "索引中没有相关章节。", "unsupported": "以下句子未被引文支持",
        "notice": "注意", "filters": "筛选条件", "inferred": "从问题推断", "explicit": "侧边栏指定",
        "understood": "理解为", "quote_missing": "未能在章节中定位引文，以下为引文原文:",
        "no_section": "找不到该来源的章节文本（文档可能已被删除）。",
        "waiting": "正在等待大模型回答…（已等待 {seconds:.0f} 秒）",
        "reset": "大模型的回答中途中断，已撤回显示的部分（{reason}）；下面是离线抽取模式的回答。",
    },
    "en": {
        "sources": "Sources", "refusal": "Cannot answer from the reports", "closest": "Closest sections",
        "closest_other": "Closest sections in other reports (outside the filters)",
        "no_closest": "No related section in the index.",
        "unsupported": "Sentences not supported by a citation",
        "notice": "Note", "filters": "Filters", "inferred": "inferred from the question",
        "explicit": "set in the sidebar", "understood": "Understood as",
        "quote_missing": "The quote could not be located in the section; the quote itself:",
        "no_section": "The section text of this source is gone (the document may have been removed).",
        "waiting": "Waiting for the LLM… ({seconds:.0f} s so far)",
        "reset": "The LLM's answer broke off; the partial text was withdrawn ({reason}). The offline answer follows.",
    },
}

CSS = """
<style>
a.cite-chip { display:inline-block; min-width:1.35em; padding:0 .38em; margin:0 .12em; border-radius:.7em;
  background:#e8f0fe; color:#1a56db !important; font-size:.78em; font-weight:600; line-height:1.45em;
  text-align:center; text-decoration:none !important; vertical-align:super; border:1px solid #c3d5fb; }
a.cite-chip:hover { background:#1a56db; color:#fff !important; }
mark.cite-quote { background:#fff3a3; padding:0 .1em; border-radius:.2em; box-shadow:0 0 0 1px #f0d000; }
div.src-section { max-height:22em; overflow-y:auto; padding:.6em .8em; background:#fafafa;
  border-left:3px solid #c3d5fb; font-size:.92em; line-height:1.7; }
div.answer-text { line-height:1.8; }
div.outline div { white-space:nowrap; overflow:hidden; text-overflow:ellipsis; font-size:.9em; }
</style>
"""


def labels_for(question: str) -> dict[str, str]:
    """Labels in English for a question in Latin letters, else in Chinese."""
    return LABELS["en" if is_foreign(question) else "zh"]


def mode_badge(mode: str, model: str | None) -> tuple[str, str]:
    """(badge, one-line explanation) for the answer mode."""
    if mode == "llm":
        return f"LLM: {model}", "答案由大模型根据检索到的章节生成，每句话都与引文核对。"
    return ("离线抽取模式",
            "未配置大模型，答案直接摘自报告原文。设置环境变量 OPENAI_API_KEY（或本地兼容服务的 "
            "OPENAI_BASE_URL）后重启即可使用 LLM 模式。")


# --- answers -------------------------------------------------------------------------------

_WS_RE = re.compile(r"\s+")


def anchor_id(prefix: str, marker: int) -> str:
    return f"src-{prefix}-{marker}"


def source_label(c: Citation) -> str:
    """``[1] 丽水市 · 2019 · 《title》 › section › path`` for a sources-panel entry."""
    head = " · ".join(str(x) for x in (c.city, c.year) if x)
    path = " › ".join(c.section_path)
    return f"[{c.marker}] {head + ' · ' if head else ''}《{c.title}》" + (f" › {path}" if path else "")


def chunk_label(ch: Chunk) -> str:
    head = " · ".join(str(x) for x in (ch.city, ch.year) if x)
    return f"{head + ' · ' if head else ''}《{ch.title}》" + (f" › {ch.path_str}" if ch.section_path else "")


def _multiline(escaped: str) -> str:
    # One physical line keeps the whole fragment a single Markdown HTML block.
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")


def answer_html(answer: Answer, prefix: str) -> str:
    """The answer text, escaped, with each known ``[n]`` marker turned into a chip that
    links to its sources-panel entry and shows the quote on hover."""
    known = dict(group_citations(answer.citations))

    def chip(m: re.Match[str]) -> str:
        numbers = marker_numbers(m.group(0))
        cits = known.get(numbers[0]) if len(numbers) == 1 else None
        if not cits:
            return m.group(0)
        c = cits[0]
        quotes = "\n".join(f"“{x.quote}”" for x in cits)
        tip = html.escape(f"{source_label(c)}\n{quotes}", quote=True).replace("\n", "&#10;")
        return f'<a class="cite-chip" href="#{anchor_id(prefix, c.marker)}" title="{tip}">{c.marker}</a>'

    body = MARKER_RE.sub(chip, _multiline(html.escape(answer.text, quote=False)))
    return f'<div class="answer-text">{body}</div>'


def highlight(text: str, start: int, end: int) -> str:
    """``text`` HTML-escaped, with ``text[start:end]`` wrapped in ``<mark>``; offsets clamped."""
    return highlight_spans(text, [(start, end)])


def highlight_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Like :func:`highlight` for several spans; overlapping or touching spans merge."""
    clamped = sorted((max(0, min(s, len(text))), max(0, min(e, len(text)))) for s, e in spans)
    merged: list[list[int]] = []
    for s, e in clamped:
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, pos = [], 0
    for s, e in merged:
        out += [html.escape(text[pos:s], quote=False), '<mark class="cite-quote">',
                html.escape(text[s:e], quote=False), "</mark>"]
        pos = e
    out.append(html.escape(text[pos:], quote=False))
    return "".join(out)


def _norm(s: str) -> str:
    return _WS_RE.sub("", s)


def quote_span(c: Citation, chunk: Chunk) -> tuple[int, int] | None:
    """Where ``c.quote`` sits in ``chunk.text``: by offsets (both are offsets into the
    cleaned document), else by searching the quote; None when it is not there."""
    s, e = c.start - chunk.start, c.end - chunk.start
    if 0 <= s < e <= len(chunk.text) and _norm(chunk.text[s:e]) == _norm(c.quote):
        return s, e
    i = chunk.text.find(c.quote) if c.quote else -1
    if i >= 0:
        return i, i + len(c.quote)
    # A quote running past the chunk's edge: highlight the overlapping part.
    cs, ce = max(s, 0), min(e, len(chunk.text))
    if cs < ce and _norm(chunk.text[cs:ce]) and _norm(chunk.text[cs:ce]) in _norm(c.quote):
        return cs, ce
    return None


def find_chunk(c: Citation, contexts: Iterable[ScoredChunk],
               lookup: Callable[[str], Chunk | None] | None = None) -> Chunk | None:
    """The cited chunk: from the answer's contexts, else from the corpus via ``lookup``."""
    for sc in contexts:
        if sc.chunk.chunk_id == c.chunk_id:
            return sc.chunk
    return lookup(c.chunk_id) if lookup else None


def _quotes_html(cits: Sequence[Citation]) -> str:
    return "<br>".join(f'<mark class="cite-quote">{_multiline(html.escape(c.quote, quote=False))}</mark>'
                       for c in cits)


def section_html(cits: Citation | Sequence[Citation], chunk: Chunk | None,
                 lang: Mapping[str, str] = LABELS["zh"]) -> str:
    """The cited section's text with every quote of ``cits`` highlighted (escaped, one HTML
    block).  Quotes that cannot be located are listed above the section instead."""
    cits = [cits] if isinstance(cits, Citation) else list(cits)
    if chunk is None:
        gone = html.escape(lang["no_section"])
        return f'<div class="src-section"><em>{gone}</em><br>{_quotes_html(cits)}</div>'
    spans = [(c, quote_span(c, chunk)) for c in cits]
    lost = [c for c, sp in spans if sp is None]
    head = f'<em>{html.escape(lang["quote_missing"])}</em><br>{_quotes_html(lost)}<hr>' if lost else ""
    body = highlight_spans(chunk.text, [sp for _c, sp in spans if sp is not None])
    return f'<div class="src-section">{head}{_multiline(body)}</div>'


def group_citations(citations: Sequence[Citation]) -> list[tuple[int, list[Citation]]]:
    """Citations by marker, in order of first appearance: one sources-panel entry per
    ``[n]``, even when several quotes (answer sentences) cite the same source."""
    groups: dict[int, list[Citation]] = {}
    for c in citations:
        groups.setdefault(c.marker, []).append(c)
    return list(groups.items())


def source_sections(cits: Sequence[Citation], contexts: Iterable[ScoredChunk],
                    lookup: Callable[[str], Chunk | None] | None = None,
                    lang: Mapping[str, str] = LABELS["zh"]) -> str:
    """The HTML inside one sources-panel entry: each cited chunk with its quotes marked."""
    contexts = list(contexts)
    by_chunk: dict[str, list[Citation]] = {}
    for c in cits:
        by_chunk.setdefault(c.chunk_id, []).append(c)
    return "".join(section_html(group, find_chunk(group[0], contexts, lookup), lang)
                   for group in by_chunk.values())


def source_caption(cits: Sequence[Citation]) -> str:
    name = Path(cits[0].source_path).name if cits[0].source_path else cits[0].doc_id
    return f"{name} · 字符 " + "、".join(f"{c.start}–{c.end}" for c in cits)


def plain_section_html(chunk: Chunk) -> str:
    return f'<div class="src-section">{_multiline(html.escape(chunk.text, quote=False))}</div>'


def refusal_sections(answer: Answer) -> tuple[list[Chunk], bool]:
    """What a refusal shows instead of an answer: (the closest sections, whether they were
    found without the question's filters because nothing matched them); ([], False) for
    an answer that was not refused."""
    if answer.refusal is None:
        return [], False
    return [sc.chunk for sc in answer.refusal.closest], answer.refusal.outside_filters


def notices(answer: Answer) -> list[str]:
    """Warnings other than unsupported sentences (those are listed separately)."""
    return [w.text for w in answer.warnings if w.kind != WarningKind.UNSUPPORTED]


def filters_line(answer: Answer, lang: Mapping[str, str] = LABELS["zh"],
                 titles: Mapping[str, str] | None = None) -> str:
    """Which filters shaped the answer and where they came from; ``titles`` maps doc ids
    to report titles so a report filter reads as 《title》 rather than an id."""
    f = answer.filters
    if f.empty:
        how = ""
    else:
        how = f"（{lang['inferred'] if f.inferred else lang['explicit']}）"
        if lang is LABELS["en"]:
            how = f" ({lang['inferred'] if f.inferred else lang['explicit']})"
    described = f.describe()
    for doc_id in f.doc_ids:
        if titles and doc_id in titles:
            described = described.replace(doc_id, f"《{titles[doc_id]}》")
    return f"{lang['filters']}: {described}{how}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def md_escape(text: str) -> str:
    """Text shown through ``st.markdown`` (warnings, questions) without Markdown or LaTeX effects."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def timing_line(answer: Answer) -> str:
    total = sum(t for _s, t in answer.timings)
    return f"{total * 1000:.0f} ms · " + " · ".join(f"{s} {t * 1000:.0f}" for s, t in answer.timings)


class AnswerStream:
    """Iterate :meth:`Assistant.stream` (through :func:`assistant.streaming.watch`) as text
    for ``st.write_stream``, one *segment* per iteration: a segment ends at the final
    :class:`Answer` (kept in :attr:`answer`) or at a :class:`StreamReset` (its reason kept
    in :attr:`resets`), after which the caller clears what it showed and iterates again
    until :attr:`done`.  :class:`Waiting` notices go to ``on_wait`` (the real seconds waited).
    """

    def __init__(self, parts: Iterable[str | StreamReset | Waiting | Answer],
                 on_wait: Callable[[float], object] | None = None) -> None:
        self._parts = iter(parts)
        self._on_wait = on_wait
        self.answer: Answer | None = None
        self.resets: list[str] = []
        self.done = False

    def __iter__(self) -> Iterator[str]:
        for part in self._parts:
            if isinstance(part, Answer):
                self.answer = part
            elif isinstance(part, StreamReset):
                self.resets.append(part.reason)
                return
            elif isinstance(part, Waiting):
                if self._on_wait is not None:
                    self._on_wait(part.seconds)
            elif part:
                yield part
        self.done = True


def waiting_text(seconds: float, lang: Mapping[str, str] = LABELS["zh"]) -> str:
    """The notice shown while an answer is slow to come, with the real time waited."""
    return lang["waiting"].format(seconds=seconds)


def reset_text(reason: str, lang: Mapping[str, str] = LABELS["zh"]) -> str:
    """The notice shown when streamed text was withdrawn (the LLM stream broke)."""
    return lang["reset"].format(reason=reason)


@dataclass(frozen=True)
class ChatTurn:
    """One message of the conversation kept in ``st.session_state``."""

    role: str  # "user" | "assistant"
    text: str
    id: str = ""
    answer: Answer | None = None
    error: str | None = None
    closest: tuple[Chunk, ...] = ()  # refusals: the sections shown instead of an answer
    closest_unfiltered: bool = False


def history_of(turns: Sequence[ChatTurn]) -> list[tuple[str, str]]:
    """The (role, text) history :meth:`Assistant.stream` takes for follow-ups."""
    return [(t.role, t.text) for t in turns if not t.error and t.text]


def error_text(exc: AssistantError) -> str:
    return f"{exc.message} {exc.hint}".strip()


# --- resources ------------------------------------------------------------------------------


def settings_fingerprint(settings: Settings) -> str:
    """A cache key for one Assistant per configuration; secrets enter only as a hash."""
    secrets = [s.get_secret_value() if s else "" for s in (settings.llm.api_key, settings.embedding.api_key)]
    raw = settings.model_dump_json() + "|" + "|".join(secrets)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def build_assistant(settings: Settings) -> Assistant:
    """Open the persisted index and warm everything up once (nothing is re-embedded)."""
    from assistant.facade import Assistant

    a = Assistant(settings)
    a.warm_up()
    return a
