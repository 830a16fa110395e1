"""The indicator gold set (evals/indicators_gold.jsonl) and its loader, validator and scorer."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from assistant.errors import GoldSetError
from assistant.evals.indicator_gold import (
    GoldPassage,
    GoldRecord,
    load_indicator_gold,
    main,
    metric_matches,
    score_extraction,
    validate_indicator_gold,
)

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "evals" / "indicators_gold.jsonl"
SEEDS = ROOT / "seeds"

LISHUI = "000_02aee6cc86416636.txt"
DONGGUAN = "003_7a622e524e24148d.txt"
CITY_OF_DOC = {
    LISHUI: "丽水市",
    "001_f9e5136daba399cd.txt": "十堰市",
    "002_dbf8ee1d148b2c2e.txt": "长沙市",
    DONGGUAN: "东莞市",
    "004_959402fedd2f6186.txt": "余姚市",
}

GoldSet = tuple[list[GoldPassage], list[GoldRecord]]


@pytest.fixture(scope="module")
def gold() -> GoldSet:
    return load_indicator_gold(GOLD)


# --- the committed gold set -------------------------------------------------------------


def test_committed_gold_validates_against_seeds(gold: GoldSet) -> None:
    passages, records = gold
    assert validate_indicator_gold(passages, records, SEEDS) == []


def test_committed_gold_size_and_documents(gold: GoldSet) -> None:
    passages, records = gold
    assert len(records) >= 150
    per_doc = Counter(r.doc for r in records)
    assert set(per_doc) == set(CITY_OF_DOC)
    assert {r.doc: r.city for r in records} == CITY_OF_DOC
    assert {p.doc for p in passages} == set(CITY_OF_DOC)


def test_committed_gold_covers_review_plan_and_hard_cases(gold: GoldSet) -> None:
    _, records = gold
    years = {doc: {r.year for r in records if r.doc == doc} for doc in (LISHUI, DONGGUAN)}
    assert years == {LISHUI: {2019, 2020}, DONGGUAN: {2024, 2025}}
    assert {r.kind for r in records} == {"achieved", "target", "change"}
    assert {r.comparator for r in records} == {"=", "≥", "≤"}
    assert {"%", "‰", "/10万", "百分点", "元", "名"} <= {r.unit for r in records}
    assert any(r.kind == "change" and r.value < 0 for r in records)
    assert any(r.value >= 1e4 and "万" in r.quote for r in records)  # 万/亿 folded into the value


def test_committed_gold_lists_passages_before_records_per_document(gold: GoldSet) -> None:
    passages, records = gold
    for doc in CITY_OF_DOC:
        last_passage = max(p.line for p in passages if p.doc == doc)
        first_record = min(r.line for r in records if r.doc == doc)
        assert last_passage < first_record, doc


def test_main_prints_counts_and_exits_zero_on_the_committed_file() -> None:
    lines: list[str] = []
    assert main([str(GOLD), str(SEEDS)], out=lines.append) == 0
    assert "records" in lines[0]
    assert lines[-1].startswith("OK")


# --- loading --------------------------------------------------------------------------------

PASSAGE = {"type": "passage", "doc": LISHUI, "quote": "居民健康素养水平达28.82%,同比提高1.86个百分点。"}
RECORD = {
    "type": "record", "doc": LISHUI, "city": "丽水市", "year": 2019, "metric": "居民健康素养水平",
    "value": 28.82, "unit": "%", "comparator": "=", "kind": "achieved", "quote": "居民健康素养水平达28.82%",
}  # fmt: skip


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "ind.jsonl"
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_load_reads_passages_and_records_with_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, PASSAGE, "", {**RECORD, "note": "annotator's remark"})
    passages, records = load_indicator_gold(path)
    assert passages == [GoldPassage(LISHUI, PASSAGE["quote"])]
    assert passages[0].line == 1 and records[0].line == 3
    assert records[0].value == 28.82 and records[0].comparator == "="


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ({**RECORD, "type": "figure"}, "unknown type"),
        ({k: v for k, v in RECORD.items() if k != "type"}, "missing field(s): type"),
        ({k: v for k, v in RECORD.items() if k != "unit"}, "missing field(s): unit"),
        ({k: v for k, v in PASSAGE.items() if k != "quote"}, "missing field(s): quote"),
        ({**RECORD, "extra": 1}, "unknown field(s)"),
        ({**RECORD, "comparator": ">="}, "unknown comparator"),
        ({**RECORD, "kind": "actual"}, "unknown kind"),
        ({**RECORD, "unit": 7}, "field 'unit' must be a string"),
        ({**RECORD, "unit": "万"}, "multiplier"),
        ({**RECORD, "value": "28.82"}, "field 'value'"),
        ({**RECORD, "value": True}, "field 'value'"),
        ({**RECORD, "year": "2019"}, "field 'year'"),
        ({**RECORD, "metric": " "}, "field 'metric'"),
    ],
)
def test_malformed_line_raises_naming_file_and_line(tmp_path: Path, bad: object, needle: str) -> None:
    path = _write(tmp_path, PASSAGE, RECORD, bad)
    with pytest.raises(GoldSetError) as exc:
        load_indicator_gold(path)
    assert "ind.jsonl:3:" in str(exc.value)
    assert needle in exc.value.message
    assert exc.value.hint


def test_file_without_records_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(GoldSetError, match="no records"):
        load_indicator_gold(_write(tmp_path, PASSAGE))


# --- validation -----------------------------------------------------------------------------


def _rec(**changes: object) -> GoldRecord:
    base = GoldRecord(
        LISHUI, "丽水市", 2019, "居民健康素养水平", 28.82, "%", "=", "achieved", "居民健康素养水平达28.82%"
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_validate_accepts_a_good_record_and_a_signless_change() -> None:
    passages = [GoldPassage(LISHUI, PASSAGE["quote"])]
    change = _rec(metric="居民健康素养水平", value=1.86, unit="百分点", kind="change", quote="同比提高1.86个百分点")
    drop = _rec(doc=LISHUI, value=-14.48, kind="change", quote="肺结核报告发病率同比上年下降14.48%")
    passages.append(GoldPassage(LISHUI, "肺结核报告发病率同比上年下降14.48%。"))
    assert validate_indicator_gold(passages, [_rec(), change, drop], SEEDS) == []


@pytest.mark.parametrize(
    ("passages", "record", "needle"),
    [
        (
            [GoldPassage(LISHUI, "居民健康素养水平达99.99%")],
            _rec(quote="居民健康素养水平达99.99%", value=99.99),
            "'居民健康素养水平': quote not found",
        ),
        ([], _rec(), "not inside any passage"),
        ([GoldPassage(LISHUI, PASSAGE["quote"])], _rec(value=28.8), "not stated in its quote"),
        ([GoldPassage(LISHUI, PASSAGE["quote"])], _rec(value=-28.82), "not stated in its quote"),
        (
            [GoldPassage(LISHUI, "覆盖率达29.5%。居民健康素养水平达28.82%")],
            _rec(quote="覆盖率达29.5%。居民健康素养水平达28.82%"),
            "longer than one sentence",
        ),
        ([GoldPassage("nope.txt", "x")], _rec(doc="nope.txt"), "not found (or unreadable)"),
    ],
)
def test_validate_reports_problems(passages: list[GoldPassage], record: GoldRecord, needle: str) -> None:
    problems = validate_indicator_gold(passages, [record], SEEDS)
    assert any(needle in p for p in problems), problems


def test_validate_reports_a_second_city_and_duplicates() -> None:
    passages = [GoldPassage(LISHUI, PASSAGE["quote"])]
    problems = validate_indicator_gold(passages, [_rec(), _rec(city="衢州市"), _rec()], SEEDS)
    assert any("more than one city" in p for p in problems)
    assert any("duplicate record" in p for p in problems)


def test_validate_reads_ranks_and_tenths_that_extract_numbers_skips() -> None:
    rank = _rec(doc=DONGGUAN, city="东莞市", metric="高质量发展指数全省排名", value=5, unit="名",
                quote="高质量发展指数排名全省第5")  # fmt: skip
    tenths = _rec(doc=DONGGUAN, city="东莞市", metric="扭亏为盈公立医院占比", value=60, comparator="≥",
                  quote="全市超六成公立医院扭亏为盈")  # fmt: skip
    passages = [GoldPassage(DONGGUAN, rank.quote), GoldPassage(DONGGUAN, tenths.quote)]
    assert validate_indicator_gold(passages, [rank, tenths], SEEDS) == []
    assert validate_indicator_gold(passages, [replace(rank, value=6)], SEEDS) != []


def test_main_exits_one_on_problems_and_on_malformed_files(tmp_path: Path) -> None:
    out: list[str] = []
    bad_value = _write(tmp_path, PASSAGE, {**RECORD, "value": 28.8})
    assert main([str(bad_value), str(SEEDS)], out=out.append) == 1
    assert any("not stated" in line for line in out)
    assert main([str(_write(tmp_path, "{oops")), str(SEEDS)], out=out.append) == 1


# --- metric matching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("居民健康素养水平", "居民健康素养水平", True),
        ("居民健康素养水平", "全市居民健康素养水平", True),  # containment
        ("巡回诊疗车巡诊", "巡诊", True),
        ("公立医院门诊智慧结算率", "门诊智慧化结算率", True),  # Dice 0.59
        ("老年人基层规范管理率", "老年人、重点慢病基层规范管理率", True),  # Dice 0.70
        ("孕产妇死亡率", "婴儿死亡率", False),  # Dice 0.44
        ("门诊智慧结算率", "住院智慧结算率", True),  # Dice 0.67: lenient on metric, strict on value
        ("县域就诊率", "基层就诊率", True),  # Dice exactly 0.5: the threshold is inclusive
        ("县域就诊率", "县级医院就诊人次", False),
        ("高危人群结直肠癌筛查", "托位", False),
        ("", "托位", False),
        ("托位", "", False),
    ],
)
def test_metric_matches(a: str, b: str, expected: bool) -> None:
    assert metric_matches(a, b) is expected
    assert metric_matches(b, a) is expected


# --- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extracted:
    """An extractor's record as score_extraction reads it."""

    doc: str
    metric: str
    value: float
    unit: str
    comparator: str
    kind: str
    quote: str


def _as_extracted(record: GoldRecord, **changes: object) -> Extracted:
    fields = {k: getattr(record, k) for k in ("doc", "metric", "value", "unit", "comparator", "kind", "quote")}
    return Extracted(**{**fields, **changes})  # type: ignore[arg-type]


def test_score_is_perfect_when_extraction_equals_gold(gold: GoldSet) -> None:
    passages, records = gold
    score = score_extraction(passages, records, [_as_extracted(r) for r in records])
    assert (score["precision"], score["recall"], score["f1"]) == (1.0, 1.0, 1.0)
    assert score["matched"] == score["gold"] == score["extracted_in_passages"] == len(records)
    assert score["value_accuracy"] == score["unit_accuracy"] == 1.0
    assert score["missed"] == score["spurious"] == []


def test_wrong_value_inside_a_passage_lowers_precision(gold: GoldSet) -> None:
    passages, records = gold
    extracted = [_as_extracted(r) for r in records]
    extracted.append(_as_extracted(records[0], value=records[0].value + 1))
    score = score_extraction(passages, records, extracted)
    assert score["recall"] == 1.0
    assert score["precision"] == pytest.approx(len(records) / (len(records) + 1))
    assert len(score["spurious"]) == 1
    # In place of the right record, the wrong value matches nothing: both scores drop.
    swapped = score_extraction(passages, records, [extracted[-1], *extracted[1:-1]])
    assert swapped["precision"] == swapped["recall"] == pytest.approx((len(records) - 1) / len(records))


def test_record_outside_all_passages_leaves_precision_unchanged(gold: GoldSet) -> None:
    passages, records = gold
    outside = Extracted(doc=LISHUI, metric="省卫乡镇复审", value=26, unit="个", comparator="=", kind="target",
                              quote="做好26个省卫乡镇复审工作")  # fmt: skip
    assert not any(outside.quote in p.quote for p in passages)  # the fixture really is outside
    score = score_extraction(passages, records, [*(_as_extracted(r) for r in records), outside])
    assert (score["precision"], score["recall"]) == (1.0, 1.0)
    assert score["extracted"] == len(records) + 1 and score["extracted_in_passages"] == len(records)


def test_dropping_a_record_lowers_recall(gold: GoldSet) -> None:
    passages, records = gold
    score = score_extraction(passages, records, [_as_extracted(r) for r in records[1:]])
    assert score["precision"] == 1.0
    assert score["recall"] == pytest.approx((len(records) - 1) / len(records))
    assert score["missed"] == [records[0].describe()]


def test_paired_list_items_need_their_own_values(gold: GoldSet) -> None:
    passages, records = gold
    pair = [r for r in records if r.quote.startswith("公立医院门诊智慧结算率、住院")]
    assert len(pair) == 2
    # Both extracted records carry the value of the first item: only that item is matched.
    extracted = [_as_extracted(r, value=pair[0].value) for r in pair]
    score = score_extraction(passages, pair, extracted)
    assert score["matched"] == 1 and score["recall"] == 0.5 and score["precision"] == 0.5


def test_matching_is_one_to_one(gold: GoldSet) -> None:
    passages, records = gold
    pair = [r for r in records if r.quote == "门急诊和住院均次费用增幅控制在5%以下"]
    assert len(pair) == 2 and metric_matches(pair[0].metric, pair[1].metric)  # one extracted record fits both
    score = score_extraction(passages, pair, [_as_extracted(pair[1])])
    assert (score["matched"], score["recall"], score["precision"]) == (1, 0.5, 1.0)


def test_quotes_match_by_containment_and_by_overlap(gold: GoldSet) -> None:
    passages, records = gold
    rec = next(r for r in records if r.quote == "居民健康素养水平达28.82%")
    sentence = _as_extracted(
        rec, quote="居民健康素养水平达28.82%,同比提高1.86个百分点。", metric="全市居民健康素养水平"
    )
    overlap = _as_extracted(rec, quote="28.82%,同比提高")  # overlaps the gold quote inside its passage
    elsewhere = _as_extracted(rec, quote="健康素养进农村文化礼堂覆盖率达29.5%")  # same passage, no overlap
    assert score_extraction(passages, [rec], [sentence])["recall"] == 1.0
    assert score_extraction(passages, [rec], [overlap])["recall"] == 1.0
    assert score_extraction(passages, [rec], [elsewhere])["recall"] == 0.0
    text = (SEEDS / LISHUI).read_text(encoding="utf-8")
    assert score_extraction([], [rec], [overlap], documents={LISHUI: text})["recall"] == 1.0


def test_field_accuracies_point_at_the_wrong_field(gold: GoldSet) -> None:
    passages, records = gold
    extracted = [_as_extracted(r) for r in records]
    for i in range(0, 20, 2):
        extracted[i] = _as_extracted(records[i], unit="个" if records[i].unit != "个" else "家")
    extracted[1] = _as_extracted(records[1], kind="target" if records[1].kind != "target" else "achieved")
    score = score_extraction(passages, records, extracted)
    assert score["recall"] == pytest.approx((len(records) - 11) / len(records))
    assert score["pairs"] == len(records)
    assert score["unit_accuracy"] == pytest.approx((len(records) - 10) / len(records))
    assert score["kind_accuracy"] == pytest.approx((len(records) - 1) / len(records))
    assert score["value_accuracy"] == score["comparator_accuracy"] == 1.0


def test_other_document_or_metric_never_matches(gold: GoldSet) -> None:
    passages, records = gold
    rec = next(r for r in records if r.quote == "居民健康素养水平达28.82%")
    assert score_extraction(passages, [rec], [_as_extracted(rec, doc=DONGGUAN)])["recall"] == 0.0
    assert score_extraction(passages, [rec], [_as_extracted(rec, metric="婴儿死亡率")])["pairs"] == 0
