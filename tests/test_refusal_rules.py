"""What a figure question may be answered with: the population group a rate is taken over, the
units a count is written in, and which sentence the refusal gate judges."""

from __future__ import annotations

from dataclasses import replace

import pytest

from assistant.evidence import FEATURES, GATE_FEATURES, Candidate, SentenceModel, has_answer_type, score
from assistant.extractive import standing
from assistant.gazetteer import Gazetteer
from assistant.indicator_match import other_group
from assistant.query import QueryInfo, analyze
from assistant.types import Chunk, ScoredChunk

GAZ = Gazetteer.default()


def _info(question: str) -> QueryInfo:
    return analyze(question, corpus_cities=["青岭县"], corpus_years=[2024], gazetteer=GAZ)


@pytest.mark.parametrize(("asked", "stated", "other"), [
    ("常住人口签约率目标是多少", "重点人群签约覆盖率巩固在85%以上", True),
    ("重点人群签约率是多少", "常住人口签约率达40%", True),
    ("居民签约率是多少", "常住人口签约率达40%", False),  # both the whole population
    ("签约率是多少", "重点人群签约率90%", False),  # the question names no group
    ("老年人健康管理率是多少", "老年人、儿童健康管理率分别达72%、90%", False),  # it names the asked one too
    ("哪个城市的签约率最高", "重点人群签约率90%", False),  # 哪个城市 asks for a place, not a group
])
def test_a_rate_of_one_population_group_is_not_the_rate_of_another(asked: str, stated: str, other: bool) -> None:
    assert other_group(asked, stated) is other


@pytest.mark.parametrize(("question", "kind"), [
    ("青岭县2024年计划内疫苗的接种率具体是多少?", "rate"),
    ("青岭县2024年签约率的目标值是多少?", "rate"),
    ("青岭县2024年出生人口是多少?", "number"),
])
def test_a_rate_question_is_read_through_filler_words(question: str, kind: str) -> None:
    assert _info(question).answer_type == kind


@pytest.mark.parametrize(("question", "units"), [
    ("青岭县2024年出生人口预计是多少?", {"人"}),
    ("青岭县2024年计生奖扶的钱发给了多少人?一共发了多少?", {"人", "元"}),
    ("青岭县2024年人均预期寿命是多少?", {"岁"}),
    ("青岭县2024年总费用增幅控制在多少?", set()),  # a change of a cost is a percentage
    ("青岭县2024年新建了多少个村卫生室?", set()),  # 个 says nothing of what is counted
    ("青岭县2024年群众看病排队平均要等多久?", {"分钟", "小时", "天"}),  # a duration, in units of time
    ("青岭县2024年多久开展一次健康体检?", set()),  # how often: a count of times may answer
])
def test_the_units_a_count_is_written_in_come_from_what_it_counts(question: str, units: set[str]) -> None:
    assert units <= set(_info(question).units)
    assert bool(units) == bool(_info(question).units)


def test_a_count_is_not_answered_by_a_share_nor_a_duration_by_a_count() -> None:
    assert not has_answer_type("count", "手术占比、微创手术占比分别达35%、15%以上。", [])
    assert has_answer_type("count", "全市共有三级甲等医院4家,占比20%。", [])
    units = _info("青岭县2024年群众看病排队平均要等多久?").units
    assert not has_answer_type("number", "整合1套指挥体系、8个医疗单元和9家定点医院。", [], units)
    assert has_answer_type("number", "排队平均时间缩短到3.15分钟。", [], units)


def test_a_count_of_people_is_not_answered_by_a_count_of_measures() -> None:
    units = _info("青岭县2024年出生人口预计是多少?").units
    assert not has_answer_type("number", "全面落实“三个全覆盖”。", [], units)
    assert has_answer_type("number", "全县常住人口出生6.47万人。", [], units)
    assert has_answer_type("number", "全县出生2625。", [], units)  # a bare number may be the count
    assert has_answer_type("number", "全面落实“三个全覆盖”。", [])  # no units asked: any figure


def _cand(text: str, rank: float, *, key_hit: bool = False, type_miss: bool = False, role: str = "review") -> Candidate:
    chunk = Chunk(chunk_id=text[:6], doc_id="d", text=text, start=0, end=len(text), section_path=(), heading="",
                  title="青岭县2024年工作总结", city="青岭县", doc_years=(2024,), year=2024, role=role,  # type: ignore[arg-type]
                  departments=(), token_count=len(text), embed_text=text, source_path="d.txt")
    f = [0.0] * len(FEATURES)
    f[FEATURES.index("rank_inv")] = rank
    f[FEATURES.index("type_miss")] = float(type_miss)
    f[FEATURES.index("type_match")] = float(not type_miss)
    return Candidate(0, ScoredChunk(chunk, 1.0), 0, len(text), text, tuple(f), True, key_hit)


def _model() -> SentenceModel:
    """Ranks by ``rank_inv``; the gate reads only the margin, so a runner-up far behind the best
    gets a high probability from a negative weight, which is what the gate was never fitted on."""
    w = [0.0] * len(FEATURES)
    w[FEATURES.index("rank_inv")] = 1.0
    gate = [0.0] * len(GATE_FEATURES)
    gate[1] = -3.0  # margin
    return SentenceModel(tuple(w), 0.0, threshold=0.7, gate=tuple(gate), gate_bias=0.0)


def test_the_gate_judges_a_question_by_its_best_eligible_sentence() -> None:
    info = _info("青岭县2024年出生人口是多少?")
    heading = _cand("（六）人口发展", 5.0, type_miss=True)  # ineligible: states no figure
    best = _cand("每千人口卫生人员3.3人。", 2.0)
    far = _cand("至少有1名全科医生。", 0.5)
    scored = score([heading, best, far], _model(), lambda c: not c.feature("type_miss"))
    by = {c.text: c for c in scored}
    # The margin is over the eligible sentences: the heading does not make the best one a runner-up.
    assert by[best.text].score < 0.7 < by[far.text].score
    assert standing(scored, info, 0.7) == []  # the best does not stand, so nothing below it does
    keyed = [replace(c, key_hit=True) if c.text == far.text else c for c in scored]
    assert [c.text for c in standing(keyed, info, 0.7)] == [far.text]  # unless it states the asked figure


def test_a_heading_line_answers_only_a_question_about_headings() -> None:
    from assistant.extractive import eligible

    head = _cand("（十八）加强重大疾病防治", 1.0)
    head = replace(head, features=tuple(1.0 if f == "label_line" else v for f, v in zip(FEATURES, head.features,
                                                                                           strict=True)))
    assert not eligible(head, _info("青岭县2024年重大疾病防治具体点了哪些病?"))
    assert eligible(head, _info("青岭县2024年重大疾病防治写在哪个部分?"))


def test_who_issued_a_report_and_when_is_read_from_its_signature(tmp_path) -> None:
    from conftest import make_settings

    from assistant.facade import Assistant
    from assistant.testing import HashEmbedder

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "青岭县2024年卫生健康工作要点.txt").write_text(
        "青岭县2024年卫生健康工作要点\n一、基层卫生\n全面开展家庭医生签约服务，全县签约率达到45%。\n"
        "二、公共卫生\n全县儿童免疫规划疫苗接种率达到98.5%。\n青岭县卫生健康局\n二〇二四年三月五日\n", encoding="utf-8")
    (tmp_path / "r" / "白沙县2024年卫生健康工作总结.txt").write_text(
        "白沙县2024年卫生健康工作总结\n一、基层卫生\n白沙县家庭医生签约率达到41%。\n", encoding="utf-8")
    a = Assistant(make_settings(tmp_path), embedder=HashEmbedder())
    a.ingest([tmp_path / "r"])
    ans = a.ask("青岭县2024年卫生健康工作要点是哪个单位印发的?落款日期是哪天?")
    assert not ans.refused
    assert "青岭县卫生健康局" in ans.text and "二〇二四年三月五日" in ans.text
    assert ans.citations and "青岭县卫生健康局\n二〇二四年三月五日" in ans.citations[0].quote
    # A report without a signature is answered (or refused) the usual way, never with another's.
    other = a.ask("白沙县2024年卫生健康工作总结是哪个单位印发的?")
    assert "青岭县" not in other.text


def test_a_list_question_keeps_the_clause_that_enumerates_not_the_one_with_numbers() -> None:
    from assistant.evidence import list_items
    from assistant.extractive import _trim
    from assistant.text import terms

    text = ("便民服务改革持续深化，建成城南远程会诊平台、双向转诊系统、检查结果互认系统，"
            "线上预约挂号全面推开，门诊智慧结算率、住院智慧结算率分别达70.5%、61.2%，平均排队时间缩短至4分钟。")
    q = "青岭县2024年为方便看病建成了哪几个平台或系统?"
    weights = {t: 1.0 for t in terms(q) if len(t) > 1}
    a, b = _trim(text, 0, len(text), weights, terms, "list", 60)
    assert "远程会诊平台、双向转诊系统、检查结果互认系统" in text[a:b]
    assert list_items("甲、乙、丙、丁、戊") == 1.0 and list_items("没有列举。") == 0.0


def test_a_passage_without_the_identifier_the_question_names_does_not_answer() -> None:
    from assistant.evidence import QuestionShape
    from assistant.extractive import eligible

    info = analyze("九龙巴士32M线来往于哪些地方?", corpus_cities=[], corpus_years=[], gazetteer=GAZ)
    assert QuestionShape.of(info).ids == ("32m",)
    assert QuestionShape.of(_info("青岭县2024年签约率是多少?")).ids == ()  # a filter year is no identifier
    assert QuestionShape.of(analyze("What is the HPV rate?", corpus_cities=[], corpus_years=[],
                                    gazetteer=GAZ)).ids == ()  # English questions: every word would be one
    other = _cand("九龙巴士95M线来往翠林及观塘。", 1.0)
    missing = replace(other, features=tuple(1.0 if f == "ids_missing" else v
                                            for f, v in zip(FEATURES, other.features, strict=True)))
    assert eligible(other, info) and not eligible(missing, info)


@pytest.mark.parametrize(("question", "achieved"), [
    ("青岭县2024年实际建成了几个村卫生室?", True),
    ("青岭县2024年居民健康素养水平最终达到了多少?", True),
    ("What was the actual signing rate of Qingling County in 2024?", True),
    ("青岭县2024年村卫生室实际建成几个?2025年计划建几个?", False),  # both sides asked
    ("青岭县2024年要求大病住院费用实际报销比例不低于多少?", False),  # a required level
    ("青岭县2024年建成了几个村卫生室?", False),  # nothing says it must be the result
])
def test_a_question_may_ask_for_what_was_actually_achieved(question: str, achieved: bool) -> None:
    assert _info(question).wants_achieved is achieved


def test_an_aim_does_not_answer_what_was_actually_achieved() -> None:
    from assistant.extractive import eligible, states_target

    info = _info("青岭县2024年实际建成了几个村卫生室?")
    plan = _cand("新建村卫生室12个。", 1.0, key_hit=True, role="plan")
    aim = _cand("力争建成村卫生室12个。", 1.0, key_hit=True)
    done = _cand("全年建成村卫生室9个。", 1.0, key_hit=True)
    assert states_target(plan) and states_target(aim) and not states_target(done)
    assert not eligible(plan, info) and not eligible(aim, info) and eligible(done, info)
    assert eligible(plan, _info("青岭县2024年计划建成几个村卫生室?"))  # a plan answers for the plan
    named = _cand("大病住院费用实际报销比例达到90%。", 1.0, key_hit=True, role="plan")
    assert not states_target(named)  # 实际 is part of the measure's name here


@pytest.mark.parametrize("question", [
    "青岭县2025年体重管理门诊写在哪个大板块里?",
    "青岭县2025年体重管理门诊放在哪个大块下面?",
    "青岭县2025年体重管理门诊在哪一部分?",
])
def test_a_question_about_where_a_task_is_written_is_an_outline_question(question: str) -> None:
    assert _info(question).wants_heading


def test_which_part_states_a_task_is_read_off_the_sentence_the_model_found() -> None:
    from assistant.extractive import _located_answer
    from assistant.verification import verify_answer

    text = "二、2025年工作安排\n（三）做优社区卫生服务\n推动每个社区卫生服务中心开设体重管理门诊,新增家庭病床300张。"
    path = ("二、2025年工作安排", "（三）做优社区卫生服务")
    sent = "推动每个社区卫生服务中心开设体重管理门诊,新增家庭病床300张。"
    a = text.index(sent)
    chunk = replace(_cand(text, 1.0).sc.chunk, section_path=path, heading=path[-1], role="plan")
    cand = replace(_cand(sent, 1.0), sc=ScoredChunk(chunk, 1.0), start=a, end=a + len(sent))
    draft = _located_answer(cand, [chunk])
    assert draft is not None
    assert draft.text.startswith("该内容属于「二、2025年工作安排」[1] › 「（三）做优社区卫生服务」[2]。")
    assert [c.quote for c in draft.citations] == [*path, sent]  # each heading and the sentence, quoted
    checked = verify_answer(draft.text, dict(draft.evidence))
    assert all(s.supported for s in checked.sentences), checked.sentences  # 300张 is in the quoted sentence


def test_where_a_task_is_written_does_not_change_between_runs() -> None:
    """Two sections that cover the question equally: the better-retrieved one is named, whatever
    order the process's string hashing would give a set of them."""
    from assistant.extractive import _heading_answer
    from assistant.text import terms

    def chunk(ordinal: int, top: str, sub: str, body: str) -> Chunk:
        text = f"{top}\n{sub}\n{body}"
        base = _cand(text, 1.0).sc.chunk
        return replace(base, chunk_id=f"c{ordinal}", text=text, start=ordinal * 1000, end=ordinal * 1000 + len(text),
                       section_path=(top, sub), heading=sub, ordinal=ordinal)

    a = chunk(0, "一、深化改革", "(二)家庭医生签约服务", "推进家庭医生签约服务。")
    b = chunk(1, "五、人口工作", "(九)家庭医生签约服务", "推进家庭医生签约服务。")
    info = _info("青岭县2024年家庭医生签约服务写在哪个部分?")
    weights = {t: 1.0 for t in terms(info.question) if len(t) > 1 and t not in ("青岭县", "2024", "哪个", "部分")}
    first = _heading_answer(info, [ScoredChunk(a, 1.0), ScoredChunk(b, 0.9)], weights, terms, [a, b])
    second = _heading_answer(info, [ScoredChunk(b, 1.0), ScoredChunk(a, 0.9)], weights, terms, [a, b])
    assert first is not None and second is not None
    assert "一、深化改革" in first.text and "五、人口工作" in second.text


def test_a_figure_for_part_of_the_year_does_not_answer_for_the_whole_year() -> None:
    from assistant.extractive import eligible, for_part_of_year

    info = _info("青岭县2024年全年医疗机构总诊疗人次是多少?")
    assert info.wants_full_year and not _info("青岭县2024年上半年总诊疗人次是多少?").wants_full_year
    half = _cand("1—6月,全县医疗机构总诊疗人次达126.5万人次。", 1.0, key_hit=True)
    whole = _cand("全年全县医疗机构总诊疗人次达251.3万人次。", 1.0, key_hit=True)
    assert for_part_of_year(half) and not for_part_of_year(whole)
    assert not eligible(half, info) and eligible(whole, info)
    under = replace(whole, sc=ScoredChunk(replace(whole.sc.chunk, section_path=("一、上半年工作进展",)), 1.0))
    assert for_part_of_year(under)  # the heading says the section counts half a year
    assert eligible(half, _info("青岭县2024年总诊疗人次是多少?"))  # 全年 not asked: the half-year figure may do


def test_a_list_stated_as_one_sentence_of_semicolon_clauses_is_quoted_whole() -> None:
    from assistant.extractive import _enumeration

    text = "（三）加强疾病防治。扩大艾滋病检测覆盖面；推进结核病筛查；开展地方病防控工作。全年投入经费300万元。"
    chunk = replace(_cand(text, 1.0).sc.chunk, text=text, end=len(text))
    parts = ["（三）加强疾病防治。", "扩大艾滋病检测覆盖面；", "推进结核病筛查；", "开展地方病防控工作。",
             "全年投入经费300万元。"]
    cands = []
    for p in parts:
        a = text.index(p)
        cands.append(replace(_cand(p, 1.0), sc=ScoredChunk(chunk, 1.0), start=a, end=a + len(p)))
    items = _enumeration(cands[2], cands)
    assert [c.text for c in items] == parts[1:4]  # the clauses of the run, not the heading or what follows
    assert _enumeration(cands[4], cands) == []  # a sentence on its own is no list


def test_each_side_of_a_comparison_is_judged_against_its_own_sentences() -> None:
    from assistant.answer import score_sides

    info = analyze("青岭县和白水县2024年的签约率分别是多少?", corpus_cities=["青岭县", "白水县"], corpus_years=[2024],
                   gazetteer=GAZ)
    assert info.comparison and len(info.groups) == 2
    w = [0.0] * len(FEATURES)
    w[FEATURES.index("rank_inv")] = 1.0
    gate = [0.0] * len(GATE_FEATURES)
    gate[1] = 3.0  # margin: a sentence far ahead of the others answers
    model = SentenceModel(tuple(w), 0.0, threshold=0.7, gate=tuple(gate), gate_bias=0.0)
    qing = [_cand("青岭县签约率达到45%。", 3.0), _cand("青岭县新建卫生室12个。", 0.5)]
    bai_best = _cand("白水县签约率达到41%。", 2.0)
    bai_best = replace(bai_best, sc=ScoredChunk(replace(bai_best.sc.chunk, city="白水县", chunk_id="bai"), 1.0))
    scored = {c.text: c.score for c in score_sides([*qing, bai_best], model, info)}
    # White Water's only sentence answers its side, though Qingling's best ranks above it.
    assert scored["白水县签约率达到41%。"] > 0.7 and scored["青岭县签约率达到45%。"] > 0.7
    whole = {c.text: c.score for c in score([*qing, bai_best], model)}
    assert whole["白水县签约率达到41%。"] < 0.7  # judged against the other side it would not stand
