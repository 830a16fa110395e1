"""Indicator records out of the assistant: rows for a table, CSV, Excel and JSON.

The CLI (``assistant indicators --csv/--xlsx/--json``) and the 指标 page download the same columns
(:data:`COLUMNS`), one row per record, each with the sentence it comes from and where that sentence
is, so a spreadsheet keeps the citation.

>>> export_rows([])
[]
>>> list(COLUMNS)[:4]
['city', 'year', 'kind', 'metric']
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import AssistantError
from .indicator_match import IndicatorMatch

#: Column → header shown in spreadsheets (Chinese, for the analysts who open them).
COLUMNS: dict[str, str] = {
    "city": "地区", "year": "年份", "kind": "类型", "metric": "指标", "comparator": "比较", "value": "数值",
    "unit": "单位", "figure": "原文数字", "matched": "查询指标", "how": "匹配方式", "score": "匹配分",
    "title": "报告", "section": "章节", "sentence": "原文句子", "doc_id": "文档ID", "start": "起始字符",
    "end": "结束字符", "source_path": "文件", "id": "记录ID",
}
KIND_LABELS = {"achieved": "实际", "target": "目标", "change": "变化"}


def export_rows(matches: Sequence[IndicatorMatch]) -> list[dict[str, Any]]:
    """One dict per record, keyed by :data:`COLUMNS` (kinds in words: 实际/目标/变化)."""
    out = []
    for m in matches:
        i, r = m.indicator, m.record
        out.append({
            "city": i.city or "", "year": i.year, "kind": KIND_LABELS.get(i.kind, i.kind), "metric": i.metric,
            "comparator": i.comparator, "value": i.value, "unit": i.unit, "figure": i.figure, "matched": m.matched,
            "how": m.how, "score": round(m.score, 3), "title": r.title, "section": " › ".join(i.section_path),
            "sentence": i.sentence, "doc_id": i.doc_id, "start": i.start, "end": i.end,
            "source_path": r.source_path, "id": r.id,
        })
    return out


def to_csv(matches: Sequence[IndicatorMatch]) -> bytes:
    """CSV with a header row of Chinese column names, UTF-8 with a BOM so Excel reads it right."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS.values())
    for row in export_rows(matches):
        writer.writerow("" if row[k] is None else row[k] for k in COLUMNS)
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(matches: Sequence[IndicatorMatch]) -> bytes:
    """An Excel workbook (one sheet, 指标) with the same columns; numbers stay numbers."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "指标"
    ws.append(list(COLUMNS.values()))
    for row in export_rows(matches):
        ws.append([row[k] for k in COLUMNS])
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def to_json(matches: Sequence[IndicatorMatch]) -> str:
    """A JSON array of :func:`export_rows` (English keys)."""
    return json.dumps(export_rows(matches), ensure_ascii=False, indent=2)


def write_export(matches: Sequence[IndicatorMatch], path: str | Path, fmt: str) -> Path:
    """Write ``matches`` to ``path`` as ``csv``, ``xlsx`` or ``json``; an error names the file and what to do."""
    writers: dict[str, Callable[[Sequence[IndicatorMatch]], bytes]] = {
        "csv": to_csv, "xlsx": to_xlsx, "json": lambda ms: to_json(ms).encode("utf-8")}
    if fmt not in writers:
        raise AssistantError(f"Unknown export format {fmt!r}.", "Use csv, xlsx or json.")
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(writers[fmt](matches))
    except OSError as exc:
        raise AssistantError(f"Cannot write {p}: {exc.strerror or exc}.",
                             "Check that the folder exists and is writable, or choose another file.") from None
    return p


__all__ = ["COLUMNS", "KIND_LABELS", "export_rows", "to_csv", "to_json", "to_xlsx", "write_export"]
