"""Gazetteer: the packaged place list, short forms, longest-match scanning, city detection."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from assistant.errors import ConfigError
from assistant.gazetteer import PROVINCES, Gazetteer, short_form

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


@pytest.fixture(scope="module")
def g() -> Gazetteer:
    return Gazetteer.default()


def _names(found: list) -> list[tuple[str, int]]:
    return [(p.name, n) for p, n in found]


# --- the data file -----------------------------------------------------------------


def test_tsv_is_complete_and_consistent(g: Gazetteer) -> None:
    text = resources.files("assistant").joinpath("data/gazetteer.tsv").read_text("utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    assert rows[0] == ["name", "level", "province"]
    rows = rows[1:]
    assert all(len(r) == 3 for r in rows)
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)), "duplicate names"
    assert {r[1] for r in rows} == {"prefecture", "county"}
    assert {r[2] for r in rows} <= set(PROVINCES)
    levels = Counter(r[1] for r in rows)
    assert levels["prefecture"] == 337  # 333 prefecture-level divisions + 4 municipalities
    county_cities = [r[0] for r in rows if r[1] == "county" and r[0].endswith("市")]
    assert len(county_cities) >= 394
    districts = [line.split("\t") for line in resources.files("assistant").joinpath("data/districts.tsv")
                 .read_text("utf-8").splitlines() if line and not line.startswith("#")][1:]
    assert len(districts) == 977  # 市辖区, 2023
    prefectures = {r[0]: r[2] for r in rows if r[1] == "prefecture"}
    assert all(prefectures.get(parent) == province for _d, parent, province in districts), "parent or province"
    assert len(g) == len(rows) + len(districts)
    assert sum(p.level == "district" for p in g.places) == 977


@pytest.mark.parametrize(
    ("name", "level", "province"),
    [
        ("丽水市", "prefecture", "浙江省"),
        ("十堰市", "prefecture", "湖北省"),
        ("长沙市", "prefecture", "湖南省"),
        ("东莞市", "prefecture", "广东省"),
        ("上海市", "prefecture", "上海市"),
        ("恩施土家族苗族自治州", "prefecture", "湖北省"),
        ("大兴安岭地区", "prefecture", "黑龙江省"),
        ("锡林郭勒盟", "prefecture", "内蒙古自治区"),
        ("余姚市", "county", "浙江省"),
        ("慈溪市", "county", "浙江省"),
        ("龙泉市", "county", "浙江省"),
        ("丹江口市", "county", "湖北省"),
        ("仙桃市", "county", "湖北省"),
        ("济源市", "county", "河南省"),
        ("石河子市", "county", "新疆维吾尔自治区"),
        ("长沙县", "county", "湖南省"),
        ("神农架林区", "county", "湖北省"),
    ],
)
def test_known_places(g: Gazetteer, name: str, level: str, province: str) -> None:
    p = g.get(name)
    assert p is not None
    assert (p.name, p.level, p.province) == (name, level, province)


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("丽水市", "丽水"),
        ("恩施土家族苗族自治州", "恩施"),
        ("湘西土家族苗族自治州", "湘西"),
        ("伊犁哈萨克自治州", "伊犁"),
        ("巴音郭楞蒙古自治州", "巴音郭楞"),
        ("海西蒙古族藏族自治州", "海西"),
        ("积石山保安族东乡族撒拉族自治县", "积石山"),
        ("龙胜各族自治县", "龙胜"),
        ("大兴安岭地区", "大兴安岭"),
        ("兴安盟", "兴安"),
        ("神农架林区", "神农架"),
        ("余姚市", "余姚"),
    ],
)
def test_short_forms(g: Gazetteer, name: str, short: str) -> None:
    assert short_form(name) == short
    place = g.get(name)
    assert place is not None and place.short == short
    assert g.get(short) == place


@pytest.mark.parametrize(
    "name",
    [
        "吉林市",  # 吉林 is the province
        "海南藏族自治州",  # 海南 is the province
        "河南蒙古族自治县",  # 河南 is the province
        "长沙县",  # 长沙 is the prefecture
        "恩施市",  # 恩施 is the autonomous prefecture
        "东乡族自治县",  # stripping the nationality would leave nothing
        "赵县",  # one character
    ],
)
def test_full_name_kept_when_short_form_is_unsafe(g: Gazetteer, name: str) -> None:
    place = g.get(name)
    assert place is not None and place.short == name


def test_ambiguous_short_goes_to_the_prefecture(g: Gazetteer) -> None:
    assert g.get("长沙").name == "长沙市"
    assert g.get("恩施").name == "恩施土家族苗族自治州"
    assert g.get("伊宁").name == "伊宁市"  # 伊宁市 and 伊宁县: the county-level city
    assert g.get("吉林") is None


# --- find --------------------------------------------------------------------------


def test_find_longest_match_first(g: Gazetteer) -> None:
    assert _names(g.find("宁波市余姚市卫生健康局。余姚市、余姚。宁波")) == [("余姚市", 3), ("宁波市", 2)]
    assert _names(g.find("恩施土家族苗族自治州卫生健康委员会")) == [("恩施土家族苗族自治州", 1)]
    assert _names(g.find("大兴安岭地区")) == [("大兴安岭地区", 1)]
    assert _names(g.find("长沙县和长沙市，长沙")) == [("长沙市", 2), ("长沙县", 1)]


def test_find_ignores_provinces_and_embedded_words(g: Gazetteer) -> None:
    assert g.find("湖南省、河南省、吉林省、海南省、广东省") == []
    assert g.find("河南宁陵县") and _names(g.find("河南宁陵县")) == [("宁陵县", 1)]  # not 南宁
    text = "其中卫生技术人员增加；医保定点机构；美丽江苏；创新乡村医生；中山路；安宁疗护；资源下沉"
    assert g.find(text) == []


def test_short_county_names_need_the_full_name_nearby(g: Gazetteer) -> None:
    assert g.find("余姚今年") == []
    assert _names(g.find("余姚今年", short_counties=True)) == [("余姚市", 1)]
    assert g.find("切实增强惠民生举措，会同有关部门") == []
    assert _names(g.find("余姚市。余姚今年")) == [("余姚市", 2)]
    assert _names(g.find("丹江口水库")) == [("丹江口市", 1)]  # three characters: distinctive enough


def test_find_counts_prefecture_short_forms(g: Gazetteer) -> None:
    assert _names(g.find("健康东莞建设，东莞")) == [("东莞市", 2)]


# --- best_city ---------------------------------------------------------------------


def _seed_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and re.search(r"\d{4}年", line) and re.search("要点|总结", line):
            return line
    return ""


@pytest.mark.parametrize(
    ("prefix", "city"),
    [("000_", "丽水市"), ("001_", "十堰市"), ("002_", "长沙市"), ("003_", "东莞市"), ("004_", "余姚市")],
)
def test_best_city_of_seeds(g: Gazetteer, prefix: str, city: str) -> None:
    (path,) = SEEDS.glob(prefix + "*.txt")
    text = path.read_text(encoding="utf-8")
    title = _seed_title(text)
    if prefix == "003_":
        assert "东莞" not in title
    best = g.best_city(title, text)
    assert best is not None and best.name == city


def test_best_city_body_counts(g: Gazetteer) -> None:
    body = "广州的经验。" + "东莞推进健康建设。" * 5
    assert g.best_city("", body).name == "东莞市"


def test_best_city_prefers_county_in_title(g: Gazetteer) -> None:
    body = "宁波市余姚市卫生健康局。" + "宁波市卫生健康委员会部署。" * 8
    assert g.best_city("余姚2025年卫生健康工作要点", body).name == "余姚市"
    assert g.best_city("宁波市余姚市2025年卫生健康工作要点", body).name == "余姚市"
    assert g.best_city("", body).name == "宁波市"


def test_best_city_issuer_weight(g: Gazetteer) -> None:
    body = "深圳" * 4 + "广州" * 3
    assert g.best_city("", body, issuer="广州市卫生健康委员会").name == "广州市"
    assert g.best_city("", body, issuer=None).name == "深圳市"
    body = "宁波市" * 10 + "余姚市"
    assert g.best_city("2025年全市卫生健康工作要点", body, issuer="余姚市卫生健康局").name == "余姚市"


def test_best_city_none(g: Gazetteer) -> None:
    assert g.best_city("2024年卫生健康工作要点", "全市卫生健康系统坚持人民至上。") is None
    assert g.best_city("", "") is None


def test_best_city_is_fast(g: Gazetteer) -> None:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))[:30000]
    assert len(text) == 30000
    g.best_city("", text)
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        g.best_city("长沙市2018年卫生计生工作要点", text, issuer="长沙市卫生和计划生育委员会")
        timings.append(time.perf_counter() - t0)
    assert min(timings) < 0.02


# --- construction ------------------------------------------------------------------


def test_default_is_shared_across_threads() -> None:
    seen: list[Gazetteer] = []
    threads = [threading.Thread(target=lambda: seen.append(Gazetteer.default())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(x is seen[0] for x in seen)


def test_from_rows_and_tsv_validation(tmp_path: Path) -> None:
    small = Gazetteer.from_rows([("甲乙市", "prefecture", "某省"), ("丙丁县", "county", "某省")])
    assert _names(small.find("甲乙和丙丁县")) == [("甲乙市", 1), ("丙丁县", 1)]
    with pytest.raises(ConfigError, match="unknown level"):
        Gazetteer.from_rows([("甲乙市", "city", "某省")])
    bad = tmp_path / "g.tsv"
    bad.write_text("name\tlevel\tprovince\n甲乙市\tprefecture\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"g\.tsv:2"):
        Gazetteer.from_tsv(bad)
    bad.write_text("甲乙市\tprefecture\t某省\n甲乙市\tprefecture\t某省\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate"):
        Gazetteer.from_tsv(bad)
