"""The extraction stage inside ingest: records written with the chunks, removed with the document,
repaired by reconcile; the ``assistant indicators`` command and its CSV/Excel/JSON exports."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import SEEDS, make_settings
from typer.testing import CliRunner

from assistant.cli import app
from assistant.facade import Assistant
from assistant.indicator_export import COLUMNS, to_csv, to_xlsx, write_export
from assistant.indicator_store import IndicatorStore, indicator_path
from assistant.indicators import extract_document
from assistant.testing import HashEmbedder

S003 = "003_7a622e524e24148d.txt"
S004 = "004_959402fedd2f6186.txt"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    for name in (S003, S004):
        shutil.copy(SEEDS / name, folder / name)
    return folder


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Assistant]:
    def build(embedder: HashEmbedder | None = None) -> Assistant:
        return Assistant(make_settings(tmp_path / "data"), embedder=embedder or HashEmbedder())

    return build


def values(a: Assistant, doc_id: str | None = None) -> list[float]:
    return [r.indicator.value for r in a.indicator_table.store.records(doc_ids=[doc_id] if doc_id else None)]


def test_ingest_extracts_every_document_once_and_times_it(make: Callable[..., Assistant], src: Path) -> None:
    a = make()
    report = a.ingest([src])
    assert dict(report.timings)["extract"] > 0
    docs = {d.doc_id: d for d in a.documents()}
    table = a.indicator_table.store
    assert set(table.docs()) == set(docs)
    assert table.location == str(indicator_path(a.settings.index))
    n = table.count()
    assert n > 200
    ids = [r.id for r in table.records()]
    assert len(ids) == len(set(ids))  # overlapping chunks repeat figures; each is stored once
    version = table.version()
    assert make().ingest([src]).of("unchanged") and table.version() == version  # nothing to redo


def test_changed_removed_and_pruned_files_update_the_table(make: Callable[..., Assistant], src: Path) -> None:
    a = make()
    a.ingest([src])
    by_name = {Path(d.path).name: d.doc_id for d in a.documents()}
    f = src / S004
    f.write_text(f.read_text(encoding="utf-8").replace("居民健康素养水平达45%", "居民健康素养水平达46%"),
                 encoding="utf-8")
    a.ingest([src])
    new_id = {Path(d.path).name: d.doc_id for d in a.documents()}[S004]
    assert new_id != by_name[S004] and values(a, by_name[S004]) == []
    assert 46.0 in values(a, new_id) and 45.0 not in values(a, new_id)
    a.remove(S003)
    assert values(a, by_name[S003]) == [] and by_name[S003] not in a.indicator_table.store.docs()
    f.unlink()
    a.ingest([src], prune=True)  # 003 comes back (its file is still there), 004 goes
    assert values(a, new_id) == [] and set(a.indicator_table.store.docs()) == {by_name[S003]}


def test_rebuild_resets_the_table(make: Callable[..., Assistant], src: Path) -> None:
    a = make()
    a.ingest([src])
    n = a.indicator_table.store.count()
    a.ingest([src], rebuild=True)
    assert a.indicator_table.store.count() == n


def test_reconcile_drops_orphans_and_reextracts_missing_records_without_embedding(
        make: Callable[..., Assistant], src: Path) -> None:
    a = make()
    a.ingest([src])
    table = a.indicator_table.store
    doc_id = next(iter(table.docs()))
    before = values(a, doc_id)
    table.delete_doc(doc_id)  # a crash after the manifest, before the records
    orphan = replace(next(c for c in a.retriever.corpus.chunks if extract_document([c])), doc_id="gone")
    table.replace_doc("gone", extract_document([orphan]))  # records of a document no manifest entry owns
    assert "gone" in table.record_doc_ids()
    embedder = HashEmbedder()
    report = a.ingest([src])  # its run starts with reconcile()
    assert any("re-extracted" in r and doc_id in r for r in report.repaired)
    assert any("dropped the indicator records of gone" in r for r in report.repaired)
    assert values(a, doc_id) == before and "gone" not in table.docs() and "gone" not in table.record_doc_ids()
    table.delete_doc(doc_id)
    b = make(embedder)  # another process repairs on first use, before any ingest
    assert values(b, doc_id) == before and embedder.calls == 0  # from the stored chunks, nothing re-embedded


def test_reconcile_reextracts_documents_of_an_older_extractor(make: Callable[..., Assistant], src: Path) -> None:
    a = make()
    a.ingest([src])
    table = a.indicator_table.store
    doc_id = next(iter(table.docs()))
    records = table.records(doc_ids=[doc_id])
    table.replace_doc(doc_id, records[:3], extractor="0")
    report = a.ingest([src])
    assert any("extractor 0 →" in r for r in report.repaired)
    assert len(values(a, doc_id)) == len(records)


def test_a_missing_table_is_rebuilt_from_the_stored_chunks_on_first_use(make: Callable[..., Assistant],
                                                                         src: Path) -> None:
    a = make()
    a.ingest([src])
    n = a.indicator_table.store.count()
    path = Path(a.indicator_table.store.location)
    a.indicator_table.store.close()
    path.unlink()  # another machine on the same Chroma server has no local table
    embedder = HashEmbedder()
    b = make(embedder)
    assert len(b.indicators()) == n and embedder.calls == 0  # no ingest, nothing embedded


def test_an_injected_chunk_store_gets_a_table_of_its_own(make: Callable[..., Assistant]) -> None:
    from assistant.testing import MemoryStore

    a = Assistant(make().settings, embedder=HashEmbedder(), store=MemoryStore())
    assert a.indicator_table.store.location == ":memory:"
    shared = IndicatorStore(None)
    b = Assistant(make().settings, embedder=HashEmbedder(), store=MemoryStore(), indicators=shared)
    assert b.indicator_table.store is shared


# --- CLI and exports ----------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # never read a developer's .env
    env = {"ASSISTANT_DATA_DIR": str(tmp_path / "data"), "EMBEDDING_PROVIDER": "hash",
           "LLM_PROVIDER": "extractive", "COLUMNS": "200"}

    def run(*args: str) -> object:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    return run


def test_cli_filters_and_exports_that_open_back(cli: Callable[..., object], src: Path, tmp_path: Path) -> None:
    assert cli("ingest", str(src)).exit_code == 0  # type: ignore[attr-defined]
    out = tmp_path / "out"
    res = cli("indicators", "--metric", "签约率", "--city", "东莞", "--year", "2024", "--csv", str(out / "a.csv"),
              "--xlsx", str(out / "a.xlsx"))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "常住人口签约率" in res.output and "签约率 → 重点人群签约率（包含）" in res.output  # type: ignore[attr-defined]
    with (out / "a.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["指标"], r["数值"], r["类型"]) for r in rows} == {("常住人口签约率", "58.62", "实际"),
                                                              ("重点人群签约率", "90.65", "实际")}
    assert all("58.62%" in r["原文句子"] and r["地区"] == "东莞市" for r in rows)
    from openpyxl import load_workbook

    ws = load_workbook(out / "a.xlsx").active
    table = list(ws.iter_rows(values_only=True))
    assert table[0] == tuple(COLUMNS.values())
    assert sorted(r[list(COLUMNS).index("value")] for r in table[1:]) == [58.62, 90.65]  # numbers stay numbers
    res = cli("indicators", "--metric", "签约率", "--kind", "target", "--json")
    data = json.loads(res.output)  # type: ignore[attr-defined]
    assert {(d["city"], d["year"], d["figure"]) for d in data} >= {("东莞市", 2025, "60%以上"),
                                                                   ("余姚市", 2025, "85%以上")}
    assert all(d["kind"] == "目标" for d in data)


def test_cli_conflicts_lists_reports_that_disagree(cli: Callable[..., object], src: Path) -> None:
    assert cli("ingest", str(src)).exit_code == 0  # type: ignore[attr-defined]
    assert "No conflicts" in cli("indicators", "--conflicts").output  # type: ignore[attr-defined]
    brief = "东莞市卫生健康局2024年统计简报\n\n一、基本情况\n2024年,东莞市常住人口家庭医生签约率为59.1%。\n"
    (src / "brief.txt").write_text(brief, encoding="utf-8")
    assert cli("ingest", str(src)).exit_code == 0  # type: ignore[attr-defined]
    res = cli("indicators", "--conflicts", "--json")
    got = {(d["metric"], d["value"]) for d in json.loads(res.output)}  # type: ignore[attr-defined]
    assert got == {("常住人口签约率", 58.62), ("常住人口家庭医生签约率", 59.1)}


def test_cli_errors_name_the_input_and_the_fix(cli: Callable[..., object], src: Path, tmp_path: Path) -> None:
    res = cli("indicators", "--kind", "goal")
    assert res.exit_code == 2 and "Unknown indicator kind 'goal'" in res.output  # type: ignore[attr-defined]
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(Exception, match=r"Cannot write .*blocker/x\.csv"):
        write_export([], blocker / "x.csv", "csv")
    assert "No indicator records match" in cli("indicators").output  # type: ignore[attr-defined]


def test_csv_and_xlsx_of_nothing_are_just_the_header() -> None:
    assert to_csv([]).decode("utf-8-sig").strip() == ",".join(COLUMNS.values())
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(to_xlsx([]))).active
    assert [c.value for c in ws[1]] == list(COLUMNS.values()) and ws.max_row == 1
