"""assistant.verification: marker clean-up and per-sentence checks of an answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.numbers import extract_numbers, numbers_to_check
from assistant.text import sentence_spans
from assistant.types import SentenceCheck
from assistant.verification import (
    MARKER_RE,
    REASON_NO_CITATION,
    REASON_NUMBER,
    Verified,
    marker_numbers,
    normalize_markers,
    split_answer_sentences,
    strip_markers,
    verify_answer,
)

LISHUI = (
    "公立医院门诊智慧结算率、住院智慧结算率分别达71.64%、60.43%,市级医院排队平均时间缩短至3.15分钟。"
    "全市建立15个县域医共体。"
)
SOURCES = {
    1: LISHUI,
    2: "10类重点人群家庭医生签约覆盖率达75.09%,服务群众6.47万人。",
    3: "签约覆盖率达80%。",
    4: "医护比达到1:1.2。",
    5: "建成卒中中心5个、胸痛中心9个。",
}


def only(v: Verified) -> SentenceCheck:
    assert len(v.sentences) == 1, v.sentences
    return v.sentences[0]


# --- markers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("甲[1]", (1,)),
        ("甲[1][2]", (1, 2)),
        ("甲[1, 2]", (1, 2)),
        ("甲[1,2]", (1, 2)),
        ("甲[1，2]", (1, 2)),
        ("甲【3】", (3,)),
        ("甲［４］", (4,)),
        ("甲[2-4]", (2, 3, 4)),
        ("甲[2]乙[1][2]", (2, 1)),
        ("无标记", ()),
    ],
)
def test_marker_numbers(text: str, numbers: tuple[int, ...]) -> None:
    assert marker_numbers(text) == numbers


def test_marker_re_matches_every_form() -> None:
    for form in ("[1]", "[1, 2]", "[1,2]", "【1】", "［1］", "[ 12 ]"):
        assert MARKER_RE.fullmatch(form), form
    for not_marker in ("[a]", "(1)", "〔2019〕", "[1234]"):
        assert not MARKER_RE.fullmatch(not_marker), not_marker


def test_normalize_markers_rewrites_forms() -> None:
    text, removed = normalize_markers("甲【1】乙［２］丙[1, 3]丁[1][1]")
    assert text == "甲[1]乙[2]丙[1][3]丁[1]"
    assert removed == ()


def test_normalize_markers_drops_invalid_and_its_space() -> None:
    text, removed = normalize_markers("甲达80% [7]。乙[1][9]。丙[9]", valid={1})
    assert text == "甲达80%。乙[1]。丙"
    assert removed == (7, 9)


def test_strip_markers() -> None:
    assert strip_markers("达到80% [1][2]。乙【3】丙［4］[5, 6]") == "达到80%。乙丙"
    assert strip_markers("没有标记。") == "没有标记。"


# --- sentences --------------------------------------------------------------------------


def test_marker_after_full_stop_stays_with_its_sentence() -> None:
    assert split_answer_sentences("甲达到80%。[1]乙达到90%[2]。") == ["甲达到80%。[1]", "乙达到90%[2]。"]
    assert split_answer_sentences("甲达到80%。 [1] 乙达到90%。[2][3]") == [
        "甲达到80%。 [1]",
        "乙达到90%。[2][3]",
    ]


def test_bullets_headings_and_blank_lines() -> None:
    text = (
        "## 丽水市2019年概况\n\n"
        "**主要成效**\n"
        "一、医疗服务\n"
        "- 门诊智慧结算率达71.64%[1]\n"
        "* 建立15个县域医共体[1]。排队时间3.15分钟[1]。\n"
        "1. 签约覆盖率达80%[3]\n"
        "---\n"
    )
    assert split_answer_sentences(text) == [
        "门诊智慧结算率达71.64%[1]",
        "建立15个县域医共体[1]。",
        "排队时间3.15分钟[1]。",
        "签约覆盖率达80%[3]",
    ]


def test_markers_alone_on_a_line_join_the_previous_sentence() -> None:
    assert split_answer_sentences("签约覆盖率达80%。\n[3]") == ["签约覆盖率达80%。[3]"]


def test_english_sentences_and_decimals() -> None:
    text = "The rate was 71.64% [1]. Waiting time fell to 3.15 minutes [1]."
    assert split_answer_sentences(text) == [
        "The rate was 71.64% [1].",
        "Waiting time fell to 3.15 minutes [1].",
    ]


def test_table_rows_are_sentences_and_rules_are_skipped() -> None:
    text = "| 指标 | 数值 |\n|---|---|\n| 签约覆盖率 | 80%[3] |"
    assert split_answer_sentences(text) == ["| 指标 | 数值 |", "| 签约覆盖率 | 80%[3] |"]


# --- verify_answer ----------------------------------------------------------------------


def test_supported_number() -> None:
    s = only(verify_answer("公立医院门诊智慧结算率达71.64%[1]。", SOURCES))
    assert s == SentenceCheck("公立医院门诊智慧结算率达71.64%[1]。", (1,), True)


def test_wrong_number_is_flagged() -> None:
    s = only(verify_answer("公立医院门诊智慧结算率达71.46%[1]。", SOURCES))
    assert not s.supported
    assert s.reason == REASON_NUMBER == "number not in cited source"
    assert s.missing_numbers == ("71.46%",)


def test_only_the_missing_numbers_are_listed() -> None:
    s = only(verify_answer("门诊、住院智慧结算率分别达71.64%、60.34%,排队3.15分钟[1]。", SOURCES))
    assert s.missing_numbers == ("60.34%",)


def test_full_width_digits_in_the_answer() -> None:
    assert only(verify_answer("排队平均时间缩短至３．１５分钟【1】。", SOURCES)).supported


def test_full_width_digits_in_the_source() -> None:
    assert only(verify_answer("排队时间3.15分钟[1]。", {1: "缩短至３．１５分钟"})).supported


def test_chinese_percentage_matches_arabic() -> None:
    assert only(verify_answer("签约覆盖率达到百分之八十[3]。", SOURCES)).supported
    assert only(verify_answer("签约覆盖率达80%[1]。", {1: "签约覆盖率达到百分之八十。"})).supported


def test_wan_in_both() -> None:
    assert only(verify_answer("服务群众6.47万人[2]。", SOURCES)).supported
    assert only(verify_answer("服务群众64,700人[2]。", SOURCES)).supported


def test_chinese_numeral_count() -> None:
    assert only(verify_answer("全市建立十五个县域医共体[1]。", SOURCES)).supported
    assert not only(verify_answer("全市建立十六个县域医共体[1]。", SOURCES)).supported


def test_ratio() -> None:
    assert only(verify_answer("医护比为1:1.2[4]。", SOURCES)).supported
    assert only(verify_answer("医护比为1:1.5[4]。", SOURCES)).missing_numbers == ("1:1.5",)


def test_year_is_never_required() -> None:
    s = only(verify_answer("2019年,全市建立15个县域医共体[1]。", SOURCES))
    assert s.supported
    assert only(verify_answer("2025年4月2日发布的报告提到医护比1:1.2[4]。", SOURCES)).supported


def test_ordinals_are_never_required() -> None:
    assert only(verify_answer("（一）建成卒中中心5个[5]。", SOURCES)).supported
    assert only(verify_answer("第3批建成胸痛中心9个[5]。", SOURCES)).supported


def test_number_in_second_cited_source() -> None:
    assert only(verify_answer("签约覆盖率达75.09%[1][2]。", SOURCES)).supported
    assert only(verify_answer("签约覆盖率达75.09%[1, 2]。", SOURCES)).supported


def test_number_only_in_an_uncited_source_is_flagged() -> None:
    s = only(verify_answer("签约覆盖率达75.09%[1]。", SOURCES))
    assert not s.supported
    assert s.missing_numbers == ("75.09%",)


def test_invalid_marker_removed_and_reported() -> None:
    v = verify_answer("签约覆盖率达80%[3][7]。建立15个医共体[1]。", SOURCES)
    assert v.text == "签约覆盖率达80%[3]。建立15个医共体[1]。"
    assert v.removed_markers == (7,)
    assert v.cited == (3, 1)
    assert v.ok


def test_sentence_whose_markers_are_all_invalid_is_uncited() -> None:
    v = verify_answer("签约覆盖率达80% [7]。", SOURCES)
    assert v.text == "签约覆盖率达80%。"
    assert v.removed_markers == (7,)
    assert v.cited == ()
    s = only(v)
    assert (s.supported, s.reason, s.markers) == (False, REASON_NO_CITATION, ())


def test_uncited_factual_sentence_is_flagged() -> None:
    v = verify_answer("丽水市建立了县域医共体。签约覆盖率达80%[3]。", SOURCES)
    first, second = v.sentences
    assert (first.supported, first.reason) == (False, "no citation")
    assert second.supported
    assert v.unsupported == (first,)
    assert not v.ok


@pytest.mark.parametrize(
    "refusal",
    [
        "所提供的报告中没有找到该信息。",
        "报告中没有找到2021年的数据。",
        "This was not found in the provided reports.",
    ],
)
def test_refusal_is_not_flagged(refusal: str) -> None:
    s = only(verify_answer(refusal, SOURCES))
    assert s.supported
    assert s.reason == "refusal"


def test_custom_refusal_phrases() -> None:
    assert not only(verify_answer("无法回答。", SOURCES)).supported
    assert only(verify_answer("无法回答。", SOURCES, refusal_phrases=("无法回答",))).supported


def test_refusal_with_a_citation_still_has_its_numbers_checked() -> None:
    s = only(verify_answer("报告中没有找到2021年数据,但签约覆盖率为81%[3]。", SOURCES))
    assert s.missing_numbers == ("81%",)


@pytest.mark.parametrize("lead_in", ["具体如下:", "具体如下：", "主要包括以下方面："])
def test_connective_sentence_is_not_flagged(lead_in: str) -> None:
    v = verify_answer(f"{lead_in}\n- 签约覆盖率达80%[3]。", SOURCES)
    assert [s.supported for s in v.sentences] == [True, True]
    assert v.sentences[0].reason == "connective"


def test_long_sentence_ending_with_colon_needs_a_citation() -> None:
    s = only(verify_answer("丽水市在2019年的医疗卫生服务改革中取得了以下几方面的主要成效：", SOURCES))
    assert not s.supported


def test_short_colon_sentence_with_a_number_needs_a_citation() -> None:
    assert not only(verify_answer("共建成5个中心：", SOURCES)).supported


def test_markers_are_normalised_in_the_text_and_the_checks() -> None:
    v = verify_answer("建成卒中中心5个【5】。签约覆盖率达80%[1, 3]。", SOURCES)
    assert v.text == "建成卒中中心5个[5]。签约覆盖率达80%[1][3]。"
    assert [s.markers for s in v.sentences] == [(5,), (1, 3)]
    assert v.cited == (5, 1, 3)


def test_a_multi_part_answer() -> None:
    answer = (
        "## 丽水市智慧医疗\n"
        "丽水市2019年推进“最多跑一次”改革,具体如下:\n"
        "- 公立医院门诊智慧结算率达71.64%,住院智慧结算率达60.43%。[1]\n"
        "- 市级医院排队平均时间缩短至3.15分钟[1]。\n"
        "- 家庭医生签约覆盖率达75.90%[2]。\n"
        "- 建成胸痛中心9个[8]。\n"
    )
    v = verify_answer(answer, SOURCES)
    assert v.removed_markers == (8,)
    verdicts = [(s.supported, s.reason, s.missing_numbers) for s in v.sentences]
    assert verdicts == [
        (False, "no citation", ()),  # longer than a lead-in: it states something
        (True, "", ()),
        (True, "", ()),
        (False, "number not in cited source", ("75.90%",)),
        (False, "no citation", ()),
    ]


def test_empty_answer() -> None:
    v = verify_answer("", SOURCES)
    assert v == Verified("", (), (), ())


def test_verified_is_frozen() -> None:
    v = verify_answer("签约覆盖率达80%[3]。", SOURCES)
    with pytest.raises(AttributeError):
        v.text = "x"  # type: ignore[misc]


# --- property-style checks over the seed reports (hypothesis is not installed) -----------

SEEDS = sorted((Path(__file__).resolve().parents[1] / "seeds").glob("*.txt"))


def _seed_sentences() -> list[str]:
    out = []
    for path in SEEDS:
        text = path.read_text(encoding="utf-8")
        out.extend(text[a:b] for a, b in sentence_spans(text))
    return out


@pytest.mark.skipif(not SEEDS, reason="seed reports not present")
def test_every_seed_sentence_supports_itself() -> None:
    """Quoting a report sentence and citing it never fails verification."""
    failures = []
    for sentence in _seed_sentences():
        v = verify_answer(sentence + "[1]", {1: sentence})
        if not v.ok:
            failures.append((sentence, v.unsupported))
    assert failures == []


@pytest.mark.skipif(not SEEDS, reason="seed reports not present")
def test_changing_a_digit_is_caught() -> None:
    """Bump the last digit of each stated number: flagged unless the new value is stated too."""
    checked = caught = 0
    for sentence in _seed_sentences():
        for m in numbers_to_check(sentence):
            digits = [i for i in range(m.start, m.end) if sentence[i] in "0123456789"]
            if not digits:
                continue
            i = digits[-1]
            mutated = sentence[:i] + str((int(sentence[i]) + 1) % 10) + sentence[i + 1 :]
            new = next((x for x in numbers_to_check(mutated) if x.start == m.start), None)
            if new is None or any(new.value == other.value for other in extract_numbers(sentence)):
                continue  # the new value is stated elsewhere in the sentence
            checked += 1
            v = verify_answer(mutated + "[1]", {1: sentence})
            caught += new.raw.strip() in v.sentences[-1].missing_numbers
    assert checked > 300
    assert caught == checked


# --- percentage points, ranks, years and directions (each wrong variant is caught) -----------------

LITERACY = "居民健康素养水平达28.82%,同比提高1.86个百分点。"
RANKS = "群众满意度排名全省第3,高质量发展指数排名全省第5。"
QUEUE = "市级医院排队平均时间缩短至3.15分钟。"


@pytest.mark.parametrize(("answer", "source", "reason", "flagged"), [
    # 个百分点 is not %.
    ("居民健康素养水平同比提高1.86个百分点[1]。", LITERACY, None, ()),
    ("居民健康素养水平同比提高1.86%[1]。", LITERACY, "number not in cited source", ("1.86%",)),
    ("签约覆盖率提高5个百分点[1]。", "签约覆盖率提高5%。", "number not in cited source", ("5个百分点",)),
    # Ranks: 第N after 排名/居/位列, or 第N名.
    ("群众满意度排名全省第3[1]。", RANKS, None, ()),
    ("群众满意度排名全省第三[1]。", RANKS, None, ()),
    ("群众满意度排名全省第1[1]。", RANKS, "rank not in cited source", ("排名全省第1",)),
    ("群众满意度居全省第二[1]。", RANKS, "rank not in cited source", ("居全省第二",)),
    ("考核位列第4名[1]。", RANKS, "rank not in cited source", ("位列第4",)),
    # Directions: the same figure as a fall instead of a rise (or the reverse).
    ("居民健康素养水平同比下降1.86个百分点[1]。", LITERACY, "direction differs from cited source",
     ("1.86个百分点",)),
    ("市级医院排队平均时间延长至3.15分钟[1]。", QUEUE, "direction differs from cited source", ("3.15分钟",)),
    ("市级医院排队平均时间为3.15分钟[1]。", QUEUE, None, ()),  # no direction stated: nothing to contradict
])
def test_percentage_points_ranks_and_directions(answer: str, source: str, reason: str | None,
                                                flagged: tuple[str, ...]) -> None:
    s = only(verify_answer(answer, {1: source}))
    assert s.supported == (reason is None), s
    if reason is not None:
        assert (s.reason, s.missing_numbers) == (reason, flagged)


def test_years_must_be_in_the_source_or_its_section() -> None:
    years = {1: {2019}}  # the cited chunk sits under 一、2019年卫生健康工作总结
    assert only(verify_answer("2019年居民健康素养水平达28.82%[1]。", {1: LITERACY}, years=years)).supported
    s = only(verify_answer("2020年居民健康素养水平达28.82%[1]。", {1: LITERACY}, years=years))
    assert (s.supported, s.reason, s.missing_numbers) == (False, "year not in cited source", ("2020年",))
    # A year the source text itself states is fine whatever its section says.
    assert only(verify_answer("2018年启动[1]。", {1: "2018年启动试点。"}, years={1: {2019}})).supported
    # Without section years (years=None) years are not checked: older callers keep working.
    assert only(verify_answer("2020年居民健康素养水平达28.82%[1]。", {1: LITERACY})).supported
    # A year inside 《…》 names the report cited, it is no claim; outside it still counts.
    titled = "28.82%[1]《丽水市2020年工作要点》"
    assert only(verify_answer(f"2019年居民健康素养水平达{titled}。", {1: LITERACY}, years=years)).supported
    assert not only(verify_answer(f"2020年居民健康素养水平达{titled}。", {1: LITERACY}, years=years)).supported


@pytest.mark.skipif(not SEEDS, reason="seed reports not present")
def test_every_seed_sentence_supports_itself_with_all_checks_on() -> None:
    """Quoting a report sentence passes the rank, year and direction checks too."""
    failures = [s for s in _seed_sentences()
                if not verify_answer(s + "[1]", {1: s}, years={1: ()}).ok]
    assert failures == []


def test_marker_gate_holds_a_marker_until_it_is_known_good() -> None:
    from assistant.verification import MarkerGate

    g = MarkerGate({1, 2})
    shown = [g.feed(d) for d in ("达3.15分钟", "[", "9", "]", "。乙[", "1", "]", "[", "2", "]。")] + [g.flush()]
    assert "".join(shown) == "达3.15分钟。乙[1][2]。"
    assert all("[9" not in s and not s.endswith("[") for s in shown)
    assert list(g.removed) == [9]


def test_unsupported_sentences_are_marked_in_place() -> None:
    from assistant.verification import UNSUPPORTED_MARK, mark_unsupported

    v = verify_answer("- 甲达80%[1]。\n- 乙达90%[1]。\n- 丙[1]。", {1: "甲达80%。丙。"})
    assert mark_unsupported(v.text, v.sentences) == f"- 甲达80%[1]。\n- {UNSUPPORTED_MARK}乙达90%[1]。\n- 丙[1]。"
