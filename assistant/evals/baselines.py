"""Two reference pipelines scored on the same gold questions as ours.

* :class:`NaiveLlamaIndexBaseline` – what a llama-index quick start builds:
  ``SimpleDirectoryReader`` → ``SentenceSplitter`` (defaults) → ``VectorStoreIndex``
  (in-memory), dense top-k, with *our* embedding model behind a small
  :class:`EmbedderAdapter`.  llama-index's global ``Settings`` is never read for the
  embedder nor written: ``embed_model=`` and ``transformations=`` are passed explicitly.
* :class:`BM25Baseline` – bm25s over jieba terms of our own default chunks.

Each returns :class:`BaselineResult` objects whose contexts are
:class:`~assistant.types.ScoredChunk` with the source file path, so the retrieval
metrics apply unchanged.  Their "answer" is the top-1 chunk text (generous to the
baselines: a whole chunk contains far more facts than a cited answer) and they never
refuse.

>>> bm25 = BM25Baseline.build("seeds", ChunkSettings())   # doctest: +SKIP
>>> bm25.run("丽水2019年市级医院排队平均时间?", k=5).contexts[0].chunk.source_path  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from assistant.config import ChunkSettings
from assistant.embedding import Embedder
from assistant.types import Answer, Chunk, ScoredChunk


@dataclass(frozen=True)
class BaselineResult:
    """One baseline's output for one question."""

    question: str
    contexts: tuple[ScoredChunk, ...]
    seconds: float

    @property
    def text(self) -> str:
        """The naive "answer": the top-1 chunk text."""
        return self.contexts[0].chunk.text if self.contexts else ""

    def as_answer(self) -> Answer:
        """An :class:`Answer` the metrics can score: no citations, never refused."""
        return Answer(question=self.question, text=self.text, citations=(), mode="extractive",
                      contexts=self.contexts, timings=(("retrieve", self.seconds),))


class Baseline(Protocol):
    """A reference retriever."""

    name: str

    def run(self, question: str, k: int) -> BaselineResult: ...


def _chunk(*, chunk_id: str, doc_id: str, text: str, source_path: str, title: str, ordinal: int,
           start: int = 0, end: int = 0, embed_text: str = "") -> Chunk:
    return Chunk(chunk_id=chunk_id, doc_id=doc_id, text=text, start=start, end=end, section_path=(),
                 heading="", title=title, city=None, doc_years=(), year=None, role="unknown", departments=(),
                 token_count=0, embed_text=embed_text or text, source_path=source_path, ordinal=ordinal)


# --- naive llama-index -------------------------------------------------------------------


class EmbedderAdapter(BaseEmbedding):
    """Our :class:`~assistant.embedding.Embedder` as a llama-index embedding model, so the
    naive baseline differs from us in pipeline only, not in model."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.model_id, **kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "AssistantEmbedderAdapter"

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._embedder.embed_query(query)]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self._embedder.embed_passages(list(texts))]


class NaiveLlamaIndexBaseline:
    """Dense retrieval over llama-index's default pipeline (see module docstring)."""

    name = "naive"
    label = "naive llama-index"

    def __init__(self, index: Any, n_nodes: int, build_seconds: float) -> None:
        self._index = index
        self.n_nodes = n_nodes
        self.build_seconds = build_seconds

    @classmethod
    def build(cls, seeds_dir: str | Path | Sequence[str | Path], embedder: Embedder) -> NaiveLlamaIndexBaseline:
        from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
        from llama_index.core.callbacks import CallbackManager
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.core.vector_stores import SimpleVectorStore

        t = time.perf_counter()
        # llama-index embeds each node's file_path metadata (an absolute path) with its text,
        # so the same corpus in another folder scored differently (hit@1 0.370 in a clean
        # clone against 0.389 here). Only the file name is kept: the figures reproduce.
        dirs = [seeds_dir] if isinstance(seeds_dir, str | Path) else list(seeds_dir)
        files = sorted(str(p) for d in dirs for p in Path(d).iterdir() if p.is_file() and not p.name.startswith("."))
        docs = SimpleDirectoryReader(input_files=files, file_metadata=lambda p: {"file_name": Path(p).name},
                                     filename_as_id=True).load_data(show_progress=False)
        splitter = SentenceSplitter()
        nodes = splitter.get_nodes_from_documents(docs)
        storage = StorageContext.from_defaults(vector_store=SimpleVectorStore())
        # Everything explicit, so llama-index never falls back to its global Settings.
        callbacks = CallbackManager([])
        index = VectorStoreIndex(nodes, embed_model=EmbedderAdapter(embedder, callback_manager=callbacks),
                                 storage_context=storage, transformations=[splitter],
                                 callback_manager=callbacks, show_progress=False)
        return cls(index, len(nodes), time.perf_counter() - t)

    def run(self, question: str, k: int) -> BaselineResult:
        from llama_index.core.schema import MetadataMode

        t = time.perf_counter()
        hits = self._index.as_retriever(similarity_top_k=k).retrieve(question)
        contexts = []
        for i, h in enumerate(hits):
            node = h.node
            md = node.metadata or {}
            path = str(md.get("file_path") or md.get("file_name") or "")
            chunk = _chunk(chunk_id=node.node_id, doc_id=node.ref_doc_id or "", text=node.get_content(),
                           source_path=path, title=str(md.get("file_name", "")), ordinal=i,
                           start=node.start_char_idx or 0, end=node.end_char_idx or 0,
                           embed_text=node.get_content(metadata_mode=MetadataMode.EMBED))
            contexts.append(ScoredChunk(chunk, float(h.score or 0.0), dense_rank=i, dense_score=h.score))
        return BaselineResult(question, tuple(contexts), time.perf_counter() - t)


# --- BM25 only ---------------------------------------------------------------------------------


class BM25Baseline:
    """bm25s over jieba terms of our default chunks (``chunk.embed_text``)."""

    name = "bm25"
    label = "BM25 only"

    def __init__(self, chunks: Sequence[Chunk], tokenize: Callable[[str], list[str]],
                 build_seconds: float = 0.0) -> None:
        import bm25s

        self.chunks = list(chunks)
        self._tokenize = tokenize
        self._bm25 = bm25s.BM25()
        # bm25s rejects empty documents; a placeholder keeps positions aligned.
        self._bm25.index([tokenize(c.embed_text) or ["\u2205"] for c in self.chunks], show_progress=False)
        self._vocab = set(self._bm25.vocab_dict)
        self.build_seconds = build_seconds

    @classmethod
    def build(cls, seeds_dir: str | Path | Sequence[str | Path], chunk_settings: ChunkSettings,
              tokenize: Callable[[str], list[str]] | None = None) -> BM25Baseline:
        from assistant.ingest import parse_paths
        from assistant.text import terms

        t = time.perf_counter()
        dirs = [seeds_dir] if isinstance(seeds_dir, str | Path) else list(seeds_dir)
        chunks = [c for _doc, cs in parse_paths(dirs, chunk_settings) for c in cs]
        return cls(chunks, tokenize or terms, time.perf_counter() - t)

    def run(self, question: str, k: int) -> BaselineResult:
        import numpy as np

        t = time.perf_counter()
        q = [w for w in self._tokenize(question) if w in self._vocab]
        contexts: list[ScoredChunk] = []
        if q and self.chunks:
            scores = np.asarray(self._bm25.get_scores(q), dtype=np.float64)
            order = np.argsort(-scores, kind="stable")[:k]
            contexts = [ScoredChunk(self.chunks[i], float(scores[i]), keyword_rank=r,
                                    keyword_score=float(scores[i]))
                        for r, i in enumerate(order) if scores[i] > 0]
        return BaselineResult(question, tuple(contexts), time.perf_counter() - t)


__all__ = ["BM25Baseline", "Baseline", "BaselineResult", "EmbedderAdapter", "NaiveLlamaIndexBaseline"]
