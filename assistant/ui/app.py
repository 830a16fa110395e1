"""Streamlit UI: cited answers with a source viewer, filters, uploads, index browser, evals.

Layout only: every decision lives in :mod:`assistant.ui.logic` (answers),
:mod:`assistant.ui.documents`, :mod:`assistant.ui.indicators_view` (the 指标 page),
:mod:`assistant.ui.evals_view` and :mod:`assistant.ui.feedback`; every answer comes from
:class:`assistant.Assistant`.
Launch with ``assistant ui`` (or ``streamlit run assistant/ui/app.py``).
"""

from __future__ import annotations

import uuid
from typing import Any

import streamlit as st

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.facade import Assistant
from assistant.index import DocInfo
from assistant.indicator_export import to_csv, to_xlsx
from assistant.resources import seeds_dir
from assistant.streaming import watch
from assistant.types import Answer
from assistant.ui import documents, evals_view, indicators_view, logic
from assistant.ui.feedback import FeedbackStore, feedback_path, record_feedback, settings_snapshot

PAGES = {"chat": "💬 问答", "docs": "📄 文档", "indicators": "📈 指标", "eval": "📊 评测"}


@st.cache_resource(show_spinner="正在加载模型与索引…")
def get_assistant(fingerprint: str, _settings: Settings) -> Assistant:
    """One Assistant per process and configuration; the index is opened, never rebuilt."""
    return logic.build_assistant(_settings)


# --- sidebar --------------------------------------------------------------------------------


def clear_chat() -> None:
    st.session_state["turns"] = []


def _or_all(v: object) -> str:
    return str(v) if v else "全部（自动推断）"


def sidebar(a: Assistant, docs: list[DocInfo]) -> tuple[str, dict[str, Any]]:
    with st.sidebar:
        st.title("🩺 卫健报告问答")
        slug = st.query_params.get("page", "chat")
        keys = list(PAGES)
        page = st.radio("页面", keys, format_func=PAGES.get, key="page",
                        index=keys.index(slug) if slug in keys else 0)
        st.query_params["page"] = page
        st.subheader("筛选")
        opts = documents.filter_options(docs)
        city = st.selectbox("城市", [None, *opts.cities], key="f_city", format_func=_or_all)
        year = st.selectbox("年份", [None, *opts.years], key="f_year", format_func=_or_all)
        narrowed = documents.filter_options(docs, city, year)
        labels = dict(narrowed.docs)
        doc = st.selectbox("报告", [None, *labels], key="f_doc", format_func=lambda v: labels.get(v, "全部"))
        st.caption("不选时，城市和年份从问题中推断。")
        st.divider()
        badge, explain = logic.mode_badge(a.mode, a.settings.llm.model)
        st.badge(badge, color="blue" if a.mode == "llm" else "gray")
        st.caption(explain)
        st.button("🗑 清空对话", on_click=clear_chat, width="stretch")
    return page, {"city": city, "year": year, "doc": doc}


# --- chat -----------------------------------------------------------------------------------


def save_feedback(a: Assistant, ans: Answer, tid: str) -> None:
    record_feedback(FeedbackStore(feedback_path(a.settings)), ans, value=st.session_state.get(f"fb-{tid}"),
                    comment=st.session_state.get(f"fbc-{tid}", ""), answer_id=tid,
                    settings=settings_snapshot(a.settings, ans.mode))


def show_answer(a: Assistant, turn: logic.ChatTurn, titles: dict[str, str]) -> None:
    ans, tid = turn.answer, turn.id
    assert ans is not None
    lang = logic.labels_for(ans.question)
    if ans.standalone_question:
        st.caption(f"{lang['understood']}: {logic.md_escape(ans.standalone_question)}")
    if ans.refused:
        st.warning(f"**{lang['refusal']}** — {logic.md_escape(ans.text)}", icon="🚫")
        st.markdown(f"**{lang['closest_other' if turn.closest_unfiltered else 'closest']}**")
        if not turn.closest:
            st.caption(lang["no_closest"])
        for ch in turn.closest:
            with st.expander(logic.chunk_label(ch)):
                st.markdown(logic.plain_section_html(ch), unsafe_allow_html=True)
    else:
        st.markdown(logic.answer_html(ans, tid), unsafe_allow_html=True)
        if len(ans.figures) > 1:  # a comparison, ranking or trend: its figures as a table
            st.dataframe(indicators_view.figure_rows(ans.figures), hide_index=True, width="stretch")
    if ans.unsupported:
        st.warning("\n".join([f"**{lang['unsupported']}**",
                              *[f"- ⚠ {logic.md_escape(s.text)}（{s.reason}）" for s in ans.unsupported]]))
    for note in logic.notices(ans):
        st.info(f"{lang['notice']}: {logic.md_escape(note)}", icon="ℹ️")
    st.caption(f"{logic.filters_line(ans, lang, titles)} · {logic.timing_line(ans)}")
    if ans.citations and not ans.refused:
        st.markdown(f"**{lang['sources']}**")
        lookup = a.retriever.corpus.by_id.get
        for marker, cits in logic.group_citations(ans.citations):
            st.markdown(f'<div id="{logic.anchor_id(tid, marker)}"></div>', unsafe_allow_html=True)
            with st.expander(logic.source_label(cits[0])):
                st.markdown(logic.source_sections(cits, ans.contexts, lookup, lang), unsafe_allow_html=True)
                st.caption(logic.source_caption(cits))
    left, right = st.columns([1, 5], vertical_alignment="center")
    with left:
        st.feedback("thumbs", key=f"fb-{tid}", on_change=save_feedback, args=(a, ans, tid))
    with right:
        st.text_input("评论（可选）", key=f"fbc-{tid}", placeholder="评论（可选，回车保存）",
                      label_visibility="collapsed", on_change=save_feedback, args=(a, ans, tid))


def show_turn(a: Assistant, t: logic.ChatTurn, titles: dict[str, str]) -> None:
    with st.chat_message(t.role):
        if t.role == "user":
            st.markdown(logic.md_escape(t.text))
        elif t.error:
            st.error(t.error)
        elif t.answer is not None:
            show_answer(a, t, titles)


def answer_turn(a: Assistant, question: str, filters: dict[str, Any], history: list[tuple[str, str]],
                titles: dict[str, str]) -> logic.ChatTurn:
    tid = uuid.uuid4().hex[:10]
    lang = logic.labels_for(question)
    notice, slot = st.empty(), st.empty()
    stream = logic.AnswerStream(watch(a.stream(question, history=history, **filters)),
                                on_wait=lambda s: notice.info(logic.waiting_text(s, lang), icon="⏳"))
    try:
        while not stream.done:
            with slot.container():
                st.write_stream(stream)
            notice.empty()
            if stream.resets and not stream.done:  # the LLM stream broke: withdraw its text
                slot.empty()
                st.warning(logic.reset_text(stream.resets[-1], lang))
    except AssistantError as exc:
        notice.empty()
        slot.empty()
        st.error(logic.error_text(exc))
        return logic.ChatTurn("assistant", "", tid, error=logic.error_text(exc))
    slot.empty()
    ans = stream.answer
    assert ans is not None
    closest, unfiltered = logic.refusal_sections(ans)
    turn = logic.ChatTurn("assistant", ans.text, tid, ans, closest=tuple(closest),
                          closest_unfiltered=unfiltered)
    show_answer(a, turn, titles)
    return turn


def chat_page(a: Assistant, docs: list[DocInfo], filters: dict[str, Any]) -> None:
    st.header("卫生健康工作报告问答")
    st.caption("答案中的 [n] 是引用，点击跳到下方来源；展开来源可看到所在章节与被引用的句子。")
    if not docs:
        st.info("索引是空的：请先在「📄 文档」页上传报告，或在命令行运行 `assistant ingest`。")
    titles = {d.doc_id: d.title for d in docs}
    turns: list[logic.ChatTurn] = st.session_state.setdefault("turns", [])
    for t in turns:
        show_turn(a, t, titles)
    question = st.chat_input("输入问题，例如：丽水市2019年市级医院排队平均时间缩短到多少？")
    if question:
        history = logic.history_of(turns)
        turns.append(logic.ChatTurn("user", question))
        show_turn(a, turns[-1], titles)
        with st.chat_message("assistant"):
            turns.append(answer_turn(a, question, filters, history, titles))


# --- documents ------------------------------------------------------------------------------


def remove_doc(a: Assistant, doc_id: str) -> None:
    try:
        msg = documents.remove_document(a, doc_id, documents.uploads_dir(a.settings))
        st.session_state["doc_notice"] = ("success", msg)
    except AssistantError as exc:
        st.session_state["doc_notice"] = ("error", logic.error_text(exc))


def show_outcomes(outcomes: list[documents.UploadOutcome]) -> None:
    for o in outcomes:
        if o.ok:
            st.success(f"{o.name} → {o.saved_as}: {o.status}（{o.chunks} 个片段）")
        elif o.status == "duplicate":
            st.warning(f"{o.name}: 与已索引的报告内容相同，已跳过。{o.error or ''}")
        else:
            st.error(f"{o.name}: {o.error or o.status}")


def documents_page(a: Assistant, docs: list[DocInfo]) -> None:
    st.header("文档")
    up_dir = documents.uploads_dir(a.settings)
    max_mb = documents.MAX_UPLOAD_BYTES // 1048576
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader(f"上传报告（{' / '.join(documents.UPLOAD_TYPES)}，每个不超过 {max_mb} MB）",
                                 type=list(documents.UPLOAD_TYPES), accept_multiple_files=True,
                                 max_upload_size=max_mb)
        submitted = st.form_submit_button("导入到索引", type="primary")
    if submitted and files:
        bar = st.progress(0.0, text="正在保存…")
        outcomes = documents.ingest_uploads(a, [(f.name, f.getvalue()) for f in files], up_dir, bar.progress)
        bar.empty()
        st.session_state["upload_outcomes"] = outcomes
        st.rerun()
    show_outcomes(st.session_state.pop("upload_outcomes", []))
    kind, text = st.session_state.pop("doc_notice", (None, ""))
    if kind:
        getattr(st, kind)(text)
    if not docs and st.button("导入示例报告（五份随包附带的报告）"):
        bar = st.progress(0.0, text="正在导入示例报告…")
        a.ingest([str(seeds_dir())], progress=documents.ProgressBridge(bar.progress))
        st.rerun()

    st.subheader(f"已索引的报告（{len(docs)}）")
    if not docs:
        st.caption("还没有报告。")
        return
    st.dataframe(documents.doc_rows(docs), hide_index=True, width="stretch")
    by_doc = documents.chunks_by_doc(a.retriever.corpus.chunks)
    for d in docs:
        with st.expander(documents.doc_title(d)):
            st.markdown(f"**文件** `{d.path}`  \n**doc_id** `{d.doc_id}` · **发布机构** {d.issuer or '?'} · "
                        f"**日期** {d.date or '?'} · **格式** {d.fmt}")
            st.markdown("**目录**")
            outline = documents.outline(by_doc.get(d.doc_id, []))
            st.markdown(documents.outline_html(outline), unsafe_allow_html=True)
            st.button("🗑 从索引中删除", key=f"rm-{d.doc_id}", on_click=remove_doc, args=(a, d.doc_id))


# --- indicators -----------------------------------------------------------------------------


def _param(name: str) -> str | None:
    value = st.query_params.get(name)
    return str(value) if value else None


def indicators_page(a: Assistant) -> None:
    st.header("指标")
    st.caption("报告中写出的每个数字（实际完成、目标、变化）及其原文句子。指标名称模糊匹配：输入“签约率”可找到"
               "“常住人口签约率”“重点人群签约率”等，并注明如何匹配。")
    everything = a.indicators()
    opts = indicators_view.options(everything)
    c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
    metric = c1.text_input("指标", value=_param("metric") or "", placeholder="例如：签约率、居民健康素养水平")
    city = c2.selectbox("地区", [None, *opts.cities], format_func=lambda v: v or "全部", key="ind_city")
    year = c3.selectbox("年份", [None, *opts.years], format_func=lambda v: str(v) if v else "全部", key="ind_year")
    kind = c4.selectbox("类型", [None, *indicators_view.KINDS], key="ind_kind",
                        format_func=lambda v: indicators_view.kind_label(v) if v else "全部")
    matches = a.indicators(metric=metric or None, city=city, year=year, kind=kind)
    st.caption(f"{len(matches)} 条记录" + (f"（显示前 {indicators_view.ROW_LIMIT} 条；下载包含全部）"
                                        if len(matches) > indicators_view.ROW_LIMIT else ""))
    if not everything:
        st.info("还没有指标记录：请先在「📄 文档」页导入报告，或在命令行运行 `assistant ingest`。")
        return
    picked = st.dataframe(
        indicators_view.table_rows(matches), hide_index=True, width="stretch", key="ind_table",
        on_select="rerun", selection_mode="single-row",
        column_config={"原文": st.column_config.LinkColumn("原文", display_text="查看原文"),
                       "值": st.column_config.NumberColumn("值", format="%g")})
    stem = indicators_view.file_stem(metric, city, year)
    d1, d2, _ = st.columns([1, 1, 4])
    d1.download_button("⬇ CSV", data=to_csv(matches), file_name=f"{stem}.csv", mime="text/csv")
    d2.download_button("⬇ Excel", data=to_xlsx(matches), file_name=f"{stem}.xlsx",
                       mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    rows, x, unit = indicators_view.chart_data(matches) if metric else ([], "", "")
    if rows:
        st.markdown(f"#### {metric}（单位：{unit or '无'}）")
        st.bar_chart(rows, x=x, y="值", color="类型", horizontal=False)
    selected = picked.selection.rows if picked is not None and picked.selection else []
    record_id = matches[selected[0]].record.id if selected else _param("record")
    record = a.indicator_table.store.get(record_id) if record_id else None
    if record_id and record is None:
        st.warning("找不到这条记录（报告可能已被删除或重新导入）。")
    if record is not None:
        st.markdown(f"#### 原文 · {indicators_view.viewer_title(record)}")
        chunk = a.retriever.corpus.by_id.get(record.chunk_id)
        st.markdown(indicators_view.viewer_html(record, chunk), unsafe_allow_html=True)


# --- evals ----------------------------------------------------------------------------------


def feedback_section(a: Assistant) -> None:
    st.subheader("用户反馈")
    store = FeedbackStore(feedback_path(a.settings))
    latest = store.latest()
    ups = sum(e.get("rating") == "up" for e in latest)
    downs = sum(e.get("rating") == "down" for e in latest)
    st.caption(f"👍 {ups} · 👎 {downs} · 保存在 {store.path}")
    if latest:
        st.dataframe([{"时间": e["timestamp"], "评价": e.get("rating"), "问题": e["question"],
                       "评论": e.get("comment", ""), "回答": e["answer"]} for e in latest],
                     hide_index=True, width="stretch")
    st.download_button("⬇ 导出为候选标注（gold JSONL）", data=store.export_gold_jsonl(),
                       file_name="feedback-gold-candidates.jsonl", mime="application/jsonl",
                       disabled=not (ups or downs), help="facts 需人工补全后再加入 evals/gold.jsonl")


def eval_page(a: Assistant) -> None:
    st.header("评测")
    root = evals_view.reports_dir(a.settings)
    problem = evals_view.eval_unavailable()
    with st.container(border=True):
        st.markdown("**运行离线评测**（抽取模式，全部标注问题 + 基线；"
                    "在单独的评测索引中进行，不影响你的报告库；约需几分钟）")
        if problem:
            st.error(problem)
        baselines = st.checkbox("同时评测基线（naive llama-index、BM25）", value=True, disabled=bool(problem))
        if st.button("▶ 运行评测", disabled=bool(problem)):
            bar = st.progress(0.0, text="开始…")
            try:
                out = evals_view.run_offline_eval(a, root, bar.progress, baselines=baselines)
            except AssistantError as exc:
                st.error(logic.error_text(exc))
            else:
                st.success(f"报告已写入 {out}")
            bar.empty()
    report = evals_view.latest_eval(root)
    if report is None:
        st.info(f"还没有评测报告（{root}）。点击上方按钮，或在命令行运行 `assistant eval`。")
    else:
        cfg = report.config
        st.subheader(f"最新报告 {report.name}")
        st.caption(f"模式 {cfg.get('mode')} · 嵌入 {cfg.get('embedding_model')} · top_k {cfg.get('top_k')} · "
                   f"{cfg.get('n_items')} 题 · git {cfg.get('git_commit')} · {report.path}")
        cards = evals_view.headline_metrics(report)
        for col, (label, value, delta) in zip(st.columns(max(len(cards), 1)), cards, strict=False):
            col.metric(label, value, delta)
        st.markdown("#### 我们 vs 基线")
        rows = evals_view.comparison_rows(report)
        st.dataframe(rows, hide_index=True, width="stretch", height=36 * (len(rows) + 1) + 4)
        cols = st.columns(2)
        for i, chart in enumerate(report.charts):
            cols[i % 2].image(str(chart), caption=chart.stem, width="stretch")
        st.markdown("#### 分类别")
        st.dataframe(evals_view.category_rows(report), hide_index=True, width="stretch")
        fails = evals_view.failure_rows(report)
        st.markdown(f"#### 未通过的题目（{len(fails)}）")
        if fails:
            st.dataframe(fails, hide_index=True, width="stretch")
        with st.expander("summary.md"):
            st.markdown(report.summary)
    feedback_section(a)


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="卫健报告问答", page_icon="🩺", layout="wide")
    st.markdown(logic.CSS, unsafe_allow_html=True)
    try:
        settings = Settings.load()
        a = get_assistant(logic.settings_fingerprint(settings), settings)
        a.refresh()  # another process (the CLI) may have changed the index
        docs = a.documents()
    except AssistantError as exc:
        st.error(logic.error_text(exc))
        st.stop()
    page, filters = sidebar(a, docs)
    if page == "chat":
        chat_page(a, docs, filters)
    elif page == "docs":
        documents_page(a, docs)
    elif page == "indicators":
        indicators_page(a)
    else:
        eval_page(a)


main()
