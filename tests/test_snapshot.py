"""The corpus snapshot: saved after an ingest, loaded at start instead of rebuilt from
Chroma, never read for another state of the index, rebuilt when damaged. And filters
as precomputed positions agree with the per-chunk rule."""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SEEDS, make_settings

from assistant import Assistant
from assistant.index import ChunkStore
from assistant.retrieval import Corpus, KeywordIndex, matches
from assistant.snapshot import snapshot_root
from assistant.testing import HashEmbedder
from assistant.text import answer_sentences
from assistant.types import Chunk, Filters

Q = "丽水市2019年居民健康素养水平是多少?"


def _assistant(data: Path) -> Assistant:
    return Assistant(make_settings(data), embedder=HashEmbedder())


@pytest.fixture
def indexed(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    reports.mkdir()
    for name in ("000_02aee6cc86416636.txt", "001_f9e5136daba399cd.txt"):
        shutil.copy(SEEDS / name, reports)
    assert _assistant(tmp_path / "data").ingest([reports]).ok
    return tmp_path / "data"


def _snapshots(data: Path) -> list[Path]:
    root = snapshot_root(make_settings(data).index)
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_a_start_loads_the_snapshot_and_never_reads_every_chunk_from_chroma(
        indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(_snapshots(indexed)) == 1  # written by the ingest
    built = _assistant(indexed).retriever.corpus

    def no(self: ChunkStore) -> None:
        raise AssertionError("all_chunks read at start despite a snapshot")

    monkeypatch.setattr(ChunkStore, "all_chunks", no)
    a = _assistant(indexed)
    loaded = a.retriever.corpus
    assert loaded.chunks == built.chunks and loaded.version == built.version
    assert loaded.keyword.idf == pytest.approx(built.keyword.idf)
    assert loaded.vectors is not None and built.vectors is not None
    assert isinstance(loaded.vectors, np.memmap) and np.array_equal(loaded.vectors, built.vectors)
    # Every chunk's sentence vectors, memory-mapped too, one row per answer sentence.
    assert loaded.sentences is not None and isinstance(loaded.sentences.matrix, np.memmap)
    for c in built.chunks:
        rows = loaded.sentence_vectors(c.chunk_id)
        assert rows is not None and len(rows) == len(answer_sentences(c.text)), c.chunk_id
        assert np.array_equal(rows, built.sentence_vectors(c.chunk_id))
    terms = ["居民", "健康", "素养", "水平", "疫苗"]
    assert np.allclose(loaded.keyword.scores(terms), built.keyword.scores(terms))
    assert "28.82%" in a.ask(Q).text


def test_another_process_ingesting_makes_the_old_snapshot_unused_and_pruned(indexed: Path, tmp_path: Path) -> None:
    reader = _assistant(indexed)
    before = reader.retriever.corpus
    (tmp_path / "more").mkdir()
    shutil.copy(SEEDS / "002_dbf8ee1d148b2c2e.txt", tmp_path / "more")
    assert _assistant(indexed).ingest([tmp_path / "more"]).ok  # a second "process"
    reader.refresh()
    after = reader.retriever.corpus
    assert after.version != before.version and len(after.chunks) > len(before.chunks)
    assert len(_snapshots(indexed)) == 1  # the old one pruned
    assert {c.doc_id for c in after.chunks} > {c.doc_id for c in before.chunks}


def test_a_damaged_snapshot_is_rebuilt_with_a_warning(indexed: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = _assistant(indexed).retriever.corpus
    (folder,) = _snapshots(indexed)
    (folder / "chunks.json").write_text('[["half a row"', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="assistant.snapshot"):
        again = _assistant(indexed).retriever.corpus
    assert again.chunks == good.chunks
    assert any("unreadable corpus snapshot" in r.getMessage() for r in caplog.records)
    assert (folder / "chunks.json").read_text(encoding="utf-8").startswith('[["')  # rewritten whole
    assert _assistant(indexed).retriever.corpus.chunks == good.chunks


def test_an_unwritable_data_dir_costs_the_snapshot_not_the_answer(indexed: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.rmtree(snapshot_root(make_settings(indexed).index))

    def refuse(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("assistant.snapshot.tempfile.mkdtemp", refuse)
    a = _assistant(indexed)
    assert "28.82%" in a.ask(Q).text
    assert _snapshots(indexed) == []


def test_the_keyword_index_from_a_saved_bm25_matches_the_one_built(tmp_path: Path) -> None:
    terms = [["东莞", "签约率", "目标"], [], ["余姚", "签约率"], ["东莞", "东莞", "疫苗"]]
    built = KeywordIndex(["a", "b", "c", "d"], terms)
    built.bm25.save(str(tmp_path / "bm25"), show_progress=False)
    import bm25s

    loaded = KeywordIndex(["a", "b", "c", "d"], bm25=bm25s.BM25.load(str(tmp_path / "bm25"), mmap=True))
    assert loaded.idf == pytest.approx(built.idf) and set(built.idf) == {"东莞", "签约率", "目标", "余姚", "疫苗"}
    assert built.idf["目标"] > built.idf["东莞"]  # in one chunk against two
    assert loaded.search(["签约率"], 2) == built.search(["签约率"], 2)
    assert [i for i, _ in built.search(["东莞"], 1)] == ["d"]


def test_top_k_without_a_full_sort_keeps_the_stable_order(tmp_path: Path) -> None:
    ids = [f"c{i}" for i in range(50)]
    kw = KeywordIndex(ids, [["甲"] if i % 7 == 0 else ["乙"] for i in range(50)])
    top = kw.search(["甲"], 3)
    assert [i for i, _ in top] == ["c0", "c7", "c14"]  # ties in document order, as a stable sort gives


def test_filter_positions_keep_exactly_the_chunks_matches_keeps(seeded: Assistant) -> None:
    corpus: Corpus = seeded.retriever.corpus
    cities = [*corpus.cities()[:3], "无此市"]
    years = [*corpus.years()[:4], 1990]
    docs = sorted({c.doc_id for c in corpus.chunks})[:2]
    cases = [Filters(cities=c, years=y, doc_ids=d)
             for c, y, d in itertools.product([(), (cities[0],), tuple(cities[1:])],
                                              [(), (years[0],), tuple(years[1:])], [(), tuple(docs)])]
    assert any(not f.empty for f in cases)
    for f in cases:
        mask = corpus.mask(f)
        expected = [matches(c, f) for c in corpus.chunks]
        if f.empty:
            assert mask is None
        else:
            assert mask is not None and mask.tolist() == expected, f


def test_search_inside_a_filter_is_exact_and_agrees_with_chroma(seeded: Assistant) -> None:
    """Inside a city/year filter the kept chunks are scored exactly from the snapshot's vectors;
    the ranking is the one Chroma's filtered search gives (cosine similarity, same scores)."""
    from assistant.retrieval import _where

    corpus: Corpus = seeded.retriever.corpus
    qv = seeded.embedder.embed_query("家庭医生签约率目标")
    for f in (Filters(cities=("东莞市",)), Filters(years=(2019,)), Filters(cities=("余姚市",), years=(2025,))):
        mask = corpus.mask(f)
        assert mask is not None
        ours = corpus.nearest(qv, mask, 10)
        chroma = [(cid, sc) for cid, sc in seeded.store.dense_query(qv, 40, _where(f))
                  if matches(corpus.by_id[cid], f)][:10]
        assert [c for c, _ in ours] == [c for c, _ in chroma], f
        assert [s for _, s in ours] == pytest.approx([s for _, s in chroma], abs=1e-4)
        assert all(matches(corpus.by_id[c], f) for c, _ in ours)


class _Counting(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.passages = 0

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.passages += len(texts)
        return super().embed_passages(texts)


def test_answers_read_sentence_vectors_stored_at_ingest_and_embed_them_only_for_an_older_index(
        indexed: Path) -> None:
    """The answerer compares the question with every candidate sentence: with the vectors
    stored at ingest nothing is embedded at question time; a chunk without them (an index
    written before they were stored) has its sentences embedded then, with the same result."""
    counting = _Counting()
    a = Assistant(make_settings(indexed), embedder=counting)
    a.warm_up()  # measures this embedder's similarity floor, once (embedding.similarity_floor)
    counting.passages = 0
    stored = a.ask(Q)
    assert counting.passages == 0 and not stored.refused

    from dataclasses import replace

    corpus = a.retriever.corpus
    assert corpus.sentences is not None
    missing = np.full_like(np.asarray(corpus.sentences.counts), -1)
    a.retriever._corpus = replace(corpus, sentences=replace(corpus.sentences, counts=missing))  # type: ignore[attr-defined]
    older = a.ask(Q)
    assert counting.passages > 0
    assert older.text == stored.text and older.citations == stored.citations


def test_the_similarity_signal_does_not_depend_on_the_embedders_scale(indexed: Path) -> None:
    """The fitted weight of ``sent_sim_spread`` holds for another embedding model: cosines in
    another band (scaled and shifted) give the same feature values."""
    from assistant.evidence import FEATURES, candidates

    a = _assistant(indexed)
    req = a.prepare(Q)
    corpus = a.retriever.corpus
    qv = np.asarray(req.query_vector, dtype=np.float32)

    def e5_like(chunk: Chunk, texts: list[str]) -> list[float]:
        rows = corpus.sentence_vectors(chunk.chunk_id)
        assert rows is not None and len(rows) == len(texts)
        return [float(x) for x in rows @ qv]

    def other_band(chunk: Chunk, texts: list[str]) -> list[float]:
        return [0.35 * x - 0.1 for x in e5_like(chunk, texts)]

    tok = a.answer_stage.tokenize
    i = FEATURES.index("sent_sim_spread")
    one = [c.features[i] for c in candidates(req.info, req.contexts, corpus.keyword, tok, similarity=e5_like)]
    two = [c.features[i] for c in candidates(req.info, req.contexts, corpus.keyword, tok, similarity=other_band)]
    assert len(one) > 5 and max(one) == 0.0 and min(one) < -0.5
    assert two == pytest.approx(one, abs=1e-6)
