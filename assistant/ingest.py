"""Ingest: load → clean → outline → chunk → extract indicators → embed → index, file by file, incrementally.

A manifest of content fingerprints makes re-ingesting unchanged files a no-op; a
changed file's new chunks are written, then the manifest, then its indicator records
(:mod:`assistant.indicator_store`), then the old chunks and records are deleted, so a
crash at any point leaves a state :meth:`Ingestor.reconcile` repairs on the next run.
One file failing never stops the batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from .chunking import chunk_document
from .cleaning import build_document, read_sidecar, sidecar_paths
from .config import ChunkSettings, Settings
from .embedding import Embedder
from .errors import AssistantError, LoadError
from .gazetteer import Gazetteer
from .index import ManifestEntry, Store
from .indicator_store import EXTRACTOR_VERSION, IndicatorStore
from .indicators import extract_document
from .loading import discover, load_file
from .outline import parse_outline
from .text import terms
from .types import Chunk, Document, Section

PARSER_VERSION = "5"  # bump when parsing/chunking changes so files are re-chunked (5: chunk flags)

Status = Literal["added", "updated", "unchanged", "failed", "duplicate", "removed"]


@dataclass(frozen=True)
class FileResult:
    path: str
    status: Status
    doc_id: str | None = None
    chunks: int = 0
    error: str | None = None


@dataclass(frozen=True)
class IngestReport:
    results: tuple[FileResult, ...]
    seconds: float
    repaired: tuple[str, ...] = ()
    timings: tuple[tuple[str, float], ...] = field(default=())

    def of(self, status: Status) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def chunks_added(self) -> int:
        return sum(r.chunks for r in self.results if r.status in ("added", "updated"))

    @property
    def ok(self) -> bool:
        return not self.of("failed")


class IngestProgress(Protocol):
    """What a progress display implements (rich in the CLI, st.progress in the UI)."""

    def files(self, total: int) -> None: ...

    def file_done(self, path: str, status: Status) -> None: ...

    def chunks(self, total: int) -> None: ...

    def chunks_done(self, n: int) -> None: ...


class NullProgress:
    def files(self, total: int) -> None:
        pass

    def file_done(self, path: str, status: Status) -> None:
        pass

    def chunks(self, total: int) -> None:
        pass

    def chunks_done(self, n: int) -> None:
        pass


def parse_file(path: str | Path, chunk_settings: ChunkSettings,
               gazetteer: Gazetteer | None = None) -> tuple[Document, Section, list[Chunk]]:
    """Load, clean, outline and chunk one file (no embedding, no index)."""
    loaded = load_file(path)
    doc = build_document(loaded, gazetteer)
    root = parse_outline(doc)
    return doc, root, chunk_document(doc, root, chunk_settings)


def parse_paths(paths: Sequence[str | Path], chunk_settings: ChunkSettings) -> list[tuple[Document, list[Chunk]]]:
    """Parse every supported file under ``paths``; files that fail are skipped."""
    out = []
    for p in discover(paths):
        try:
            doc, _root, chunks = parse_file(p, chunk_settings)
        except LoadError:
            continue
        out.append((doc, chunks))
    return out


def fingerprint(path: Path, chunk_settings: ChunkSettings) -> str:
    """Raw bytes + sidecar + parser version + chunk budget: any change re-ingests the file."""
    h = hashlib.sha256(path.read_bytes())
    for side in sidecar_paths(path):
        if side.is_file():
            h.update(side.read_bytes())
    h.update(f"|{PARSER_VERSION}|{chunk_settings.model_dump_json()}".encode())
    return h.hexdigest()


def repair_indicators(store: Store, table: IndicatorStore) -> list[str]:
    """Make ``table`` hold the records of exactly the documents ``store``'s manifest owns: records of
    other documents are dropped; a document whose records are missing (a crash, or an index another
    machine built on a Chroma server) or came from an older extractor is re-extracted from its stored
    chunks, without re-embedding. Returns what was repaired."""
    repaired: list[str] = []
    owned = {e.doc_id for e in store.manifest()}
    extracted = table.docs()
    for doc_id in sorted((set(extracted) | table.record_doc_ids()) - owned):
        table.delete_doc(doc_id)
        repaired.append(f"dropped the indicator records of {doc_id} (no indexed document owns them)")
    stale = sorted(d for d in owned if extracted.get(d) != EXTRACTOR_VERSION)
    if stale:
        chunks = [c for c, _t in store.all_chunks() if c.doc_id in stale]
        for doc_id in stale:
            records = extract_document([c for c in chunks if c.doc_id == doc_id])
            table.replace_doc(doc_id, records)
            why = "missing" if doc_id not in extracted else f"extractor {extracted[doc_id]} → {EXTRACTOR_VERSION}"
            repaired.append(f"re-extracted {len(records)} indicator records of {doc_id} from its stored chunks "
                            f"({why})")
    return repaired


class Ingestor:
    """Writes files into a :class:`~assistant.index.Store` with an :class:`Embedder`."""

    def __init__(self, store: Store, embedder: Embedder, settings: Settings,
                 indicators: IndicatorStore | None = None) -> None:
        self._store = store
        self._embedder = embedder
        self._settings = settings
        self._indicators = indicators

    def reconcile(self) -> list[str]:
        """Repair what an interrupted ingest left: chunks no manifest entry owns are
        deleted; an entry whose chunks are incomplete is dropped (its file is
        re-ingested on the next run); indicator records no entry owns are dropped, and a
        document whose records are missing (or were extracted by an older extractor) is
        re-extracted from its stored chunks, without re-embedding. Returns what was repaired."""
        repaired = self._reconcile_chunks()
        if self._indicators is not None:
            repaired += repair_indicators(self._store, self._indicators)
        return repaired

    def _reconcile_chunks(self) -> list[str]:
        repaired: list[str] = []
        entries = self._store.manifest()
        counts = self._store.chunk_doc_counts()
        owned = {e.doc_id for e in entries}
        for doc_id in sorted(set(counts) - owned):
            self._store.delete_doc(doc_id)
            repaired.append(f"deleted {counts[doc_id]} orphan chunks of {doc_id}")
        for e in entries:
            if counts.get(e.doc_id, 0) != e.n_chunks:
                self._store.delete_doc(e.doc_id)
                self._store.delete_manifest(e.key)
                have = counts.get(e.doc_id, 0)
                repaired.append(f"dropped incomplete {Path(e.key).name} ({have}/{e.n_chunks} chunks)")
        return repaired

    def run(self, paths: Sequence[str | Path], *, prune: bool = False,
            progress: IngestProgress | None = None) -> IngestReport:
        t0 = time.perf_counter()
        progress = progress or NullProgress()
        repaired = self.reconcile()
        results: list[FileResult] = []
        files: list[Path] = []
        for p in paths:
            try:
                files.extend(discover([p]))
            except LoadError as exc:
                results.append(FileResult(str(p), "failed", error=str(exc)))
        manifest = {e.key: e for e in self._store.manifest()}
        by_doc = {e.doc_id: e.key for e in manifest.values()}
        progress.files(len(files))
        timings = {"parse": 0.0, "extract": 0.0, "embed": 0.0, "write": 0.0}
        for path in files:
            res = self._one(path, manifest, by_doc, progress, timings)
            results.append(res)
            progress.file_done(str(path), res.status)
        if prune:
            for key, e in list(manifest.items()):
                if not Path(key).exists():
                    self._store.delete_manifest(key)
                    if by_doc.get(e.doc_id) == key:
                        self._store.delete_doc(e.doc_id)
                        if self._indicators is not None:
                            self._indicators.delete_doc(e.doc_id)
                    results.append(FileResult(key, "removed", e.doc_id, e.n_chunks))
        return IngestReport(tuple(results), time.perf_counter() - t0, tuple(repaired), tuple(timings.items()))

    def _one(self, path: Path, manifest: dict[str, ManifestEntry], by_doc: dict[str, str],
             progress: IngestProgress, timings: dict[str, float]) -> FileResult:
        key = str(path.resolve())
        try:
            t = time.perf_counter()
            fp = fingerprint(path, self._settings.chunk)
            old = manifest.get(key)
            if old and old.sha256 == fp:
                return FileResult(str(path), "unchanged", old.doc_id, old.n_chunks)
            read_sidecar(path)  # fail early on a broken sidecar
            doc, _root, chunks = parse_file(path, self._settings.chunk)
            owner = by_doc.get(doc.doc_id)
            if owner and owner != key and Path(owner).exists():
                return FileResult(str(path), "duplicate", doc.doc_id,
                                  error=f"same text as {owner}; skipped")
            if not chunks:
                raise LoadError(str(path), "no text to index after cleaning")
            toks = [terms(c.embed_text) for c in chunks]
            timings["parse"] += time.perf_counter() - t
            t = time.perf_counter()
            records = extract_document(chunks) if self._indicators is not None else []
            timings["extract"] += time.perf_counter() - t
            t = time.perf_counter()
            progress.chunks(len(chunks))
            vectors = []
            bs = self._settings.embedding.batch_size
            for i in range(0, len(chunks), bs):
                batch = [c.embed_text for c in chunks[i : i + bs]]
                vectors.append(self._embedder.embed_passages(batch))
                progress.chunks_done(len(batch))
            import numpy as np

            matrix = np.vstack(vectors)
            timings["embed"] += time.perf_counter() - t
            t = time.perf_counter()
            same_doc = old is not None and old.doc_id == doc.doc_id
            if same_doc:  # only metadata changed (sidecar, chunk settings): replace in place
                self._store.delete_doc(doc.doc_id)
            self._store.add_chunks(chunks, matrix, toks)
            entry = ManifestEntry(key=key, sha256=fp, doc_id=doc.doc_id, n_chunks=len(chunks), meta=doc.meta,
                                  ingested_at=time.time(), fmt=doc.fmt, chars=len(doc.text),
                                  flagged=sum(c.hostile for c in chunks))
            self._store.put_manifest(entry)
            if self._indicators is not None:
                self._indicators.replace_doc(doc.doc_id, records)
            if old and not same_doc and sum(1 for e in manifest.values() if e.doc_id == old.doc_id) <= 1:
                self._store.delete_doc(old.doc_id)
                if self._indicators is not None:
                    self._indicators.delete_doc(old.doc_id)
            manifest[key] = entry
            by_doc[doc.doc_id] = key
            timings["write"] += time.perf_counter() - t
            return FileResult(str(path), "updated" if old else "added", doc.doc_id, len(chunks))
        except AssistantError as exc:
            return FileResult(str(path), "failed", error=str(exc))
        except OSError as exc:
            return FileResult(str(path), "failed", error=f"{path}: cannot read ({exc.strerror}). Check permissions.")
