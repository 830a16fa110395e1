"""Process faults: an ingest killed at a random point, a Chroma server that goes away
mid-session and comes back, an embedded index damaged on disk.

Real processes and files throughout: ``python -m assistant`` subprocesses killed with
SIGKILL, a real ``chroma run`` server stopped and restarted, a real SQLite file
overwritten.  Embeddings use the model-free hash embedder (the faults are the point).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SEEDS, make_settings

from assistant.config import ChunkSettings
from assistant.errors import IndexError_
from assistant.facade import Assistant
from assistant.ingest import Ingestor, parse_file
from assistant.testing import ChromaServer, HashEmbedder

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
Q = "十堰市2021年卫生健康工作要点提出了哪些重点任务?"
FIGURE_Q = "十堰2021年要求6月底前新冠疫苗接种至少覆盖辖区多大比例的人口?"


def _env(data: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LLM", "EMBEDDING", "CHROMA"))}
    return {**keep, "ASSISTANT_DATA_DIR": str(data), "EMBEDDING_PROVIDER": "hash", "LLM_PROVIDER": "extractive",
            "PYTHONPATH": str(ROOT), "COLUMNS": "200", **extra}


def _cli(*args: str, data: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], cwd=cwd, env=_env(data), capture_output=True,
                          text=True, timeout=timeout)


def _expected(reports: Path) -> dict[str, tuple[str, list[str]]]:
    """file key → (doc id, chunk ids) as a clean ingest stores them."""
    out = {}
    for f in sorted(reports.iterdir()):
        doc, _root, chunks = parse_file(f, ChunkSettings())
        out[str(f.resolve())] = (doc.doc_id, [c.chunk_id for c in chunks])
    return out


# --- an ingest killed at a random point ------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_an_ingest_killed_at_a_random_point_is_repaired_by_the_next_run(seed: int, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    shutil.copytree(SEEDS, reports)
    n_files = len(list(reports.iterdir()))
    data = tmp_path / "data"
    rng = random.Random(seed)
    # Kill after the progress line of file k (k = 0: as soon as the files are counted), plus a
    # random fraction of a file's time: during parsing, embedding or the Chroma writes.
    k, extra = rng.randrange(0, n_files - 1), rng.uniform(0.0, 0.25)
    marker = "file(s)" if k == 0 else f"[{k}/{n_files}]"
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "ingest", str(reports)], cwd=tmp_path,
                            env=_env(data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            break
    time.sleep(extra)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)  # really killed mid-ingest, not finished

    a = Assistant(make_settings(data), embedder=HashEmbedder())
    report = a.ingest([reports])
    assert report.ok, report.results
    expected = _expected(reports)
    stored = [c.chunk_id for c, _t in a.store.all_chunks()]
    assert len(stored) == len(set(stored)), "duplicate chunks"
    assert sorted(stored) == sorted(cid for _d, ids in expected.values() for cid in ids), "missing or extra chunks"
    manifest = {e.key: e for e in a.store.manifest()}
    assert set(manifest) == set(expected)
    counts = a.store.chunk_doc_counts()
    for key, (doc_id, ids) in expected.items():
        assert (manifest[key].doc_id, manifest[key].n_chunks, counts[doc_id]) == (doc_id, len(ids), len(ids))
    assert Ingestor(a.store, a.embedder, a.settings).reconcile() == []  # nothing left to repair
    assert not a.ask(Q).refused


# --- a Chroma server that goes away and comes back -------------------------------------------------


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    if not ChromaServer.available():
        pytest.skip("the `chroma` CLI is not installed next to the interpreter")
    server = ChromaServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_a_chroma_server_stopped_mid_session_gives_a_clear_error_then_recovers(chroma: ChromaServer,
                                                                             tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", index={"chroma_host": "127.0.0.1", "chroma_port": chroma.port,
                                                       "collection": "faults"})
    a = Assistant(settings, embedder=HashEmbedder())
    assert a.ingest([SEEDS / "001_f9e5136daba399cd.txt"]).ok
    q = FIGURE_Q  # answered whatever the embedder (the hash fake's similarities are noise)
    before = a.ask(q)
    assert not before.refused and "40%" in before.text
    anywhere = "新冠疫苗接种至少覆盖辖区多大比例的人口?"  # no city or year: the search goes to the server

    chroma.stop()
    # A question inside a city/year filter is searched in the corpus held in memory (exactly, over the
    # snapshot's vectors), so it is still answered, from the index as it was when loaded.
    assert a.ask(q).text == before.text
    with pytest.raises(IndexError_) as info:
        a.ask(anywhere)
    msg = str(info.value)
    assert f"CHROMA_HOST=127.0.0.1, CHROMA_PORT={chroma.port}" in msg
    assert "Start the server again" in msg and "unset CHROMA_HOST" in msg
    with pytest.raises(IndexError_, match="CHROMA_HOST"):
        a.documents()

    chroma.start()
    after = a.ask(q)  # the same Assistant, no restart of ours
    assert after.text == before.text and after.citations == before.citations
    assert "40%" in a.ask(anywhere).text


# --- an embedded index damaged on disk ----------------------------------------------------------------


def test_a_damaged_embedded_index_names_the_rebuild_and_the_rebuild_works(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    shutil.copy(SEEDS / "001_f9e5136daba399cd.txt", reports)
    data = tmp_path / "data"
    assert _cli("ingest", str(reports), data=data, cwd=tmp_path).returncode == 0
    ok = _cli("ask", Q, data=data, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr

    sqlite = data / "chroma" / "chroma.sqlite3"
    with sqlite.open("r+b") as fh:  # what a crash or a bad disk leaves: not a database any more
        fh.write(b"\0garbage" * 512)

    bad = _cli("ask", Q, data=data, cwd=tmp_path)
    assert bad.returncode == 2
    err = " ".join(bad.stderr.split())
    assert f"The embedded index at {data / 'chroma'} cannot be used" in err
    assert "assistant ingest --rebuild" in err and "Traceback" not in err
    assert "Is the server running" not in err  # no talk of servers for an embedded index

    rebuilt = _cli("ingest", "--rebuild", str(reports), data=data, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "moved the damaged index" in " ".join(rebuilt.stdout.split())
    assert list(data.glob("chroma.damaged-*")), "the damaged copy is kept aside"
    again = _cli("ask", Q, data=data, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ok.stdout
