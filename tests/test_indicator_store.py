"""assistant.indicator_store: the SQLite indicator table. One contract, run on a file and in memory."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from assistant.config import IndexSettings
from assistant.errors import IndexError_
from assistant.indicator_store import EXTRACTOR_VERSION, IndicatorStore, indicator_path
from assistant.indicators import IndicatorRecord, extract_document
from assistant.types import Chunk


def chunk(doc: str, text: str, *, city: str = "某县", year: int = 2024, role: str = "review", start: int = 0,
          ordinal: int = 0) -> Chunk:
    return Chunk(chunk_id=f"{doc}-{ordinal}", doc_id=doc, text=text, start=start, end=start + len(text),
                 section_path=("一、工作回顾",), heading="一、工作回顾", title=f"《{doc}》", city=city,
                 doc_years=(year,),
                 year=year, role=role, departments=(), token_count=10, embed_text=text,  # type: ignore[arg-type]
                 source_path=f"/reports/{doc}.txt", ordinal=ordinal)


def records(doc: str, text: str, **kw: object) -> list[IndicatorRecord]:
    return extract_document([chunk(doc, text, **kw)])  # type: ignore[arg-type]


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> IndicatorStore:
    s = IndicatorStore(tmp_path / "ind" / "t.sqlite3" if request.param == "file" else None)
    yield s
    s.close()


def test_replace_doc_then_query_by_city_year_kind_and_doc(store: IndicatorStore) -> None:
    store.replace_doc("d1", records("d1", "签约率达60%,新建村卫生室12所。"))
    store.replace_doc("d2", records("d2", "签约率达70%以上。", city="某市", year=2025, role="plan"))
    assert store.count() == 3
    assert [r.indicator.value for r in store.records(city="某县")] == [60.0, 12.0]
    assert [(r.indicator.city, r.indicator.kind) for r in store.records(year=2025)] == [("某市", "target")]
    assert [r.indicator.unit for r in store.records(kind="achieved", doc_ids=["d1"])] == ["%", "所"]
    assert store.records(city="某县", year=2025) == []
    assert store.docs() == {"d1": EXTRACTOR_VERSION, "d2": EXTRACTOR_VERSION}


def test_records_round_trip_every_field(store: IndicatorStore) -> None:
    (rec,) = records("d1", "孕产妇死亡率控制在10/10万以下。", role="plan")
    store.replace_doc("d1", [rec])
    assert store.records() == [rec]
    assert store.get(rec.id) == rec and store.get("nope") is None
    assert rec.indicator.figure == "10/10万以下" and rec.chunk_id == "d1-0" and rec.source_path == "/reports/d1.txt"


def test_replace_doc_replaces_and_delete_doc_removes(store: IndicatorStore) -> None:
    store.replace_doc("d1", records("d1", "签约率达60%,新建村卫生室12所。"))
    store.replace_doc("d1", records("d1", "签约率达61%。"))
    assert [r.indicator.value for r in store.records()] == [61.0]
    store.replace_doc("d2", [])  # a report that states no figure is still extracted
    assert set(store.docs()) == {"d1", "d2"} and store.record_doc_ids() == {"d1"}
    store.delete_doc("d1")
    assert store.records() == [] and set(store.docs()) == {"d2"}
    store.reset()
    assert store.docs() == {} and store.count() == 0


def test_replace_doc_rejects_records_of_another_document(store: IndicatorStore) -> None:
    with pytest.raises(ValueError, match="d9"):
        store.replace_doc("d9", records("d1", "签约率达60%。"))


def test_version_changes_with_every_write(store: IndicatorStore) -> None:
    v0 = store.version()
    store.replace_doc("d1", records("d1", "签约率达60%。"))
    v1 = store.version()
    store.delete_doc("d1")
    assert len({v0, v1, store.version()}) == 3


def test_concurrent_writers_and_readers(store: IndicatorStore) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for k in range(20):
                store.replace_doc(f"d{n}", records(f"d{n}", f"签约率达{k}%,新建村卫生室{n}所。"))
                store.records(city="某县")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 12 and {r.indicator.value for r in store.records() if r.indicator.unit == "%"} == {19.0}


def test_file_table_persists_and_lives_in_the_local_data_dir(tmp_path: Path) -> None:
    settings = IndexSettings(data_dir=tmp_path, collection="my-reports", chroma_host="chroma.example")
    path = indicator_path(settings)
    assert path == tmp_path / "indicators" / "my-reports.sqlite3"  # local even with a Chroma server
    a = IndicatorStore.for_index(settings)
    a.replace_doc("d1", records("d1", "签约率达60%。"))
    a.close()
    b = IndicatorStore(path)
    assert [r.indicator.value for r in b.records()] == [60.0]
    b.close()
    other = indicator_path(IndexSettings(data_dir=tmp_path, collection="eval-abc"))
    assert other != path  # the eval's index never shares a table with a user's


def test_another_schema_fails_with_a_message_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    IndicatorStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(IndexError_, match=r"t\.sqlite3.*schema 99") as info:
        IndicatorStore(path)
    assert "Delete the file" in info.value.hint


def test_unwritable_location_fails_with_a_message_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(IndexError_, match="indicator table") as info:
        IndicatorStore(blocker / "sub" / "t.sqlite3")
    assert "ASSISTANT_DATA_DIR" in info.value.hint
