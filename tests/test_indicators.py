"""assistant.indicators: every figure a report states, as a record (docs/indicators.md).

Most sentences are invented in the genre's style (counties, districts, other years and wording);
a few are real seed sentences.  Every record's quote must be the exact source text at its offsets.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from conftest import SEEDS

from assistant.config import Settings
from assistant.indicators import (
    Indicator,
    extract_from_chunk,
    extract_from_text,
    metric_similarity,
    normalize_metric,
)
from assistant.ingest import parse_paths
from assistant.numbers import numbers_to_check
from assistant.text import warm_up

Row = tuple[str, float, str, str, str]  # metric, value, unit, comparator, kind


def rows(text: str, role: str = "review", **kw: object) -> list[Row]:
    found = extract_from_text(text, role=role, **kw)  # type: ignore[arg-type]
    for r in found:
        assert text[r.start:r.end] == r.sentence
    return [(r.metric, r.value, r.unit, r.comparator, r.kind) for r in found]


# --- single sentences ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "text", "expected"),
    [
        # level verbs, and a change clause that names nothing takes the metric before it
        ("review", "全县孕产妇系统管理率为95.6%,比上年提高2.1个百分点。",
         [("孕产妇系统管理率", 95.6, "%", "=", "achieved"), ("孕产妇系统管理率", 2.1, "百分点", "=", "change")]),
        ("review", "全区门诊量达356.2万人次,同比下降3.4%。",
         [("门诊量", 3562000.0, "人次", "=", "achieved"), ("门诊量", -3.4, "%", "=", "change")]),
        ("review", "家庭医生签约人数达12.3万人,较上年增加1.2万人。",
         [("家庭医生签约人数", 123000.0, "人", "=", "achieved"), ("家庭医生签约人数", 12000.0, "人", "=", "change")]),
        ("review", "急救平均反应时间为12分钟,较去年缩短1.5分钟。",
         [("急救平均反应时间", 12.0, "分钟", "=", "achieved"), ("急救平均反应时间", -1.5, "分钟", "=", "change")]),
        # paired lists, sharing the head word of the last item
        ("review", "高血压、糖尿病患者规范管理率分别为68.2%和70.1%。",
         [("高血压患者规范管理率", 68.2, "%", "=", "achieved"), ("糖尿病患者规范管理率", 70.1, "%", "=", "achieved")]),
        ("review", "孕产妇死亡率、婴儿死亡率分别降至1.07/10万、1.53‰。",  # seed 003
         [("孕产妇死亡率", 1.07, "/10万", "=", "achieved"), ("婴儿死亡率", 1.53, "‰", "=", "achieved")]),
        ("review", "常住人口、重点人群签约率分别达58.62%、90.65%。",  # seed 003
         [("常住人口签约率", 58.62, "%", "=", "achieved"), ("重点人群签约率", 90.65, "%", "=", "achieved")]),
        # comparators and targets
        ("plan", "二级以上医院平均住院日控制在8天以内,新增婴幼儿托位不少于500个。",
         [("二级以上医院平均住院日", 8.0, "天", "≤", "target"), ("新增婴幼儿托位", 500.0, "个", "≥", "target")]),
        ("plan", "全市孕产妇死亡率控制在17/10万以下。",  # seed 002
         [("孕产妇死亡率", 17.0, "/10万", "≤", "target")]),
        ("plan", "力争人均预期寿命提高到80岁。", [("人均预期寿命", 80.0, "岁", "≥", "target")]),
        ("review", "力争到2025年基层就诊率达到70%。", [("基层就诊率", 70.0, "%", "≥", "target")]),
        ("review", "到2025年,居民健康素养水平达到30%以上。", [("居民健康素养水平", 30.0, "%", "≥", "target")]),
        ("review", "农村贫困人口住院费用实际报销比例不低于85%。",
         [("农村贫困人口住院费用实际报销比例", 85.0, "%", "≥", "achieved")]),
        ("review", "全年举办健康讲座超3000场。", [("举办健康讲座", 3000.0, "场", "≥", "achieved")]),
        # a change set for a coming period is a target, its metric naming the change (gold: seed 004)
        ("plan", "双向转诊服务量较去年增长10%以上。", [("双向转诊服务量增长", 10.0, "%", "≥", "target")]),
        ("review", "达标村卫生室占比超省定目标3.5个百分点。",
         [("达标村卫生室占比超省定目标", 3.5, "百分点", "=", "change")]),
        ("plan", "总费用增幅控制在10%以内。", [("总费用增幅", 10.0, "%", "≤", "target")]),
        ("review", "住院费用增长幅度不超过8%。", [("住院费用增长幅度", 8.0, "%", "≤", "achieved")]),
        ("review", "确保适龄儿童免疫规划疫苗接种率达95%。", [("适龄儿童免疫规划疫苗接种率", 95.0, "%", "=", "target")]),
        ("plan", "实现每10万人口精神科医师配置不低于4.2名。", [("每10万人口精神科医师配置", 4.2, "人", "≥", "target")]),
        ("plan", "新成立2—3个医疗质控中心。", [("新成立医疗质控中心", 2.0, "个", "≥", "target")]),
        # a count followed by its noun is named by the noun; 名 (people) → 人
        ("review", "建成41家香港金牌家庭医生服务工作室。",
         [("建成香港金牌家庭医生服务工作室", 41.0, "家", "=", "achieved")]),
        ("review", "遴选首批健康科普专家158名。", [("遴选首批健康科普专家", 158.0, "人", "=", "achieved")]),
        ("review", "共为1.5万名0-6岁儿童提供视力检查服务。",
         [("0-6岁儿童提供视力检查服务", 15000.0, "人", "=", "achieved")]),
        # numbers that qualify the metric belong to it
        ("review", "全县65岁及以上老年人健康管理率达72.5%。",
         [("65岁及以上老年人健康管理率", 72.5, "%", "=", "achieved")]),
        ("review", "10类重点人群家庭医生签约覆盖率达75.09%。",  # seed 000
         [("10类重点人群家庭医生签约覆盖率", 75.09, "%", "=", "achieved")]),
        ("review", "引进2个投资额5000万以上的招商项目。",
         [("引进投资额5000万以上的招商项目", 2.0, "个", "=", "achieved")]),
        # ranks are records with unit 名; 万/亿 fold into the value
        ("review", "总体应用水平在全省统建地市中排名第2。", [("总体应用水平", 2.0, "名", "=", "achieved")]),
        ("review", "我区卫生健康综合考核排名全市第2。", [("卫生健康综合考核", 2.0, "名", "=", "achieved")]),
        ("review", "职业健康、综合医改考核分别排名全省第1、第3。",
         [("职业健康", 1.0, "名", "=", "achieved"), ("综合医改考核", 3.0, "名", "=", "achieved")]),
        ("review", "全市医疗卫生总费用为35.6亿元。", [("医疗卫生总费用", 3.56e9, "元", "=", "achieved")]),
        ("review", "社区卫生服务机构就诊人次达2045万。",  # a bare number has unit "" (docs/indicators.md)
         [("社区卫生服务机构就诊人次", 2.045e7, "", "=", "achieved")]),
        # one figure for a list whose last item alone names the head: one record per item
        ("plan", "门诊和住院均次费用增幅控制在5%以下。",
         [("门诊均次费用增幅", 5.0, "%", "≤", "target"), ("住院均次费用增幅", 5.0, "%", "≤", "target")]),
        ("review", "高血压、糖尿病患者规范管理率均达到70%。",
         [("高血压患者规范管理率", 70.0, "%", "=", "achieved"), ("糖尿病患者规范管理率", 70.0, "%", "=", "achieved")]),
        ("review", "老年人、慢性病病人等重点人群签约率达70%。",  # 等: examples of one group
         [("老年人、慢性病病人等重点人群签约率", 70.0, "%", "=", "achieved")]),
        # two counts glued together count the same noun; a share in tenths; a rank with no verb
        ("review", "派出3批26名医疗队员支援灾区。",
         [("派出医疗队员支援灾区", 3.0, "批", "=", "achieved"), ("派出医疗队员支援灾区", 26.0, "人", "=", "achieved")]),
        ("review", "全县近八成村卫生室完成标准化建设。",
         [("村卫生室完成标准化建设占比", 80.0, "%", "=", "achieved")]),
        ("review", "家庭医生签约人数全省第2。", [("家庭医生签约人数", 2.0, "名", "=", "achieved")]),
        ("review", "其中60%为县级医院。", [("县级医院占比", 60.0, "%", "=", "achieved")]),
        # the earlier value of 由…提高到 is not a record; a clause of only 占 takes its subject
        ("review", "我县基层就诊率由2020年的58%提高到65.3%。", [("基层就诊率", 65.3, "%", "=", "achieved")]),
        ("review", "开设老年病科的综合医院16家,占80%。",
         [("开设老年病科的综合医院", 16.0, "家", "=", "achieved"),
          ("开设老年病科的综合医院占比", 80.0, "%", "=", "achieved")]),
        ("unknown", "每千常住人口执业(助理)医师2.86人。",
         [("每千常住人口执业(助理)医师", 2.86, "人", "=", "achieved")]),
    ],
)
def test_records(role: str, text: str, expected: list[Row]) -> None:
    assert rows(text, role) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2019年,全市卫生健康系统围绕“1+5”重点改革发展攻坚工作主线,圆满完成2019年度目标任务。",
        "(一)强责任、筑防线。\n1.加强疫情防控组织领导。2、做实基本公卫服务。",
        "持续推进计生特殊家庭关怀关爱“三个全覆盖”,巩固落实联系人制度和家庭医生签约服务三个全覆盖。",
        "实施“323”攻坚行动,继续巩固完善“3+2+1”分级诊疗制度,推进“两卡融合、一网通办”。",
        "扎实开展建党100周年系列纪念活动,落实市委五届九次、十次全会精神,迎接第七轮巡查。",
        "入选138人才工程,通过互联互通标准化成熟度4级乙等测评,推进十四五规划编制。",
        "组织开展安全生产治本攻坚三年行动,均是近5年最好成绩,于2021年3月18日印发。",
        "按照《长沙市区域卫生规划(2016—2020年)》(长办发〔2017〕25号)要求,建立24小时监控机制。",
        "严格执行18项医疗质量安全核心制度,落实十项措施。",
        "全省第一家互联网医院建成运行。",
        "落实《关于做好8类人群健康服务的通知》,建设“3家医院、5个中心”,落实市委五届十一次全会精神。",
    ],
)
def test_no_records_for_years_ordinals_names_and_slogans(text: str) -> None:
    assert rows(text) == []


def test_qualifying_numbers_stay_in_the_metric_and_give_no_record() -> None:
    text = "为8.2万名60岁以上老年人免费接种流感疫苗,为540名0—6岁儿童开展孤独症筛查。"
    assert [r[:2] for r in rows(text, "plan")] == [
        ("60岁以上老年人免费接种流感疫苗", 82000.0), ("0—6岁儿童开展孤独症筛查", 540.0)]
    assert rows("孕产妇死亡率连续3年为0。") == [("孕产妇死亡率连续3年", 0.0, "", "=", "achieved")]


def test_a_total_the_next_figure_is_counted_in_is_no_record() -> None:
    assert [r[1:3] for r in rows("12项指标中有9项提前完成。")] == [(9.0, "项")]


def test_a_list_header_counts_what_it_lists() -> None:  # gold: seed 000 两个续建项目:, seed 004 省级6项:
    assert rows("两个续建项目:市中心医院内科病房大楼项目有序推进。") == [("续建项目", 2.0, "个", "=", "achieved")]
    assert rows("省级5项:为全市1万名老人免费体检。", "plan")[0] == ("省级", 5.0, "项", "=", "target")


def test_metric_drops_place_year_verbs_and_the_reports_own_place() -> None:
    found = rows("2022年,城关区全年新建社区卫生服务中心5个。", city="城关区")
    assert found == [("新建社区卫生服务中心", 5.0, "个", "=", "achieved")]
    assert rows("丽水市户籍老人免费接种肺炎疫苗11.11万人。", city="丽水市")[0][0] == "户籍老人免费接种肺炎疫苗"


def test_figures_sharing_a_clause() -> None:  # seed 000 and 003 sentences
    assert rows("183个事项100%零次跑、即办率96.72%。") == [
        ("183个事项", 100.0, "%", "=", "achieved"), ("即办率", 96.72, "%", "=", "achieved")]
    assert [r[:2] for r in rows("45家医院实现114项省内检查检验结果互认。")] == [
        ("医院", 45.0), ("省内检查检验结果互认", 114.0)]
    assert [r[:2] for r in rows("国家、省级、市级继教项目分别立项3项、32项、270项。")] == [
        ("国家继教项目立项", 3.0), ("省级继教项目立项", 32.0), ("市级继教项目立项", 270.0)]


def test_list_of_counts_each_with_its_own_noun() -> None:
    assert rows("全市累计巡诊2708次、派出医务人员7306人次、行驶21.26万公里。") == [  # seed 000
        ("巡诊", 2708.0, "次", "=", "achieved"),
        ("派出医务人员", 7306.0, "人次", "=", "achieved"),
        ("行驶", 212600.0, "公里", "=", "achieved"),
    ]
    assert [r[:2] for r in rows("新增3个、更新改造20个社区卫生服务站。")] == [
        ("新增社区卫生服务站", 3.0), ("更新改造社区卫生服务站", 20.0)]


def test_clause_naming_nothing_takes_the_subject_of_the_clause_before() -> None:
    text = "稳步推进母婴设施建设,新建7家,累计建成87家。"
    found = extract_from_text(text, role="review")
    assert [(r.metric, r.value) for r in found] == [("母婴设施建设新建", 7.0), ("母婴设施建设建成", 87.0)]
    assert all(r.sentence.startswith("稳步推进母婴设施建设") for r in found)  # the quote covers the subject


# --- offsets, metadata -------------------------------------------------------------------------


def test_offsets_point_at_the_quote_in_the_document() -> None:
    doc = "前言。\n城北区卫生健康局\n全区门诊量达356.2万人次,同比下降3.4%。孕产妇死亡率为12.3/10万。"
    start = doc.index("全区")
    found = extract_from_text(doc[start:], offset=start, doc_id="d1", city="城北区", year=2023, role="review",
                              section_path=("一、工作回顾",))
    assert [doc[r.start:r.end] for r in found] == [r.sentence for r in found]
    assert [r.sentence for r in found] == ["全区门诊量达356.2万人次", "全区门诊量达356.2万人次,同比下降3.4%",
                                           "孕产妇死亡率为12.3/10万"]
    assert {(r.doc_id, r.city, r.year, r.role, r.section_path) for r in found} == {
        ("d1", "城北区", 2023, "review", ("一、工作回顾",))}


def test_figure_is_the_number_as_written_inside_the_quote() -> None:
    text = "常住人口、重点人群签约率分别达58.62%、90.65%以上,新成立2—3个质控中心,服务群众1.86万人次。"
    found = extract_from_text(text, role="review")
    assert [r.figure for r in found] == ["58.62%", "90.65%以上", "2—3个", "1.86万人次"]
    assert all(r.figure in r.sentence for r in found)


def test_quotes_are_trimmed_clauses() -> None:
    found = extract_from_text("全年投入1.2亿元， 新建村卫生室12所 。", role="review")
    assert [r.sentence for r in found] == ["全年投入1.2亿元", "新建村卫生室12所"]


def test_full_width_text_keeps_offsets() -> None:
    text = "全县孕产妇系统管理率为９５．６％，比上年提高２．１个百分点。"
    found = extract_from_text(text, role="review")
    assert [(r.value, r.unit) for r in found] == [(95.6, "%"), (2.1, "百分点")]
    assert found[0].sentence == "全县孕产妇系统管理率为９５．６％"


def _chunk(**kw: object):
    from assistant.types import Chunk

    base = dict(chunk_id="c", doc_id="doc9", text="全县家庭医生签约率达60%以上。", start=100, end=116,
                section_path=("二、2025年工作要点",), heading="二、2025年工作要点", title="t", city="某县",
                doc_years=(2024, 2025), year=2025, role="plan", departments=(), token_count=10, embed_text="")
    return Chunk(**{**base, **kw})  # type: ignore[arg-type]


def test_extract_from_chunk_uses_the_chunk_metadata() -> None:
    (r,) = extract_from_chunk(_chunk())
    assert r == Indicator("doc9", "某县", 2025, "plan", "家庭医生签约率", 60.0, "%", "≥", "target",
                          ("二、2025年工作要点",), 100, 115, "全县家庭医生签约率达60%以上", "60%以上")
    (r,) = extract_from_chunk(_chunk(year=None, doc_years=(2021,), role="review"))
    assert (r.year, r.kind) == (2021, "achieved")
    (r,) = extract_from_chunk(_chunk(year=None, doc_years=(2021, 2022), role="unknown"))
    assert r.year is None


# --- invented passages: other places, years and wording -------------------------------------------

COUNTY_REVIEW = (
    "一、2023年工作回顾\n"
    "2023年,全县卫生健康工作取得新进展。全县孕产妇系统管理率为95.6%,比上年提高2.1个百分点;婴儿死亡率降至2.35‰。"
    "新建村卫生室12所,培训乡村医生860人次。截至年底,全县共有执业(助理)医师1523人,比上年增加36人。"
)
DISTRICT_PLAN = (
    "二、2026年工作要点\n"
    "(一)夯实基层。到2026年,全区每千人口执业(助理)医师数达到3.2人,二级以上医院平均住院日控制在8天以内。"
    "力争新增婴幼儿托位不少于500个,适龄儿童免疫规划疫苗接种率保持在95%以上。"
)
TOWN_MIXED = (
    "开展“323”攻坚行动,落实“两卡融合”,完成两个全覆盖。第三届健康知识竞赛于5月12日举行,"
    "12320热线接听来电4.2万人次。全镇卫生综合考核排名全县第1,法定报告传染病发病率为185.2/10万,同比下降12.5%。"
)


def test_county_review_passage() -> None:
    assert rows(COUNTY_REVIEW, city="某县") == [
        ("孕产妇系统管理率", 95.6, "%", "=", "achieved"),
        ("孕产妇系统管理率", 2.1, "百分点", "=", "change"),
        ("婴儿死亡率", 2.35, "‰", "=", "achieved"),
        ("新建村卫生室", 12.0, "所", "=", "achieved"),
        ("培训乡村医生", 860.0, "人次", "=", "achieved"),
        ("共有执业(助理)医师", 1523.0, "人", "=", "achieved"),
        ("共有执业(助理)医师", 36.0, "人", "=", "change"),
    ]


def test_district_plan_passage() -> None:
    assert rows(DISTRICT_PLAN, "plan") == [
        ("每千人口执业(助理)医师数", 3.2, "人", "=", "target"),
        ("二级以上医院平均住院日", 8.0, "天", "≤", "target"),
        ("新增婴幼儿托位", 500.0, "个", "≥", "target"),
        ("适龄儿童免疫规划疫苗接种率", 95.0, "%", "≥", "target"),
    ]


def test_town_passage_with_names_dates_and_ranks() -> None:
    assert rows(TOWN_MIXED) == [
        ("12320热线接听来电", 42000.0, "人次", "=", "achieved"),
        ("卫生综合考核", 1.0, "名", "=", "achieved"),
        ("法定报告传染病发病率", 185.2, "/10万", "=", "achieved"),
        ("法定报告传染病发病率", -12.5, "%", "=", "change"),
    ]


# --- metric names ----------------------------------------------------------------------------------


def test_normalize_metric() -> None:
    assert normalize_metric(" 全市２０２３年“优质服务基层行”达标率的") == "优质服务基层行达标率"
    assert normalize_metric("全市") == "全市"  # never emptied


def test_metric_similarity() -> None:
    assert metric_similarity("门诊智慧结算率", "公立医院门诊智慧结算率") == 1.0
    assert metric_similarity("“西学中”", "西学中结业人数") == 1.0
    assert 0.5 <= metric_similarity("高血压管理率", "高血压患者规范管理率") < 1.0
    assert metric_similarity("签约率", "死亡率") < 0.5
    assert metric_similarity("", "死亡率") == 0.0
    assert metric_similarity("率", "死亡率") < 1.0  # containment needs two characters


def test_rate_per_population_is_one_number() -> None:
    assert [(m.value, m.unit) for m in numbers_to_check("降至1.07/10万、控制在17/十万以下,达1.8件/千人")] == [
        (1.07, "/10万"), (17.0, "/10万"), (1.8, "件/千人")]


# --- the seeds -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_chunks():
    return parse_paths([SEEDS], Settings(_env_file=None).chunk)  # type: ignore[call-arg]


def test_every_seed_chunk_extracts_with_quotes_inside_the_chunk(seed_chunks) -> None:
    warm_up()
    total, t0 = 0, time.perf_counter()
    per_doc = {}
    for doc, chunks in seed_chunks:
        found = [(c, r) for c in chunks for r in extract_from_chunk(c)]
        for c, r in found:
            assert c.start <= r.start < r.end <= c.end
            assert doc.text[r.start:r.end] == r.sentence == c.text[r.start - c.start:r.end - c.start]
            assert r.metric and r.kind in ("achieved", "target", "change") and r.comparator in ("=", "≥", "≤")
            assert r.year in doc.meta.year_list and r.city == doc.meta.city
            assert not r.unit.startswith(("万", "亿"))
        per_doc[doc.source_path.rsplit("/", 1)[-1]] = len({(r.start, r.metric, r.value) for _, r in found})
        total += len(found)
    assert time.perf_counter() - t0 < 5.0
    assert total > 300 and min(per_doc.values()) >= 1  # 十堰's plan states one figure (8类 qualifies a noun)


def test_seed_sentences(seed_chunks) -> None:
    found = {(r.metric, r.value, r.unit, r.comparator, r.kind)
             for _, chunks in seed_chunks for c in chunks for r in extract_from_chunk(c)}
    assert {
        ("居民健康素养水平", 28.82, "%", "=", "achieved"),
        ("居民健康素养水平", 1.86, "百分点", "=", "change"),
        ("公立医院门诊智慧结算率", 71.64, "%", "=", "achieved"),
        ("住院智慧结算率", 60.43, "%", "=", "achieved"),
        ("肺结核报告发病率", -14.48, "%", "=", "change"),
        ("市级医院门急诊均次费用", 1.7, "%", "=", "change"),
        ("住院均次费用增幅", 5.0, "%", "≤", "target"),
        ("获批项目数量", 1.0, "名", "=", "achieved"),
        ("公立医院扭亏为盈占比", 60.0, "%", "≥", "achieved"),
        ("医疗服务收入占比", 32.0, "%", "≥", "target"),
        ("5岁以下儿童死亡率", 9.0, "‰", "≤", "target"),
        ("高质量发展指数", 5.0, "名", "=", "achieved"),
        ("新增托位", 20200.0, "个", "=", "achieved"),
        ("人均预期寿命", 82.5, "岁", "≥", "target"),
        ("市级医院出院患者手术占比", 35.0, "%", "≥", "target"),
    } <= found
    metrics = {m for m, *_ in found}
    assert not any(m.startswith(("全市", "2019年")) for m in metrics)


def test_records_are_frozen() -> None:
    (r,) = extract_from_text("签约率达60%。")
    with pytest.raises(AttributeError):
        r.value = 1.0  # type: ignore[misc]
    assert replace(r, value=1.0).value == 1.0
