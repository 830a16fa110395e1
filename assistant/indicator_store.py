"""The indicator table: every record the extraction stage found, in an embedded SQLite file.

* One file per index, beside it in the local data dir: ``DATA_DIR/indicators/<collection>.sqlite3``
  (:func:`indicator_path`).  The eval's own index has its own collection, so its table never mixes
  with a user's.  With ``CHROMA_HOST`` set the chunks live on the server but the table still lives in
  the local data dir: a second machine using the same server builds it from the stored chunks the
  first time it opens it (:func:`assistant.ingest.repair_indicators`), without re-embedding.
* Written by ingest with the chunks (:meth:`IndicatorStore.replace_doc`), removed with the document
  (:meth:`IndicatorStore.delete_doc`); the ``docs`` table says which documents were extracted and by
  which extractor version, so reconcile can tell a missing or stale document from one that states no
  figure.
* Thread-safe: one connection behind a lock.  WAL journal, so a CLI can read while the UI writes.
* ``IndicatorStore(None)`` keeps the table in memory (tests, and an Assistant built on an injected
  chunk store): the same class, so the same contract.

>>> from assistant.indicators import extract_document
>>> from assistant.types import Chunk
>>> c = Chunk("c1", "d1", "签约率达60%。", 0, 8, (), "", "《某县报告》", "某县", (2024,), 2024, "review", (), 5, "")
>>> s = IndicatorStore(None)
>>> s.replace_doc("d1", extract_document([c]))
>>> [(r.indicator.metric, r.indicator.value) for r in s.records(city="某县")]
[('签约率', 60.0)]
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import IndexSettings
from .errors import IndexError_
from .indicators import Indicator, IndicatorRecord

#: Bump when :mod:`assistant.indicators` changes what it extracts: reconcile re-extracts every
#: document from its stored chunks (no re-embedding) when the stored version differs.
EXTRACTOR_VERSION = "2"
SCHEMA_VERSION = "1"

_COLUMNS = ("id", "doc_id", "chunk_id", "title", "source_path", "city", "year", "role", "metric", "value", "unit",
            "comparator", "kind", "section_path", "start", "stop", "sentence", "figure")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (doc_id TEXT PRIMARY KEY, n_records INTEGER NOT NULL, extractor TEXT NOT NULL,
                                 extracted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS indicators ({", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'id' else ''}"
                                                for c in _COLUMNS)});
CREATE INDEX IF NOT EXISTS indicators_doc ON indicators (doc_id);
CREATE INDEX IF NOT EXISTS indicators_place ON indicators (city, year, kind);
"""


def indicator_path(settings: IndexSettings) -> Path:
    """Where the table of the index ``settings`` names lives: always the local data dir."""
    return settings.data_dir / "indicators" / f"{settings.collection}.sqlite3"


class IndicatorStore:
    """The indicator table (see the module docstring). ``path=None``: in memory."""

    def __init__(self, path: str | Path | None) -> None:
        self._path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        try:
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self._path) if self._path else ":memory:", check_same_thread=False,
                                       timeout=30)
            if self._path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._check_schema()
        except (sqlite3.Error, OSError) as exc:
            raise IndexError_(f"Cannot open the indicator table at {self.location}: {exc}.",
                              "Check that the data dir (ASSISTANT_DATA_DIR) is writable; delete the file to "
                              "rebuild it from the index on the next `assistant ingest`.") from None

    @classmethod
    def for_index(cls, settings: IndexSettings) -> IndicatorStore:
        """The table beside the index ``settings`` names (:func:`indicator_path`)."""
        return cls(indicator_path(settings))

    @property
    def location(self) -> str:
        """The file the table lives in (``:memory:`` for an in-memory table)."""
        return str(self._path) if self._path is not None else ":memory:"

    def _check_schema(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            with self._db:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise IndexError_(f"The indicator table {self.location} has schema {row[0]}, this version writes "
                              f"schema {SCHEMA_VERSION}.",
                              "Delete the file; the next `assistant ingest` rebuilds it from the stored chunks.")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; every write bumps the generation :meth:`version` reports."""
        with self._lock, self._db:
            yield self._db
            self._db.execute("INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE "
                             "SET value = CAST(value AS INTEGER) + 1")

    # --- writes -------------------------------------------------------------------------

    def replace_doc(self, doc_id: str, records: Sequence[IndicatorRecord], *,
                    extractor: str = EXTRACTOR_VERSION) -> None:
        """Make ``records`` the document's records (in one transaction), and note it as extracted."""
        if any(r.indicator.doc_id != doc_id for r in records):
            raise ValueError(f"replace_doc({doc_id!r}) was given records of another document")
        rows = [_to_row(r) for r in records]
        with self._tx() as db:
            db.execute("DELETE FROM indicators WHERE doc_id = ?", (doc_id,))
            db.executemany(f"INSERT OR REPLACE INTO indicators VALUES ({', '.join('?' * len(_COLUMNS))})", rows)
            db.execute("INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?)", (doc_id, len(rows), extractor, time.time()))

    def delete_doc(self, doc_id: str) -> None:
        """Remove a document's records (nothing happens for a document with none)."""
        with self._tx() as db:
            db.execute("DELETE FROM indicators WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM docs WHERE doc_id = ?", (doc_id,))

    def reset(self) -> None:
        """Drop every record (``ingest --rebuild``)."""
        with self._tx() as db:
            db.execute("DELETE FROM indicators")
            db.execute("DELETE FROM docs")

    # --- reads --------------------------------------------------------------------------

    def docs(self) -> dict[str, str]:
        """doc id → the extractor version that extracted it, for every extracted document."""
        with self._lock:
            return dict(self._db.execute("SELECT doc_id, extractor FROM docs").fetchall())

    def record_doc_ids(self) -> set[str]:
        """Documents that have records (a crash may leave some no ``docs`` row owns)."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT DISTINCT doc_id FROM indicators")}

    def count(self) -> int:
        """How many records the table holds."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM indicators").fetchone()[0])

    def records(self, *, city: str | None = None, year: int | None = None, kind: str | None = None,
                doc_ids: Sequence[str] | None = None) -> list[IndicatorRecord]:
        """Records filtered by exact city, year, kind and documents (None: any), in document order."""
        where, args = [], []
        for column, value in (("city", city), ("year", year), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if doc_ids is not None:
            where.append(f"doc_id IN ({', '.join('?' * len(doc_ids))})")
            args.extend(doc_ids)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM indicators" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY doc_id, start, stop, rowid", args).fetchall()
        return [_from_row(r) for r in rows]

    def get(self, record_id: str) -> IndicatorRecord | None:
        """One record by its id, or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM indicators WHERE id = ?",
                                   (record_id,)).fetchone()
        return _from_row(row) if row else None

    def version(self) -> str:
        """Changes whenever the table is written (by this process or another)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return str(row[0]) if row else "0"

    def close(self) -> None:
        """Close the connection (the table is unusable afterwards)."""
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"IndicatorStore({self.location!r})"


def _to_row(r: IndicatorRecord) -> tuple[Any, ...]:
    i = r.indicator
    return (r.id, i.doc_id, r.chunk_id, r.title, r.source_path, i.city, i.year, i.role, i.metric, i.value, i.unit,
            i.comparator, i.kind, json.dumps(list(i.section_path), ensure_ascii=False), i.start, i.end, i.sentence,
            i.figure)


def _from_row(row: Sequence[Any]) -> IndicatorRecord:
    d = dict(zip(_COLUMNS, row, strict=True))
    ind = Indicator(doc_id=d["doc_id"], city=d["city"], year=d["year"], role=d["role"], metric=d["metric"],
                    value=float(d["value"]), unit=d["unit"], comparator=d["comparator"], kind=d["kind"],
                    section_path=tuple(json.loads(d["section_path"])), start=int(d["start"]), end=int(d["stop"]),
                    sentence=d["sentence"], figure=d["figure"] or "")
    return IndicatorRecord(d["id"], ind, d["chunk_id"], d["title"], d["source_path"] or "")


__all__ = ["EXTRACTOR_VERSION", "IndicatorStore", "indicator_path"]
