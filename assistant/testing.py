"""Fakes for tests and benchmarks, one per provider protocol. Not used by the product.

* :class:`FakeLLM` – canned replies (the :class:`~assistant.llm.LLM` protocol);
* :class:`HashEmbedder` – model-free hashed character bigrams (the
  :class:`~assistant.embedding.Embedder` protocol; also ``EMBEDDING_PROVIDER=hash`` for
  benchmarks that leave the model's cost out);
* :class:`MemoryStore` – chunks, vectors and manifest in memory (the
  :class:`~assistant.index.Store` protocol);
* :class:`ChromaServer` – a real ``chroma run`` on 127.0.0.1, for the server path.

Each passes the same contract tests as the real implementations
(``tests/test_contracts.py``).

>>> from assistant.llm import Message
>>> FakeLLM(["答案[1]。"]).complete([Message("user", "问题")]).text
'答案[1]。'
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .embedding import _normalise
from .errors import LLMError
from .index import ManifestEntry
from .llm import Completion, Message, estimate_usage
from .types import Chunk

Reply = str | BaseException


class FakeLLM:
    """Canned replies, for tests of everything above the LLM.

    ``replies`` is either a list consumed in order (an exception in it is raised
    instead of answering; running out raises :class:`LLMError`) or a function of the
    messages. Every call's messages are kept in ``calls``. Streams split the reply into
    pieces of ``piece_chars`` characters. Usage is counted locally.

    >>> llm = FakeLLM(lambda msgs: "回声：" + msgs[-1].content)
    >>> [p for p in llm.stream([Message("user", "你好")]) if isinstance(p, str)]
    ['回声：', '你好']
    """

    def __init__(self, replies: Sequence[Reply] | Callable[[Sequence[Message]], str] = (), *,
                 model: str = "fake-llm", context_window: int = 8192, piece_chars: int = 3) -> None:
        if piece_chars < 1:
            raise ValueError("piece_chars must be >= 1")
        self._fn = replies if callable(replies) else None
        self._replies: list[Reply] = [] if callable(replies) else list(replies)
        self._model = model
        self._context_window = context_window
        self._piece_chars = piece_chars
        self._lock = threading.Lock()
        self.calls: list[tuple[Message, ...]] = []

    @property
    def model(self) -> str:
        return self._model

    @property
    def context_window(self) -> int:
        return self._context_window

    @property
    def remaining(self) -> int:
        """Canned replies not used yet."""
        return len(self._replies)

    def _reply(self, messages: Sequence[Message]) -> str:
        with self._lock:
            self.calls.append(tuple(messages))
            if self._fn is not None:
                return self._fn(messages)
            if not self._replies:
                raise LLMError("FakeLLM has no replies left.", "Give it more replies or a function.")
            reply = self._replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def complete(self, messages: Sequence[Message], *, deadline: float | None = None) -> Completion:
        text = self._reply(messages)
        return Completion(text=text, usage=estimate_usage(messages, text), model=self._model)

    def stream(self, messages: Sequence[Message], *, deadline: float | None = None) -> Iterator[str | Completion]:
        text = self._reply(messages)
        n = self._piece_chars
        for i in range(0, len(text), n):
            yield text[i : i + n]
        yield Completion(text=text, usage=estimate_usage(messages, text), model=self._model)

class HashEmbedder:
    """Deterministic, model-free vectors: hashed character bigrams. For tests and for
    benchmarks that leave the model's cost out (``EMBEDDING_PROVIDER=hash``); texts sharing
    words land near each other, but it is no embedding model."""

    def __init__(self, dim: int = 64, model: str = "hash:bigrams") -> None:
        self._dim = dim
        self._model = model
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def dim(self) -> int:
        return self._dim

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self._dim, dtype=np.float32)
        for a, b in itertools.pairwise(text):
            h = int.from_bytes(hashlib.blake2b((a + b).encode(), digest_size=4).digest(), "little")
            v[h % self._dim] += 1.0
        if not v.any():
            v[0] = 1.0
        return v

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return _normalise(np.stack([self._vec(t) for t in texts]))

    def embed_query(self, text: str) -> np.ndarray:
        self.calls += 1
        return _normalise(self._vec(text))


class MemoryStore:
    """The :class:`~assistant.index.Store` protocol in memory: exact cosine search, Chroma's
    ``where`` subset used by retrieval (``$and``, ``$in`` and equality). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: dict[str, tuple[Chunk, np.ndarray, list[str]]] = {}
        self._sentences: dict[str, np.ndarray] = {}
        self._manifest: dict[str, ManifestEntry] = {}

    @property
    def location(self) -> str:
        return "memory"

    def add_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray, terms: Sequence[Sequence[str]],
                   sentence_vectors: Sequence[np.ndarray] | None = None) -> None:
        if len(chunks) != len(vectors) or len(chunks) != len(terms) or (
                sentence_vectors is not None and len(sentence_vectors) != len(chunks)):
            raise ValueError("chunks, vectors, terms and sentence_vectors must have the same length")
        with self._lock:
            for c, v, t in zip(chunks, vectors, terms, strict=True):
                self._chunks[c.chunk_id] = (c, np.asarray(v, dtype=np.float32), list(t))
                self._sentences.pop(c.chunk_id, None)
            for c, sv in zip(chunks, sentence_vectors or (), strict=False):
                self._sentences[c.chunk_id] = np.asarray(sv, dtype=np.float16)

    def delete_doc(self, doc_id: str) -> None:
        with self._lock:
            for cid in [cid for cid, (c, _v, _t) in self._chunks.items() if c.doc_id == doc_id]:
                del self._chunks[cid]
                self._sentences.pop(cid, None)

    def put_manifest(self, entry: ManifestEntry) -> None:
        with self._lock:
            self._manifest[entry.key] = entry

    def delete_manifest(self, key: str) -> None:
        with self._lock:
            self._manifest.pop(key, None)

    def reset(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._sentences.clear()
            self._manifest.clear()

    def manifest(self) -> list[ManifestEntry]:
        with self._lock:
            return sorted(self._manifest.values(), key=lambda e: e.key)

    def chunk_doc_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for c, _v, _t in self._chunks.values():
                counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
        return counts

    def all_chunks(self) -> list[tuple[Chunk, list[str]]]:
        with self._lock:
            out = [(c, list(t)) for c, _v, t in self._chunks.values()]
        return sorted(out, key=lambda ct: (ct[0].doc_id, ct[0].ordinal))

    def count(self) -> int:
        with self._lock:
            return len(self._chunks)

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        with self._lock:
            rows = [self._chunks[i][1] if i in self._chunks else None for i in ids]
        dim = next((len(v) for v in rows if v is not None), 0)
        return np.vstack([v if v is not None else np.zeros(dim, np.float32) for v in rows]) if rows \
            else np.zeros((0, dim), np.float32)

    def sentence_vectors(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        with self._lock:
            return [self._sentences.get(i) for i in ids]

    def dense_query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        with self._lock:
            rows = [(cid, float(v @ vector)) for cid, (c, v, _t) in self._chunks.items() if _where_ok(c, where)]
        return sorted(rows, key=lambda r: -r[1])[:k]

    def version(self) -> str:
        with self._lock:
            latest = max((e.ingested_at for e in self._manifest.values()), default=0.0)
            return f"{len(self._manifest)}:{latest:.6f}:{len(self._chunks)}"


def _where_ok(chunk: Chunk, where: dict[str, Any] | None) -> bool:
    if not where:
        return True
    if "$and" in where:
        return all(_where_ok(chunk, w) for w in where["$and"])
    values = {"city": chunk.city or "", "doc_id": chunk.doc_id, "year": chunk.year if chunk.year is not None else -1}
    for key, cond in where.items():
        have = values.get(key)
        if isinstance(cond, dict) and "$in" in cond:
            if have not in cond["$in"]:
                return False
        elif have != cond:
            return False
    return True


__all__ = ["FakeLLM", "HashEmbedder", "MemoryStore"]


class ChromaServer:
    """``chroma run`` over ``path`` on a free port of 127.0.0.1, for tests and benchmarks of
    the server path (``CHROMA_HOST``): started, stopped and started again on the same port.

    >>> with ChromaServer(tmp_path) as server:                      # doctest: +SKIP
    ...     settings.with_overrides(index={"chroma_host": "127.0.0.1", "chroma_port": server.port})
    """

    def __init__(self, path: Path, *, timeout: float = 60.0) -> None:
        exe = Path(sys.executable).with_name("chroma")
        found = str(exe) if exe.exists() else shutil.which("chroma")
        if found is None:
            raise FileNotFoundError(f"the `chroma` CLI is not installed next to {sys.executable}: "
                                    "pip install chromadb")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.exe, self.path, self.timeout = found, path, timeout
        self.log = path / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return Path(sys.executable).with_name("chroma").exists() or shutil.which("chroma") is not None

    def start(self) -> None:
        """Start the server and wait for its heartbeat; RuntimeError with its log's end if none comes."""
        import httpx

        self.path.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.exe, "run", "--path", str(self.path / "db"), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        url, deadline = f"http://127.0.0.1:{self.port}/api/v2/heartbeat", time.monotonic() + self.timeout
        while time.monotonic() < deadline and self._proc.poll() is None:
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"chroma run gave no heartbeat at {url}:\n{self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=30)
            self._proc = None

    def __enter__(self) -> ChromaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
