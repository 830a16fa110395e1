"""The offline extractive answerer on real seed questions: right figure, right section,
refusals, follow-ups, and the answer object's contract."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from assistant.errors import AssistantError
from assistant.types import Answer

pytestmark = pytest.mark.slow


def _cited_text(ans: Answer) -> str:
    return " ".join(c.quote for c in ans.citations)


def test_lishui_queue_time_with_citation_into_the_right_section(seeded) -> None:
    ans = seeded.ask("丽水市2019年市级医院排队平均时间缩短到了多少?")
    assert not ans.refused and ans.mode == "extractive"
    assert "3.15分钟" in ans.text
    c = ans.citations[0]
    assert c.city == "丽水市" and c.year == 2019
    assert c.section_path[0] == "一、2019年卫生健康工作总结"
    assert c.section_path[1].startswith("(一)“最多跑一次”改革成果巩固扩大")
    assert "3.15分钟" in c.quote
    assert "[1]" in ans.text
    assert not ans.unsupported


def test_citation_offsets_point_at_the_quote(seeded) -> None:
    ans = seeded.ask("丽水2019年全市组建了几个县域医共体?")
    chunks = {ch.chunk_id: ch for ch in seeded.retriever.corpus.chunks}
    assert ans.citations and "15个" in ans.text
    for c in ans.citations:
        ch = chunks[c.chunk_id]
        assert ch.text[c.start - ch.start : c.end - ch.start] == c.quote


def test_dongguan_2025_signing_target_not_yuyao_or_2024(seeded) -> None:
    ans = seeded.ask("东莞2025年家庭医生签约率的目标是多少?")
    assert not ans.refused
    assert "60%" in ans.text
    assert "58.62%" not in ans.text  # Dongguan's 2024 actual
    assert all(c.city == "东莞市" and c.year == 2025 for c in ans.citations)


def test_comparison_answers_each_city(seeded) -> None:
    ans = seeded.ask("东莞2024年和丽水2019年的家庭医生签约情况分别怎样?")
    cities = {c.city for c in ans.citations}
    assert {"东莞市", "丽水市"} <= cities


@pytest.mark.parametrize("question", [
    "杭州市2019年家庭医生签约率是多少?",          # a city not in the corpus
    "丽水市2023年卫生健康工作要点有哪些?",          # a year not covered for that city
    "十堰2021年居民健康素养水平的目标是多少?",       # a metric never stated
    "长沙2018年家庭医生签约率的目标是多少?",         # mentioned, but no figure
])
def test_refuses_what_the_reports_do_not_say(seeded, question: str) -> None:
    ans = seeded.ask(question)
    assert ans.refused, ans.text
    assert "所提供的报告中没有找到" in ans.text
    assert not ans.citations


def test_refusal_names_the_closest_sections(seeded) -> None:
    ans = seeded.ask("十堰2021年居民健康素养水平的目标是多少?")
    assert "最接近的章节" in ans.text and "十堰市" in ans.text


def test_department_question_quotes_the_responsibility_note(seeded) -> None:
    ans = seeded.ask("余姚2025年全力打造高水平县级医院由哪个科室负责?")
    assert "医政科教科" in ans.text
    assert any("责任科室" in c.quote for c in ans.citations)


def test_outline_question_quotes_headings(seeded) -> None:
    ans = seeded.ask("十堰2021年卫生健康工作要点中,推进健康扶贫与乡村振兴有效衔接属于哪个部分?")
    assert "衔接实施乡村振兴战略" in ans.text
    assert any(c.quote.startswith("七、衔接实施乡村振兴战略") for c in ans.citations)


def test_follow_up_carries_the_topic_over(seeded) -> None:
    first = seeded.ask("东莞2024年全市新增了多少个托位?")
    assert "2.02万" in first.text
    follow = seeded.ask("那2025年呢?", history=[("user", "东莞2024年全市新增了多少个托位?"),
                                               ("assistant", first.text)])
    assert follow.standalone_question and "2025" in follow.standalone_question
    assert "6000个" in follow.text


def test_explicit_filters_are_applied(seeded) -> None:
    ans = seeded.ask("家庭医生签约率是多少?", city="东莞市", year=2024)
    assert ans.filters.cities == ("东莞市",) and not ans.filters.inferred
    assert all(sc.chunk.city == "东莞市" and sc.chunk.year == 2024 for sc in ans.contexts)
    assert "58.62%" in ans.text


def test_answer_is_immutable_and_carries_timings(seeded) -> None:
    ans = seeded.ask("余姚2025年每千人口托位数要达到多少?")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ans.text = "x"  # type: ignore[misc]
    stages = {s for s, _ in ans.timings}
    assert {"analyze", "embed", "retrieve", "generate", "verify"} <= stages
    assert ans.contexts and all(sc.score > 0 for sc in ans.contexts)


def test_stream_yields_text_then_answer(seeded) -> None:
    parts = list(seeded.stream("东莞2024年常住人口出生多少人?"))
    assert isinstance(parts[-1], Answer)
    assert "".join(p for p in parts if isinstance(p, str)) == parts[-1].text
    assert "6.47万人" in parts[-1].text


def test_bad_questions_give_clear_errors(seeded) -> None:
    with pytest.raises(AssistantError, match="empty"):
        seeded.ask("   ")
    with pytest.raises(AssistantError, match="2,000"):
        seeded.ask("问" * 2001)
    with pytest.raises(AssistantError, match="No single document"):
        seeded.ask("托位?", doc="no-such-report")


def test_concurrent_questions_are_safe(seeded) -> None:
    questions = ["丽水2019年全市组建了几个县域医共体?", "东莞2024年常住人口出生多少人?",
                 "余姚2025年每千人口托位数要达到多少?", "东莞2025年家庭医生签约率的目标是多少?"] * 3
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(i: int, q: str) -> None:
        try:
            results[i] = seeded.ask(q).text
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, q)) for i, q in enumerate(questions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    serial = {q: seeded.ask(q).text for q in set(questions)}
    assert all(results[i] == serial[q] for i, q in enumerate(questions))


def test_the_readme_follow_up_example_works_as_written(seeded) -> None:
    """README's Python API: 那东莞2024年呢? after 丽水2019年居民健康素养水平? answers for Dongguan offline."""
    first = seeded.ask("丽水2019年居民健康素养水平?")
    assert not first.refused and "28.82%" in first.text
    ans = seeded.ask("那东莞2024年呢?", history=[("user", "丽水2019年居民健康素养水平?"), ("assistant", first.text)])
    assert ans.standalone_question is not None and "东莞" in ans.standalone_question
    assert not ans.refused and "40.75%" in ans.text
    assert ans.citations and all(c.city == "东莞市" for c in ans.citations)
