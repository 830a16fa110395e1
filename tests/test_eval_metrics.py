"""Eval metrics on hand-made answers: perfect, empty and partly wrong predictions."""

from __future__ import annotations

import math

import pytest

from assistant.evals.gold import Evidence, GoldItem
from assistant.evals.metrics import (
    aggregate,
    aggregate_by_category,
    chunk_hits,
    citation_precision,
    citation_recall,
    cost_usd,
    docs_covered_at,
    evidence_ranks,
    evidence_recall_at,
    fact_present,
    fact_recall,
    facts_found,
    first_hit_rank,
    flatten,
    missing_numbers,
    normalize_fact,
    percentile,
    quote_found,
    quote_overlap,
    score_item,
    stage_seconds,
)
from assistant.types import Answer, Chunk, Citation, Refusal, ScoredChunk, SentenceCheck, Usage

LS = "000_02aee6cc86416636.txt"
DG = "003_7a622e524e24148d.txt"

Q_QUEUE = "市级医院排队平均时间缩短至3.15分钟"
Q_SIGN = "10类重点人群家庭医生签约覆盖率达75.09%"
Q_DG = "常住人口、重点人群签约率分别达58.62%、90.65%"


def chunk(cid: str, text: str, doc: str = LS, path: tuple[str, ...] = ()) -> Chunk:
    return Chunk(chunk_id=cid, doc_id=doc[:3], text=text, start=0, end=len(text), section_path=path,
                 heading=path[-1] if path else "", title="t", city=None, doc_years=(), year=None,
                 role="unknown", departments=(), token_count=0, embed_text=text,
                 source_path=f"/x/seeds/{doc}")


def ctx(*chunks: Chunk) -> tuple[ScoredChunk, ...]:
    return tuple(ScoredChunk(c, 1.0 / (i + 1)) for i, c in enumerate(chunks))


def cite(marker: int, c: Chunk, quote: str) -> Citation:
    return Citation(marker=marker, chunk_id=c.chunk_id, doc_id=c.doc_id, title="t", city=None, year=None,
                    section_path=c.section_path, quote=quote, start=0, end=len(quote),
                    source_path=c.source_path)


def answer(text: str = "", contexts: tuple[ScoredChunk, ...] = (), citations: tuple[Citation, ...] = (),
           refused: bool = False, sentences: tuple[SentenceCheck, ...] = (),
           timings: tuple[tuple[str, float], ...] = (), usage: Usage | None = None) -> Answer:
    return Answer(question="q", text=text, citations=citations, refusal=Refusal("no_evidence") if refused else None,
                  mode="extractive",
                  sentences=sentences, contexts=contexts, timings=timings, usage=usage or Usage())


def item(iid: str = "q", category: str = "single_fact", facts: tuple[tuple[str, ...], ...] = (("3.15分钟",),),
         evidence: tuple[Evidence, ...] = (Evidence(LS, Q_QUEUE),)) -> GoldItem:
    answerable = category != "unanswerable"
    return GoldItem(id=iid, question="q", category=category, answerable=answerable,
                    facts=facts if answerable else (), evidence=evidence if answerable else ())


RIGHT = chunk("c-right", f"公立医院门诊智慧结算率达71.64%,{Q_QUEUE}。流动医院巡诊2708次。")
OTHER = chunk("c-other", "加强院前医疗急救体系建设,完善急救网络。")
WRONG_DOC = chunk("c-wrongdoc", f"同样的话出现在别的文件:{Q_QUEUE}。", doc=DG)


# --- normalisation and facts --------------------------------------------------------------


def test_normalize_fact_folds_width_case_space_and_markers() -> None:
    assert normalize_fact("签约率达 ７５．０９％[2]") == "签约率达75.09%"
    assert normalize_fact("Rate  ＯＫ【1】 ok") == "rateokok"
    assert normalize_fact("3.15 分钟 [1][2]。") == "3.15分钟。"


def test_fact_present_any_variant() -> None:
    assert fact_present(("3.15分钟", "3.15 minutes"), "about 3.15 Minutes[1]")
    assert fact_present(("3.15分钟",), "缩短至３．１５　分钟")
    assert not fact_present(("3.15分钟",), "缩短至3.16分钟")


def test_fact_recall_and_split() -> None:
    groups = (("71.64%",), ("60.43%", "60.43％"), ("3.15分钟",))
    text = "门诊71.64%[1],住院60.43％[1]。"
    assert facts_found(groups, text) == (["71.64%", "60.43%"], ["3.15分钟"])
    assert fact_recall(groups, text) == pytest.approx(2 / 3)
    assert fact_recall((), "anything") == 1.0
    assert fact_recall(groups, "") == 0.0


# --- quotes and retrieval ------------------------------------------------------------------


def test_quote_overlap_accepts_split_quotes_from_60_percent() -> None:
    quote = "0123456789"
    assert quote_overlap(quote, "xx0123456789yy") == 1.0
    assert quote_overlap(quote, "……456789") == pytest.approx(0.6)
    assert quote_found(quote, "……456789")
    assert quote_overlap(quote, "……56789") == pytest.approx(0.5)
    assert not quote_found(quote, "……56789")
    assert quote_found("市级医院排队 平均时间", "市级医院排队平均时间")  # whitespace ignored
    assert quote_overlap("", "abc") == 0.0


def test_chunk_hits_needs_same_document() -> None:
    ev = Evidence(LS, Q_QUEUE)
    assert chunk_hits(RIGHT, ev)
    assert not chunk_hits(WRONG_DOC, ev)
    assert not chunk_hits(OTHER, ev)


def test_heading_quote_hits_a_chunk_under_that_heading() -> None:
    path = ("一、2019年卫生健康工作总结", "(四)卫生服务支撑得到强化")
    under = chunk("c-sec", "1.老龄健康工作有力推进。", path=path)
    assert chunk_hits(under, Evidence(LS, "(四)卫生服务支撑得到强化。"))
    assert not chunk_hits(under, Evidence(LS, "(五)党建宣传工作持续强化。"))


def test_first_hit_rank_and_evidence_ranks() -> None:
    evs = (Evidence(LS, Q_QUEUE), Evidence(LS, Q_SIGN))
    contexts = ctx(OTHER, WRONG_DOC, RIGHT)
    assert first_hit_rank(contexts, evs) == 3
    assert evidence_ranks(contexts, evs) == [3, None]
    assert first_hit_rank((), evs) is None
    assert evidence_recall_at([3, None], 5) == 0.5
    assert evidence_recall_at([3, None], 2) == 0.0
    assert evidence_recall_at([], 5) == 1.0


def test_doc_coverage_for_comparisons() -> None:
    evs = (Evidence(LS, Q_SIGN), Evidence(LS, Q_QUEUE), Evidence(DG, Q_DG))
    assert docs_covered_at([1, None, None], evs, 5) == 0.5
    assert docs_covered_at([1, None, 4], evs, 5) == 1.0
    assert docs_covered_at([1, None, 6], evs, 5) == 0.5


# --- citations ------------------------------------------------------------------------------


def test_citation_precision_and_recall() -> None:
    it = item(facts=(("3.15分钟",), ("75.09%",)), evidence=(Evidence(LS, Q_QUEUE), Evidence(LS, Q_SIGN)))
    sign = chunk("c-sign", f"{Q_SIGN},居民健康素养水平达28.82%。")
    good = cite(1, RIGHT, Q_QUEUE)
    by_fact = cite(2, OTHER, "签约覆盖率达75.09%")  # chunk holds no evidence, but the quote states a fact
    bad = cite(3, OTHER, "加强院前医疗急救体系建设")
    ans = answer("x", ctx(RIGHT, OTHER, sign), (good, by_fact, bad))
    assert citation_precision(ans, it) == pytest.approx(2 / 3)
    assert citation_recall(ans, it) == 0.5  # Q_SIGN's chunk is retrieved but never cited
    assert citation_recall(answer("x", ctx(RIGHT, sign), (good, cite(2, sign, "居民健康素养水平达28.82%"))),
                           it) == 1.0
    assert citation_precision(answer("x", ctx(RIGHT)), it) is None
    assert citation_recall(answer("x", ctx(RIGHT)), it) == 0.0


def test_citation_of_same_text_in_another_document_does_not_count() -> None:
    it = item()
    ans = answer("3.15分钟", ctx(WRONG_DOC), (cite(1, WRONG_DOC, "别的文件"),))
    assert citation_precision(ans, it) == 0.0
    assert citation_recall(ans, it) == 0.0


# --- grounding, speed, cost -------------------------------------------------------------------


def test_missing_numbers_against_cited_quotes() -> None:
    c = cite(1, RIGHT, "公立医院门诊智慧结算率达71.64%")
    assert missing_numbers(answer("2019年门诊智慧结算率达71.64%[1]。", citations=(c,))) == []
    assert missing_numbers(answer("门诊智慧结算率达71.64%,住院60.43%[1]。", citations=(c,))) == ["60.43%"]
    assert missing_numbers(answer("没有找到 5 项", refused=True)) == []


def test_missing_numbers_leave_out_what_the_verifier_accepted_as_computed() -> None:
    c = cite(1, RIGHT, "公立医院门诊智慧结算率达71.64%、住院智慧结算率60.43%")
    text = "门诊71.64%[1]。门诊高出11.21个百分点[1]（计算：71.64% − 60.43% = 11.21个百分点）。"
    derived = "门诊高出11.21个百分点[1]（计算：71.64% − 60.43% = 11.21个百分点）。"
    checks = (SentenceCheck("门诊71.64%[1]。", (1,), True), SentenceCheck(derived, (1,), True, "computed"))
    assert missing_numbers(answer(text, citations=(c,), sentences=checks)) == []
    flagged = (checks[0], SentenceCheck(checks[1].text, (1,), False, "number not in cited source", ("11.21个百分点",)))
    assert missing_numbers(answer(text, citations=(c,), sentences=flagged)) == ["11.21个百分点", "11.21个百分点"]


def test_stage_seconds_total_excludes_first_token() -> None:
    st = stage_seconds((("analyze", 0.1), ("embed", 0.2), ("generate", 1.0), ("first_token", 0.4),
                        ("verify", 0.2), ("embed", 0.1)))
    assert st["embed"] == pytest.approx(0.3)
    assert st["total"] == pytest.approx(1.6)
    assert stage_seconds(())["total"] == 0.0


def test_percentile_and_cost() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert percentile([], 50) == 0.0
    assert cost_usd(Usage(1000, 200), 0.15, 0.60) == pytest.approx((150 + 120) / 1e6)
    assert cost_usd(Usage(), 0.15, 0.60) == 0.0


# --- whole items and aggregation -------------------------------------------------------------


def _perfect() -> tuple[GoldItem, Answer]:
    it = item("perfect")
    ans = answer(f"{Q_QUEUE}[1]。", ctx(RIGHT, OTHER), (cite(1, RIGHT, Q_QUEUE),),
                 sentences=(SentenceCheck(f"{Q_QUEUE}[1]。", (1,), True),),
                 timings=(("embed", 0.02), ("retrieve", 0.01), ("generate", 0.01)))
    return it, ans


def _empty() -> tuple[GoldItem, Answer]:
    return item("empty"), answer("", timings=(("embed", 0.04),))


def _partly_wrong() -> tuple[GoldItem, Answer]:
    it = item("partial", "comparison", facts=(("3.15分钟",), ("58.62%",)),
              evidence=(Evidence(LS, Q_QUEUE), Evidence(DG, Q_DG)))
    text = "丽水:排队平均时间缩短至3.15分钟[1]。东莞:签约率达60%,共5000人[2]。"
    citations = (cite(1, RIGHT, Q_QUEUE), cite(2, OTHER, "加强院前医疗急救"))
    ans = answer(text, ctx(OTHER, WRONG_DOC, RIGHT), citations,
                 sentences=(SentenceCheck("丽水…[1]。", (1,), True),
                            SentenceCheck("东莞…[2]。", (2,), False)),
                 timings=(("embed", 0.06), ("generate", 0.02)), usage=Usage(1000, 100))
    return it, ans


def test_perfect_prediction() -> None:
    it, ans = _perfect()
    s = score_item(it, ans, k=5)
    assert (s.first_hit_rank, s.fact_recall, s.fact_exact, s.passed) == (1, 1.0, True, True)
    assert (s.citation_precision, s.citation_recall) == (1.0, 1.0)
    assert s.failure_reasons() == []
    m = aggregate([s])
    for name in ("hit@1", "hit@3", "hit@5", "mrr", "evidence_recall@5", "evidence_full@5", "doc_coverage@5",
                 "fact_recall", "fact_exact", "citation_precision", "citation_recall", "pass_rate"):
        assert m[name] == 1.0, name
    assert m["unsupported_rate"] == 0.0
    assert m["false_refusal_rate"] == 0.0
    assert "refusal_accuracy" not in m  # no unanswerable items: not reported as 0
    assert m["latency_p50_total"] == pytest.approx(0.04)


def test_empty_prediction() -> None:
    it, ans = _empty()
    s = score_item(it, ans, k=5)
    assert s.first_hit_rank is None
    assert s.facts_missing == ("3.15分钟",)
    assert s.citation_precision is None and s.citation_recall == 0.0
    assert s.failure_reasons() == ["retrieval_miss", "facts_missing"]
    m = aggregate([s])
    for name in ("hit@1", "hit@5", "mrr", "fact_recall", "fact_exact", "pass_rate", "citation_recall"):
        assert m[name] == 0.0, name
    assert "citation_precision" not in m and "unsupported_rate" not in m


def test_partly_wrong_prediction() -> None:
    it, ans = _partly_wrong()
    s = score_item(it, ans, k=5, price_prompt_per_m=0.15, price_completion_per_m=0.60)
    assert s.evidence_ranks == (3, None)
    assert s.first_hit_rank == 3
    assert s.doc_coverage == 0.5
    assert s.facts_found == ("3.15分钟",) and s.facts_missing == ("58.62%",)
    assert s.citation_precision == 0.5
    assert s.citation_recall == 0.5
    assert (s.unsupported_sentences, s.sentences) == (1, 2)
    assert s.numbers_missing == ("60%", "5000人")
    assert s.cost_usd == pytest.approx(0.00021)
    assert s.failure_reasons() == ["partial_evidence", "facts_missing"]
    m = aggregate([s])
    assert (m["hit@1"], m["hit@3"], m["hit@5"]) == (0.0, 1.0, 1.0)
    assert m["mrr"] == pytest.approx(1 / 3)
    assert m["evidence_recall@5"] == 0.5 and m["evidence_full@5"] == 0.0
    assert m["fact_recall"] == 0.5 and m["fact_exact"] == 0.0
    assert m["unsupported_rate"] == 0.5
    assert m["numbers_missing_per_answer"] == 2.0 and m["answers_with_missing_numbers"] == 1.0
    assert m["prompt_tokens_mean"] == 1000.0 and m["cost_per_answer_usd"] == pytest.approx(0.00021)


def test_refusals() -> None:
    na = item("na", "unanswerable")
    scores = [
        score_item(na, answer("所提供的报告中没有找到。", refused=True)),
        score_item(item("na2", "unanswerable"), answer("瞎答的内容[1]。")),
        score_item(item("ok"), answer(f"{Q_QUEUE}[1]。", ctx(RIGHT))),
        score_item(item("fr"), answer("所提供的报告中没有找到。", ctx(RIGHT), refused=True)),
    ]
    assert [s.passed for s in scores] == [True, False, True, False]
    assert scores[1].failure_reasons() == ["answered_unanswerable"]
    assert scores[3].failure_reasons() == ["false_refusal"]
    m = aggregate(scores)
    assert m["refusal_accuracy"] == 0.5
    assert m["false_refusal_rate"] == 0.5
    assert m["hit@1"] == 1.0  # retrieval is scored on answerable items only
    assert m["n_items"] == 4 and m["n_answerable"] == 2 and m["pass_rate"] == 0.5


def test_aggregate_overall_and_per_category() -> None:
    scores = [score_item(*pair, k=5) for pair in (_perfect(), _empty(), _partly_wrong())]
    overall = aggregate(scores)
    assert overall["hit@5"] == pytest.approx(2 / 3)
    assert overall["mrr"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert overall["fact_recall"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert overall["citation_precision"] == pytest.approx((1.0 + 0.5) / 2)  # items without citations skipped
    assert overall["unsupported_rate"] == pytest.approx(1 / 3)  # pooled over sentences
    assert overall["latency_p50_total"] == pytest.approx(0.04)
    assert overall["latency_p50_embed"] == pytest.approx(0.04)
    assert overall["latency_p50_retrieve"] == pytest.approx(0.0)  # missing stage counts as 0
    per = aggregate_by_category(scores)
    assert list(per) == ["single_fact", "comparison"]
    assert per["single_fact"]["hit@5"] == 0.5
    assert per["comparison"]["fact_recall"] == 0.5
    flat = flatten(overall, per)
    assert flat["comparison/hit@1"] == 0.0
    assert flat["hit@5"] == overall["hit@5"]
    assert all(isinstance(v, float) and not math.isnan(v) for v in flat.values())


def test_aggregate_with_custom_k() -> None:
    it, ans = _partly_wrong()
    m = aggregate([score_item(it, ans, k=2)])
    assert m["hit@2"] == 0.0 and "evidence_recall@2" in m and m["evidence_recall@2"] == 0.0
    assert aggregate([]) == {"n_items": 0.0, "n_answerable": 0.0, "n_unanswerable": 0.0}
