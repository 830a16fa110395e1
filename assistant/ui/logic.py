"""Everything the Streamlit UI does that is not a widget: pure, testable functions.

``app.py`` lays out widgets and calls these; nothing here imports Streamlit.

* answers: inline ``[n]`` markers → HTML citation chips; the cited sentence
  highlighted inside its section text by character offsets (always HTML-escaped);
  labels in Chinese, or English when the question is mostly ASCII;
* uploads: safe file names, type and size checks, saving and ingesting with progress;
* the document browser's rows and outlines;
* the eval dashboard: loading the latest report, running the offline eval.

>>> highlight("a<b>c", 1, 4)
'a<mark class="cite-quote">&lt;b&gt;</mark>c'
>>> safe_filename("../../etc/passwd")
'passwd'
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import PROJECT_ROOT, Settings
from assistant.errors import AssistantError
from assistant.loading import SUPPORTED
from assistant.types import Answer, Chunk, Citation, ScoredChunk

if TYPE_CHECKING:
    from assistant.facade import Assistant, DocInfo

# --- labels -------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "sources": "来源", "refusal": "无法根据报告回答", "closest": "最接近的章节",
        "no_closest": "索引中没有相关章节。", "unsupported": "以下句子未被引文支持",
        "notice": "注意", "filters": "筛选条件", "inferred": "从问题推断", "explicit": "侧边栏指定",
        "understood": "理解为", "quote_missing": "未能在章节中定位引文，以下为引文原文:",
        "no_section": "找不到该来源的章节文本（文档可能已被删除）。",
    },
    "en": {
        "sources": "Sources", "refusal": "Cannot answer from the reports", "closest": "Closest sections",
        "no_closest": "No related section in the index.",
        "unsupported": "Sentences not supported by a citation",
        "notice": "Note", "filters": "Filters", "inferred": "inferred from the question",
        "explicit": "set in the sidebar", "understood": "Understood as",
        "quote_missing": "The quote could not be located in the section; the quote itself:",
        "no_section": "The section text of this source is gone (the document may have been removed).",
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


def is_english(text: str) -> bool:
    """True when a question is mostly ASCII (then answer labels switch to English)."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return False
    return sum(c.isascii() for c in chars) / len(chars) >= 0.6


def labels_for(question: str) -> dict[str, str]:
    return LABELS["en" if is_english(question) else "zh"]


def mode_badge(mode: str, model: str | None) -> tuple[str, str]:
    """(badge, one-line explanation) for the answer mode."""
    if mode == "llm":
        return f"LLM: {model}", "答案由大模型根据检索到的章节生成，每句话都与引文核对。"
    return ("离线抽取模式",
            "未配置大模型，答案直接摘自报告原文。设置环境变量 OPENAI_API_KEY（或本地兼容服务的 "
            "OPENAI_BASE_URL）后重启即可使用 LLM 模式。")


# --- answers -------------------------------------------------------------------------------

MARKER_RE = re.compile(r"\[(\d{1,3})\]")
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
    known = {c.marker: c for c in answer.citations}

    def chip(m: re.Match[str]) -> str:
        c = known.get(int(m.group(1)))
        if c is None:
            return m.group(0)
        tip = html.escape(f"{source_label(c)}\n“{c.quote}”", quote=True)
        return f'<a class="cite-chip" href="#{anchor_id(prefix, c.marker)}" title="{tip}">{c.marker}</a>'

    body = MARKER_RE.sub(chip, html.escape(answer.text, quote=False))
    return f'<div class="answer-text">{_multiline(body)}</div>'


def highlight(text: str, start: int, end: int) -> str:
    """``text`` HTML-escaped, with ``text[start:end]`` wrapped in ``<mark>``; offsets clamped."""
    s = max(0, min(start, len(text)))
    e = max(s, min(end, len(text)))
    if s == e:
        return html.escape(text, quote=False)
    return (html.escape(text[:s], quote=False) + '<mark class="cite-quote">'
            + html.escape(text[s:e], quote=False) + "</mark>" + html.escape(text[e:], quote=False))


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


def section_html(c: Citation, chunk: Chunk | None, lang: Mapping[str, str] = LABELS["zh"]) -> str:
    """The cited section's text with the quote highlighted (escaped, one HTML block)."""
    if chunk is None:
        return (f'<div class="src-section"><em>{html.escape(lang["no_section"])}</em><br>'
                f'<mark class="cite-quote">{_multiline(html.escape(c.quote, quote=False))}</mark></div>')
    span = quote_span(c, chunk)
    if span is None:
        return (f'<div class="src-section"><em>{html.escape(lang["quote_missing"])}</em><br>'
                f'<mark class="cite-quote">{_multiline(html.escape(c.quote, quote=False))}</mark><hr>'
                f"{_multiline(html.escape(chunk.text, quote=False))}</div>")
    return f'<div class="src-section">{_multiline(highlight(chunk.text, *span))}</div>'


def plain_section_html(chunk: Chunk) -> str:
    return f'<div class="src-section">{_multiline(html.escape(chunk.text, quote=False))}</div>'


def closest_sections(answer: Answer, n: int = 3) -> list[Chunk]:
    """What a refusal shows instead of an answer: the top retrieved sections."""
    return [sc.chunk for sc in answer.contexts[:n]]


def notices(answer: Answer) -> list[str]:
    """Warnings other than unsupported sentences (those are listed separately)."""
    return [w for w in answer.warnings if not w.startswith("未被引文支持")]


def filters_line(answer: Answer, lang: Mapping[str, str] = LABELS["zh"]) -> str:
    f = answer.filters
    if f.empty:
        how = ""
    else:
        how = f"（{lang['inferred'] if f.inferred else lang['explicit']}）"
        if lang is LABELS["en"]:
            how = f" ({lang['inferred'] if f.inferred else lang['explicit']})"
    return f"{lang['filters']}: {f.describe()}{how}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def md_escape(text: str) -> str:
    """Text shown through ``st.markdown`` (warnings, questions) without Markdown or LaTeX effects."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def timing_line(answer: Answer) -> str:
    total = sum(t for _s, t in answer.timings)
    return f"{total * 1000:.0f} ms · " + " · ".join(f"{s} {t * 1000:.0f}" for s, t in answer.timings)


class AnswerStream:
    """Iterate :meth:`Assistant.stream` as text only (for ``st.write_stream``); the final
    :class:`Answer` is kept in :attr:`answer`."""

    def __init__(self, parts: Iterable[str | Answer]) -> None:
        self._parts = parts
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        for part in self._parts:
            if isinstance(part, Answer):
                self.answer = part
            elif part:
                yield part


@dataclass(frozen=True)
class ChatTurn:
    """One message of the conversation kept in ``st.session_state``."""

    role: str  # "user" | "assistant"
    text: str
    id: str = ""
    answer: Answer | None = None
    error: str | None = None


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


# --- documents ------------------------------------------------------------------------------

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TYPES: tuple[str, ...] = tuple(sorted(s.lstrip(".") for s in SUPPORTED))
_KEEP = re.compile(r"[^0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff_-]+")


class UploadError(AssistantError):
    """An upload was rejected before ingesting (type, size or name)."""


def uploads_dir(settings: Settings) -> Path:
    return Path(settings.index.data_dir) / "uploads"


def safe_filename(name: str) -> str:
    """A file name safe to create in the uploads folder: directories stripped, CJK and
    ASCII letters/digits kept, everything else replaced by ``_``, no leading dot."""
    base = unicodedata.normalize("NFKC", re.split(r"[\\/]", name or "")[-1]).strip()
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem.strip("."):
        stem, suffix = base, ""
    suffix = re.sub(r"[^0-9A-Za-z]", "", suffix).lower()[:10]
    stem = re.sub(r"_{2,}", "_", _KEEP.sub("_", stem)).strip("._-")[:100] or "upload"
    return f"{stem}.{suffix}" if suffix else stem


def check_upload(name: str, size: int, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Raise :class:`UploadError` for an unsupported type (by suffix) or a file too big."""
    suffix = Path(safe_filename(name)).suffix.lower()
    if suffix not in SUPPORTED:
        raise UploadError(f"{name}: 不支持的文件类型 {suffix or '（无后缀）'}。",
                          f"支持: {', '.join(UPLOAD_TYPES)}。")
    if size <= 0:
        raise UploadError(f"{name}: 文件是空的。", "请选择有内容的报告文件。")
    if size > max_bytes:
        raise UploadError(f"{name}: 文件过大（{size / 1048576:.1f} MB）。",
                          f"单个文件不能超过 {max_bytes / 1048576:.0f} MB。")


def save_upload(directory: Path, name: str, data: bytes,
                max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[Path, bool]:
    """Check and write an upload; returns (path, created).  Re-uploading identical bytes
    reuses the existing file; a different file with the same name gets ``-1``, ``-2``…"""
    check_upload(name, len(data), max_bytes)
    directory.mkdir(parents=True, exist_ok=True)
    safe = Path(safe_filename(name))
    target = directory / safe.name
    n = 0
    while target.exists():
        if target.is_file() and target.read_bytes() == data:
            return target, False
        n += 1
        target = directory / f"{safe.stem}-{n}{safe.suffix}"
    if target.resolve().parent != directory.resolve():  # belt and braces after safe_filename
        raise UploadError(f"{name}: 文件名不安全。", "请重命名后再上传。")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)
    return target, True


class ProgressBridge:
    """Adapts the ingest progress protocol to one ``update(fraction, text)`` callback
    (``st.progress(...).progress`` in the app)."""

    def __init__(self, update: Callable[[float, str], None]) -> None:
        self._update = update
        self.total = 0
        self.done = 0
        self.chunk_total = 0
        self.chunk_done = 0

    def _emit(self, text: str) -> None:
        part = self.chunk_done / self.chunk_total if self.chunk_total else 0.0
        frac = (self.done + part) / self.total if self.total else 1.0
        self._update(max(0.0, min(1.0, frac)), text)

    def files(self, total: int) -> None:
        self.total = total
        self._emit(f"0/{total} 个文件")

    def file_done(self, path: str, status: str) -> None:
        self.done += 1
        self.chunk_total = self.chunk_done = 0
        self._emit(f"{self.done}/{self.total} 个文件 · {Path(path).name}: {status}")

    def chunks(self, total: int) -> None:
        self.chunk_total, self.chunk_done = total, 0
        self._emit(f"{self.done}/{self.total} 个文件 · 正在向量化 {total} 个片段")

    def chunks_done(self, n: int) -> None:
        self.chunk_done += n
        self._emit(f"{self.done}/{self.total} 个文件 · 已向量化 {self.chunk_done}/{self.chunk_total} 个片段")


@dataclass(frozen=True)
class UploadOutcome:
    """What happened to one uploaded file."""

    name: str  # as uploaded
    status: str  # added | updated | unchanged | duplicate | failed | rejected
    saved_as: str | None = None
    doc_id: str | None = None
    chunks: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("added", "updated", "unchanged")


def ingest_uploads(assistant: Assistant, files: Sequence[tuple[str, bytes]], directory: Path,
                   progress: Callable[[float, str], None] | None = None) -> list[UploadOutcome]:
    """Save uploads under ``directory`` and ingest them; one bad file never stops the rest.
    Copies that were not indexed (failed, duplicate) are deleted again."""
    outcomes: dict[int, UploadOutcome] = {}
    saved: dict[int, tuple[Path, bool]] = {}
    for i, (name, data) in enumerate(files):
        try:
            saved[i] = save_upload(directory, name, data)
        except UploadError as exc:
            outcomes[i] = UploadOutcome(name, "rejected", error=error_text(exc))
    if saved:
        report = assistant.ingest([str(p) for p, _ in saved.values()],
                                  progress=ProgressBridge(progress) if progress else None)
        by_path = {str(Path(r.path).resolve()): r for r in report.results}
        for i, (path, created) in saved.items():
            r = by_path.get(str(path.resolve()))
            if r is None:
                outcomes[i] = UploadOutcome(files[i][0], "failed", path.name, error="未被导入（未知原因）")
                continue
            outcomes[i] = UploadOutcome(files[i][0], r.status, path.name, r.doc_id, r.chunks, r.error)
            if r.status in ("failed", "duplicate") and created:
                path.unlink(missing_ok=True)
    return [outcomes[i] for i in range(len(files))]


def is_upload(doc_path: str, directory: Path) -> bool:
    try:
        return Path(doc_path).resolve().parent == directory.resolve()
    except OSError:
        return False


def chunks_by_doc(chunks: Iterable[Chunk]) -> dict[str, list[Chunk]]:
    """The corpus grouped by document (one pass, instead of one index scan per document)."""
    out: dict[str, list[Chunk]] = {}
    for c in chunks:
        out.setdefault(c.doc_id, []).append(c)
    return out


def remove_document(assistant: Assistant, doc_id: str, directory: Path) -> str:
    """Remove a document from the index; a copy the UI uploaded is deleted too (seed or
    other files outside the uploads folder are never touched).  Returns a message."""
    d = assistant.remove(doc_id)
    msg = f"已从索引中删除《{d.title}》（{Path(d.path).name}）。"
    if is_upload(d.path, directory):
        Path(d.path).unlink(missing_ok=True)
        msg += " 上传的文件副本也已删除。"
    return msg


def years_text(years: Sequence[tuple[int, str]]) -> str:
    return " ".join(f"{y}（{ {'review': '回顾', 'plan': '计划'}.get(r, '?') }）" for y, r in years)


def doc_title(d: DocInfo) -> str:
    bits = [d.city or "?", years_text(d.years)]
    return f"《{d.title}》 · " + " · ".join(b for b in bits if b) + f" · {d.chunks} 个片段"


def doc_rows(docs: Sequence[DocInfo]) -> list[dict[str, Any]]:
    """Rows for the index table."""
    import time

    return [{"文件": Path(d.path).name, "城市": d.city or "", "年份": years_text(d.years), "标题": d.title,
             "发布机构": d.issuer or "", "日期": d.date or "", "片段数": d.chunks, "格式": d.fmt,
             "导入时间": time.strftime("%Y-%m-%d %H:%M", time.localtime(d.ingested_at)), "doc_id": d.doc_id}
            for d in docs]


def outline(chunks: Iterable[Chunk]) -> list[tuple[int, str]]:
    """(depth, heading) for every distinct section path prefix, in document order."""
    seen: dict[tuple[str, ...], None] = {}
    for c in sorted(chunks, key=lambda c: c.ordinal):
        for i in range(1, len(c.section_path) + 1):
            seen.setdefault(c.section_path[:i], None)
    return [(len(p) - 1, p[-1]) for p in seen]


def outline_html(items: Sequence[tuple[int, str]]) -> str:
    rows = "".join(f'<div style="padding-left:{1.2 * depth:.1f}em">{html.escape(h, quote=False)}</div>'
                   for depth, h in items)
    return f'<div class="outline">{rows}</div>'


@dataclass(frozen=True)
class FilterOptions:
    cities: list[str]
    years: list[int]
    docs: list[tuple[str, str]]  # (doc_id, label)


def filter_options(docs: Sequence[DocInfo], city: str | None = None,
                   year: int | None = None) -> FilterOptions:
    """Sidebar choices from the index; the report list narrows to the chosen city/year."""
    cities = sorted({d.city for d in docs if d.city})
    years = sorted({y for d in docs for y, _r in d.years})
    chosen = [d for d in docs
              if (not city or d.city == city) and (not year or year in {y for y, _ in d.years})]
    return FilterOptions(cities, years, [(d.doc_id, f"{d.city or '?'} · {d.title}") for d in chosen])


# --- eval dashboard -------------------------------------------------------------------------

DEFAULT_REPORTS = PROJECT_ROOT / "evals" / "reports"
DEFAULT_GOLD = PROJECT_ROOT / "evals" / "gold.jsonl"
DEFAULT_CORPUS = PROJECT_ROOT / "seeds"

# (metric key, label, higher is better): used when the eval package cannot be imported.
_COMPARISON_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("hit@1", "hit@1", True), ("hit@3", "hit@3", True), ("hit@5", "hit@5", True), ("mrr", "MRR", True),
    ("evidence_recall@5", "evidence recall@5", True), ("fact_recall", "fact recall", True),
    ("fact_exact", "all facts present", True), ("refusal_accuracy", "refusal accuracy", True),
    ("false_refusal_rate", "false-refusal rate", False),
)
_OURS_ONLY = ("citation_precision", "citation_recall", "unsupported_rate", "pass_rate",
              "latency_p50_total", "latency_p95_total")


class EvalUnavailableError(AssistantError):
    """The eval harness (``assistant.evals``) cannot be imported."""


@dataclass(frozen=True)
class EvalReport:
    """One report folder written by ``assistant eval``."""

    path: Path
    metrics: dict[str, Any]
    items: list[dict[str, Any]]
    charts: list[Path]
    summary: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict[str, Any]:
        return self.metrics.get("config", {})

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [i for i in self.items if not i.get("passed", False)]


def reports_dir() -> Path:
    """The eval reports folder: ``evals/reports`` unless ``ASSISTANT_EVAL_REPORTS`` says otherwise."""
    return Path(os.environ.get("ASSISTANT_EVAL_REPORTS") or DEFAULT_REPORTS)


def latest_eval(root: Path) -> EvalReport | None:
    """The report named by ``root/LATEST`` (else the newest folder), or None."""
    if not root.is_dir():
        return None
    latest = root / "LATEST"
    cand = root / latest.read_text(encoding="utf-8").strip() if latest.is_file() else None
    if cand is None or not (cand / "metrics.json").is_file():
        dirs = sorted(p for p in root.iterdir() if (p / "metrics.json").is_file())
        if not dirs:
            return None
        cand = dirs[-1]
    try:
        metrics = json.loads((cand / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    items: list[dict[str, Any]] = []
    if (cand / "items.jsonl").is_file():
        for line in (cand / "items.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    summary = (cand / "summary.md").read_text(encoding="utf-8") if (cand / "summary.md").is_file() else ""
    return EvalReport(cand, metrics, items, sorted(cand.glob("*.png")), summary)


def _comparison_keys() -> tuple[tuple[str, str, bool], ...]:
    try:
        from assistant.evals.report import COMPARISON_ROWS
    except ImportError:
        return _COMPARISON_ROWS
    return COMPARISON_ROWS


def _fmt(v: Any, key: str) -> str:
    if not isinstance(v, int | float):
        return "–"
    if key.startswith("latency"):
        return f"{v * 1000:.0f} ms"
    return f"{v:.3f}"


def comparison_rows(report: EvalReport) -> list[dict[str, str]]:
    """Ours vs each baseline, one row per metric (↑ higher is better, ↓ lower)."""
    overall = report.metrics.get("overall", {})
    baselines = report.metrics.get("baselines", {})
    k = report.config.get("eval_k", 5)
    rows = []
    for key, label, higher in _comparison_keys():
        if key.startswith(("evidence", "doc_coverage")):  # computed at the run's k, not always 5
            key, label = key.replace("@5", f"@{k}"), label.replace("@5", f"@{k}")
        if key not in overall:
            continue
        row = {"指标": f"{label} {'↑' if higher else '↓'}", "ours": _fmt(overall[key], key)}
        for b in baselines.values():
            row[b.get("label", "?")] = _fmt(b.get("overall", {}).get(key), key)
        rows.append(row)
    for key in _OURS_ONLY:
        if key in overall:
            row = {"指标": key, "ours": _fmt(overall[key], key)}
            row.update({b.get("label", "?"): "–" for b in baselines.values()})
            rows.append(row)
    return rows


def category_rows(report: EvalReport) -> list[dict[str, Any]]:
    cols = ("n_items", "hit@1", "hit@5", "mrr", "fact_recall", "citation_precision", "refusal_accuracy",
            "false_refusal_rate", "pass_rate")
    out = []
    for cat, m in report.metrics.get("per_category", {}).items():
        row: dict[str, Any] = {"类别": cat}
        for c in cols:
            if c in m:
                row[c] = int(m[c]) if c.startswith("n_") else round(float(m[c]), 3)
        out.append(row)
    return out


def failure_rows(report: EvalReport) -> list[dict[str, Any]]:
    return [{"id": i.get("id"), "类别": i.get("category"), "问题": i.get("question"),
             "原因": "; ".join(i.get("reasons", [])), "是否拒答": i.get("refused"),
             "回答": i.get("answer", "")} for i in report.failures]


def eval_unavailable() -> str | None:
    """Why the eval harness cannot run here, or None when it can."""
    try:
        import assistant.evals.gold
        import assistant.evals.harness
        import assistant.evals.report  # noqa: F401
    except ImportError as exc:
        return f"评测模块不可用（{exc}）。请确认 assistant/evals 完整安装，或在命令行运行 assistant eval。"
    return None


def run_offline_eval(assistant: Assistant, out_root: Path,
                     progress: Callable[[float, str], None] | None = None, *, baselines: bool = True,
                     gold: Path = DEFAULT_GOLD, corpus: Path = DEFAULT_CORPUS) -> Path:
    """What ``assistant eval`` does, offline: validate the gold set, make sure the seed
    corpus is indexed, answer and score every item, write a report; returns its folder."""
    try:
        from assistant.evals.gold import load_gold, validate_gold
        from assistant.evals.harness import run_eval
        from assistant.evals.report import write_report
    except ImportError as exc:
        raise EvalUnavailableError(f"评测模块不可用（{exc}）。",
                                   "请确认 assistant/evals 完整，或在命令行运行 assistant eval。") from None
    items = load_gold(gold)
    problems = validate_gold(items, corpus)
    if problems:
        raise AssistantError(f"标注集有 {len(problems)} 个问题: {problems[0]}", "请先修正 evals/gold.jsonl。")
    if progress:
        progress(0.0, "正在检查语料索引…")
    assistant.ingest([str(corpus)])
    stages = ["ours", *(["naive", "bm25"] if baselines else [])]

    def step(done: int, total: int, label: str) -> None:
        if progress:
            i = stages.index(label) if label in stages else 0
            progress(min(1.0, (i + done / max(total, 1)) / len(stages)), f"{label}: {done}/{total}")

    run = run_eval(assistant, items, mode="extractive", baselines=baselines, progress=step, corpus_dir=corpus)
    return write_report(run, out_root)
