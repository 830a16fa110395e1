"""The Chroma index: chunks with their vectors, and a manifest of ingested files.

* Embedded ``PersistentClient`` under ``data_dir`` by default; ``HttpClient`` to a
  Chroma server when ``chroma_host`` is set.  Telemetry is off.
* Writes go straight to the collection, always with vectors, a page of up to 1,000
  chunks per call (a call costs more the larger the collection, whatever its own size);
  llama-index's ``ChromaVectorStore`` added a JSON copy of every record (``_node_content``,
  a third of the index on disk) and 1.7 s of imports to each ingest.  The collection
  is opened with an embedding function that *refuses* to embed, so a call that would
  make Chroma embed text itself (and download its ONNX model) fails loudly instead.
* The collection records the embedding model and dimension; opening it with other
  embedding settings raises :class:`IndexMismatchError` saying how to re-index.
* Each chunk also carries the vectors of its sentences (:func:`assistant.text.answer_sentences`),
  packed as float16 in its metadata (``sentence_vectors``): the extractive answerer compares
  them with the question's vector without embedding anything at question time.
* The manifest lives in a sibling collection (``<name>-manifest``), so it travels
  with the index to a Chroma server.  It is written *after* a file's chunks, and
  :meth:`ChunkStore.reconcile` repairs whatever a crash left behind.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import IndexSettings
from .errors import AssistantError, IndexError_, IndexMismatchError
from .types import Chunk, DocMeta, YearInfo

SCHEMA_VERSION = 1
_PAGE = 1000


def _refusing_embedding_function() -> Any:
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

    class RefuseToEmbed(EmbeddingFunction[Documents]):
        """Chroma must never embed text itself: we always pass vectors."""

        def __init__(self) -> None:
            pass

        def __call__(self, input: Documents) -> Embeddings:
            raise IndexError_(
                "Chroma was asked to embed text itself (a call passed text without vectors).",
                "This is a bug in the caller: pass embeddings explicitly.",
            )

        @staticmethod
        def name() -> str:
            return "assistant-refuse-to-embed"

        def get_config(self) -> dict[str, Any]:
            return {}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> RefuseToEmbed:
            return RefuseToEmbed()

    return RefuseToEmbed()


@dataclass(frozen=True)
class ManifestEntry:
    """One ingested file: what it was (hashes) and what it became (doc id, chunk count)."""

    key: str  # the file's absolute path
    sha256: str  # raw bytes + sidecar
    doc_id: str
    n_chunks: int
    meta: DocMeta
    ingested_at: float
    fmt: str = "txt"
    chars: int = 0
    flagged: int = 0  # chunks holding instruction-like text (assistant.hostile)


@dataclass(frozen=True)
class DocInfo:
    """An indexed document as listed by ``assistant docs`` and the UI browser."""

    doc_id: str
    path: str
    title: str
    city: str | None
    years: tuple[tuple[int, str], ...]
    issuer: str | None
    date: str | None
    chunks: int
    fmt: str
    ingested_at: float
    flagged_chunks: int = 0  # chunks holding instruction-like text: never quoted, fenced for the LLM
    same_city_year: tuple[str, ...] = ()  # doc ids of other reports claiming the same city and year

    @classmethod
    def of(cls, e: ManifestEntry, chunks: int) -> DocInfo:
        return cls(doc_id=e.doc_id, path=e.key, title=e.meta.title, city=e.meta.city,
                   years=tuple((y.year, y.role) for y in e.meta.years), issuer=e.meta.issuer, date=e.meta.date,
                   chunks=chunks, fmt=e.fmt, ingested_at=e.ingested_at, flagged_chunks=e.flagged)


def with_claims(docs: Sequence[DocInfo]) -> list[DocInfo]:
    """``docs`` with :attr:`DocInfo.same_city_year` filled: reports naming the same city and
    a same year (of the same kind, review or plan, when both say) are listed as such, since
    one of them may be a duplicate, an update or a plant."""
    def claims(d: DocInfo) -> set[tuple[int, str]]:
        return {(y, r) for y, r in d.years}

    by_city: dict[str, list[DocInfo]] = {}
    for d in docs:
        if d.city:
            by_city.setdefault(d.city, []).append(d)
    out = []
    for d in docs:
        others = tuple(o.doc_id for o in by_city.get(d.city or "", ()) if o.doc_id != d.doc_id
                       and any(y == y2 and (r == r2 or "unknown" in (r, r2))
                               for y, r in claims(d) for y2, r2 in claims(o)))
        out.append(replace(d, same_city_year=others))
    return out


def flags_text(d: DocInfo, names: Mapping[str, str]) -> str:
    """``⚠ 疑似指令 2 段; 同城同年: other.txt`` for a document list ('' when nothing to say);
    ``names`` maps doc ids to file names."""
    parts = []
    if d.flagged_chunks:
        parts.append(f"⚠ 疑似指令 {d.flagged_chunks} 段")
    if d.same_city_year:
        parts.append("同城同年: " + "、".join(names.get(i, i) for i in d.same_city_year))
    return "; ".join(parts)


def find_doc(docs: Sequence[DocInfo], ref: str) -> DocInfo:
    """The one document ``ref`` names: its id, an id prefix, its file name or stem."""
    from pathlib import Path

    hits = [d for d in docs if ref in (d.doc_id, Path(d.path).name, Path(d.path).stem)] or \
           [d for d in docs if d.doc_id.startswith(ref)]
    if len(hits) != 1:
        known = ", ".join(f"{d.doc_id} ({Path(d.path).name})" for d in docs) or "none"
        raise AssistantError(f"No single document matches {ref!r}.", f"Indexed documents: {known}.")
    return hits[0]


@runtime_checkable
class Store(Protocol):
    """What ingest, retrieval and the facade need from a chunk store. :class:`ChunkStore`
    (Chroma, embedded or a server) is the implementation; ``assistant.testing.MemoryStore``
    the fake. Both pass the same contract tests (``tests/test_store_contract.py``)."""

    @property
    def location(self) -> str: ...

    def add_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray, terms: Sequence[Sequence[str]],
                   sentence_vectors: Sequence[np.ndarray] | None = None) -> None: ...

    def delete_doc(self, doc_id: str) -> None: ...

    def put_manifest(self, entry: ManifestEntry) -> None: ...

    def delete_manifest(self, key: str) -> None: ...

    def reset(self) -> None: ...

    def manifest(self) -> list[ManifestEntry]: ...

    def chunk_doc_counts(self) -> dict[str, int]: ...

    def all_chunks(self) -> list[tuple[Chunk, list[str]]]: ...

    def count(self) -> int: ...

    def vectors(self, ids: Sequence[str]) -> np.ndarray: ...

    def sentence_vectors(self, ids: Sequence[str]) -> list[np.ndarray | None]: ...

    def dense_query(self, vector: np.ndarray, k: int,
                    where: dict[str, Any] | None = None) -> list[tuple[str, float]]: ...

    def version(self) -> str: ...


def meta_to_json(meta: DocMeta) -> str:
    return json.dumps({
        "title": meta.title, "city": meta.city, "province": meta.province,
        "years": [[y.year, y.role] for y in meta.years], "issuer": meta.issuer, "date": meta.date,
        "extra": [list(kv) for kv in meta.extra],
    }, ensure_ascii=False)


def meta_from_json(raw: str) -> DocMeta:
    d = json.loads(raw)
    return DocMeta(
        title=d["title"], city=d.get("city"), province=d.get("province"),
        years=tuple(YearInfo(int(y), r) for y, r in d.get("years", [])),
        issuer=d.get("issuer"), date=d.get("date"),
        extra=tuple((k, v) for k, v in d.get("extra", [])),
    )


def chunk_to_metadata(chunk: Chunk, terms: Sequence[str]) -> dict[str, str | int | float | bool]:
    """Flat Chroma metadata. ``terms`` (jieba tokens of ``embed_text``) are stored so
    the keyword index can be rebuilt from the collection without re-tokenising."""
    return {
        "doc_id": chunk.doc_id, "title": chunk.title, "city": chunk.city or "",
        "doc_years": ",".join(str(y) for y in chunk.doc_years),
        "year": chunk.year if chunk.year is not None else -1, "role": chunk.role,
        "section_path": json.dumps(list(chunk.section_path), ensure_ascii=False),
        "heading": chunk.heading, "departments": "、".join(chunk.departments),
        "start": chunk.start, "end": chunk.end, "token_count": chunk.token_count,
        "source_path": chunk.source_path, "ordinal": chunk.ordinal,
        "embed_text": chunk.embed_text, "terms": " ".join(terms), "flags": ",".join(chunk.flags),
    }


def pack_vectors(matrix: np.ndarray) -> str:
    """A ``(k, dim)`` matrix as base64 float16 (a chunk's sentence vectors in its metadata:
    half the bytes of float32; cosines change in the fourth decimal)."""
    return base64.b64encode(np.ascontiguousarray(matrix, dtype="<f2").tobytes()).decode("ascii")


def unpack_vectors(packed: str, dim: int) -> np.ndarray:
    """The inverse of :func:`pack_vectors`: a ``(k, dim)`` float16 array."""
    return np.frombuffer(base64.b64decode(packed), dtype="<f2").reshape(-1, dim)


def chunk_record(chunk: Chunk, terms: Sequence[str]) -> dict[str, str | int | float | bool]:
    """The metadata :meth:`ChunkStore.add_chunks` stores: :func:`chunk_to_metadata` plus the two
    keys llama-index's ``ChromaVectorStore`` used to add (``document_id``, ``ref_doc_id``), so
    indexes written before and after carry the same keys and llama-index's
    ``delete(ref_doc_id)`` still finds a document's chunks. Its ``_node_content`` (a JSON copy
    of the whole record) is left out: nothing reads it."""
    return {**chunk_to_metadata(chunk, terms), "document_id": chunk.doc_id, "ref_doc_id": chunk.doc_id}


def chunk_from_record(chunk_id: str, text: str, md: dict[str, Any]) -> tuple[Chunk, list[str]]:
    year = int(md.get("year", -1))
    chunk = Chunk(
        chunk_id=chunk_id, doc_id=str(md["doc_id"]), text=text, start=int(md["start"]), end=int(md["end"]),
        section_path=tuple(json.loads(md["section_path"])), heading=str(md["heading"]),
        title=str(md["title"]), city=str(md["city"]) or None,
        doc_years=tuple(int(y) for y in str(md["doc_years"]).split(",") if y),
        year=None if year < 0 else year, role=md.get("role", "unknown"),
        departments=tuple(d for d in str(md.get("departments", "")).split("、") if d),
        token_count=int(md["token_count"]), embed_text=str(md["embed_text"]),
        source_path=str(md.get("source_path", "")), ordinal=int(md.get("ordinal", 0)),
        flags=tuple(f for f in str(md.get("flags", "")).split(",") if f),
    )
    return chunk, str(md.get("terms", "")).split()


_HNSW_SYNC = 100  # see ChunkStore._open


class ChunkStore:
    """Chunks, vectors and the manifest in one Chroma collection pair. Thread-safe for
    concurrent reads; writes are serialised by a lock (one writer per process)."""

    def __init__(self, settings: IndexSettings, *, embed_model: str, dim: int) -> None:
        self._settings = settings
        self._embed_model = embed_model
        self._dim = dim
        self._write_lock = threading.Lock()
        self._client = self._connect()
        self._open()
        self._check_model()

    def _open(self) -> None:
        settings, ef = self._settings, _refusing_embedding_function()
        meta = {"embed_model": self._embed_model, "dim": self._dim, "schema": SCHEMA_VERSION, "hnsw:space": "cosine",
                # Chroma replays the writes not yet in its persisted HNSW graph on every open
                # (up to sync_threshold of them: 0.6 s for 1,000): flush often, start fast.
                "hnsw:sync_threshold": _HNSW_SYNC, "hnsw:batch_size": _HNSW_SYNC}
        try:
            self._col = self._client.get_or_create_collection(settings.collection, metadata=meta,
                                                              embedding_function=ef)
            self._manifest = self._client.get_or_create_collection(
                settings.collection + "-manifest", metadata={"schema": SCHEMA_VERSION}, embedding_function=ef)
        except Exception as exc:  # chromadb raises many types; name the place and move on
            raise unavailable(settings, exc, f"opening the collection {settings.collection!r}") from None

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn whatever Chroma raises into an :class:`IndexError_` that says what to do."""
        try:
            yield
        except (IndexError_, IndexMismatchError):
            raise
        except Exception as exc:
            raise unavailable(self._settings, exc, doing) from None

    @property
    def location(self) -> str:
        return _location(self._settings)

    def _connect(self) -> Any:
        return _connect(self._settings)

    def _check_model(self) -> None:
        md = self._col.metadata or {}
        have_model, have_dim = md.get("embed_model"), md.get("dim")
        if have_model != self._embed_model or int(have_dim or -1) != self._dim:
            raise IndexMismatchError(
                f"The index {self._settings.collection!r} at {self.location} was built with embedding model "
                f"{have_model} (dim {have_dim}), but the settings ask for {self._embed_model} (dim {self._dim}). "
                "Vectors from two models cannot be mixed.",
                "Re-index with `assistant ingest --rebuild`, or set CHROMA_COLLECTION to another name, "
                f"or switch the embedding settings back to {have_model}.",
            )

    # --- writes ---------------------------------------------------------------

    def add_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray, terms: Sequence[Sequence[str]],
                   sentence_vectors: Sequence[np.ndarray] | None = None) -> None:
        """Write chunks with their vectors, terms and (when given) sentence vectors, a page per
        call; an id already stored is overwritten (ids are content hashes, so only its metadata
        can differ)."""
        if len(chunks) != len(vectors) or len(chunks) != len(terms) or (
                sentence_vectors is not None and len(sentence_vectors) != len(chunks)):
            raise ValueError("chunks, vectors, terms and sentence_vectors must have the same length")
        matrix = np.asarray(vectors, dtype=np.float32)
        records = [chunk_record(c, t) for c, t in zip(chunks, terms, strict=True)]
        if sentence_vectors is not None:
            for md, sv in zip(records, sentence_vectors, strict=True):
                md["sentence_vectors"] = pack_vectors(sv)
        with self._write_lock, self._guard("writing chunks"):
            for i in range(0, len(chunks), _PAGE):
                page = chunks[i : i + _PAGE]
                self._col.upsert(ids=[c.chunk_id for c in page], embeddings=matrix[i : i + _PAGE],
                                 documents=[c.text for c in page], metadatas=records[i : i + _PAGE])

    def delete_doc(self, doc_id: str) -> None:
        with self._write_lock, self._guard("deleting chunks"):
            self._col.delete(where={"doc_id": doc_id})

    def put_manifest(self, entry: ManifestEntry) -> None:
        md = {"key": entry.key, "sha256": entry.sha256, "doc_id": entry.doc_id, "n_chunks": entry.n_chunks,
              "meta": meta_to_json(entry.meta), "ingested_at": entry.ingested_at, "fmt": entry.fmt,
              "chars": entry.chars, "flagged": entry.flagged}
        with self._write_lock, self._guard("writing the manifest"):
            self._manifest.upsert(ids=[_manifest_id(entry.key)], embeddings=[[0.0]], metadatas=[md])

    def delete_manifest(self, key: str) -> None:
        with self._write_lock, self._guard("writing the manifest"):
            self._manifest.delete(ids=[_manifest_id(key)])

    def reset(self) -> None:
        """Drop the collection and manifest (``ingest --rebuild``) and start empty ones."""
        with self._write_lock:
            drop_index(self._settings, self._client)
            self._open()

    # --- reads ----------------------------------------------------------------

    def manifest(self) -> list[ManifestEntry]:
        out = []
        for _id, _doc, md in self._iter(self._manifest, include=["metadatas"]):
            out.append(ManifestEntry(
                key=md["key"], sha256=md["sha256"], doc_id=md["doc_id"], n_chunks=int(md["n_chunks"]),
                meta=meta_from_json(md["meta"]), ingested_at=float(md["ingested_at"]),
                fmt=str(md.get("fmt", "txt")), chars=int(md.get("chars", 0)), flagged=int(md.get("flagged", 0)),
            ))
        return sorted(out, key=lambda e: e.key)

    def chunk_doc_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _id, _doc, md in self._iter(self._col, include=["metadatas"]):
            counts[md["doc_id"]] = counts.get(md["doc_id"], 0) + 1
        return counts

    def all_chunks(self) -> list[tuple[Chunk, list[str]]]:
        """Every chunk with its stored terms, in (doc, ordinal) order."""
        records = self._iter(self._col, include=["documents", "metadatas"])
        out = [chunk_from_record(i, d or "", md) for i, d, md in records]
        return sorted(out, key=lambda ct: (ct[0].doc_id, ct[0].ordinal))

    def count(self) -> int:
        with self._guard("counting chunks"):
            return int(self._col.count())

    def _pages(self, ids: Sequence[str], include: list[str], doing: str) -> Iterator[tuple[int, Any]]:
        """(position in ``ids``, what ``include`` asked for) of every stored id, a page per call."""
        row = {cid: i for i, cid in enumerate(ids)}
        for i in range(0, len(ids), _PAGE):
            with self._guard(doing):
                res = self._col.get(ids=list(ids[i : i + _PAGE]), include=include)
            yield from ((row[cid], v) for cid, v in zip(res["ids"], res[include[0]], strict=True))

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of ``ids``, one row each in that order (zeros for an unknown id)."""
        out = np.zeros((len(ids), self._dim), dtype=np.float32)
        for pos, v in self._pages(ids, ["embeddings"], "reading vectors"):
            out[pos] = v
        return out

    def sentence_vectors(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        """The sentence vectors of ``ids`` in that order: None for an unknown id or a chunk
        written before sentence vectors were stored."""
        out: list[np.ndarray | None] = [None] * len(ids)
        for pos, md in self._pages(ids, ["metadatas"], "reading sentence vectors"):
            packed = (md or {}).get("sentence_vectors")
            if isinstance(packed, str):
                out[pos] = unpack_vectors(packed, self._dim)
        return out

    def dense_query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the ``k`` nearest chunks, filtered by ``where``.

        Queries the collection directly with the vector: ChromaVectorStore.query would
        rebuild a llama-index node from JSON for every hit, which we do not need since
        chunks are held in memory by the retriever.
        """
        # No count() first: Chroma returns fewer hits (none for an empty collection) by itself,
        # and on a server each extra call is a round trip.
        with self._guard("searching"):
            res = self._col.query(query_embeddings=[vector.tolist()], n_results=max(k, 1), where=where or None,
                                  include=["distances"])
        ids, dists = res["ids"][0], res["distances"][0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]

    def version(self) -> str:
        """Changes whenever a file is (re)ingested or removed: lets readers notice writes
        made by another process."""
        entries = self.manifest()
        return f"{len(entries)}:{max((e.ingested_at for e in entries), default=0):.6f}:{self.count()}"

    def _iter(self, col: Any, include: list[str]) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
        offset = 0
        while True:
            with self._guard("reading"):
                res = col.get(include=include, limit=_PAGE, offset=offset)
            ids = res["ids"]
            if not ids:
                return
            docs = res.get("documents") or [None] * len(ids)
            for i, d, md in zip(ids, docs, res["metadatas"], strict=True):
                yield i, d, md or {}
            if len(ids) < _PAGE:
                return
            offset += _PAGE


def _location(s: IndexSettings) -> str:
    return f"http://{s.chroma_host}:{s.chroma_port}" if s.chroma_host else str(s.chroma_path)


def _connect(s: IndexSettings) -> Any:  # chromadb.ClientAPI
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    cs = ChromaSettings(anonymized_telemetry=False)
    try:
        if s.chroma_host:
            return chromadb.HttpClient(host=s.chroma_host, port=s.chroma_port, ssl=s.chroma_ssl, settings=cs)
        s.chroma_path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(s.chroma_path), settings=cs)
    except Exception as exc:
        raise unavailable(s, exc, "connecting") from None


def unavailable(s: IndexSettings, exc: BaseException, doing: str) -> IndexError_:
    """The error for an index that cannot be used, saying which setting or folder and what to do."""
    what = f"{type(exc).__name__}: {str(exc)[:240]}".rstrip(": ")
    if s.chroma_host:
        return IndexError_(
            f"The Chroma server at {_location(s)} (CHROMA_HOST={s.chroma_host}, CHROMA_PORT={s.chroma_port}) "
            f"failed while {doing}: {what}.",
            "Start the server again (`chroma run --path DB_FOLDER --port PORT`) and ask again: questions work as "
            "soon as it is back. Or unset CHROMA_HOST to use the embedded index in ASSISTANT_DATA_DIR.")
    return IndexError_(
        f"The embedded index at {s.chroma_path} cannot be used ({doing}): {what}. It may be damaged, for example "
        "by a process killed while writing or a full disk.",
        "Rebuild it with `assistant ingest --rebuild PATHS...` (the damaged copy is moved aside; your report "
        "files are not touched), or set ASSISTANT_DATA_DIR to another folder.")


def reset_index(settings: IndexSettings, store: Store | None) -> str | None:
    """Empty the index: through ``store`` when it is open, else with :func:`drop_index`
    (which also copes with an index of another model or a damaged one)."""
    if store is None:
        return drop_index(settings)
    store.reset()
    return None


def drop_index(settings: IndexSettings, client: Any = None) -> str | None:
    """Delete the collection and its manifest *without opening them*, so an index built
    with another embedding model can be dropped too (``ingest --rebuild``).  An embedded
    index too damaged to open is moved aside instead; returns a note saying where."""
    if client is None:
        try:
            client = _connect(settings)
        except IndexError_:
            if settings.chroma_host:
                raise
            return _move_aside(settings.chroma_path)
    for name in (settings.collection, settings.collection + "-manifest"):
        with contextlib.suppress(Exception):  # absent is fine
            client.delete_collection(name)
    return None


def _move_aside(path: Path) -> str:
    import time

    from chromadb.api.shared_system_client import SharedSystemClient

    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(target)
    # Chroma caches one client per path in the process: forget the one for the damaged files.
    SharedSystemClient.clear_system_cache()
    return f"moved the damaged index {path} aside to {target}"


def _manifest_id(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
