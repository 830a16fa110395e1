"""The hand-written gold set (evals/gold.jsonl) and its loader/validator."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from assistant.errors import GoldSetError
from assistant.evals.gold import CATEGORIES, Evidence, GoldItem, load_gold, main, validate_gold

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "evals" / "gold.jsonl"
SEEDS = ROOT / "seeds"

MINIMUMS = {"single_fact": 25, "list": 6, "comparison": 8, "ranking": 5, "trend": 5, "section": 8, "trap": 8,
            "unanswerable": 12, "near_miss": 5}

# seed file -> the names a question may use for its city
CITY_OF_DOC = {
    "000_02aee6cc86416636.txt": ("丽水", "Lishui"),
    "001_f9e5136daba399cd.txt": ("十堰", "Shiyan"),
    "002_dbf8ee1d148b2c2e.txt": ("长沙", "Changsha"),
    "003_7a622e524e24148d.txt": ("东莞", "Dongguan"),
    "004_959402fedd2f6186.txt": ("余姚", "Yuyao"),
}
_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def gold() -> list[GoldItem]:
    return load_gold(GOLD)


# --- the real gold set -----------------------------------------------------------------


def test_gold_set_validates_against_seeds(gold: list[GoldItem]) -> None:
    assert validate_gold(gold, SEEDS) == []


def test_gold_set_size_and_category_minimums(gold: list[GoldItem]) -> None:
    assert len(gold) >= 80
    counts = Counter(item.category for item in gold)
    assert set(counts) == set(CATEGORIES)
    for category, minimum in MINIMUMS.items():
        assert counts[category] >= minimum, (category, counts[category])


def test_gold_ids_unique(gold: list[GoldItem]) -> None:
    ids = [item.id for item in gold]
    assert len(ids) == len(set(ids))


def test_every_seed_has_ten_answerable_items(gold: list[GoldItem]) -> None:
    per_doc = Counter(doc for item in gold for doc in {ev.doc for ev in item.evidence})
    for doc in CITY_OF_DOC:
        assert per_doc[doc] >= 10, (doc, per_doc[doc])


def test_answerable_questions_name_city_and_year(gold: list[GoldItem]) -> None:
    for item in gold:
        if not item.answerable or item.category == "ranking":  # a ranking asks across the corpus
            continue
        assert re.search(r"20[12]\d", item.question), f"{item.id}: question names no year"
        for doc in {ev.doc for ev in item.evidence}:
            names = CITY_OF_DOC[doc]
            assert any(n in item.question for n in names), f"{item.id}: question does not name {names[0]}"


def test_table_items_cover_comparisons_rankings_trends_and_near_misses(gold: list[GoldItem]) -> None:
    table = [item for item in gold if item.id.startswith("tbl-")]
    assert len(table) >= 30
    assert {item.category for item in table} == {"comparison", "ranking", "trend", "near_miss", "trap"}
    assert all(not item.answerable and not item.facts for item in gold if item.category == "near_miss")


def test_fact_groups_are_short_and_bounded(gold: list[GoldItem]) -> None:
    for item in gold:
        if item.answerable:
            assert 1 <= len(item.facts) <= 4, item.id
        for group in item.facts:
            assert len(group[0]) <= 40, (item.id, group[0])
            assert len(set(group)) == len(group), f"{item.id}: repeated variant in {group}"


def test_comparison_items_cite_one_fact_group_per_source(gold: list[GoldItem]) -> None:
    for item in gold:
        if item.category == "comparison":
            assert len(item.evidence) >= 2, item.id
            assert len(item.facts) >= 2, item.id


def test_unanswerable_items_are_empty(gold: list[GoldItem]) -> None:
    for item in gold:
        if item.category == "unanswerable":
            assert not item.answerable and item.facts == () and item.evidence == (), item.id
            if item.closest:
                assert item.closest in CITY_OF_DOC, item.id


def test_some_english_questions(gold: list[GoldItem]) -> None:
    english = [item.id for item in gold if not _CJK.search(item.question)]
    assert len(english) >= 3, english


def test_gold_file_is_utf8_jsonl_without_ascii_escapes() -> None:
    text = GOLD.read_text(encoding="utf-8")
    assert "\\u" not in text
    for n, line in enumerate(text.splitlines(), start=1):
        assert isinstance(json.loads(line), dict), n


def test_cli_ok_on_real_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(GOLD), str(SEEDS)]) == 0
    assert "OK:" in capsys.readouterr().out


# --- loader and validator on hand-made items -----------------------------------------------

DOC_TEXT = (
    "丽水市卫生健康2019年工作总结\n"
    "  市级医院排队平均时间缩短至3.15分钟,实现出生“一件事”联办。\n"
    "签约服务率达80%以上。\n"
)


def _item(**overrides: object) -> dict:
    obj: dict = {
        "id": "ok-item",
        "question": "丽水2019年市级医院排队平均多久?",
        "category": "single_fact",
        "answerable": True,
        "facts": [["3.15分钟", "3.15 分钟"]],
        "evidence": [{"doc": "doc.txt", "quote": "市级医院排队平均时间缩短至3.15分钟"}],
    }
    obj.update(overrides)
    return obj


def _write_jsonl(path: Path, objs: list[object]) -> Path:
    lines = [o if isinstance(o, str) else json.dumps(o, ensure_ascii=False) for o in objs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "doc.txt").write_text(DOC_TEXT, encoding="utf-8")
    return d


def test_valid_handmade_item_passes(tmp_path: Path, corpus: Path) -> None:
    items = load_gold(_write_jsonl(tmp_path / "g.jsonl", [_item()]))
    assert items[0].facts == (("3.15分钟", "3.15 分钟"),)
    assert items[0].evidence == (Evidence("doc.txt", "市级医院排队平均时间缩短至3.15分钟"),)
    assert validate_gold(items, corpus) == []


def test_quote_not_in_document_is_reported(tmp_path: Path, corpus: Path) -> None:
    bad = _item(id="bad-quote", evidence=[{"doc": "doc.txt", "quote": "市级医院排队平均时间缩短至3.51分钟"}])
    items = load_gold(_write_jsonl(tmp_path / "g.jsonl", [_item(), bad]))
    problems = validate_gold(items, corpus)
    assert any("bad-quote" in p and "line 2" in p and "quote not found" in p for p in problems), problems
    assert not any("'ok-item'" in p for p in problems)


def test_fact_not_in_quote_is_reported(tmp_path: Path, corpus: Path) -> None:
    bad = _item(id="bad-fact", facts=[["3.15分钟"], ["4.2分钟", "3.15分钟"]])
    problems = validate_gold(load_gold(_write_jsonl(tmp_path / "g.jsonl", [bad])), corpus)
    assert len(problems) == 1
    assert "bad-fact" in problems[0] and "4.2分钟" in problems[0]


def test_missing_document_is_reported(tmp_path: Path, corpus: Path) -> None:
    bad = _item(id="no-doc", evidence=[{"doc": "missing.txt", "quote": "市级医院排队平均时间缩短至3.15分钟"}])
    problems = validate_gold(load_gold(_write_jsonl(tmp_path / "g.jsonl", [bad])), corpus)
    assert any("no-doc" in p and "missing.txt" in p for p in problems), problems


def test_quote_length_and_line_break_are_reported(corpus: Path) -> None:
    short = GoldItem("short", "q", "single_fact", True, (("3.15",),), (Evidence("doc.txt", "3.15分钟"),))
    multi = GoldItem(
        "multi",
        "q",
        "single_fact",
        True,
        (("80%",),),
        (Evidence("doc.txt", "实现出生“一件事”联办。\n签约服务率达80%以上"),),
    )
    problems = validate_gold([short, multi], corpus)
    assert any("'short'" in p and "characters" in p for p in problems), problems
    assert any("'multi'" in p and "line break" in p for p in problems), problems


def test_whitespace_and_nfkc_normalisation(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    (d / "doc.txt").write_text(
        "市级医院排队平均时间\n   缩短至 3.15 分钟。签约服务率达８０％以上。", encoding="utf-8"
    )
    items = [
        GoldItem(
            "ws",
            "q",
            "single_fact",
            True,
            (("3.15分钟",),),
            (Evidence("doc.txt", "市级医院排队平均时间 缩短至 3.15 分钟"),),
        ),
        GoldItem(
            "nfkc", "q", "single_fact", True, (("80%",),), (Evidence("doc.txt", "签约服务率达８０％以上。"),)
        ),
    ]
    assert validate_gold(items, d) == []


def test_gbk_document_is_decoded(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    (d / "gbk.txt").write_bytes("全市建立15个县域医共体,实现扁平化管理。".encode("gbk"))
    item = GoldItem(
        "gbk", "q", "single_fact", True, (("15个",),), (Evidence("gbk.txt", "全市建立15个县域医共体"),)
    )
    assert validate_gold([item], d) == []


@pytest.mark.parametrize(
    ("objs", "expected"),
    [
        ([_item(), _item(id="x", category="trivia")], [":2", "'x'", "unknown category", "trivia"]),
        ([_item(id="dup"), _item(id="other"), _item(id="dup")], [":3", "duplicate id", "'dup'", "line 1"]),
        ([_item(), '{"id": "broken", "question": '], [":2", "malformed JSON"]),
        ([_item(), "[1, 2]"], [":2", "expected an object"]),
        ([_item(id="nofacts", facts=[])], [":1", "'nofacts'", "without facts"]),
        ([_item(id="noev", evidence=[])], [":1", "'noev'", "without evidence"]),
        (
            [{k: v for k, v in _item(id="miss").items() if k != "question"}],
            [":1", "'miss'", "missing", "question"],
        ),
        ([_item(id="extra", source="x")], [":1", "'extra'", "unknown field", "source"]),
        ([_item(id="evx", evidence=[{"doc": "d.txt"}])], [":1", "'evx'", "missing quote"]),
        ([_item(id="badfact", facts=[[]])], [":1", "'badfact'", "fact group 0"]),
        (
            [_item(id="na", category="unanswerable", answerable=False)],
            [":1", "'na'", "unanswerable item with facts"],
        ),
        ([_item(id="flag", answerable="yes")], [":1", "'flag'", "true or false"]),
        ([_item(id="mixed", category="unanswerable")], [":1", "'mixed'", "contradicts"]),
    ],
)
def test_loader_rejects_malformed_items(tmp_path: Path, objs: list[object], expected: list[str]) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", objs)
    with pytest.raises(GoldSetError) as exc:
        load_gold(path)
    msg = str(exc.value)
    assert "bad.jsonl" in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_loader_accepts_unanswerable_and_skips_blank_lines(tmp_path: Path) -> None:
    na = _item(id="na", category="unanswerable", answerable=False, facts=[], evidence=[], closest="doc.txt")
    items = load_gold(_write_jsonl(tmp_path / "g.jsonl", [_item(), "", na]))
    assert [i.id for i in items] == ["ok-item", "na"]
    assert items[1].closest == "doc.txt" and items[1].line == 3


def test_loader_reads_yaml_with_line_numbers(tmp_path: Path, corpus: Path) -> None:
    import yaml

    good = tmp_path / "g.yaml"
    good.write_text(yaml.safe_dump([_item(), _item(id="second")], allow_unicode=True), encoding="utf-8")
    items = load_gold(good)
    assert [i.id for i in items] == ["ok-item", "second"]
    assert items[1].line > items[0].line >= 1
    assert validate_gold(items, corpus) == []

    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump([_item(), _item(category="nope")], allow_unicode=True), encoding="utf-8")
    with pytest.raises(GoldSetError, match=r"bad\.yml:\d+ .*unknown category"):
        load_gold(bad)


def test_missing_gold_file_raises(tmp_path: Path) -> None:
    with pytest.raises(GoldSetError, match="not found"):
        load_gold(tmp_path / "nope.jsonl")


def test_cli_reports_problems_and_exits_1(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_jsonl(tmp_path / "g.jsonl", [_item(id="cli-bad", facts=[["9.99分钟"]])])
    assert main([str(path), str(corpus)]) == 1
    assert "cli-bad" in capsys.readouterr().out
    broken = _write_jsonl(tmp_path / "b.jsonl", ["{not json"])
    assert main([str(broken), str(corpus)]) == 1
    assert "malformed JSON" in capsys.readouterr().err
