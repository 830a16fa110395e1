"""assistant.indicator_match and assistant.indicator_table: fuzzy metric matching, near misses, conflicts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from assistant.errors import AssistantError
from assistant.indicator_match import (
    MATCH_THRESHOLD,
    MetricMatcher,
    compatible,
    find_conflicts,
    groups,
    is_near,
    ngram_score,
    other_group,
    surely_other,
)
from assistant.indicator_store import IndicatorStore
from assistant.indicator_table import IndicatorTable, resolve_city
from assistant.indicators import IndicatorRecord, extract_document
from assistant.types import Chunk


def recs(doc: str, text: str, city: str = "东莞市", year: int = 2024, role: str = "review") -> list[IndicatorRecord]:
    c = Chunk(chunk_id=f"{doc}-c", doc_id=doc, text=text, start=0, end=len(text), section_path=(), heading="",
              title=f"《{doc}》", city=city, doc_years=(year,), year=year, role=role,  # type: ignore[arg-type]
              departments=(), token_count=5, embed_text=text)
    return extract_document([c])


SIGNING = recs("d1", "常住人口、重点人群签约率分别达58.62%、90.65%。") + \
    recs("d2", "家庭医生签约服务率达45%。", city="丽水市") + recs("d3", "孕产妇死亡率为5/10万。")


def test_signing_rate_finds_every_signing_rate_each_labelled() -> None:
    found = MetricMatcher().match("签约率", SIGNING)
    assert {m.indicator.metric for m in found} == {"常住人口签约率", "重点人群签约率", "家庭医生签约服务率"}
    labels = {m.indicator.metric: m.label for m in found}
    assert labels["重点人群签约率"] == "签约率 → 重点人群签约率（包含）"
    assert labels["家庭医生签约服务率"] == "签约率 → 家庭医生签约服务率（同义）"
    assert all(m.score >= MATCH_THRESHOLD and m.matched == "签约率" for m in found)


@pytest.mark.parametrize(("asked", "metric", "how"), [
    ("孕产妇死亡率", "孕产妇死亡率", "同名"),
    ("健康素养水平", "居民健康素养水平", "包含"),
    ("县域就诊率", "县域内就诊率", "近似"),
    ("居民健康素养水平", "市民健康素养水平", "同义"),
    ("公立医院医疗服务收入占比", "医疗服务收入占比", "较宽"),
    ("常住人口的家庭医生签约率", "常住人口签约率", "同义"),
])
def test_matches(asked: str, metric: str, how: str) -> None:
    s = ngram_score(asked, metric)
    assert s.score >= MATCH_THRESHOLD and s.how == how


@pytest.mark.parametrize(("asked", "metric"), [
    ("常住人口签约率", "重点人群签约率"),  # another population group
    ("重点人群签约率", "家庭医生签约率"),  # the general rate is not the key groups'
    ("孕产妇死亡率", "婴儿死亡率"),
    ("居民健康素养水平", "居民心理健康素养水平"),  # another domain
    ("居民心理健康素养水平", "居民健康素养水平"),
    ("重点人群签约率", "常住人口签约率"),
])
def test_near_misses_do_not_match_but_are_named(asked: str, metric: str) -> None:
    assert ngram_score(asked, metric).score < MATCH_THRESHOLD
    assert is_near(asked, metric) and not compatible(asked, metric)


@pytest.mark.parametrize(("asked", "metric", "other"), [
    ("常住人口签约率", "重点人群签约率", True),  # another population group
    ("重点人群签约率", "家庭医生签约率", True),  # the question narrows to a group the record lacks
    ("居民心理健康素养水平", "居民健康素养水平", True),  # another domain
    ("居民签约率", "常住人口签约率", False),  # both the whole population
    ("一岁以内宝宝的死亡率", "婴儿死亡率", False),  # the group in everyday words: maybe the same measure
    ("65岁以上老人认知功能筛查率", "65岁以上老年人认知功能筛查率", False),  # 老人 is 老年人
    ("病人满意度", "患者满意度", False),
    ("老人签约率", "儿童签约率", True),
    ("日间手术占比", "微创手术占比", True),  # a qualifier of its own
])
def test_a_record_is_surely_another_measure_only_by_domain_or_group(asked: str, metric: str, other: bool) -> None:
    assert surely_other(asked, metric) is other


def test_everyday_group_names_are_the_reports_groups() -> None:
    assert groups("给老人查认知功能") == {"老年人"} and groups("哪个城市的病人最多") == {"患者"}
    assert not other_group("65岁以上老人认知功能筛查覆盖多大比例", "65岁以上老年人认知功能筛查率达100%")
    assert other_group("老人签约率是多少", "重点人群签约率达90%")


def test_a_broader_name_may_be_the_asked_count_but_not_the_asked_rate() -> None:
    assert compatible("新增3岁以下婴幼儿托位", "新增托位")  # a count: fewer words, maybe the same thing
    assert not compatible("常住人口签约率", "签约率")  # a rate over a group the record does not name
    assert not is_near("常住人口签约率", "门诊智慧结算率")  # another topic altogether


def unit(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_embeddings_rank_and_promote_only_compatible_paraphrases() -> None:
    vectors = {"病床使用率": unit([1, 0, 0]), "床位使用率": unit([1, 0.05, 0]), "病床周转率": unit([1, 0.6, 0])}
    calls: list[list[str]] = []

    def embed(names: Sequence[str]) -> np.ndarray:
        calls.append(list(names))
        return np.vstack([vectors[n] for n in names])

    m = MetricMatcher(embed)
    assert m.score("病床使用率", "床位使用率", cosine=0.99).how == "语义相近"  # a paraphrase the vectors vouch for
    assert m.score("病床使用率", "床位使用率", cosine=0.9).score < MATCH_THRESHOLD  # ...and only then
    assert m.score("常住人口签约率", "重点人群签约率", cosine=0.999).score < MATCH_THRESHOLD  # never across groups
    plain = MetricMatcher().score("县域就诊率", "县域内就诊率").score
    assert m.score("县域就诊率", "县域内就诊率", cosine=0.97).score > plain  # a bonus for ranking
    records = recs("d9", "病床周转率达30次,床位使用率达85%。")
    found = m.match("病床使用率", records)
    assert [(r.indicator.metric, r.how) for r in found] == [("床位使用率", "语义相近")]
    m.match("病床使用率", records)
    assert sum(len(c) for c in calls) == 3  # each name embedded once per process


def test_find_conflicts_across_reports_only() -> None:
    a = recs("report-a", "常住人口签约率达58.62%。")
    b = recs("report-b", "全市常住人口家庭医生签约率为59.1%。")  # another report, same measure, other value
    same = recs("report-c", "常住人口签约率达58.62%。")  # agrees: no conflict
    inside = recs("report-a2", "新建村卫生室12所,新建村卫生室13所。")  # one report twice: not a conflict
    groups = find_conflicts(a + b + same + inside)
    assert [[r.indicator.value for r in g] for g in groups] == [[58.62, 59.1, 58.62]]
    assert find_conflicts(recs("x", "签约率达60%。", year=2024) + recs("y", "签约率达70%。", year=2025)) == []


def test_table_query_filters_and_labels() -> None:
    store = IndicatorStore(None)
    for r in (SIGNING[:2], SIGNING[2:3], SIGNING[3:]):
        store.replace_doc(r[0].indicator.doc_id, r)
    table = IndicatorTable(store)
    assert len(table.query()) == 4
    assert [m.indicator.metric for m in table.query(metric="签约率", city="东莞", known_cities=["东莞市", "丽水市"])] \
        == ["常住人口签约率", "重点人群签约率"]
    assert table.query(metric="签约率", year=2030) == []
    assert [m.indicator.kind for m in table.query(kind="achieved")] == ["achieved"] * 4
    with pytest.raises(AssistantError, match="Unknown indicator kind 'goal'") as info:
        table.query(kind="goal")
    assert "achieved, target, change" in info.value.hint
    assert resolve_city("东莞", ["东莞市"]) == "东莞市" and resolve_city("东", ["东莞市", "东营市"]) == "东"
