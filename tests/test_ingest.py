"""Ingest: encodings, failing files, incremental updates, sidecars, crash repair, model
checks, the refusing embedding function and the CLI.

Every test uses :class:`HashEmbedder` and the embedded Chroma store in a temp dir, so
nothing here loads a model or needs a network.
"""

from __future__ import annotations

import codecs
import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import SEEDS, make_settings
from typer.testing import CliRunner

from assistant.chunking import sentence_inputs
from assistant.cli import app
from assistant.config import ChunkSettings
from assistant.errors import IndexError_, IndexMismatchError, LLMError
from assistant.facade import Assistant
from assistant.index import ChunkStore, ManifestEntry
from assistant.ingest import HEADER_WEIGHT, Ingestor, embedding_batches, file_groups, parse_file
from assistant.testing import HashEmbedder, MemoryStore
from assistant.text import answer_sentences, terms
from assistant.types import Chunk

S000 = "000_02aee6cc86416636.txt"  # contains U+00A0: GBK cannot encode it, GB18030 can
S001 = "001_f9e5136daba399cd.txt"  # plain GBK-encodable text
S004 = "004_959402fedd2f6186.txt"

NEW_PART = "\n九、新增工作\n(一)新增任务。全面加强新增工作的组织领导,确保各项任务按期完成。\n"

MakeAssistant = Callable[..., Assistant]


@pytest.fixture
def make_assistant(tmp_path: Path) -> MakeAssistant:
    """``make_assistant()`` → an Assistant over ``tmp_path/data`` with a HashEmbedder.

    Each call is a new instance (a new process, as far as the index is concerned)."""

    def make(embedder: HashEmbedder | None = None, **sections: dict) -> Assistant:
        return Assistant(make_settings(tmp_path / "data", **sections), embedder=embedder or HashEmbedder())

    return make


@pytest.fixture
def two_seeds(tmp_path: Path) -> Path:
    """A folder holding copies of seeds 001 and 004."""
    src = tmp_path / "src"
    src.mkdir()
    for name in (S001, S004):
        shutil.copy(SEEDS / name, src / name)
    return src


def _signature(chunks: list[Chunk]) -> list[tuple]:
    return [(c.chunk_id, c.doc_id, c.text, c.start, c.end, c.section_path, c.year, c.role) for c in chunks]


def _ids(a: Assistant) -> set[str]:
    return {c.chunk_id for c, _terms in a.store.all_chunks()}


def _status(report: object) -> dict[str, str]:
    return {Path(r.path).name: r.status for r in report.results}  # type: ignore[attr-defined]


# --- encodings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "encode"),
    [
        (S001, lambda t: t.encode("gbk")),
        (S000, lambda t: t.encode("gb18030")),
        (S001, lambda t: codecs.BOM_UTF8 + t.encode("utf-8")),
        (S000, lambda t: codecs.BOM_UTF8 + t.encode("utf-8")),
        (S001, lambda t: t.replace("\n", "\r\n").encode("utf-8")),
    ],
    ids=["001-gbk", "000-gb18030", "001-utf8-bom", "000-utf8-bom", "001-crlf"],
)
def test_other_encodings_give_identical_chunks(tmp_path: Path, seed: str, encode: Callable) -> None:
    original = SEEDS / seed
    copy = tmp_path / seed
    copy.write_bytes(encode(original.read_text(encoding="utf-8")))
    assert copy.read_bytes() != original.read_bytes()
    doc_a, root_a, chunks_a = parse_file(original, ChunkSettings())
    doc_b, root_b, chunks_b = parse_file(copy, ChunkSettings())
    assert doc_b.text == doc_a.text and doc_b.doc_id == doc_a.doc_id
    assert doc_b.meta == doc_a.meta
    assert root_b == root_a
    assert _signature(chunks_b) == _signature(chunks_a)
    assert [c.embed_text for c in chunks_b] == [c.embed_text for c in chunks_a]


def test_seed_000_needs_gb18030_because_gbk_lacks_nbsp() -> None:
    with pytest.raises(UnicodeEncodeError):
        (SEEDS / S000).read_text(encoding="utf-8").encode("gbk")


def test_the_same_report_in_two_encodings_is_indexed_once(
    tmp_path: Path, make_assistant: MakeAssistant
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    text = (SEEDS / S001).read_text(encoding="utf-8")
    (src / "a_utf8.txt").write_text(text, encoding="utf-8")
    (src / "b_gbk.txt").write_bytes(text.encode("gbk"))
    a = make_assistant()
    report = a.ingest([src])
    assert _status(report) == {"a_utf8.txt": "added", "b_gbk.txt": "duplicate"}
    assert report.ok
    dup = report.of("duplicate")[0]
    assert "a_utf8.txt" in (dup.error or "")
    assert len(a.documents()) == 1
    assert a.store.count() == len(parse_file(src / "a_utf8.txt", ChunkSettings())[2])


# --- a batch with bad files --------------------------------------------------------


def test_bad_files_fail_alone_and_good_files_are_indexed(
    two_seeds: Path, make_assistant: MakeAssistant
) -> None:
    (two_seeds / "empty.txt").write_bytes(b"")
    (two_seeds / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"IHDR" + b"\x00" * 64)
    (two_seeds / "garbled.txt").write_bytes(bytes(range(0x80, 0x100)) * 20)
    (two_seeds / "notes.xlsx").write_bytes(b"PK\x03\x04 not a report")  # unsupported: skipped silently
    a = make_assistant()
    report = a.ingest([two_seeds])

    assert _status(report) == {S001: "added", S004: "added", "empty.txt": "failed",
                               "image.txt": "failed", "garbled.txt": "failed"}
    assert not report.ok
    errors = {Path(r.path).name: r.error or "" for r in report.of("failed")}
    for name, words in {"empty.txt": "empty", "image.txt": "PNG", "garbled.txt": "GB18030"}.items():
        assert name in errors[name] and words in errors[name], errors[name]
    docs = {Path(d.path).name: d for d in a.documents()}
    assert set(docs) == {S001, S004}
    for name, d in docs.items():
        assert d.chunks == len(parse_file(two_seeds / name, ChunkSettings())[2]) > 0
    assert docs[S001].city == "十堰市" and docs[S004].city == "余姚市"
    assert a.store.count() == sum(d.chunks for d in docs.values())
    assert report.chunks_added == a.store.count()


def test_a_missing_path_is_a_failed_result_not_an_exception(
    tmp_path: Path, make_assistant: MakeAssistant
) -> None:
    missing = tmp_path / "nowhere"
    report = make_assistant().ingest([missing, SEEDS / S001])
    assert _status(report) == {"nowhere": "failed", S001: "added"}
    assert "does not exist" in (report.of("failed")[0].error or "")


# --- groups: embedded across files, written together ---------------------------------


def test_file_groups_close_once_they_hold_enough_chunks() -> None:
    assert file_groups([40, 300, 10, 10], limit=256) == [range(0, 2), range(2, 4)]
    assert [list(g) for g in file_groups([1] * 10, limit=4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert file_groups([5, 5], limit=1) == [range(0, 1), range(1, 2)]
    assert file_groups([], limit=4) == []


def test_embedding_batches_keep_the_order() -> None:
    texts = [f"t{i}" for i in range(10)]
    batches = list(embedding_batches(texts, 4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [t for b in batches for t in b] == texts


class RecordingEmbedder(HashEmbedder):
    """A HashEmbedder that keeps every batch it was given; ``fail_on`` makes the batch
    holding that text raise, as an embedding server would."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail_on = fail_on

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise LLMError("Embedding request failed: APIError.", "Check EMBEDDING_BASE_URL.", retryable=True)
        return super().embed_passages(texts)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.add_calls = 0

    def add_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray, terms: Sequence[Sequence[str]],
                   sentence_vectors: Sequence[np.ndarray] | None = None) -> None:
        self.add_calls += 1
        super().add_chunks(chunks, vectors, terms, sentence_vectors)


def _ingest(folder: Path, embedder: HashEmbedder, store: MemoryStore, group_chunks: int) -> object:
    settings = make_settings(folder.parent / "data")
    return Ingestor(store, embedder, settings, group_chunks=group_chunks).run([folder])  # type: ignore[arg-type]


def test_a_group_is_embedded_across_files_and_each_chunk_keeps_its_own_vector_and_terms(two_seeds: Path) -> None:
    grouped, alone = RecordingEmbedder(), RecordingEmbedder()
    store, per_file = CountingStore(), CountingStore()
    _ingest(two_seeds, grouped, store, group_chunks=10_000)
    _ingest(two_seeds, alone, per_file, group_chunks=1)
    chunks = [c for name in (S001, S004) for c in parse_file(two_seeds / name, ChunkSettings())[2]]
    n1 = len(parse_file(two_seeds / S001, ChunkSettings())[2])
    assert n1 % 64, "the first file must end inside a batch for this test to mean anything"

    # One write for the group; a batch that holds the end of one file and the start of the next.
    assert (store.add_calls, per_file.add_calls) == (1, 2)
    assert len(grouped.batches) == len(list(embedding_batches(chunks, 64)))
    last, first = sentence_inputs(chunks[n1 - 1])[-1], sentence_inputs(chunks[n1])[0]
    assert any(last in b and first in b for b in grouped.batches)
    # Every stored chunk has the vectors of its own sentences (each under its nearest heading),
    # as if embedded alone, a vector made of them and its heading line, and its own terms.
    assert set(store._chunks) == {c.chunk_id for c in chunks} == set(per_file._chunks)
    hashed = HashEmbedder()
    for c in chunks:
        _chunk, vector, stored_terms = store._chunks[c.chunk_id]
        head = c.embed_text[: -len(c.text)].strip()
        sentences = hashed.embed_passages(sentence_inputs(c))
        expected = sentences.mean(axis=0) / np.linalg.norm(sentences.mean(axis=0)) \
            + HEADER_WEIGHT * hashed.embed_passages([head])[0]
        assert np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-6), c.chunk_id
        assert np.array_equal(vector, per_file._chunks[c.chunk_id][1])
        assert np.allclose(store.sentence_vectors([c.chunk_id])[0], sentences, atol=1e-3)  # stored as float16
        assert stored_terms == terms(c.embed_text)


def test_results_come_back_in_file_order_whatever_the_groups(two_seeds: Path) -> None:
    (two_seeds / "002_empty.txt").write_bytes(b"")  # fails while the group before it is still open
    report = _ingest(two_seeds, RecordingEmbedder(), MemoryStore(), group_chunks=10_000)
    assert [(Path(r.path).name, r.status) for r in report.results] == [  # type: ignore[attr-defined]
        (S001, "added"), ("002_empty.txt", "failed"), (S004, "added")]


def test_an_embedding_failure_fails_its_group_only_and_the_next_run_retries_it(two_seeds: Path) -> None:
    store = MemoryStore()
    text = parse_file(two_seeds / S004, ChunkSettings())[2][0].text
    marker = text[slice(*answer_sentences(text)[0])]
    first = _ingest(two_seeds, RecordingEmbedder(fail_on=marker), store, group_chunks=1)
    assert _status(first) == {S001: "added", S004: "failed"}
    assert "Embedding request failed" in (first.of("failed")[0].error or "")  # type: ignore[attr-defined]
    assert {e.key for e in store.manifest()} == {str((two_seeds / S001).resolve())}

    second = _ingest(two_seeds, RecordingEmbedder(), store, group_chunks=1)
    assert _status(second) == {S001: "unchanged", S004: "added"}


def test_a_write_failure_midway_fails_only_the_files_not_yet_in_the_manifest(two_seeds: Path) -> None:
    class FailingManifest(MemoryStore):
        puts = 0

        def put_manifest(self, entry: ManifestEntry) -> None:
            FailingManifest.puts += 1
            if FailingManifest.puts == 2:
                raise IndexError_("The embedded index cannot be used (writing the manifest).", "Rebuild it.")
            super().put_manifest(entry)

    store = FailingManifest()
    first = _ingest(two_seeds, RecordingEmbedder(), store, group_chunks=10_000)  # one group
    assert _status(first) == {S001: "added", S004: "failed"}
    assert "writing the manifest" in (first.of("failed")[0].error or "")  # type: ignore[attr-defined]
    second = _ingest(two_seeds, RecordingEmbedder(), store, group_chunks=10_000)
    assert _status(second) == {S001: "unchanged", S004: "added"}
    assert [r for r in second.repaired if "orphan" in r], "its chunks were written without an entry"  # type: ignore[attr-defined]
    assert store.count() == sum(len(parse_file(two_seeds / n, ChunkSettings())[2]) for n in (S001, S004))


def test_a_copy_of_a_file_whose_group_failed_is_indexed_not_called_a_duplicate(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    text = (SEEDS / S001).read_text(encoding="utf-8")
    (src / "a.txt").write_text(text, encoding="utf-8")
    (src / "b.txt").write_text(text, encoding="utf-8")
    embedder = RecordingEmbedder(fail_on="")  # the first group fails...
    real = embedder.embed_passages

    def once(texts: list[str]) -> np.ndarray:
        try:
            return real(texts)
        finally:
            embedder.fail_on = None  # ...and the server is back for the next

    embedder.embed_passages = once  # type: ignore[method-assign]
    report = _ingest(src, embedder, MemoryStore(), group_chunks=1)
    assert _status(report) == {"a.txt": "failed", "b.txt": "added"}


# --- incremental ingest ------------------------------------------------------------


def test_unchanged_files_are_skipped_without_embedding(
    two_seeds: Path, make_assistant: MakeAssistant
) -> None:
    embedder = HashEmbedder()
    a = make_assistant(embedder)
    first = a.ingest([two_seeds])
    count, ids, calls = a.store.count(), _ids(a), embedder.calls

    second = a.ingest([two_seeds])
    assert set(_status(second).values()) == {"unchanged"}
    assert second.chunks_added == 0
    assert embedder.calls == calls, "nothing was embedded"
    assert (a.store.count(), _ids(a)) == (count, ids)
    assert [r.chunks for r in second.results] == [r.chunks for r in first.results]

    # A fresh instance (another process) sees the same manifest.
    third = make_assistant().ingest([two_seeds])
    assert set(_status(third).values()) == {"unchanged"}


def test_a_modified_file_replaces_its_chunks(two_seeds: Path, make_assistant: MakeAssistant) -> None:
    a = make_assistant()
    a.ingest([two_seeds])
    path = two_seeds / S001
    old_chunks = parse_file(path, ChunkSettings())[2]
    other = {c.chunk_id for c in parse_file(two_seeds / S004, ChunkSettings())[2]}
    assert {c.chunk_id for c in old_chunks} | other == _ids(a)

    with path.open("a", encoding="utf-8") as f:
        f.write(NEW_PART)
    report = a.ingest([two_seeds])
    assert _status(report) == {S001: "updated", S004: "unchanged"}
    new_chunks = parse_file(path, ChunkSettings())[2]
    ids = _ids(a)
    assert not ids & {c.chunk_id for c in old_chunks}, "old chunks are gone"
    assert ids == {c.chunk_id for c in new_chunks} | other
    assert any(c.section_path[0] == "九、新增工作" for c in new_chunks)
    assert report.chunks_added == len(new_chunks)
    (doc,) = [d for d in a.documents() if d.path.endswith(S001)]
    assert doc.doc_id == new_chunks[0].doc_id and doc.chunks == len(new_chunks)
    # Readers see the new state without a restart.
    assert "九、新增工作" in {c.section_path[0] for c in a.chunks_of(S001)}


def test_deleted_files_stay_until_pruned(two_seeds: Path, make_assistant: MakeAssistant) -> None:
    a = make_assistant()
    a.ingest([two_seeds])
    gone = {c.chunk_id for c in parse_file(two_seeds / S004, ChunkSettings())[2]}
    doc_id = parse_file(two_seeds / S004, ChunkSettings())[0].doc_id
    (two_seeds / S004).unlink()

    kept = a.ingest([two_seeds])
    assert _status(kept) == {S001: "unchanged"}
    assert {Path(d.path).name for d in a.documents()} == {S001, S004}
    assert gone <= _ids(a)

    pruned = a.ingest([two_seeds], prune=True)
    assert _status(pruned) == {S001: "unchanged", S004: "removed"}
    removed = pruned.of("removed")[0]
    assert (removed.doc_id, removed.chunks) == (doc_id, len(gone))
    assert {Path(d.path).name for d in a.documents()} == {S001}
    assert not gone & _ids(a)
    assert doc_id not in a.store.chunk_doc_counts()
    assert all(c.doc_id != doc_id for c in a.retriever.corpus.chunks)


def test_rebuild_re_embeds_everything(two_seeds: Path, make_assistant: MakeAssistant) -> None:
    a = make_assistant()
    a.ingest([two_seeds])
    ids = _ids(a)
    report = a.ingest([two_seeds], rebuild=True)
    assert set(_status(report).values()) == {"added"}
    assert _ids(a) == ids


# --- sidecar metadata --------------------------------------------------------------


@pytest.mark.parametrize("sidecar_name", [S001 + ".meta.yaml", S001.removesuffix(".txt") + ".meta.yaml"])
def test_sidecar_overrides_detected_metadata(tmp_path: Path, make_assistant: MakeAssistant,
                                             sidecar_name: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SEEDS / S001, src / S001)
    sidecar = src / sidecar_name
    sidecar.write_text(
        "city: 襄阳市\ntitle: 襄阳市2022年卫生健康工作要点\nyears:\n  - {year: 2022, role: plan}\n",
        encoding="utf-8",
    )
    a = make_assistant()
    report = a.ingest([src])
    assert _status(report) == {S001: "added"}, "the sidecar itself is not ingested"
    (doc,) = a.documents()
    assert (doc.city, doc.title, doc.years) == ("襄阳市", "襄阳市2022年卫生健康工作要点", ((2022, "plan"),))
    chunks = a.chunks_of(S001)
    assert {(c.city, c.title, c.year, c.doc_years) for c in chunks} == {
        ("襄阳市", "襄阳市2022年卫生健康工作要点", 2022, (2022,))}
    assert all(c.embed_text.startswith("襄阳市 2022年") for c in chunks)
    count = a.store.count()

    # A changed sidecar is picked up by the next ingest; the text (and doc id) is the same.
    sidecar.write_text("city: 荆州市\n", encoding="utf-8")
    report = a.ingest([src])
    assert _status(report) == {S001: "updated"}
    (doc2,) = a.documents()
    assert (doc2.doc_id, doc2.city, doc2.title, doc2.years) == (
        doc.doc_id, "荆州市", "2021年十堰市卫生健康工作要点", ((2021, "plan"),))
    assert a.store.count() == count, "replaced in place, not added twice"
    assert {c.city for c in a.chunks_of(S001)} == {"荆州市"}

    sidecar.unlink()
    assert _status(a.ingest([src])) == {S001: "updated"}
    assert a.documents()[0].city == "十堰市"


def test_a_broken_sidecar_fails_its_file_only(two_seeds: Path, make_assistant: MakeAssistant) -> None:
    (two_seeds / (S001 + ".meta.yaml")).write_text("colour: blue\n", encoding="utf-8")
    report = make_assistant().ingest([two_seeds])
    assert _status(report) == {S001: "failed", S004: "added"}
    assert "colour" in (report.of("failed")[0].error or "")


# --- crash safety ------------------------------------------------------------------


def _crash_on_put_manifest(monkeypatch: pytest.MonkeyPatch, on_call: int) -> None:
    """Make the ``on_call``-th ChunkStore.put_manifest (1-based) die like a killed process."""
    real = ChunkStore.put_manifest
    calls = {"n": 0}

    def put_manifest(self: ChunkStore, entry: object) -> None:
        calls["n"] += 1
        if calls["n"] == on_call:
            raise KeyboardInterrupt("simulated crash between chunks and manifest")
        real(self, entry)  # type: ignore[arg-type]

    monkeypatch.setattr(ChunkStore, "put_manifest", put_manifest)


def _expected(folder: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in sorted(folder.glob("*.txt")):
        doc, _root, chunks = parse_file(p, ChunkSettings())
        out[doc.doc_id] = {c.chunk_id for c in chunks}
    return out


def _assert_exactly_one_copy(a: Assistant, folder: Path) -> None:
    expected = _expected(folder)
    assert a.store.chunk_doc_counts() == {d: len(ids) for d, ids in expected.items()}
    assert _ids(a) == set().union(*expected.values())
    assert a.store.count() == sum(len(ids) for ids in expected.values())
    assert {e.doc_id: e.n_chunks for e in a.store.manifest()} == {d: len(i) for d, i in expected.items()}


def test_crash_before_the_manifest_leaves_orphans_that_the_next_run_removes(
    two_seeds: Path, make_assistant: MakeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        _crash_on_put_manifest(m, on_call=2)  # the second file's chunks are written, its entry is not
        with pytest.raises(KeyboardInterrupt):
            make_assistant().ingest([two_seeds])
    crashed = make_assistant()
    assert len(crashed.store.manifest()) == 1
    assert len(crashed.store.chunk_doc_counts()) == 2, "orphan chunks of the second file exist"

    report = crashed.ingest([two_seeds])
    assert any("orphan" in note for note in report.repaired), report.repaired
    assert _status(report) == {S001: "unchanged", S004: "added"}
    _assert_exactly_one_copy(crashed, two_seeds)


def test_crash_during_an_update_then_revert_leaves_no_trace(
    two_seeds: Path, make_assistant: MakeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_assistant().ingest([two_seeds])
    path = two_seeds / S001
    original = path.read_bytes()
    path.write_bytes(original + NEW_PART.encode("utf-8"))
    with monkeypatch.context() as m:
        _crash_on_put_manifest(m, on_call=1)
        with pytest.raises(KeyboardInterrupt):
            make_assistant().ingest([two_seeds])
    path.write_bytes(original)  # the user reverts the edit before the next run

    a = make_assistant()
    report = a.ingest([two_seeds])
    assert report.repaired, "the new version's chunks were orphans"
    assert set(_status(report).values()) == {"unchanged"}
    _assert_exactly_one_copy(a, two_seeds)


def test_an_entry_with_missing_chunks_is_dropped_and_re_ingested(
    two_seeds: Path, make_assistant: MakeAssistant
) -> None:
    a = make_assistant()
    a.ingest([two_seeds])
    victim = parse_file(two_seeds / S004, ChunkSettings())[2][3].chunk_id
    a.store._col.delete(ids=[victim])  # a partial write or a hand-edited store

    b = make_assistant()
    report = b.ingest([two_seeds])
    assert any("incomplete" in note and S004 in note for note in report.repaired), report.repaired
    assert _status(report) == {S001: "unchanged", S004: "added"}
    _assert_exactly_one_copy(b, two_seeds)


# --- the embedding model recorded on the collection --------------------------------


@pytest.mark.parametrize("other", [HashEmbedder(dim=32), HashEmbedder(dim=64, model="fake:another-model")],
                         ids=["other-dim", "other-model"])
def test_opening_an_index_with_another_embedder_is_refused(
    make_assistant: MakeAssistant, other: HashEmbedder
) -> None:
    make_assistant(HashEmbedder(dim=64)).ingest([SEEDS / S001])
    b = make_assistant(other)
    with pytest.raises(IndexMismatchError) as info:
        b.documents()
    message = str(info.value)
    assert "assistant ingest --rebuild" in message
    assert "hash:bigrams" in message and other.model_id in message
    assert "dim 64" in message

    # The advice works: a rebuild replaces the index with one of the new model.
    report = b.ingest([SEEDS / S001], rebuild=True)
    assert _status(report) == {S001: "added"}
    assert len(make_assistant(other).documents()) == 1
    with pytest.raises(IndexMismatchError):
        make_assistant(HashEmbedder(dim=64)).documents()


def test_chroma_never_embeds_text_itself(make_assistant: MakeAssistant) -> None:
    a = make_assistant()
    a.ingest([SEEDS / S001])
    col = a.store._col
    with pytest.raises(IndexError_, match="embed text itself"):
        col.query(query_texts=["家庭医生签约"], n_results=1)
    with pytest.raises(IndexError_, match="embed text itself"):
        col.add(ids=["raw-text"], documents=["未带向量的文本"])
    assert "raw-text" not in set(col.get(ids=["raw-text"])["ids"])


# --- CLI ---------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Run ``assistant ARGS`` in-process against a temp index with the fake embedder."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # never read a developer's .env
    env = {"ASSISTANT_DATA_DIR": str(tmp_path / "data"), "EMBEDDING_PROVIDER": "hash",
           "LLM_PROVIDER": "extractive", "COLUMNS": "100"}
    runner = CliRunner()

    def run(*args: str) -> object:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    return run


def _flat(output: str) -> str:
    """Output with rich's line wrapping undone."""
    return re.sub(r"\s*\n\s*", " ", output)


def test_cli_ingest_docs_and_sections(cli: Callable[..., object], two_seeds: Path) -> None:
    res = cli("ingest", str(two_seeds))
    assert res.exit_code == 0, res.output
    assert "added" in res.output and S001 in res.output and S004 in res.output
    assert "added 2" in _flat(res.output)

    res = cli("ingest", str(two_seeds))
    assert res.exit_code == 0 and "unchanged 2" in _flat(res.output)

    res = cli("docs")
    assert res.exit_code == 0, res.output
    doc_001 = parse_file(two_seeds / S001, ChunkSettings())[0]
    for word in (doc_001.doc_id, "十堰市", "余姚市"):
        assert word in res.output, word

    res = cli("docs", "--json")
    assert res.exit_code == 0, res.output
    items = {Path(d["path"]).name: d for d in json.loads(res.output)}
    assert set(items) == {S001, S004}
    assert items[S001]["doc_id"] == doc_001.doc_id
    assert items[S001]["title"] == "2021年十堰市卫生健康工作要点"
    assert items[S001]["years"] == [[2021, "plan"]] and items[S001]["date"] == "2021-03-18"
    assert items[S004]["chunks"] == len(parse_file(two_seeds / S004, ChunkSettings())[2])

    res = cli("sections", "001_f9e5136daba399cd")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "2021年十堰市卫生健康工作要点" in lines[0]
    assert "一、强化党的建设" in lines
    assert "二、加强从严治党和行业作风建设" in lines
    assert "  3、从严规范党内政治生活" in lines
    assert lines.index("  3、从严规范党内政治生活") > lines.index("二、加强从严治党和行业作风建设")

    res = cli("sections", doc_001.doc_id[:8])
    assert res.exit_code == 0 and "  26、强化风险防控措施" in res.output.splitlines()

    res = cli("sections", S004)
    assert res.exit_code == 0
    assert "    (1)全力打造高水平县级医院  (责任科室: 医政科教科)" in res.output.splitlines()


def test_cli_outline_survives_a_deleted_file(cli: Callable[..., object], two_seeds: Path) -> None:
    assert cli("ingest", str(two_seeds)).exit_code == 0
    (two_seeds / S001).unlink()
    res = cli("sections", "001_f9e5136daba399cd")
    assert res.exit_code == 0, res.output
    assert "  3、从严规范党内政治生活" in res.output.splitlines()


def test_cli_exit_code_1_when_a_file_failed(cli: Callable[..., object], two_seeds: Path) -> None:
    (two_seeds / "empty.txt").write_bytes(b"")
    res = cli("ingest", str(two_seeds))
    assert res.exit_code == 1
    out = _flat(res.output)
    assert "failed" in out and "empty.txt" in out and "is empty" in out
    assert "added 2" in out and "failed 1" in out


def test_cli_reports_a_missing_path(cli: Callable[..., object], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    res = cli("ingest", str(missing))
    assert res.exit_code == 1
    out = _flat(res.output)
    assert "failed" in out and f"{missing}: does not exist" in out


def test_cli_unknown_document(cli: Callable[..., object], two_seeds: Path) -> None:
    assert cli("ingest", str(two_seeds / S001)).exit_code == 0
    res = cli("sections", "zzz")
    assert res.exit_code == 2
    out = _flat(res.output)
    assert "No single document matches 'zzz'" in out and S001 in out


def test_asking_an_empty_index_says_to_ingest(tmp_path) -> None:
    from conftest import make_settings

    from assistant.errors import AssistantError
    from assistant.facade import Assistant
    from assistant.testing import HashEmbedder

    a = Assistant(make_settings(tmp_path), embedder=HashEmbedder())
    with pytest.raises(AssistantError, match="assistant ingest"):
        a.ask("丽水2019年全市组建了几个县域医共体?")
