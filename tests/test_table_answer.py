"""Answers from the indicator table (assistant.table_answer, assistant.table_question), through Assistant.ask.

Three small reports in our own wording (湖州 2024 review + 2025 plan, 绍兴 2024 review) are indexed with
the model-free HashEmbedder; the conflict case restates a seed figure (东莞 2024 常住人口签约率) in a
second report of our own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import SEEDS, make_settings

from assistant.facade import Assistant
from assistant.query import QueryInfo
from assistant.table_question import asked_metric, parse_table_question
from assistant.testing import FakeLLM, HashEmbedder
from assistant.types import REFUSAL_PHRASE, Answer, Filters, WarningKind

HUZHOU = """湖州市卫生健康委员会2024年工作总结和2025年工作要点

一、2024年工作总结
（一）基层卫生服务。全市常住人口家庭医生签约率达56.3%,重点人群签约率达88.1%。
（二）健康促进。居民健康素养水平达到37.5%,同比提高2.4个百分点。全年新增托位3200个。
二、2025年工作要点
（一）基层卫生服务。全市常住人口家庭医生签约率达到58%以上。
（二）健康促进。居民健康素养水平达到40%。新增托位2500个。
"""
SHAOXING = """绍兴市卫生健康局2024年工作总结

一、主要成效
（一）健康促进。居民健康素养水平达到41.2%,全年新增托位4100个。
（二）基层卫生服务。重点人群签约率达85.6%。
（三）妇幼健康。婴儿死亡率降至2.1‰,孕产妇死亡率降至5.2/10万。
"""
# Restates a figure of seed 003 (东莞 2024: 常住人口签约率 58.62%) differently: a revised count.
DONGGUAN_BRIEF = """东莞市卫生健康局2024年统计简报

一、基本情况
2024年,东莞市常住人口家庭医生签约率为59.1%。
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    root = tmp_path_factory.mktemp("table")
    src = write(root / "src", "huzhou.txt", HUZHOU)
    write(src, "shaoxing.txt", SHAOXING)
    a = Assistant(make_settings(root / "data"), embedder=HashEmbedder())
    assert a.ingest([src]).ok
    return a


@pytest.fixture(scope="module")
def conflicted(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    root = tmp_path_factory.mktemp("conflict")
    src = root / "src"
    src.mkdir()
    shutil.copy(SEEDS / "003_7a622e524e24148d.txt", src)
    write(src, "dongguan_brief.txt", DONGGUAN_BRIEF)
    a = Assistant(make_settings(root / "data"), embedder=HashEmbedder())
    assert a.ingest([src]).ok
    return a


def assert_cited_by_offsets(a: Assistant, ans: Answer) -> None:
    """Every citation quotes the document text at its offsets, and verification flags nothing."""
    for c in ans.citations:
        chunk = a.retriever.corpus.by_id[c.chunk_id]
        assert chunk.text[c.start - chunk.start:c.end - chunk.start] == c.quote
    assert not ans.unsupported, ans.sentences


# --- reading questions ----------------------------------------------------------------------------


@pytest.mark.parametrize(("question", "metric"), [
    ("东莞和余姚2025年的家庭医生签约率目标各是多少?", "家庭医生签约率"),
    ("哪个城市的居民健康素养水平最高?", "居民健康素养水平"),
    ("丽水2019年到2020年的重点人群签约率变化了多少?", "重点人群签约率"),
    ("长沙2018年5岁以下儿童死亡率要控制在多少以下?", "5岁以下儿童死亡率"),
    ("2025年东莞、余姚分别计划新增多少个托位?", "新增托位"),
])
def test_asked_metric(question: str, metric: str) -> None:
    assert asked_metric(question, ["东莞市", "余姚市", "丽水市", "长沙市"]) == metric


def test_parse_intents_groups_and_kinds() -> None:
    groups = (Filters(cities=("湖州市",), years=(2024,)), Filters(cities=("湖州市",), years=(2025,)))
    q = "湖州2024年常住人口签约率实际是多少,2025年目标是多少?"
    tq = parse_table_question(q, QueryInfo(q, cities=("湖州市",), years=(2024, 2025), groups=groups))
    assert tq is not None and tq.intent == "compare" and tq.kinds == ("achieved", "target")
    assert tq.metrics == (("常住人口签约率",), ("常住人口签约率",))
    q = "湖州居民健康素养水平从2024年到2025年的变化趋势?"
    tq = parse_table_question(q, QueryInfo(q, cities=("湖州市",), years=(2024, 2025), groups=groups))
    assert tq is not None and tq.intent == "trend"
    q = "哪个城市的居民健康素养水平最高?"
    tq = parse_table_question(q, QueryInfo(q))
    assert tq is not None and (tq.intent, tq.highest, tq.groups) == ("rank", True, ())
    q = "湖州和绍兴2024年谁的新增托位更少?"
    pair = (Filters(cities=("湖州市",), years=(2024,)), Filters(cities=("绍兴市",), years=(2024,)))
    tq = parse_table_question(q, QueryInfo(q, cities=("湖州市", "绍兴市"), groups=pair))
    assert tq is not None and (tq.intent, tq.highest) == ("compare", False)


# --- answers ---------------------------------------------------------------------------------------


def test_two_cities_each_figure_cited_to_its_sentence(assistant: Assistant) -> None:
    ans = assistant.ask("湖州和绍兴2024年的居民健康素养水平各是多少?")
    assert not ans.refused
    assert "湖州市2024年 居民健康素养水平：37.5%[1]" in ans.text
    assert "绍兴市2024年 居民健康素养水平：41.2%[2]" in ans.text
    assert [c.quote for c in ans.citations] == ["居民健康素养水平达到37.5%", "居民健康素养水平达到41.2%"]
    assert [(f.city, f.value, f.marker) for f in ans.figures] == [("湖州市", 37.5, 1), ("绍兴市", 41.2, 2)]
    assert_cited_by_offsets(assistant, ans)
    assert not ans.warnings_of(WarningKind.COMPUTED)  # nothing derived: nothing marked


def test_which_is_higher_is_computed_and_shows_its_arithmetic(assistant: Assistant) -> None:
    ans = assistant.ask("湖州和绍兴2024年的新增托位哪个更多?")
    assert "绍兴市2024年更多，多900个[1][2]（计算：4100个 − 3200个 = 900个）" in ans.text
    (note,) = ans.warnings_of(WarningKind.COMPUTED)
    assert "4100个 − 3200个 = 900个" in note.text
    assert [s.reason for s in ans.sentences][-1] == "computed"  # marked, not hidden, not flagged
    assert_cited_by_offsets(assistant, ans)


def test_change_between_years_in_percentage_points(assistant: Assistant) -> None:
    ans = assistant.ask("湖州2024年到2025年居民健康素养水平变化了多少?")
    assert "37.5%" in ans.text and "40%" in ans.text
    assert "提高2.5个百分点" in ans.text and "（计算：40% − 37.5% = 2.5个百分点）" in ans.text
    assert ans.warnings_of(WarningKind.COMPUTED) and not ans.unsupported


def test_ranking_across_the_corpus(assistant: Assistant) -> None:
    ans = assistant.ask("哪个城市的居民健康素养水平最高?")
    lines = ans.text.splitlines()
    assert lines[0].startswith("绍兴市2024年 居民健康素养水平：41.2%") and lines[1].startswith("湖州市2024年")
    assert "40%" not in ans.text  # 湖州's 2025 target is not ranked with results
    assert lines[-1].startswith("最高的是绍兴市2024年（41.2%）[1][2]（计算：41.2% > 37.5%）")
    assert ans.warnings_of(WarningKind.COMPUTED) and not ans.unsupported


def test_near_miss_metric_is_refused_naming_what_the_report_states(assistant: Assistant) -> None:
    ans = assistant.ask("绍兴2024年常住人口签约率是多少?")
    assert ans.refused and ans.refusal is not None and ans.refusal.reason == "near_miss"
    assert ans.text.startswith(REFUSAL_PHRASE) and "重点人群签约率" in ans.text and "85.6" not in ans.text
    assert ans.refusal.closest  # points to the sections that came closest, as every refusal does


def test_a_measure_asked_in_everyday_words_is_left_to_the_sentence_answerer(assistant: Assistant) -> None:
    # 一岁以内宝宝 is 婴儿 in everyday words: the table may not refuse naming 婴儿死亡率 as what the
    # report states "instead"; the sentence answerer judges the sentence that states it.
    ans = assistant.ask("绍兴2024年一岁以内宝宝的死亡率是多少?")
    assert ans.refusal is None or ans.refusal.reason != "near_miss"
    # A group the reports name and the record lacks is another measure, however it is asked.
    ans = assistant.ask("绍兴2024年新生儿死亡率是多少?")
    assert ans.refusal is not None and ans.refusal.reason == "near_miss" and "婴儿死亡率" in ans.text


def test_filters_the_user_set_scope_the_table_too(assistant: Assistant) -> None:
    ans = assistant.ask("常住人口签约率是多少?", city="绍兴市", year=2024)  # the sidebar names the place
    assert ans.refusal is not None and ans.refusal.reason == "near_miss" and "重点人群签约率" in ans.text
    ans = assistant.ask("常住人口签约率是多少?", city="湖州市", year=2024)
    assert not ans.refused and "56.3%" in ans.text


def test_one_city_lacking_the_measure_is_said_so_in_a_comparison(assistant: Assistant) -> None:
    ans = assistant.ask("湖州和绍兴2024年的常住人口签约率分别是多少?")
    assert "湖州市2024年 常住人口家庭医生签约率：56.3%[1]" in ans.text  # the same measure as 常住人口签约率
    assert ans.figures[0].how == "同义"
    assert f"{REFUSAL_PHRASE}绍兴市2024年“常住人口签约率”的数字（报告中只有：重点人群签约率）" in ans.text
    assert "85.6" not in ans.text and not ans.unsupported


def test_a_single_figure_is_left_to_the_sentence_answerer(assistant: Assistant) -> None:
    ans = assistant.ask("湖州2024年居民健康素养水平是多少?")
    assert not ans.figures and "37.5%" in ans.text  # quoted with its context by the extractive answerer


def test_conflicting_reports_are_shown_side_by_side(conflicted: Assistant) -> None:
    groups = conflicted.indicator_table.conflicts()
    assert [sorted(r.indicator.value for r in g) for g in groups] == [[58.62, 59.1]]
    ans = conflicted.ask("东莞2024年常住人口签约率是多少?")
    assert "58.62%" in ans.text and "59.1%" in ans.text and "不一致" in ans.text
    assert {c.doc_id for c in ans.citations} == {r.indicator.doc_id for r in groups[0]}
    (note,) = ans.warnings_of(WarningKind.CONFLICT)
    assert "58.62%" in note.text and "59.1%" in note.text
    assert_cited_by_offsets(conflicted, ans)


def test_llm_mode_gets_the_records_as_a_table_and_may_state_computed_numbers(assistant: Assistant) -> None:
    seen: list[str] = []

    def reply(messages: object) -> str:
        user = messages[-1].content  # type: ignore[index]
        seen.append(user)
        n1 = user.split("| 湖州市 | 2024")[0].rsplit("[", 1)[1].split("]")[0]
        n2 = user.split("| 绍兴市 | 2024")[0].rsplit("[", 1)[1].split("]")[0]
        return (f"湖州市2024年新增托位3200个[{n1}],绍兴市4100个[{n2}],"
                f"绍兴多900个（计算：4100个 − 3200个 = 900个）[{n1}][{n2}]。")

    llm_assistant = Assistant(assistant.settings, embedder=assistant.embedder, store=assistant.store,
                              indicators=assistant.indicator_table.store, llm=FakeLLM(reply))
    ans = llm_assistant.ask("湖州和绍兴2024年的新增托位哪个更多?")
    assert "从报告中抽取的指标表" in seen[0] and "（计算）绍兴市2024年更多" in seen[0]
    assert ans.mode == "llm" and not ans.unsupported and [s.reason for s in ans.sentences] == ["computed"]
    assert ans.warnings_of(WarningKind.COMPUTED) and {f.city for f in ans.figures} == {"湖州市", "绍兴市"}
    assert all(f.marker > 0 for f in ans.figures)


def test_a_number_nobody_computed_is_still_flagged_in_llm_mode(assistant: Assistant) -> None:
    llm_assistant = Assistant(assistant.settings, embedder=assistant.embedder, store=assistant.store,
                              indicators=assistant.indicator_table.store,
                              llm=FakeLLM(lambda _m: "湖州比绍兴少950个[1]。"))
    ans = llm_assistant.ask("湖州和绍兴2024年的新增托位哪个更多?")
    assert [s.reason for s in ans.unsupported] == ["number not in cited source"]
