"""A list question that asks for the items of a kind of report part (哪些不足, 有哪些打算) is
answered by the part whose heading names that kind, in any of its words, item by item. A small
invented report (our own wording and figures)."""

from __future__ import annotations

import pytest
from conftest import make_settings

from assistant.facade import Assistant
from assistant.query import kind_terms
from assistant.testing import HashEmbedder

REPORT = """青岭县卫生健康局2024年工作总结和2025年工作思路
一、2024年主要成效
（一）基层服务能力提升。全县新建村卫生室12个，家庭医生签约率达到45.2%。基层服务从三个方面推进：一是补齐村卫生室短缺；二是轮训乡村医生；三是推广远程会诊。
（二）公共卫生体系完善。全年开展流行病学调查860次，适龄儿童免疫规划疫苗接种率保持在95%以上。
二、存在的问题
一是基层人才队伍短缺，乡镇卫生院执业医师数量偏少。二是信息化建设相对滞后，各业务系统数据尚未互通。三是医养结合服务供给不足，护理型床位缺口较大。
三、2025年工作思路
（一）推进紧密型县域医共体建设。完善医共体内人员、财务统一管理。
（二）加强慢性病综合防控。高血压、糖尿病患者规范管理率分别达到65%、63%。
（三）提升中医药服务水平。每个乡镇卫生院建成中医馆。
"""


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    root = tmp_path_factory.mktemp("section_items")
    (root / "reports").mkdir()
    (root / "reports" / "qingling_2024.txt").write_text(REPORT, encoding="utf-8")
    a = Assistant(make_settings(root / "data"), embedder=HashEmbedder())
    assert a.ingest([root / "reports"]).ok
    return a


ITEMS = ("基层人才队伍短缺", "信息化建设相对滞后", "医养结合服务供给不足")


@pytest.mark.parametrize("question", [
    "青岭县2024年卫生健康工作有哪些短板?",
    "青岭县卫健局认为2024年主要有哪些困难?",
    "青岭县2024年工作中存在哪些不足?",
])
def test_a_problems_part_asked_for_in_other_words_is_quoted_item_by_item(assistant: Assistant,
                                                                          question: str) -> None:
    ans = assistant.ask(question)
    assert not ans.refused, ans.text
    assert all(item in ans.text for item in ITEMS), ans.text
    assert "45.2%" not in ans.text  # nothing from the achievements
    assert len(ans.citations) == 3 and len({c.quote for c in ans.citations}) == 3


def test_a_plans_part_is_answered_with_its_subsections(assistant: Assistant) -> None:
    ans = assistant.ask("青岭县2025年有哪些工作打算?")
    assert not ans.refused, ans.text
    for item in ("推进紧密型县域医共体建设", "加强慢性病综合防控", "提升中医药服务水平"):
        assert item in ans.text, ans.text
    assert "基层人才队伍短缺" not in ans.text


def test_a_list_question_naming_no_kind_of_part_is_answered_as_before(assistant: Assistant) -> None:
    ans = assistant.ask("青岭县2025年慢性病患者规范管理率目标分别是多少?")
    assert "65%" in ans.text and "基层人才队伍短缺" not in ans.text


def test_a_word_inside_a_longer_one_names_no_kind() -> None:
    assert kind_terms("计划生育工作有哪些?") == ()
    assert "问题" in kind_terms("有哪些不足?")


def test_a_list_opened_by_the_sentence_found_beats_naming_its_section(assistant: Assistant) -> None:
    # 哪几个方面 also reads as a question about the outline; the sentence's 一是…二是… answers it.
    ans = assistant.ask("青岭县2024年基层服务是从哪几个方面推进的?")
    for item in ("补齐村卫生室短缺", "轮训乡村医生", "推广远程会诊"):
        assert item in ans.text, ans.text


def test_a_kind_of_part_asked_for_by_another_name_is_that_part(assistant: Assistant) -> None:
    ans = assistant.ask("青岭县2024年这份总结里，对下一年的打算放在哪一部分?")
    assert "三、2025年工作思路" in ans.text, ans.text
    assert ans.citations[0].quote.strip() == "三、2025年工作思路"
