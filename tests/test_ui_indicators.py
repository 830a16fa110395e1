"""assistant.ui.indicators_view: the 指标 page's rows, chart, viewer and the chat's figure table."""

from __future__ import annotations

from assistant.indicator_match import IndicatorMatch, MetricMatcher
from assistant.indicators import IndicatorRecord, extract_document
from assistant.types import Chunk, FigureRow
from assistant.ui import indicators_view as v


def chunk(doc: str, text: str, city: str, year: int, role: str = "review", start: int = 40) -> Chunk:
    return Chunk(chunk_id=f"{doc}-c", doc_id=doc, text=text, start=start, end=start + len(text),
                 section_path=("一、工作回顾", "（一）基层"), heading="（一）基层", title=f"{city}{year}年报告",
                 city=city, doc_years=(year,), year=year, role=role, departments=(), token_count=9,  # type: ignore[arg-type]
                 embed_text=text)


HZ = chunk("hz", "基层服务扎实。全市常住人口签约率达56.3%,重点人群签约率达88.1%。", "湖州市", 2024)
SX = chunk("sx", "重点人群签约率达85.6%,新建村卫生室12所。", "绍兴市", 2024)
HZ25 = chunk("hz25", "重点人群签约率达到90%以上。", "湖州市", 2025, role="plan")
RECORDS: list[IndicatorRecord] = extract_document([HZ]) + extract_document([SX]) + extract_document([HZ25])


def test_options_and_rows_with_links_to_the_viewer() -> None:
    everything = [IndicatorMatch(r) for r in RECORDS]
    assert v.options(everything) == v.Options(("湖州市", "绍兴市"), (2024, 2025))
    found = MetricMatcher().match("签约率", RECORDS)
    rows = v.table_rows(found)
    assert {(r["地区"], r["年份"], r["类型"], r["数值"]) for r in rows} == {
        ("湖州市", 2024, "实际", "56.3%"), ("湖州市", 2024, "实际", "88.1%"), ("绍兴市", 2024, "实际", "85.6%"),
        ("湖州市", 2025, "目标", "90%以上")}
    assert all(r["原文"] == v.source_link(m.record.id) for r, m in zip(rows, found, strict=True))
    assert any(r["匹配"] == "签约率 → 重点人群签约率（包含）" for r in rows)
    assert len(v.table_rows(found, limit=2)) == 2


def test_chart_of_one_measure_across_cities_and_years() -> None:
    found = MetricMatcher().match("重点人群签约率", RECORDS)
    rows, x, unit = v.chart_data(found)
    assert (x, unit) == ("地区·年份", "%")
    assert [(r["地区·年份"], r["值"], r["类型"]) for r in rows] == [
        ("湖州市2024", 88.1, "实际"), ("绍兴市2024", 85.6, "实际"), ("湖州市2025", 90.0, "目标")]
    assert v.chart_data(found[:1]) == ([], "", "")  # one bar is no chart
    mixed = [IndicatorMatch(r) for r in RECORDS]  # % and 所: the most common unit wins
    assert {r["地区·年份"] for r in v.chart_data(mixed)[0]} == {"湖州市2024", "绍兴市2024", "湖州市2025"}


def test_viewer_highlights_the_records_sentence_in_its_section() -> None:
    rec = next(r for r in RECORDS if r.indicator.value == 88.1)
    html = v.viewer_html(rec, HZ)
    assert '<mark class="cite-quote">' in html
    marked = html.split('<mark class="cite-quote">', 1)[1].split("</mark>", 1)[0]
    assert marked == rec.indicator.sentence and "88.1%" in marked
    assert "基层服务扎实" in html  # the section around it
    assert "找不到该来源的章节文本" in v.viewer_html(rec, None)  # the document was removed
    assert v.viewer_title(rec) == "湖州市 2024 《湖州市2024年报告》 › 一、工作回顾 › （一）基层"


def test_figure_rows_for_a_comparison_in_the_chat() -> None:
    rows = v.figure_rows([FigureRow(1, "湖州市", 2024, "常住人口签约率", 56.3, "%", "=", "achieved", "56.3%",
                                    "签约率", "包含"),
                          FigureRow(2, "湖州市", 2025, "常住人口签约率", 58.0, "%", "≥", "target", "58%以上")])
    assert rows[0] == {"引用": "[1]", "地区": "湖州市", "年份": 2024, "类型": "实际", "指标": "常住人口签约率",
                       "数值": "56.3%", "匹配": "签约率 → 常住人口签约率（包含）"}
    assert rows[1]["类型"] == "目标" and rows[1]["匹配"] == ""
    assert v.file_stem("签约率", "湖州市", 2024) == "指标-签约率-湖州市-2024"
    assert v.file_stem(None, None, None) == "指标"
