"""The 指标 page and the chat's figure tables, without Streamlit.

Rows for the filterable table (each with a link to its source sentence in the viewer), the chart of
one metric across cities or years, the viewer's HTML (the section with the sentence highlighted) and
the downloads.  ``app.py`` lays out widgets and calls these.

>>> source_link("ab12")
'?page=indicators&record=ab12'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from assistant.indicator_export import KIND_LABELS
from assistant.indicator_match import IndicatorMatch
from assistant.indicators import IndicatorRecord
from assistant.types import Chunk, Citation, FigureRow

from .logic import LABELS, section_html

KINDS: tuple[str, ...] = ("achieved", "target", "change")
ROW_LIMIT = 500  # rows shown in the browser; downloads hold every row


@dataclass(frozen=True)
class Options:
    """Choices for the page's filters: the cities and years the table holds."""

    cities: tuple[str, ...]
    years: tuple[int, ...]


def options(matches: Sequence[IndicatorMatch]) -> Options:
    """The cities and years of ``matches`` (all records, unfiltered), sorted."""
    return Options(tuple(sorted({m.indicator.city for m in matches if m.indicator.city})),
                   tuple(sorted({m.indicator.year for m in matches if m.indicator.year is not None})))


def source_link(record_id: str) -> str:
    """The page's own URL showing one record's sentence in the viewer (a link column target)."""
    return f"?page=indicators&record={quote(record_id)}"


def kind_label(kind: str) -> str:
    """实际 / 目标 / 变化 for ``achieved`` / ``target`` / ``change``."""
    return KIND_LABELS.get(kind, kind)


def table_rows(matches: Sequence[IndicatorMatch], limit: int = ROW_LIMIT) -> list[dict[str, Any]]:
    """Rows for ``st.dataframe``: the figure as written, the number, what matched, and a 原文 link."""
    out = []
    for m in matches[:limit]:
        i = m.indicator
        out.append({"地区": i.city or "", "年份": i.year, "类型": kind_label(i.kind), "指标": i.metric,
                    "数值": i.figure or f"{i.value:g}{i.unit}", "原文": source_link(m.record.id), "值": i.value,
                    "单位": i.unit, "匹配": m.label, "报告": m.record.title})
    return out


def chart_data(matches: Sequence[IndicatorMatch]) -> tuple[list[dict[str, Any]], str, str]:
    """(rows, x column, unit) for a bar chart of one measure: the most common unit among ``matches``,
    one bar per city and year (x: 城市·年份 labels) coloured by kind; ([], "", "") when fewer than two bars."""
    units = Counter(m.indicator.unit for m in matches)
    if not units:
        return [], "", ""
    unit = units.most_common(1)[0][0]
    seen: set[tuple[str | None, int | None, str]] = set()
    rows = []
    for m in sorted(matches, key=lambda m: (m.indicator.year or 0, m.indicator.city or "")):
        i = m.indicator
        if i.unit != unit or (i.city, i.year, i.kind) in seen:
            continue
        seen.add((i.city, i.year, i.kind))
        rows.append({"地区·年份": f"{i.city or '?'}{i.year or ''}", "值": i.value, "类型": kind_label(i.kind),
                     "指标": i.metric})
    return (rows, "地区·年份", unit) if len(rows) > 1 else ([], "", "")


def record_citation(record: IndicatorRecord) -> Citation:
    """The record as a citation of its sentence (what the viewer highlights)."""
    i = record.indicator
    return Citation(marker=1, chunk_id=record.chunk_id, doc_id=i.doc_id, title=record.title, city=i.city,
                    year=i.year, section_path=i.section_path, quote=i.sentence, start=i.start, end=i.end,
                    source_path=record.source_path)


def viewer_html(record: IndicatorRecord, chunk: Chunk | None, lang: Mapping[str, str] = LABELS["zh"]) -> str:
    """The record's section with its sentence highlighted (escaped HTML), as the chat's source viewer."""
    return section_html(record_citation(record), chunk, lang)


def viewer_title(record: IndicatorRecord) -> str:
    """``东莞市 2024 《title》 › section › path``: where the viewer's section comes from."""
    i = record.indicator
    path = " › ".join(i.section_path)
    return f"{i.city or ''} {i.year or ''} 《{record.title}》" + (f" › {path}" if path else "")


def figure_rows(figures: Sequence[FigureRow]) -> list[dict[str, Any]]:
    """The table a comparison answer shows in the chat: one row per figure with its citation marker."""
    return [{"引用": f"[{f.marker}]", "地区": f.city or "", "年份": f.year, "类型": kind_label(f.kind),
             "指标": f.metric, "数值": f.figure, "匹配": f"{f.matched} → {f.metric}（{f.how}）" if f.matched else ""}
            for f in figures]


def file_stem(metric: str | None, city: str | None, year: int | None) -> str:
    """A download file name naming the filters: ``指标-签约率-东莞市-2024``."""
    parts = ["指标", *(str(x) for x in (metric, city, year) if x)]
    return "-".join(p.replace("/", "_").replace(" ", "") for p in parts)


__all__ = ["KINDS", "ROW_LIMIT", "Options", "chart_data", "figure_rows", "file_stem", "kind_label", "options",
           "record_citation", "source_link", "table_rows", "viewer_html", "viewer_title"]
