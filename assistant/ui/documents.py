"""Uploads and the document browser, without Streamlit.

Safe file names (directories stripped, CJK and ASCII letters kept), type and size
checks, saving under ``<data_dir>/uploads/`` and ingesting with progress, the index
table, outlines from chunk section paths, removal and the sidebar filter choices.

>>> safe_filename("../../etc/passwd")
'passwd'
"""

from __future__ import annotations

import html
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.loading import SUPPORTED
from assistant.types import Chunk

from .logic import error_text

if TYPE_CHECKING:
    from assistant.facade import Assistant, DocInfo


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

    def __init__(self, update: Callable[[float, str], object]) -> None:
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
                   progress: Callable[[float, str], object] | None = None) -> list[UploadOutcome]:
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

    from assistant.index import flags_text

    names = {d.doc_id: Path(d.path).name for d in docs}
    return [{"文件": Path(d.path).name, "城市": d.city or "", "年份": years_text(d.years), "标题": d.title,
             "发布机构": d.issuer or "", "日期": d.date or "", "片段数": d.chunks, "格式": d.fmt,
             "导入时间": time.strftime("%Y-%m-%d %H:%M", time.localtime(d.ingested_at)),
             "标记": flags_text(d, names), "doc_id": d.doc_id}
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
