"""The LLM path when the server misbehaves: cut-off and broken streams, slow servers, a
time budget, retries that are seen, follow-up rewrites that cannot be trusted, and
streamed text that is checked before it is shown.

Everything runs against the fake OpenAI-compatible server on 127.0.0.1 through the real
openai client (tests/fakes/openai_server.py), over the seeded index.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from fakes.openai_server import FakeOpenAIServer
from test_llm_path import Q, _sources, quoting_responder
from typer.testing import CliRunner

from assistant.cli import EXIT_UNSUPPORTED, app
from assistant.config import LLMSettings
from assistant.errors import LLMError
from assistant.facade import Assistant
from assistant.llm import Completion, Message, OpenAIChatLLM
from assistant.query import rewrite_problem
from assistant.streaming import watch
from assistant.types import Answer, StreamReset, Waiting, WarningKind

pytestmark = pytest.mark.slow

MESSAGES = [Message("user", "问题")]


def _assistant(seeded_dir: Path, server: FakeOpenAIServer, **llm: Any) -> Assistant:
    settings = make_settings(seeded_dir, llm={"provider": "auto", "base_url": server.base_url, "model": "fake-model",
                                              "timeout": 5.0, "max_retries": 2, "context_window": 16000, **llm})
    return Assistant(settings)


def _parts(a: Assistant, question: str = Q, **kw: Any) -> tuple[list[str | StreamReset], Answer]:
    parts = list(a.stream(question, **kw))
    final = parts[-1]
    assert isinstance(final, Answer)
    return [p for p in parts[:-1] if not isinstance(p, Answer)], final


# --- finish_reason -----------------------------------------------------------------------------


def test_a_complete_stream_is_not_truncated(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.responder = quoting_responder
    ans = _assistant(seeded_dir, fake_openai).ask(Q)
    assert ans.mode == "llm" and not ans.truncated and not ans.warnings_of(WarningKind.TRUNCATED)


def test_finish_reason_length_is_reported_as_truncated(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.responder = quoting_responder
    fake_openai.enqueue(finish_reason="length")
    ans = _assistant(seeded_dir, fake_openai).ask(Q)
    assert ans.mode == "llm" and ans.truncated
    (w,) = ans.warnings_of(WarningKind.TRUNCATED)
    assert "length" in w.text


def test_a_stream_that_just_stops_is_truncated_not_complete(seeded_dir: Path,
                                                            fake_openai: FakeOpenAIServer) -> None:
    """No finish_reason, no [DONE]: the server went quiet. Never a complete answer."""
    fake_openai.responder = quoting_responder
    fake_openai.enqueue(finish_reason=None, done=False)
    ans = _assistant(seeded_dir, fake_openai).ask(Q)
    assert ans.truncated and ans.warnings_of(WarningKind.TRUNCATED)
    assert "没有结束标记" in ans.warnings_of(WarningKind.TRUNCATED)[0].text


def test_non_streamed_completion_reports_its_finish_reason(fake_openai: FakeOpenAIServer) -> None:
    llm = OpenAIChatLLM(LLMSettings(base_url=fake_openai.base_url, model="m", max_retries=0))
    fake_openai.enqueue(reply="半句", finish_reason="length")
    out = llm.complete(MESSAGES)
    assert out.finish_reason == "length" and out.truncated
    fake_openai.enqueue(reply="整句。")
    assert not llm.complete(MESSAGES).truncated


# --- a stream broken midway ---------------------------------------------------------------------


def test_broken_stream_is_named_as_such_and_not_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.enqueue(reply="这是一个被中途切断的回答内容[1]。", break_after=2)
    llm = OpenAIChatLLM(LLMSettings(base_url=fake_openai.base_url, model="m", max_retries=3, timeout=5))
    got: list[str | Completion] = []
    with pytest.raises(LLMError) as info:
        for p in llm.stream(MESSAGES):
            got.append(p)
    assert got and all(isinstance(p, str) for p in got)
    msg = info.value.message
    assert "broke" in msg and "Could not connect" not in msg and "characters" in msg
    assert [a.outcome for a in info.value.attempts] == ["broken"]
    assert len(fake_openai.requests) == 1  # text was shown: a retry would repeat it


def test_broken_stream_yields_a_reset_before_the_fallback(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.responder = quoting_responder
    fake_openai.enqueue(break_after=3)
    parts, ans = _parts(_assistant(seeded_dir, fake_openai))
    resets = [i for i, p in enumerate(parts) if isinstance(p, StreamReset)]
    assert len(resets) == 1
    before, after = parts[: resets[0]], parts[resets[0] + 1 :]
    assert before and all(isinstance(p, str) for p in before)  # the partial text that must be cleared
    assert "".join(str(p) for p in after) == ans.text  # what follows the reset is the whole answer
    assert ans.mode == "extractive" and "3.15分钟" in ans.text
    (w,) = ans.warnings_of(WarningKind.FALLBACK)
    assert "broke" in w.text and "Could not connect" not in w.text
    assert isinstance(parts[resets[0]], StreamReset) and "broke" in parts[resets[0]].reason  # type: ignore[union-attr]


def test_an_error_before_any_text_needs_no_reset(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.enqueue(status=500, times=5)
    parts, ans = _parts(_assistant(seeded_dir, fake_openai, max_retries=1))
    assert not any(isinstance(p, StreamReset) for p in parts)
    assert ans.mode == "extractive" and ans.warnings_of(WarningKind.FALLBACK)


# --- one time budget per answer ---------------------------------------------------------------------


def test_a_slow_server_costs_the_budget_not_attempts_times_timeout(seeded_dir: Path,
                                                                  fake_openai: FakeOpenAIServer) -> None:
    """4 attempts x 60 s used to cost 260 s; now the answer comes at the deadline."""
    fake_openai.enqueue(delay=30.0, times=10)
    a = _assistant(seeded_dir, fake_openai, timeout=60.0, max_retries=3, deadline=2.0)
    t = time.monotonic()
    ans = a.ask(Q)
    took = time.monotonic() - t
    assert took < 4.0, took
    assert ans.mode == "extractive" and "3.15分钟" in ans.text
    (w,) = ans.warnings_of(WarningKind.FALLBACK)
    spent = float(re.search(r"共用时 ([0-9.]+) 秒", w.text).group(1))  # type: ignore[union-attr]
    assert 1.8 <= spent <= took + 0.1  # the real time, not the per-attempt timeout
    assert "60 s" not in w.text
    attempts = [s for s, _ in ans.timings if s == "llm_attempt"]
    assert attempts and ans.timing("llm_failed") >= 1.8


def test_every_attempt_appears_in_the_timings(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.responder = quoting_responder
    fake_openai.enqueue(status=500, times=2)
    ans = _assistant(seeded_dir, fake_openai, max_retries=3).ask(Q)
    assert ans.mode == "llm"
    assert [s for s, _ in ans.timings].count("llm_attempt") == 3
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 3


def test_failed_attempts_are_timed_in_a_fallback(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.enqueue(status=503, times=10)
    ans = _assistant(seeded_dir, fake_openai, max_retries=2).ask(Q)
    assert ans.mode == "extractive"
    assert [s for s, _ in ans.timings].count("llm_attempt") == 3
    assert ans.timing("llm_failed") > 0
    assert "3 attempts" in ans.warnings_of(WarningKind.FALLBACK)[0].text


def test_the_rewrite_and_the_answer_share_one_budget(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.enqueue(delay=30.0, times=10)
    a = _assistant(seeded_dir, fake_openai, timeout=60.0, deadline=2.0)
    t = time.monotonic()
    ans = a.ask("那2020年呢?", history=[("user", Q), ("assistant", "3.15分钟[1]。")])
    assert time.monotonic() - t < 3.0  # 2 s in all, not 2 s for the rewrite and 2 more for the answer
    assert ans.warnings_of(WarningKind.CONDENSE) and ans.warnings_of(WarningKind.FALLBACK)


def test_watch_says_how_long_it_has_waited() -> None:
    def slow() -> Any:
        time.sleep(0.6)
        yield "答"

    t = time.monotonic()
    out = list(watch(slow(), after=0.2, every=0.1))
    waits = [p for p in out if isinstance(p, Waiting)]
    assert out[-1] == "答" and waits
    assert 0.2 <= waits[0].seconds < 0.4 and waits[-1].seconds <= time.monotonic() - t
    assert [w.seconds for w in waits] == sorted(w.seconds for w in waits)


def test_watch_raises_the_streams_error_in_the_caller() -> None:
    def broken() -> Any:
        yield "甲"
        raise LLMError("boom")

    with pytest.raises(LLMError, match="boom"):
        list(watch(broken()))


def _cli_env(seeded_dir: Path, server: FakeOpenAIServer, **extra: str) -> dict[str, str]:
    return {"ASSISTANT_DATA_DIR": str(seeded_dir), "OPENAI_BASE_URL": server.base_url, "LLM_PROVIDER": "openai",
            "LLM_MODEL": "fake-model", "LLM_MAX_RETRIES": "0", "COLUMNS": "200", **extra}


def test_cli_shows_a_waiting_notice_with_the_real_time(seeded_dir: Path, fake_openai: FakeOpenAIServer,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fake_openai.responder = quoting_responder
    fake_openai.enqueue(delay=4.5)
    res = CliRunner().invoke(app, ["ask", Q], env=_cli_env(seeded_dir, fake_openai, LLM_TIMEOUT="20"),
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "正在等待大模型回答…（已等待 3 秒）" in res.stderr
    assert "3.15分钟" in res.stdout


# --- follow-up rewrites ----------------------------------------------------------------------------

HIST = [("user", "东莞2025年家庭医生签约率目标是多少?"), ("assistant", "60%[1]。")]
CITIES = ["东莞市", "余姚市", "丽水市"]


@pytest.mark.parametrize(("rewrite", "problem"), [
    ("好的，改写后的问题如下：\n余姚市2025年家庭医生签约率目标是多少？", "不止一行"),
    ("好的，改写后的问题如下：余姚市2025年家庭医生签约率目标是多少？", "带有开场白"),
    ("独立问题：余姚市2025年家庭医生签约率目标是多少？", "带有开场白"),
    ("What is Yuyao's 2025 family-doctor contract rate target?", "语言与问题不同"),
    ("余姚市2025年家庭医生签约率目标为85%。", "不像一个问题"),
    ("东莞市2025年家庭医生签约率目标是多少？", "丢掉了“余姚”"),
    ("余姚市" + "家庭医生签约服务" * 12 + "是多少？", "长于"),
    ("", "空白"),
])
def test_an_untrustworthy_rewrite_is_refused(rewrite: str, problem: str) -> None:
    got = rewrite_problem(rewrite, "那余姚呢?", HIST, corpus_cities=CITIES)
    assert got is not None and got.startswith(problem), got


def test_a_rewrite_must_keep_the_year_asked() -> None:
    assert rewrite_problem("东莞市家庭医生签约率目标是多少？", "那2024年呢?", HIST, corpus_cities=CITIES) == \
        "丢掉了 2024 年"


def test_a_good_rewrite_is_accepted() -> None:
    for ok in ("余姚市2025年家庭医生签约率目标是多少？", "“余姚2025年家庭医生签约率目标是多少?”"):
        assert rewrite_problem(ok, "那余姚呢?", HIST, corpus_cities=CITIES) is None


def test_a_chatty_rewrite_falls_back_to_the_offline_carry_over(seeded_dir: Path,
                                                               fake_openai: FakeOpenAIServer) -> None:
    def responder(req: dict[str, Any]) -> str:
        if "独立问题" in req["messages"][-1]["content"]:
            return "好的，改写后的问题如下：\n余姚2025年家庭医生签约服务有什么安排?"
        return "所提供的报告中没有找到相关内容。"

    fake_openai.responder = responder
    ans = _assistant(seeded_dir, fake_openai).ask("那余姚呢?", history=HIST)
    assert ans.standalone_question == "余姚2025年家庭医生签约率目标是多少?"  # carried over, not the preamble
    (w,) = ans.warnings_of(WarningKind.CONDENSE)
    assert "不止一行" in w.text
    assert ans.filters.cities == ("余姚市",) and ans.filters.years == (2025,)


def test_a_cut_off_rewrite_is_not_used(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.responder = lambda req: "所提供的报告中没有找到相关内容。"
    fake_openai.enqueue(reply="余姚市2025年家庭医生签约率目标是多少？", finish_reason="length")
    ans = _assistant(seeded_dir, fake_openai).ask("那余姚呢?", history=HIST)
    assert ans.warnings_of(WarningKind.CONDENSE) and "截断" in ans.warnings_of(WarningKind.CONDENSE)[0].text


# --- streamed text checked before it is shown ------------------------------------------------------


def test_a_marker_to_no_source_is_never_streamed(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    def responder(req: dict[str, Any]) -> str:
        return quoting_responder(req)[:-1] + "[9]。另见[1][9]。"

    fake_openai.responder = responder
    fake_openai.stream_piece_chars = 1  # "[" and "9" and "]" arrive as separate deltas
    parts, ans = _parts(_assistant(seeded_dir, fake_openai))
    assert len(_sources(fake_openai.requests_to("/v1/chat/completions")[-1].json)) < 9
    streamed = "".join(str(p) for p in parts)
    assert "[9]" not in streamed and "[1]" in streamed
    assert "[9]" not in ans.text and ans.warnings_of(WarningKind.REMOVED_MARKER)


def test_an_unsupported_sentence_is_marked_in_the_answer(seeded_dir: Path, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.responder = lambda req: quoting_responder(req) + "这一成绩在全省名列前茅。"
    ans = _assistant(seeded_dir, fake_openai).ask(Q)
    assert "⚠这一成绩在全省名列前茅。" in ans.text
    assert ans.text.count("⚠") == len(ans.unsupported) == 1


def test_cli_ask_exits_3_when_a_sentence_is_unsupported(seeded_dir: Path, fake_openai: FakeOpenAIServer,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = _cli_env(seeded_dir, fake_openai)
    fake_openai.responder = quoting_responder
    ok = CliRunner().invoke(app, ["ask", Q], env=env, catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    fake_openai.responder = lambda req: "市级医院排队平均时间缩短至3.51分钟[1]。"
    bad = CliRunner().invoke(app, ["ask", Q], env=env, catch_exceptions=False)
    assert bad.exit_code == EXIT_UNSUPPORTED == 3
    assert "⚠市级医院排队平均时间缩短至3.51分钟" in bad.stdout


def test_cli_says_when_a_broken_stream_was_replaced(seeded_dir: Path, fake_openai: FakeOpenAIServer,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fake_openai.responder = lambda req: "半截的回答" + quoting_responder(req)
    fake_openai.enqueue(break_after=2)
    res = CliRunner().invoke(app, ["ask", Q], env=_cli_env(seeded_dir, fake_openai), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "中途中断" in res.stderr and "broke" in res.stderr
    assert "半截" not in res.stdout and "3.15分钟" in res.stdout and "离线抽取模式" in res.stdout
