"""assistant.numbers: reading the numbers an answer states and finding them in a source."""

from __future__ import annotations

import pytest

from assistant.numbers import (
    NumberMention,
    cn_to_number,
    extract_numbers,
    fold,
    number_supported,
    numbers_to_check,
)


def vu(text: str) -> list[tuple[float, str]]:
    return [(m.value, m.unit) for m in numbers_to_check(text)]


def one(text: str) -> NumberMention:
    found = numbers_to_check(text)
    assert len(found) == 1, found
    return found[0]


# --- extraction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("门诊智慧结算率达71.64%", [(71.64, "%")]),
        ("排队平均时间缩短至3.15分钟", [(3.15, "分钟")]),
        ("排队平均时间缩短至３．１５分钟", [(3.15, "分钟")]),
        ("签约率达８０％", [(80.0, "%")]),
        ("全市共1,234人", [(1234.0, "人")]),
        ("全市共1，234人", [(1234.0, "人")]),
        ("达到百分之八十", [(80.0, "%")]),
        ("达到百分之3.5", [(3.5, "%")]),
        ("百分之十五点五", [(15.5, "%")]),
        ("百分之百覆盖", [(100.0, "%")]),
        ("死亡率为3‰", [(3.0, "‰")]),
        ("千分之五", [(5.0, "‰")]),
        ("提高1.86个百分点", [(1.86, "百分点")]),
        ("服务6.47万人", [(64700.0, "人")]),
        ("服务群众10万余人次", [(100000.0, "人次")]),
        ("减少费用近207万元", [(2070000.0, "元")]),
        ("投入3.5亿元", [(3.5e8, "元")]),
        ("覆盖10万", [(100000.0, "万")]),
        ("300多家", [(300.0, "家")]),
        ("建成十五个中心", [(15.0, "个")]),
        ("建成三个中心", [(3.0, "个")]),
        ("二十六个事项", [(26.0, "个")]),
        ("两家医院", [(2.0, "家")]),
        ("两万人", [(20000.0, "人")]),
        ("2名指导老师", [(2.0, "人")]),
        ("行驶20千米", [(20.0, "公里")]),
        ("3 days", [(3.0, "天")]),
        ("80 percent of clinics", [(80.0, "%")]),
        ("2 million people", [(2e6, "人")]),
    ],
)
def test_values_and_units(text: str, expected: list[tuple[float, str]]) -> None:
    assert vu(text) == expected


def test_raw_keeps_what_was_written() -> None:
    assert [m.raw for m in numbers_to_check("缩短至３．１５分钟,达6.47万人")] == ["３．１５分钟", "6.47万人"]


def test_range_gives_two_numbers() -> None:
    assert vu("比例为80%-90%") == [(80.0, "%"), (90.0, "%")]


@pytest.mark.parametrize("text", ["比例为80-90%", "比例为80~90%", "比例为80至90%", "比例为80—90%"])
def test_bare_range_start_takes_the_unit(text: str) -> None:
    assert vu(text) == [(80.0, "%"), (90.0, "%")]


def test_list_shares_the_last_unit() -> None:
    assert vu("分别有182、102、42人通过") == [(182.0, "人"), (102.0, "人"), (42.0, "人")]


def test_range_with_multiplier() -> None:
    assert vu("服务3-5万人") == [(30000.0, "人"), (50000.0, "人")]


def test_ratio() -> None:
    m = one("医护比达到1:1.2")
    assert (m.kind, m.unit, m.raw) == ("ratio", ":", "1:1.2")
    assert m.value == pytest.approx(1 / 1.2)
    assert one("医护比１：１．２").value == m.value


@pytest.mark.parametrize(
    "text",
    [
        "2019年",
        "2019年度重点任务",
        "2025年4月2日",
        "二〇一九年",
        "(2016—2020年)",
        "2019-2021周期",
        "成文日期 2020-07-02",
        "in 2019",
        "on April 2, 2025",
        "12月底前",
    ],
)
def test_years_and_dates_are_not_checked(text: str) -> None:
    assert numbers_to_check(text) == []
    assert all(m.is_year for m in extract_numbers(text))
    assert extract_numbers(text), "kept, flagged"


def test_year_flag() -> None:
    kinds = [(m.raw, m.kind) for m in extract_numbers("2025年4月2日,签约率达80%")]
    assert kinds == [("2025年", "year"), ("4月", "date"), ("2日", "date"), ("80%", "number")]


def test_a_count_of_two_thousand_is_not_a_year() -> None:
    assert vu("培训2000人") == [(2000.0, "人")]


@pytest.mark.parametrize(
    "text",
    [
        "[1]",
        "结算率[1][2]",
        "结算率[1, 2]",
        "结算率【3】",
        "结算率［１］",
        "（一）总体情况",
        "(1)完成",
        "1.县域医共体建设",
        "1、县域医共体建设",
        "- 2. 项目",
        "第3批",
        "第一次",
        "一是强化",
        "进一步深化",
        "三甲医院",
        "“十四五”规划",
        "几十个",
        "数十家",
        "一个平台",
        "H7N9与5G",
        "COVID-19",
    ],
)
def test_not_claims(text: str) -> None:
    assert numbers_to_check(text) == []


def test_ordinal_prefix_does_not_hide_the_claim() -> None:
    assert vu("1. 建成卒中中心5个[1]") == [(5.0, "个")]
    assert vu("1.5%的医院") == [(1.5, "%")]


def test_percentage_in_parentheses_is_a_claim() -> None:
    assert vu("占比(80%)") == [(80.0, "%")]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("十", 10),
        ("十五", 15),
        ("二十六", 26),
        ("两", 2),
        ("一百零五", 105),
        ("三千", 3000),
        ("两万", 20000),
        ("一亿二千万", 1.2e8),
        ("三点五", 3.5),
        ("二〇一九", 2019),
    ],
)
def test_cn_to_number(text: str, value: float) -> None:
    assert cn_to_number(text) == value


@pytest.mark.parametrize("text", ["一两", "三四", "千", "十三五"])
def test_cn_to_number_rejects_estimates(text: str) -> None:
    assert cn_to_number(text) is None


def test_fold_keeps_length() -> None:
    s = "３．１５％，［１］：１"
    assert fold(s) == "3.15%,[1]:1"
    assert len(fold(s)) == len(s)


# --- support --------------------------------------------------------------------------

SOURCE = (
    "公立医院门诊智慧结算率、住院智慧结算率分别达71.64%、60.43%,市级医院排队平均时间缩短至3.15分钟。"
    "全市建立15个县域医共体。服务群众6.47万人。签约覆盖率达80%。医护比1:1.2。"
)


@pytest.mark.parametrize(
    "answer",
    [
        "71.64%",
        "60.43%",
        "３．１５分钟",
        "3.15 minutes",
        "百分之八十",
        "十五个",
        "15家",  # the counted noun may be paraphrased
        "6.47万人",
        "64,700人",
        "64700",
        "1:1.2",
        "１∶１．２",
    ],
)
def test_supported(answer: str) -> None:
    assert number_supported(one(answer), SOURCE)


@pytest.mark.parametrize("answer", ["71.46%", "71.6%", "15%", "6.5万人", "1:2", "3.1分钟", "80‰"])
def test_not_supported(answer: str) -> None:
    assert not number_supported(one(answer), SOURCE)


def test_written_number_under_a_multiplier_header() -> None:
    assert number_supported(one("6.47万人"), "服务人数(万人):6.47")


def test_rounding_only_when_allowed() -> None:
    m = one("71.6%")
    assert not number_supported(m, SOURCE)
    assert number_supported(m, SOURCE, allow_rounding=True)
    assert number_supported(one("6.5万人"), SOURCE, allow_rounding=True)
    assert number_supported(one("72%"), SOURCE, allow_rounding=True)  # 71.64 rounds to 72
    assert not number_supported(one("73%"), SOURCE, allow_rounding=True)


def test_percentage_needs_a_percentage() -> None:
    assert not number_supported(one("15%"), "建立15个医共体")
    assert number_supported(one("15个"), "共15")


def test_full_width_source() -> None:
    assert number_supported(one("3.15分钟"), "缩短至３．１５分钟")


def test_equality_ignores_positions() -> None:
    a, b = numbers_to_check("80%"), numbers_to_check("达到80%")
    assert a == b
