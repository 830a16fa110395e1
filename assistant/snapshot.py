"""The in-memory corpus saved next to the index, so a start does not rebuild it.

Retrieval holds every chunk (the text it quotes, the metadata filters read) and a BM25
index over their jieba terms in memory.  Rebuilding both from Chroma on every start
grows with the corpus (1.7 s for 2,000 chunks); loading them from here does not: the
chunk table is one compact JSON file and the BM25 arrays are memory-mapped (bm25s).

* ``DATA_DIR/snapshots/<collection>[@host:port]/<key>/`` per index, ``key`` a hash of the
  store's version (it changes with every ingest or removal), so a snapshot is never
  read for another state of the index, whichever process changed it.  The server path
  (``CHROMA_HOST``) keeps its snapshots in each client's local data dir.
* Written into a temporary folder and renamed into place: a reader sees a whole snapshot
  or none.  Older snapshots of the same index are deleted after a new one lands.
* Anything unreadable (a damaged file, an older format) counts as absent: the corpus is
  rebuilt from the store and saved again.  Nothing here is a source of truth.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import IndexSettings
from .types import Chunk

FORMAT = "3"  # bump when the layout below or Chunk's fields change (2: vectors, 3: sentence vectors)
_CHUNKS = "chunks.json"
_BM25 = "bm25"
_META = "snapshot.json"
_VECTORS = "vectors.npy"
_SENTENCES = ("sentences.npy", "sentence_starts.npy", "sentence_counts.npy")

log = logging.getLogger(__name__)


def snapshot_root(settings: IndexSettings) -> Path:
    """The folder holding the snapshots of one index (embedded, or a server's collection)."""
    name = settings.collection
    if settings.chroma_host:
        name += f"@{settings.chroma_host}_{settings.chroma_port}"
    return settings.data_dir / "snapshots" / name


def _key(version: str) -> str:
    return hashlib.sha256(f"{FORMAT}:{version}".encode()).hexdigest()[:20]


def _row(c: Chunk) -> list[Any]:
    return [c.chunk_id, c.doc_id, c.text, c.start, c.end, list(c.section_path), c.heading, c.title, c.city,
            list(c.doc_years), c.year, c.role, list(c.departments), c.token_count, c.embed_text, c.source_path,
            c.ordinal, list(c.flags)]


def _chunk(r: list[Any]) -> Chunk:
    return Chunk(chunk_id=r[0], doc_id=r[1], text=r[2], start=r[3], end=r[4], section_path=tuple(r[5]),
                 heading=r[6], title=r[7], city=r[8], doc_years=tuple(r[9]), year=r[10], role=r[11],
                 departments=tuple(r[12]), token_count=r[13], embed_text=r[14], source_path=r[15], ordinal=r[16],
                 flags=tuple(r[17]))


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def save(root: Path, version: str, chunks: Sequence[Chunk], bm25: Any, vectors: np.ndarray,
         sentences: Arrays) -> Path | None:
    """Write the snapshot of ``version`` (``bm25``: a ``bm25s.BM25`` or None for an empty
    corpus; ``vectors``: one row per chunk; ``sentences``: the arrays of
    :class:`assistant.retrieval.SentenceVectors`); returns its folder, or None when the data
    dir is not writable (logged: the next start rebuilds, nothing else is lost)."""
    target = root / _key(version)
    if target.exists():
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        with open(tmp / _CHUNKS, "w", encoding="utf-8") as f:
            json.dump([_row(c) for c in chunks], f, ensure_ascii=False, separators=(",", ":"))
        if bm25 is not None:
            bm25.save(str(tmp / _BM25), show_progress=False)
        np.save(tmp / _VECTORS, np.asarray(vectors, dtype=np.float32))
        for name, arr in zip(_SENTENCES, sentences, strict=True):
            np.save(tmp / name, arr)
        (tmp / _META).write_text(json.dumps({"format": FORMAT, "version": version, "chunks": len(chunks)}),
                                 encoding="utf-8")
        try:
            os.rename(tmp, target)
        except OSError:  # another process saved the same version first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        log.warning("could not save the corpus snapshot in %s (%s); the next start rebuilds it", root, exc)
        return None
    _prune(root, keep=target.name)
    return target


def load(root: Path, version: str) -> tuple[list[Chunk], Any, np.ndarray, Arrays] | None:
    """The chunks, the memory-mapped ``bm25s.BM25``, vectors and sentence arrays saved for
    ``version``; None when there is no whole, readable snapshot of exactly that version."""
    folder = root / _key(version)
    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("version") != version:
            return None
        with open(folder / _CHUNKS, encoding="utf-8") as f:
            chunks = [_chunk(r) for r in json.load(f)]
        vectors = np.load(folder / _VECTORS, mmap_mode="r")
        matrix, starts, counts = (np.load(folder / name, mmap_mode="r") for name in _SENTENCES)
        if len(chunks) != meta.get("chunks") or len(vectors) != len(chunks) or len(counts) != len(chunks):
            return None
        bm25 = None
        if chunks:
            import bm25s

            logging.getLogger("bm25s").setLevel(logging.WARNING)
            bm25 = bm25s.BM25.load(str(folder / _BM25), mmap=True, show_progress=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("ignoring the unreadable corpus snapshot %s (%s); rebuilding it", folder, exc)
        return None
    return chunks, bm25, vectors, (matrix, starts, counts)


def _prune(root: Path, keep: str) -> None:
    """Delete the other snapshots of this index (a reader that mapped one keeps its pages)."""
    for p in root.iterdir():
        if p.name == keep or not p.is_dir():
            continue
        # A temporary folder is another writer's, unless it was left by a crash an hour ago.
        with contextlib.suppress(OSError):
            if not p.name.startswith(".tmp-") or time.time() - p.stat().st_mtime > 3600:
                shutil.rmtree(p)


__all__ = ["FORMAT", "load", "save", "snapshot_root"]
