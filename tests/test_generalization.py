"""Reports and questions the seeds never showed: districts and counties, years from date
lines and half-year summaries, place names inside other names, filters that never hide
the answer. Small invented reports (our own wording and figures) written per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings

from assistant.cleaning import build_document, detect_years
from assistant.facade import Assistant
from assistant.gazetteer import Gazetteer
from assistant.loading import load_file
from assistant.query import analyze
from assistant.testing import HashEmbedder
from assistant.types import WarningKind, YearInfo

GAZ = Gazetteer.default()

PANYU = """番禺区卫生健康局2023年工作总结
一、2023年主要工作成效
（一）基层医疗服务能力持续提升。全区新建社区卫生服务站6个，家庭医生签约率达到41.5%。
（二）公共卫生体系不断完善。番禺区疾控中心实验室完成改造，全年开展流行病学调查1200余次。
"""
GUANGZHOU = """广州市卫生健康委员会2023年工作总结
一、2023年主要工作
（一）医疗资源扩容。全市新增三甲医院2家，全市家庭医生签约率达到38.2%。
"""
UNTITLED_COUNTY = """县卫生健康局2022年工作总结
一、基本情况
2022年，在县委县政府的领导下，桐庐县卫生健康系统围绕健康桐庐建设，扎实推进各项工作。
二、主要成效
全县建成医共体分院12家，桐庐县第一人民医院新建发热门诊一处。
"""
HALF_YEAR = """某市卫生健康局2023年上半年工作总结及下半年工作打算
一、上半年工作进展
全市完成老年人健康体检5.6万人次。
二、下半年工作打算
继续推进家庭医生签约服务。
"""
DATE_LINE = """健康小屋进社区
发布时间：2023-08-02 14:35　来源：区融媒体中心
本月，街道新建健康小屋4个，为居民提供血压、血糖自测服务。
"""


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


# --- places ------------------------------------------------------------------------------------


def test_a_district_report_is_placed_under_its_parent_city(tmp_path: Path) -> None:
    doc = build_document(load_file(_write(tmp_path, "panyu.txt", PANYU)), GAZ)
    assert doc.meta.city == "广州市番禺区" and doc.meta.province == "广东省"
    assert doc.meta.years == (YearInfo(2023, "review"),)
    place = GAZ.get("番禺区")
    assert place is not None and place.parent == "广州市" and place.level == "district"


@pytest.mark.parametrize("question", ["番禺2023年家庭医生签约率是多少?", "番禺区2023年家庭医生签约率是多少?",
                                      "广州番禺2023年家庭医生签约率是多少?", "广州市番禺区2023年签约率?"])
def test_a_district_is_found_by_every_name_it_goes_by(question: str) -> None:
    info = analyze(question, corpus_cities=["广州市番禺区", "广州市"], corpus_years=[2023], gazetteer=GAZ)
    assert info.cities == ("广州市番禺区",) and info.filters.cities == ("广州市番禺区",)


@pytest.mark.parametrize(("question", "cities", "unknown"), [
    ("西湖区2023年孕产妇死亡率是多少?", ("杭州市西湖区",), ()),  # two cities have one; the corpus has one
    ("杭州西湖区2023年孕产妇死亡率是多少?", ("杭州市西湖区",), ()),
    ("南昌市西湖区2023年孕产妇死亡率是多少?", (), ("南昌市西湖区",)),  # the other one: not the corpus's
])
def test_a_district_name_two_cities_share_names_the_one_the_corpus_has(question: str, cities: tuple[str, ...],
                                                                        unknown: tuple[str, ...]) -> None:
    info = analyze(question, corpus_cities=["杭州市西湖区", "湖州市"], corpus_years=[2023], gazetteer=GAZ)
    assert info.cities == cities and info.unknown_places == unknown


@pytest.mark.parametrize("corpus", [["余姚市", "东莞市"], ["余姚市", "宁波市", "东莞市"]])
def test_a_prefecture_written_before_its_county_says_where_the_county_is(corpus: list[str]) -> None:
    one = analyze("宁波余姚2025年人均预期寿命目标是多少?", corpus_cities=corpus, corpus_years=[2025], gazetteer=GAZ)
    assert one.cities == ("余姚市",) and not one.unknown_places and not one.comparison
    two = analyze("宁波和余姚2025年的签约率分别是多少?", corpus_cities=corpus, corpus_years=[2025], gazetteer=GAZ)
    assert two.comparison  # two places named apart are two sides


def test_a_city_question_is_not_filled_with_its_districts() -> None:
    info = analyze("广州市2023年家庭医生签约率是多少?", corpus_cities=["广州市番禺区", "广州市"], corpus_years=[2023],
                   gazetteer=GAZ)
    assert info.filters.cities == ("广州市",)


def test_a_county_named_only_in_the_body_is_found(tmp_path: Path) -> None:
    doc = build_document(load_file(_write(tmp_path, "county.txt", UNTITLED_COUNTY)), GAZ)
    assert doc.meta.title == "县卫生健康局2022年工作总结"
    assert doc.meta.city == "桐庐县"


@pytest.mark.parametrize(("question", "expected"), [
    ("永安号货轮2023年运了多少吨货物?", ()),  # a ship, not 永安市
    ("中山大学附属医院2023年门诊量多少?", ()),  # a university, not 中山市
    ("黄山路社区卫生服务站有几名医生?", ()),  # a street
    ("永安2023年家庭医生签约率?", ("永安市",)),
    # A short form as the subject of a comparison is a place too.
    ("中山和永安谁的签约率更高?", ("中山市", "永安市")),
    ("中山和黄山哪个新增托位更多?", ("中山市", "黄山市")),
    # ... and where a subject stands, before a verb: after a year or a comma.
    ("2023年永安有多少家医养结合机构?", ("永安市",)),
    ("截至2023年,中山累计配备健康副厂长多少名?", ("中山市",)),
])
def test_a_place_name_inside_another_name_is_not_a_place(question: str, expected: tuple[str, ...]) -> None:
    info = analyze(question, corpus_cities=["永安市", "中山市", "黄山市"], corpus_years=[2023], gazetteer=GAZ)
    assert info.cities == expected and info.filters.cities == expected


def test_only_places_the_corpus_covers_filter() -> None:
    info = analyze("武汉市2023年家庭医生签约率目标是多少?", corpus_cities=["十堰市"], corpus_years=[2023],
                   gazetteer=GAZ)
    assert info.unknown_places == ("武汉市",) and not info.filters.cities  # checked against evidence instead
    assert info.refusal("no_evidence").render().startswith("所提供的报告中没有找到")
    assert "报告库中没有武汉市的报告" in info.refusal("no_evidence").render()


# --- years -------------------------------------------------------------------------------------


def test_a_half_year_summary_gets_its_year_as_a_review(tmp_path: Path) -> None:
    doc = build_document(load_file(_write(tmp_path, "half.txt", HALF_YEAR)), GAZ)
    assert doc.meta.years == (YearInfo(2023, "review"),)


@pytest.mark.parametrize("line", ["发布时间：2023-08-02 14:35", "发布时间：2023/8/2", "数据截至2023.08"])
def test_a_year_from_a_date_line(line: str) -> None:
    assert detect_years("", f"标题\n{line}\n正文没有年份。") == (YearInfo(2023, "unknown"),)


def test_a_report_never_gets_a_year_it_does_not_mention() -> None:
    assert detect_years("", "全市总诊疗量1986.4万人次，财政投入2010.5万元。") == ()


# --- filters that never hide the answer --------------------------------------------------------


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "reports"
    d.mkdir()
    _write(d, "date_line.txt", DATE_LINE)
    _write(d, "guangzhou.txt", GUANGZHOU)
    _write(d, "panyu.txt", PANYU)
    _write(d, "other_2024.txt", "某市卫生健康局2024年工作要点\n一、总体要求\n全面提升医疗服务质量，推进分级诊疗。\n")
    _write(d, "pharmacy_2023.txt", "某市卫生健康局2023年工作总结\n一、药事服务\n"
           "全年完成处方点评3.2万张。智慧药房建设加快，到2024年底全市将建成智慧药房12家。\n")
    return d


@pytest.fixture
def assistant(tmp_path: Path, corpus: Path) -> Assistant:
    a = Assistant(make_settings(tmp_path / "data"), embedder=HashEmbedder())
    assert a.ingest([corpus]).ok
    return a


def test_an_iso_date_line_report_is_answered_for_its_year(assistant: Assistant) -> None:
    ans = assistant.ask("2023年街道新建了几个健康小屋?")
    assert not ans.refused and "4个" in ans.text
    assert ans.citations[0].source_path.endswith("date_line.txt")


def test_a_district_question_gets_the_district_not_the_city(assistant: Assistant) -> None:
    ans = assistant.ask("番禺2023年家庭医生签约率是多少?")
    assert not ans.refused and "41.5%" in ans.text and "38.2%" not in ans.text
    city = assistant.ask("广州市2023年家庭医生签约率是多少?")
    assert "38.2%" in city.text and "41.5%" not in city.text


def test_a_filtered_search_with_no_evidence_falls_back_and_says_so(assistant: Assistant) -> None:
    # 2024 filters to the 2024 plan, which says nothing about 健康小屋; the date-line
    # report (2023) mentions no 2024 either, so nothing may be taken from it ...
    refused = assistant.ask("2024年街道新建了几个健康小屋?")
    assert refused.refused
    # ... but a 2023 report whose sentence itself names 2024 answers a 2024 question, and
    # the answer says which inferred filter it relaxed.
    ans = assistant.ask("2024年全市将建成多少家智慧药房?")
    assert not ans.refused and "12家" in ans.text
    assert ans.citations[0].source_path.endswith("pharmacy_2023.txt")
    (note,) = ans.warnings_of(WarningKind.FILTER_RELAXED)
    assert "年份=2024" in note.text


def test_calibration_weighs_the_evidence_the_answer_is_drawn_from(assistant: Assistant) -> None:
    # The refusal gate is fitted on the candidates the answerer weighs. With an inferred
    # filter that is the whole corpus when the filtered search holds nothing better: records
    # read off the filtered search alone showed the gate answerable questions with only
    # unrelated evidence (and none at all when nothing matched the filter).
    from assistant.evals.calibrate import _evidence

    q = "2024年全市将建成多少家智慧药房?"
    inside = assistant.prepare(q).contexts
    assert all(not sc.chunk.source_path.endswith("pharmacy_2023.txt") for sc in inside)
    weighed = _evidence(assistant, q)
    assert any(c.sc.chunk.source_path.endswith("pharmacy_2023.txt") and "12家" in c.text for c in weighed)


def test_calibration_collects_when_the_model_predates_a_new_signal(tmp_path: Path, corpus: Path) -> None:
    # After a signal is added, the packaged model no longer matches the features and the
    # answerer refuses to load it ("Refit it"); the refit must still be able to collect its
    # records, which do not depend on the model.
    import json

    from assistant.errors import ConfigError
    from assistant.evals.calibrate import _evidence, for_collecting
    from assistant.evidence import FEATURES

    old = {"features": list(FEATURES[:-1]), "weights": [0.0] * (len(FEATURES) - 1), "bias": 0.0, "threshold": 0.5}
    path = tmp_path / "old_model.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    settings = settings.model_copy(update={"answer": settings.answer.model_copy(update={"model_path": path})})
    a = Assistant(settings, embedder=HashEmbedder())
    assert a.ingest([corpus]).ok
    with pytest.raises(ConfigError, match="other features"):
        _ = a.answer_stage
    weighed = _evidence(for_collecting(a), "2023年街道新建了几个健康小屋?")
    assert any("4个" in c.text for c in weighed)
    ok = Assistant(make_settings(tmp_path / "data2"), embedder=HashEmbedder())
    assert for_collecting(ok) is ok  # a model that loads is kept


def test_a_prepared_question_is_answered_as_asked_by_any_answer_model(assistant: Assistant) -> None:
    # Comparing refusal thresholds searches each question once (Assistant.respond) and answers
    # it with the assistant moved to another model (with_answer_model): the same answer as
    # ask() at the same model, and a model that refuses everything the gate judges refuses.
    from dataclasses import replace

    q = "番禺2023年家庭医生签约率是多少?"
    asked = assistant.ask(q)
    req = assistant.prepare(q)
    *_, again = assistant.respond(req)
    assert again.text == asked.text and not asked.refused
    model = assistant.answer_stage.model
    same = assistant.with_answer_model(model)
    *_, shared = same.respond(req)
    assert shared.text == asked.text and same.retriever is assistant.retriever
    strict = assistant.with_answer_model(replace(model, threshold=1.01))
    q = "街道新建的健康小屋提供什么服务?"
    *_, refused = strict.respond(assistant.prepare(q))
    assert refused.refused
    assert assistant.answer_stage.model is model  # the original keeps its own
    assert "血糖自测" in assistant.ask(q).text


def test_leave_one_report_out_reads_the_full_pipeline_at_every_threshold(assistant: Assistant, tmp_path: Path) -> None:
    # loro_eval answers each question once per threshold; at a fold's own threshold that must
    # be what the eval harness gets by asking (run_eval), and refusing everything (t > 1)
    # refuses every answerable question the gate decides.
    from assistant.evals.calibrate import loro_eval
    from assistant.evals.gold import Evidence, GoldItem
    from assistant.evals.harness import run_eval

    model = assistant.answer_stage.model
    items = [GoldItem("a", "番禺2023年家庭医生签约率是多少?", "figure", True, (("41.5%",),),
                      (Evidence("panyu.txt", "家庭医生签约率"),)),
             GoldItem("b", "街道新建的健康小屋提供什么服务?", "fact", True, (("血糖",),),
                      (Evidence("date_line.txt", "为居民提供血压、血糖自测服务"),)),
             GoldItem("c", "番禺2023年建成了几座火星基地?", "figure", False, (), (), closest="panyu.txt")]
    folds = [{"held_out": "panyu.txt", "model": model, "threshold": model.threshold},
             {"held_out": "date_line.txt", "model": model, "threshold": model.threshold}]
    out = loro_eval(assistant, items, folds, tmp_path, thresholds=(0.0, 1.01))
    asked = run_eval(assistant, items, mode="extractive", baselines=False).metrics
    assert out["n_items"] == 3
    for key in ("fact_recall", "false_refusal_rate", "refusal_accuracy"):
        assert out["overall"][key] == asked[key]
    rows = {r["threshold"]: r for r in out["pipeline_curve"]}
    assert set(rows) == {0.0, model.threshold, 1.01}
    assert rows[model.threshold]["fact_recall"] == out["overall"]["fact_recall"]
    assert rows[model.threshold]["false_refusal_rate"] == 0.0
    assert rows[1.01]["false_refusal_rate"] == 0.5  # the figure next to its metric still answers (at 0.5)
    assert rows[1.01]["refusal_accuracy"] == 1.0
    assert (tmp_path / "folds" / "panyu.json").is_file()


def test_explicit_filters_stay_hard(assistant: Assistant) -> None:
    ans = assistant.ask("新建了几个健康小屋?", year=2024)
    assert ans.refused and not ans.warnings_of(WarningKind.FILTER_RELAXED)


def test_better_evidence_outside_an_inferred_year_wins_over_a_weaker_one_inside(tmp_path: Path) -> None:
    # 2003 filters to the 2003 plan, whose sentence on a 体育馆's 观众 stands but answers
    # another question; a history filed under 2024 states the asked capacity beside 2003.
    d = tmp_path / "reports"
    d.mkdir()
    _write(d, "club_history.txt", "某区体育俱乐部发展回顾（2024年）\n一、发展历程\n"
           "俱乐部成立于1998年，2003年俱乐部迁入新体育馆，新体育馆可容纳观众4500人。"
           "2015年俱乐部开设青少年训练营，2024年训练营学员超过800人。\n")
    _write(d, "plan_2003.txt", "某区卫生局2003年工作要点\n一、总体要求\n"
           "2003年全区医疗卫生工作以非典防控为重点，全面加强疾病监测。\n二、重点任务\n"
           "（一）加强体育健身指导。2003年新建社区健身点12个，组织全民健身活动30场次。"
           "区体育馆全年举办健康讲座，观众累计3000人次。\n")
    a = Assistant(make_settings(tmp_path / "data"), embedder=HashEmbedder())
    assert a.ingest([d]).ok
    ans = a.ask("2003年俱乐部迁入的新体育馆可容纳多少观众?")
    assert not ans.refused and "4500人" in ans.text and "3000" not in ans.text
    assert ans.citations[0].source_path.endswith("club_history.txt")
    (note,) = ans.warnings_of(WarningKind.FILTER_RELAXED)
    assert "年份=2003" in note.text
    # the filter still picks the report when it holds the answer
    inside = a.ask("2003年新建社区健身点多少个?")
    assert "12个" in inside.text and not inside.warnings_of(WarningKind.FILTER_RELAXED)


# --- English questions over Chinese reports ----------------------------------------------------


@pytest.mark.parametrize(("question", "expected"), [
    ("How many family-doctor teams did Panyu District form in 2023?", ("广州市番禺区",)),
    ("What was Guangzhou's family doctor contract rate in 2023?", ("广州市",)),
    ("Compare Xi'an and Guangzhou", ("西安市", "广州市")),
    ("What did the Panyuan report say?", ()),  # a syllable run inside another word is no place
    ("How many clinics did Lüliang build?", ("吕梁市",)),  # ü as written in English
    ("How many clinics did Lvliang build?", ("吕梁市",)),
])
def test_an_english_question_names_corpus_places_in_pinyin(question: str, expected: tuple[str, ...]) -> None:
    info = analyze(question, corpus_cities=["广州市番禺区", "广州市", "西安市", "吕梁市"], corpus_years=[2023],
                   gazetteer=GAZ)
    assert info.cities == expected


def test_an_english_question_reaches_chinese_text_through_the_glossary(assistant: Assistant) -> None:
    from assistant.query import bridge_terms

    assert bridge_terms("What was the infant mortality rate?")[0] == "婴儿死亡率"  # the longest entry reads the span
    assert "家庭医生" in bridge_terms("How many family-doctor teams?")  # hyphens are spaces
    assert bridge_terms("国家卫生城市复审") == ()
    req = assistant.prepare("How many community health service stations did Panyu District build in 2023?")
    assert req.info.cities == ("广州市番禺区",) and "社区卫生" in req.info.bridge
    assert req.contexts and req.contexts[0].chunk.source_path.endswith("panyu.txt")


def test_a_question_in_everyday_words_also_searches_the_reports_terms() -> None:
    from assistant.evidence import question_terms
    from assistant.text import terms

    info = analyze("青岭县2024年一岁以内宝宝的死亡率降到了多少?", corpus_cities=["青岭县"], corpus_years=[2024],
                   gazetteer=GAZ)
    assert info.bridge == ("婴儿", "婴幼儿")
    got = question_terms(info, terms)
    assert "宝宝" in got and "婴儿" in got  # the question's own words still count
    assert analyze("青岭县2024年婴儿死亡率是多少?", corpus_cities=["青岭县"], corpus_years=[2024],
                   gazetteer=GAZ).bridge == ()
