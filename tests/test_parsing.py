"""Parsing without embedding: metadata, outline and chunks of the five seeds, plus
synthetic cases for the outline parser and the chunker.

Everything here is pure computation over text (no model, no index), so it runs fast.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from assistant.chunking import chunk_document, doc_label, sentence_inputs
from assistant.config import ChunkSettings
from assistant.ingest import parse_file
from assistant.outline import PREAMBLE, parse_outline
from assistant.text import count_tokens, sentence_spans
from assistant.types import Chunk, DocMeta, Document, Section, YearInfo

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))
BOILERPLATE = ("当前位置", "浏览次数", "索引号", "字体")

Parsed = tuple[Document, Section, list[Chunk]]


def _seed(prefix: str) -> Path:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path


@pytest.fixture(scope="module")
def parsed() -> dict[str, Parsed]:
    """Each seed parsed once with the default budget, keyed by its number ("000")."""
    return {p.name[:3]: parse_file(p, ChunkSettings()) for p in SEED_FILES}


def _sections(root: Section) -> dict[tuple[str, ...], Section]:
    return {s.path: s for s in root.walk()[1:]}


def _years(doc: Document) -> list[tuple[int, str]]:
    return [(y.year, y.role) for y in doc.meta.years]


def test_there_are_five_seeds() -> None:
    assert [p.name[:3] for p in SEED_FILES] == ["000", "001", "002", "003", "004"]


# --- document metadata -------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "city", "years"),
    [
        ("000", "丽水市", [(2019, "review"), (2020, "plan")]),
        ("001", "十堰市", [(2021, "plan")]),
        ("002", "长沙市", [(2018, "plan")]),
        ("003", "东莞市", [(2024, "review"), (2025, "plan")]),
        ("004", "余姚市", [(2025, "plan")]),
    ],
)
def test_city_years_and_roles(parsed: dict[str, Parsed], seed: str, city: str, years: list) -> None:
    doc = parsed[seed][0]
    assert doc.meta.city == city
    assert _years(doc) == years


@pytest.mark.parametrize(
    ("seed", "title"),
    [
        ("000", "丽水市卫生健康2019年工作总结和2020年工作要点"),
        ("001", "2021年十堰市卫生健康工作要点"),
        ("002", "长沙市2018年卫生计生工作要点"),
        ("004", "余姚市卫生健康局2025年全市卫生健康工作要点"),
    ],
)
def test_title(parsed: dict[str, Parsed], seed: str, title: str) -> None:
    assert parsed[seed][0].meta.title == title


def test_untitled_report_gets_a_synthesized_title_naming_its_city(parsed: dict[str, Parsed]) -> None:
    doc = parsed["003"][0]
    assert "东莞" in doc.meta.title
    assert "东莞" not in doc.text.split("\n")[0], "the city is named only in the body, not in a title line"


@pytest.mark.parametrize(
    ("seed", "issuer", "date"),
    [
        ("000", "丽水市卫生健康委", "2020-07-02"),
        ("001", "十堰市卫生健康委员会", "2021-03-18"),
        ("002", "长沙市卫生和计划生育委员会", "2018-03-27"),
        ("003", None, None),
        ("004", "余姚市卫生健康局", "2025-04-02"),  # the portal says 市卫生健康局: the city is filled in
    ],
)
def test_issuer_and_date(parsed: dict[str, Parsed], seed: str, issuer: str | None, date: str | None) -> None:
    meta = parsed[seed][0].meta
    assert (meta.issuer, meta.date) == (issuer, date)


@pytest.mark.parametrize(
    ("seed", "index_no"),
    [("000", "11332500MB1960337R/2020-06461"), ("004", "002973375/2025-62604")],
)
def test_page_chrome_removed_from_text_but_kept_as_metadata(
    parsed: dict[str, Parsed], seed: str, index_no: str
) -> None:
    doc = parsed[seed][0]
    for word in BOILERPLATE:
        assert word not in doc.text, word
    assert dict(doc.meta.extra)["索引号"] == index_no
    assert index_no not in doc.text


@pytest.mark.parametrize("seed", ["001", "002", "003"])
def test_reports_without_chrome_keep_all_their_lines(parsed: dict[str, Parsed], seed: str) -> None:
    doc = parsed[seed][0]
    raw_lines = [line.strip() for line in _seed(seed).read_text(encoding="utf-8").split("\n") if line.strip()]
    assert doc.text.split("\n") == raw_lines
    assert doc.meta.extra == ()


# --- outline -----------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "parts"), [("000", 2), ("001", 8), ("002", 8), ("003", 2), ("004", 2)])
def test_number_of_top_level_parts(parsed: dict[str, Parsed], seed: str, parts: int) -> None:
    root = parsed[seed][1]
    assert root.level == 0 and root.heading == ""
    assert len(root.children) == parts
    assert all(c.level == 1 for c in root.children)


@pytest.mark.parametrize(
    ("seed", "path"),
    [
        ("000", ("二、2020年卫生健康工作要点", "(三)促改革、惠民生,切实增强市民健康获得感",
                 "2.深化综合医改")),
        ("000", ("一、2019年卫生健康工作总结", "(二)五大领域攻坚突破全面推进", "1.县域医共体建设实现全覆盖")),
        ("001", ("二、加强从严治党和行业作风建设", "3、从严规范党内政治生活")),  # numbering runs on
        ("001", ("八、积极应对各类风险挑战", "26、强化风险防控措施")),
        ("002", ("一、全面深化医改工作", "(二)开展家庭医生签约服务")),
        ("002", ("二、全面推进健康长沙建设", "(九)完善“健康长沙”建设体系")),
        ("003", ("二、2025年重点工作安排", "(三)持续健全公共卫生服务体系")),
        ("004", ("二、主要任务", "(一)全面推进医学高峰行动", "(1)全力打造高水平县级医院")),
    ],
)
def test_heading_paths(parsed: dict[str, Parsed], seed: str, path: tuple[str, ...]) -> None:
    assert path in _sections(parsed[seed][1])


def test_numbering_that_runs_on_across_parts_nests_under_each_part(parsed: dict[str, Parsed]) -> None:
    root = parsed["001"][1]
    numbers = [c.heading.split("、")[0] for part in root.children for c in part.children]
    assert numbers == [str(i) for i in range(1, 27)]
    assert [len(p.children) for p in root.children] == [2, 2, 2, 6, 6, 6, 1, 1]


def test_inline_headings_of_a_one_line_report_are_split(parsed: dict[str, Parsed]) -> None:
    doc, root, _ = parsed["004"]
    assert doc.text.count("\n") < 5, "004 is one long line after its chrome"
    assert [c.heading for c in root.children] == ["一、总体要求", "二、主要任务"]
    tasks = root.children[1]
    assert len(tasks.children) == 11
    first = _sections(root)[("二、主要任务", "(一)全面推进医学高峰行动")]
    assert [c.heading for c in first.children] == [
        "(1)全力打造高水平县级医院", "(2)全力建设高水平临床重点专科", "(3)全力推进卫生科技创新行动",
    ]
    assert first.children[0].departments == ("医政科教科",)


def test_departments_from_responsibility_notes(parsed: dict[str, Parsed]) -> None:
    sections = _sections(parsed["004"][1])
    talent = sections[("二、主要任务", "(二)全面推进基层医疗卫生服务提升行动", "(3)持续抓好基层卫生人才培养")]
    assert talent.departments == ("基层卫生与妇幼健康科", "组织人事科", "医政科教科")
    # A note belongs to the section it closes, never to the next one.
    nxt = sections[("二、主要任务", "(二)全面推进基层医疗卫生服务提升行动", "(4)持续拓展家庭医生服务内涵")]
    assert nxt.departments == ("基层卫生与妇幼健康科",)


@pytest.mark.parametrize("seed", ["000", "001", "002", "003", "004"])
def test_section_spans_nest_and_start_at_their_heading(parsed: dict[str, Parsed], seed: str) -> None:
    doc, root, _ = parsed[seed]
    for sec in root.walk():
        assert sec.start <= sec.body_start <= sec.end <= len(doc.text)
        if sec.level:
            assert doc.text[sec.start] == sec.heading[0]
            assert sec.path[-1] == sec.heading and len(sec.path) == sec.level
        for a, b in pairwise(sec.children):
            assert a.end <= b.start
        for c in sec.children:
            assert sec.start <= c.start and c.end <= sec.end


@pytest.mark.parametrize(
    ("seed", "review", "plan"), [("000", 2019, 2020), ("003", 2024, 2025)]
)
def test_review_and_plan_parts_carry_their_year(
    parsed: dict[str, Parsed], seed: str, review: int, plan: int
) -> None:
    _doc, root, chunks = parsed[seed]
    first, second = root.children
    assert all((s.year, s.role) == (review, "review") for s in first.walk())
    assert all((s.year, s.role) == (plan, "plan") for s in second.walk())
    by_part = {first.heading: (review, "review"), second.heading: (plan, "plan")}
    assert {c.section_path[0] for c in chunks} == set(by_part), "no chunk outside the two parts"
    for c in chunks:
        assert (c.year, c.role) == by_part[c.section_path[0]], c.section_path


@pytest.mark.parametrize(("seed", "year"), [("001", 2021), ("002", 2018), ("004", 2025)])
def test_single_year_plans_label_every_chunk(parsed: dict[str, Parsed], seed: str, year: int) -> None:
    assert {(c.year, c.role) for c in parsed[seed][2]} == {(year, "plan")}


# --- chunk invariants over every seed ------------------------------------------------


@pytest.mark.parametrize("seed", ["000", "001", "002", "003", "004"])
def test_chunk_invariants(parsed: dict[str, Parsed], seed: str) -> None:
    doc, _root, chunks = parsed[seed]
    budget = ChunkSettings().max_tokens
    assert chunks
    for i, c in enumerate(chunks):
        assert doc.text[c.start : c.end] == c.text
        assert c.text == c.text.strip() and c.text
        assert c.token_count == count_tokens(c.text)
        assert c.token_count <= budget or len(sentence_spans(c.text)) == 1, (c.section_path, c.token_count)
        assert c.section_path and c.heading == c.section_path[-1]
        assert c.embed_text.startswith(doc_label(doc, c.year, c.role))
        assert " › ".join(c.section_path) in c.embed_text
        assert c.embed_text.endswith(c.text)
        assert (c.doc_id, c.city, c.title, c.ordinal) == (doc.doc_id, doc.meta.city, doc.meta.title, i)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert all(a.start <= b.start for a, b in pairwise(chunks))


@pytest.mark.parametrize("seed", ["000", "001", "002", "003", "004"])
def test_chunks_cover_every_character_of_the_text(parsed: dict[str, Parsed], seed: str) -> None:
    doc, _root, chunks = parsed[seed]
    covered = bytearray(len(doc.text))
    for c in chunks:
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    lost = [i for i, ch in enumerate(doc.text) if not ch.isspace() and not covered[i]]
    assert not lost, doc.text[lost[0] : lost[0] + 40]


def test_chunk_ids_are_stable_across_parses(parsed: dict[str, Parsed]) -> None:
    for p in SEED_FILES[:2]:
        again = parse_file(p, ChunkSettings())[2]
        assert [c.chunk_id for c in again] == [c.chunk_id for c in parsed[p.name[:3]][2]]


def test_a_smaller_budget_gives_more_smaller_chunks(parsed: dict[str, Parsed]) -> None:
    small = ChunkSettings(max_tokens=120, overlap_tokens=20, min_tokens=20)
    doc, _root, chunks = parse_file(_seed("002"), small)
    assert len(chunks) > len(parsed["002"][2])
    assert all(c.token_count <= 120 or len(sentence_spans(c.text)) == 1 for c in chunks)
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)


# --- synthetic: the outline parser ---------------------------------------------------


def _doc(text: str, years: tuple[YearInfo, ...] = ()) -> Document:
    return Document(doc_id="synthetic", source_path="synthetic.txt", text=text,
                    meta=DocMeta(title="某市卫生健康工作要点", city="某市", years=years), content_hash="x")


def _paths(text: str) -> list[tuple[str, ...]]:
    return [s.path for s in parse_outline(_doc(text)).walk()[1:]]


def test_numbering_restarts_under_each_part() -> None:
    text = "一、甲工作\n1.第一项。内容。\n2.第二项。内容。\n二、乙工作\n1.第三项。内容。\n2.第四项。内容。"
    assert _paths(text) == [
        ("一、甲工作",), ("一、甲工作", "1.第一项"), ("一、甲工作", "2.第二项"),
        ("二、乙工作",), ("二、乙工作", "1.第三项"), ("二、乙工作", "2.第四项"),
    ]


def test_parts_numbered_di_yi_bu_fen_hold_the_numbered_sections() -> None:
    text = ("第一部分　2021年主要工作\n一、医疗服务\n内容，详见第二部分。\n二、公共卫生\n内容。\n"
            "第二部分　困难和不足\n1.人才不足。内容。\n2.投入不足。内容。\n第三部分 2022年工作打算\n一、抓防控\n内容。")
    assert _paths(text) == [
        ("第一部分2021年主要工作",), ("第一部分2021年主要工作", "一、医疗服务"),
        ("第一部分2021年主要工作", "二、公共卫生"),
        ("第二部分困难和不足",), ("第二部分困难和不足", "1.人才不足"), ("第二部分困难和不足", "2.投入不足"),
        ("第三部分2022年工作打算",), ("第三部分2022年工作打算", "一、抓防控"),
    ]


def test_stray_numbers_mid_sentence_are_not_headings() -> None:
    text = ("一、甲工作\n1.第一项。全市共建成3.新平台,升级到 2.0平台,完成率3.5%。排名 5. 位居前列。\n"
            "2.第二项。内容。")
    assert _paths(text) == [("一、甲工作",), ("一、甲工作", "1.第一项"), ("一、甲工作", "2.第二项")]


def test_a_stray_number_opening_a_line_does_not_open_a_new_level() -> None:
    text = "一、甲工作\n内容。\n3.这一行只是以数字开头的正文。\n二、乙工作\n内容。"
    assert _paths(text) == [("一、甲工作",), ("二、乙工作",)]


def test_inline_headings_after_whitespace() -> None:
    text = ("一、总体要求 坚持以人民为中心。 二、主要任务 (一)全面推进行动 (1)打造医院。深化建设。 "
            "(2)建设专科。内容。(3)推进创新。内容。")
    root = parse_outline(_doc(text))
    assert [s.path for s in root.walk()[1:]] == [
        ("一、总体要求",), ("二、主要任务",), ("二、主要任务", "(一)全面推进行动"),
        ("二、主要任务", "(一)全面推进行动", "(1)打造医院"),
        ("二、主要任务", "(一)全面推进行动", "(2)建设专科"),
        ("二、主要任务", "(一)全面推进行动", "(3)推进创新"),
    ]
    overall = root.children[0]
    assert text[overall.body_start : overall.end].strip() == "坚持以人民为中心。"


def test_parenthesised_numbers_inside_prose_are_not_headings() -> None:
    text = "一、总体要求\n主要包括,(1)加强管理,(2)提升服务。还有:(3)其他事项。\n二、主要任务\n内容。"
    assert _paths(text) == [("一、总体要求",), ("二、主要任务",)]


def test_departments_are_read_from_the_section_that_carries_the_note() -> None:
    text = ("一、主要任务\n(一)甲。落实。(责任科室:医政科、办公室)\n(二)乙。落实。(责任单位:疾控中心)\n"
            "(三)丙。落实。")
    root = parse_outline(_doc(text))
    assert [s.departments for s in root.children[0].children] == [("医政科", "办公室"), ("疾控中心",), ()]


def test_heading_years_override_the_document_year() -> None:
    text = "一、2024年工作回顾\n(一)甲。内容。\n二、2025年工作安排\n(一)乙。内容。"
    years = (YearInfo(2024, "review"), YearInfo(2025, "plan"))
    root = parse_outline(_doc(text, years))
    assert [(s.heading, s.year, s.role) for s in root.walk()[1:]] == [
        ("一、2024年工作回顾", 2024, "review"), ("(一)甲", 2024, "review"),
        ("二、2025年工作安排", 2025, "plan"), ("(一)乙", 2025, "plan"),
    ]


# --- synthetic: the chunker ----------------------------------------------------------


def _chunks(text: str, settings: ChunkSettings) -> tuple[Document, list[Chunk]]:
    doc = _doc(text, (YearInfo(2025, "plan"),))
    return doc, chunk_document(doc, parse_outline(doc), settings)


def test_a_long_section_splits_at_sentence_ends_with_overlap() -> None:
    text = "一、甲工作\n" + "".join(f"第{i}句话描述了卫生健康工作的进展情况和具体成效。" for i in range(30))
    settings = ChunkSettings(max_tokens=64, overlap_tokens=16, min_tokens=0)
    doc, chunks = _chunks(text, settings)
    assert len(chunks) >= 5
    assert chunks[0].text.startswith("一、甲工作")
    assert chunks[-1].end == len(text)
    for c in chunks:
        assert c.text.endswith("。")
        assert c.token_count <= settings.max_tokens
        assert c.section_path == ("一、甲工作",)
    for a, b in pairwise(chunks):
        assert a.start < b.start < a.end, "consecutive pieces overlap"
        assert count_tokens(doc.text[b.start : a.end]) <= settings.overlap_tokens
        assert doc.text[b.start - 1] == "。", "pieces start at a sentence start"


def test_a_single_over_long_sentence_is_kept_whole() -> None:
    sentence = "推进" + "、".join(f"第{i}项重点工作" for i in range(60)) + "。"
    settings = ChunkSettings(max_tokens=64, overlap_tokens=16, min_tokens=0)
    chunks = _chunks(f"一、甲工作\n开头。\n{sentence}\n结尾。", settings)[1]
    assert sentence in [c.text for c in chunks]
    assert max(c.token_count for c in chunks) > settings.max_tokens


def test_tiny_sibling_sections_merge_but_never_across_parents() -> None:
    text = "一、甲\n1.短一。\n2.短二。\n二、乙\n1.短三。\n2.短四。"
    settings = ChunkSettings(max_tokens=64, overlap_tokens=8, min_tokens=40)
    _d, chunks = _chunks(text, settings)
    assert [c.text for c in chunks] == ["一、甲\n1.短一。\n2.短二。", "二、乙\n1.短三。\n2.短四。"]
    assert [c.section_path[0] for c in chunks] == ["一、甲", "二、乙"]


def test_merging_stops_at_the_budget() -> None:
    items = "\n".join(f"{i}.第{i}项工作。推进落实相关任务并完成年度目标。" for i in range(1, 9))
    settings = ChunkSettings(max_tokens=64, overlap_tokens=8, min_tokens=40)
    _d, chunks = _chunks(f"一、甲\n{items}", settings)
    assert 1 < len(chunks) < 8
    assert all(c.token_count <= settings.max_tokens for c in chunks)


def test_sections_above_the_minimum_stay_separate() -> None:
    body = "加强医疗服务能力建设,推进公立医院高质量发展,完善分级诊疗制度,提升基层服务水平。" * 2
    text = f"一、甲\n1.第一项。{body}\n2.第二项。{body}"
    _d, chunks = _chunks(text, ChunkSettings(max_tokens=320, overlap_tokens=40, min_tokens=40))
    assert [c.section_path for c in chunks] == [("一、甲", "1.第一项"), ("一、甲", "2.第二项")]


def test_a_heading_only_parent_is_folded_into_its_first_child() -> None:
    body = "加强医疗服务能力建设,推进公立医院高质量发展,完善分级诊疗制度,提升基层服务水平。" * 2
    text = f"一、主要任务\n(一)甲行动。{body}\n(二)乙行动。{body}"
    _d, chunks = _chunks(text, ChunkSettings(max_tokens=320, overlap_tokens=40, min_tokens=40))
    assert len(chunks) == 2
    assert chunks[0].text.startswith("一、主要任务\n(一)甲行动。")
    assert chunks[0].section_path == ("一、主要任务", "(一)甲行动")
    assert chunks[1].text.startswith("(二)乙行动。")
    assert not any(c.text.strip() == "一、主要任务" for c in chunks), "no heading-only chunk"


def test_preamble_before_the_first_heading_is_labelled() -> None:
    intro = "为认真贯彻卫生健康工作会议精神,推进全市卫生健康事业高质量发展,现制定工作要点如下。" * 2
    body = "加强医疗服务能力建设,推进公立医院高质量发展,完善分级诊疗制度,提升基层服务水平。" * 2
    _d, chunks = _chunks(f"{intro}\n一、主要任务\n{body}", ChunkSettings())
    assert chunks[0].section_path == (PREAMBLE,)
    assert chunks[0].text == intro
    assert chunks[1].section_path == ("一、主要任务",)


def test_a_sentence_is_embedded_under_its_nearest_heading_or_the_title() -> None:
    text = "前面没有标题的一句话。\n一、主要任务\n(一)家庭医生签约\n签约率达到65%。重点人群全覆盖。"
    _, chunks = _chunks(text, ChunkSettings(min_tokens=0))
    inputs = {c.heading: sentence_inputs(c) for c in chunks}
    assert inputs[PREAMBLE] == ["某市卫生健康工作要点\n前面没有标题的一句话。"]
    signed = inputs["(一)家庭医生签约"]
    assert "(一)家庭医生签约\n签约率达到65%。" in signed and "(一)家庭医生签约\n重点人群全覆盖。" in signed
    assert not any("工作要点" in s for s in signed)  # the nearest heading only, not the title
