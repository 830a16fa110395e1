"""A canary API key never leaks, not even in part, whatever the server echoes.

ask, stream, eval and the UI run with a canary key against the fake OpenAI-compatible
server on 127.0.0.1 set to echo the caller's key (whole, and in slices) in every error.
Then every output, log line (DEBUG, openai and httpx included), eval report, exception
chain (``__context__``, ``__cause__``, attributes) and every file under the data dir is
searched for any 8-character slice of the key: zero hits.
"""

from __future__ import annotations

import json
import logging
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SEEDS, make_settings
from fakes.openai_server import FakeOpenAIServer
from streamlit.testing.v1 import AppTest
from test_llm_path import quoting_responder
from typer.testing import CliRunner

from assistant.cli import app
from assistant.errors import LLMAuthError, LLMError
from assistant.facade import Assistant
from assistant.llm import Message
from assistant.resources import gold_path
from assistant.testing import HashEmbedder

pytestmark = pytest.mark.slow

CANARY = "sk-canary-3f9d2b7e5a1c4e8b0d6f2a91"
SLICES = {CANARY[i : i + 8] for i in range(len(CANARY) - 7)}
APP = Path(__file__).resolve().parent.parent / "assistant" / "ui" / "app.py"
Q = "丽水市2019年市级医院排队平均时间缩短到多少?"


def leaks(text: str | bytes) -> list[str]:
    """The slices of the canary found in ``text`` (8 characters or more of the key)."""
    hay = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return sorted(s for s in SLICES if s in hay)


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Everything an exception and its chain could show: messages, reprs, tracebacks, attributes."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield str(e)
        yield repr(e)
        yield "".join(traceback.format_exception(e, chain=True))
        yield repr(vars(e))
        todo += [e.__context__, e.__cause__]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=CANARY, models=["fake-model"]) as s:
        s.echo_key_in_errors = True
        s.responder = quoting_responder
        yield s


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir of our own (hash-embedded seeds), every file of which is searched at the end."""
    data = tmp_path / "data"
    Assistant(make_settings(data), embedder=HashEmbedder()).ingest([SEEDS])
    return data


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    """Every log record of every library at DEBUG, into a file."""
    path = tmp_path / "debug.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("openai", "httpx", "httpcore", "assistant", "llama_index"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
        handler.close()


def _env(data: Path, server: FakeOpenAIServer, reports: Path) -> dict[str, str]:
    return {"ASSISTANT_DATA_DIR": str(data), "OPENAI_API_KEY": CANARY, "OPENAI_BASE_URL": server.base_url,
            "LLM_MODEL": "fake-model", "LLM_PROVIDER": "openai", "EMBEDDING_PROVIDER": "hash",
            "LLM_MAX_RETRIES": "1", "LOG_LEVEL": "DEBUG", "ASSISTANT_EVAL_REPORTS": str(reports), "COLUMNS": "200"}


def test_the_canary_key_never_leaks(server: FakeOpenAIServer, data_dir: Path, logs: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    outputs: list[str] = []
    exceptions: list[BaseException] = []
    reports = tmp_path / "reports"
    env = _env(data_dir, server, reports)
    settings = make_settings(data_dir, llm={"provider": "openai", "base_url": server.base_url, "model": "fake-model",
                                            "api_key": CANARY, "max_retries": 1})
    a = Assistant(settings, embedder=HashEmbedder())

    # The fake server really does echo the key: otherwise this test could not fail.
    server.reset()
    server.enqueue(status=500)
    echoed = httpx.post(f"{server.base_url}/chat/completions", json={"model": "fake-model"},
                        headers={"Authorization": f"Bearer {CANARY}"}).text
    assert CANARY in echoed and leaks(echoed)

    # ask: errors echoing the key, retried, then answered; a 400 whose detail is shown; a fallback.
    server.reset()
    server.enqueue(status=500)
    ans = a.ask(Q)
    server.reset()
    server.enqueue(status=400, times=2)
    ans400 = a.ask(Q)
    server.reset()
    server.enqueue(status=503, times=4)
    fallback = a.ask(Q)
    assert ans.mode == "llm" and ans400.warnings and fallback.mode == "extractive"
    # ... a follow-up whose rewrite fails with an echo
    server.reset()
    server.enqueue(status=500, times=2)
    follow = a.ask("那2020年呢?", history=[("user", Q), ("assistant", ans.text)])
    for x in (ans, ans400, fallback, follow):
        outputs += [repr(x), json.dumps([w.text for w in x.warnings], ensure_ascii=False)]

    # stream: a broken stream (reset + fallback), then a rejected key raised to the caller.
    server.reset()
    server.enqueue(break_after=2)
    parts = list(a.stream(Q))
    outputs += [repr(p) for p in parts]
    assert any(type(p).__name__ == "StreamReset" for p in parts)
    server.reset()
    server.enqueue(status=401)
    with pytest.raises(LLMAuthError) as auth:
        list(a.stream(Q))
    exceptions.append(auth.value)
    server.reset()
    server.enqueue(status=400, times=2)
    with pytest.raises(LLMError) as direct:
        assert a.llm is not None
        a.llm.complete([Message("user", "x")])
    exceptions.append(direct.value)
    assert "Key used: ***" in direct.value.message  # the echo was there, and redacted

    # The CLI: ask (an answer after an echoed error, then a rejected key), eval in LLM mode.
    runner = CliRunner()
    server.reset()
    server.enqueue(status=500)
    r1 = runner.invoke(app, ["ask", Q], env=env)
    server.reset()
    server.enqueue(status=401)
    r2 = runner.invoke(app, ["ask", Q], env=env)
    assert r1.exit_code in (0, 3) and r2.exit_code == 2 and "OPENAI_API_KEY" in r2.stderr
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(gold_path().read_text(encoding="utf-8").splitlines(keepends=True)[:4]), encoding="utf-8")
    server.reset()
    server.enqueue(status=500, times=3)
    server.enqueue(break_after=1)
    r3 = runner.invoke(app, ["eval", "--mode", "llm", "--gold", str(gold), "--corpus", str(corpus),
                             "--no-baselines", "--out", str(reports)], env=env)
    assert r3.exit_code == 0, r3.output
    for r in (r1, r2, r3):
        outputs += [r.stdout, r.stderr]
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            exceptions.append(r.exception)
    report_files = [p for p in reports.rglob("*") if p.is_file()]
    assert any(p.name == "items.jsonl" for p in report_files)
    assert any("LLM fallback" in p.read_text(encoding="utf-8") for p in report_files if p.suffix == ".jsonl")

    # The UI, in LLM mode, through an echoed error and a rejected key.
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    server.reset()
    server.enqueue(status=503, times=2)
    at.chat_input[0].set_value(Q).run()
    server.reset()
    server.enqueue(status=401)
    at.chat_input[0].set_value("东莞2025年家庭医生签约率目标是多少?").run()
    ui = [e.value for kind in ("markdown", "info", "warning", "error", "caption", "text", "code", "success")
          for e in getattr(at, kind)] + [str(e.value) for e in at.exception]
    assert any("rejected the API key" in x for x in ui)  # the auth error was shown ...
    outputs += [str(x) for x in ui]

    captured = capsys.readouterr()
    outputs += [captured.out, captured.err, logs.read_text(encoding="utf-8")]
    assert "HTTP Request: POST" in outputs[-1]  # DEBUG logging really was on

    # ... and nowhere is there a trace of the key.
    hits = {f"output {i}": leaks(t) for i, t in enumerate(outputs)}
    hits |= {f"exception {i}": leaks("\n".join(exception_texts(e))) for i, e in enumerate(exceptions)}
    files = [p for p in [*data_dir.rglob("*"), *reports.rglob("*"), *tmp_path.glob("*.log")] if p.is_file()]
    assert len(files) > 5
    hits |= {str(p): leaks(p.read_bytes()) for p in files}
    assert {k: v for k, v in hits.items() if v} == {}


def test_the_search_would_find_a_partial_echo() -> None:
    """The detector itself: a slice of the key, or the key with a few characters masked."""
    assert leaks(f"bad key {CANARY[:8]}****") and leaks(f"...{CANARY[-9:]}") and leaks(CANARY.encode())
    assert not leaks("sk-****") and not leaks(CANARY[:7])

