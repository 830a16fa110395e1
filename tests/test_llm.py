"""OpenAIChatLLM and OpenAIEmbedder over real HTTP against the local fake OpenAI server."""

from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import Iterator

import numpy as np
import pytest
from fakes.openai_server import FakeOpenAIServer, fake_embedding

from assistant.config import EmbeddingSettings, LLMSettings
from assistant.embedding import OpenAIEmbedder
from assistant.errors import ConfigError, LLMAuthError, LLMError, LLMModelNotFoundError
from assistant.llm import LLM, Completion, Message, OpenAIChatLLM, estimate_usage
from assistant.testing import FakeLLM
from assistant.types import Usage

KEY = "sk-test-0123456789abcdef"
MODEL = "qwen-test"
EMBED_MODEL = "embed-test"
MESSAGES = [Message("system", "只依据资料作答。"), Message("user", "东莞市2024年家庭医生签约率是多少？")]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY, models=[MODEL, EMBED_MODEL]) as s:
        yield s


def make_llm(server: FakeOpenAIServer, **overrides: object) -> OpenAIChatLLM:
    values: dict[str, object] = {"model": MODEL, "base_url": server.base_url, "api_key": KEY,
                                 "timeout": 5.0, "max_retries": 2, **overrides}
    return OpenAIChatLLM(LLMSettings(**values))  # type: ignore[arg-type]


def collect(llm: LLM, messages: list[Message]) -> tuple[list[str], list[Completion]]:
    deltas: list[str] = []
    finals: list[Completion] = []
    for item in llm.stream(messages):
        if isinstance(item, Completion):
            finals.append(item)
        else:
            assert not finals, "text after the final Completion"
            deltas.append(item)
    return deltas, finals


# --- answers and usage -----------------------------------------------------------------


def test_complete_returns_answer_and_server_usage(server: FakeOpenAIServer) -> None:
    server.enqueue(reply="签约率为45.2%[1]。", usage={"prompt_tokens": 120, "completion_tokens": 9})
    llm = make_llm(server, temperature=0.2, max_answer_tokens=300)

    out = llm.complete(MESSAGES)

    assert out == Completion(text="签约率为45.2%[1]。", usage=Usage(120, 9), model=MODEL)
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.json["model"] == MODEL
    assert req.json["temperature"] == 0.2
    assert req.json["max_tokens"] == 300
    assert req.json["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]
    assert not req.json.get("stream")
    assert "stream_options" not in req.json


def test_complete_counts_tokens_when_server_reports_no_usage(server: FakeOpenAIServer) -> None:
    server.report_usage = False
    server.enqueue(reply="答案[1]。")
    out = make_llm(server).complete(MESSAGES)
    assert out.usage == estimate_usage(MESSAGES, "答案[1]。")
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0


def test_stream_deltas_concatenate_and_end_with_one_completion(server: FakeOpenAIServer) -> None:
    reply = "东莞市2024年家庭医生签约率为45.2%[1]。丽水市为50%[2]。"
    server.enqueue(reply=reply, usage={"prompt_tokens": 77, "completion_tokens": 21})

    deltas, finals = collect(make_llm(server), MESSAGES)

    assert len(deltas) > 3 and "".join(deltas) == reply
    assert finals == [Completion(text=reply, usage=Usage(77, 21), model=MODEL)]
    (req,) = server.requests
    assert req.json["stream"] is True
    assert req.json["stream_options"] == {"include_usage": True}


def test_stream_counts_tokens_when_server_sends_no_usage(server: FakeOpenAIServer) -> None:
    server.report_usage = False
    server.enqueue(reply="答案[1]。")
    _, (final,) = collect(make_llm(server), MESSAGES)
    assert final.usage == estimate_usage(MESSAGES, "答案[1]。")


def test_stream_falls_back_when_server_rejects_stream_options(server: FakeOpenAIServer) -> None:
    server.enqueue(status=400, body={"error": {
        "message": "Unrecognized request argument supplied: stream_options", "type": "invalid_request_error",
        "param": None, "code": None}})
    server.enqueue(reply="答案[1]。")
    llm = make_llm(server)

    deltas, (final,) = collect(llm, MESSAGES)

    assert "".join(deltas) == final.text == "答案[1]。"
    assert final.usage == estimate_usage(MESSAGES, "答案[1]。")
    first, second = server.requests
    assert "stream_options" in first.json and "stream_options" not in second.json
    collect(llm, MESSAGES)  # remembered: no second refusal
    assert "stream_options" not in server.requests[-1].json


# --- retries and timeouts --------------------------------------------------------------


def test_rate_limit_is_retried_by_the_client(server: FakeOpenAIServer) -> None:
    server.enqueue(status=429, headers={"retry-after-ms": "10"})
    server.enqueue(reply="答案[1]。")
    assert make_llm(server, max_retries=2).complete(MESSAGES).text == "答案[1]。"
    assert len(server.requests) == 2


def test_server_errors_are_retried_with_backoff(server: FakeOpenAIServer) -> None:
    server.enqueue(status=500, times=2)
    server.enqueue(reply="答案[1]。")
    assert make_llm(server, max_retries=2).complete(MESSAGES).text == "答案[1]。"
    assert len(server.requests) == 3


def test_stream_request_is_retried_too(server: FakeOpenAIServer) -> None:
    server.enqueue(status=503)
    server.enqueue(reply="答案[1]。")
    deltas, _ = collect(make_llm(server, max_retries=1), MESSAGES)
    assert "".join(deltas) == "答案[1]。"
    assert len(server.requests) == 2


def test_retries_happen_once_not_multiplied_by_llama_index(server: FakeOpenAIServer) -> None:
    # OpenAILike would wrap the client's retries in its own tenacity loop: (2+1) x 2 attempts.
    server.enqueue(status=500, times=10)
    with pytest.raises(LLMError) as info:
        make_llm(server, max_retries=2).complete(MESSAGES)
    assert info.value.retryable and type(info.value) is LLMError
    assert len(server.requests) == 3
    assert "127.0.0.1" in str(info.value)


def test_exhausted_rate_limit_is_retryable(server: FakeOpenAIServer) -> None:
    server.enqueue(status=429, times=2)
    with pytest.raises(LLMError) as info:
        make_llm(server, max_retries=1).complete(MESSAGES)
    assert info.value.retryable
    assert "429" in info.value.message


def test_timeout_raises_retryable_error_quickly(server: FakeOpenAIServer) -> None:
    server.enqueue(delay=5.0)
    llm = make_llm(server, timeout=0.3, max_retries=0)
    start = time.monotonic()
    with pytest.raises(LLMError) as info:
        llm.complete(MESSAGES)
    assert time.monotonic() - start < 2.0
    assert info.value.retryable
    assert "127.0.0.1" in info.value.message and "did not answer" in info.value.message


def test_stream_timeout_raises_retryable_error(server: FakeOpenAIServer) -> None:
    server.enqueue(delay=5.0)
    with pytest.raises(LLMError) as info:
        collect(make_llm(server, timeout=0.3, max_retries=0), MESSAGES)
    assert info.value.retryable


def test_stall_in_the_middle_of_a_stream_raises_retryable_error(server: FakeOpenAIServer) -> None:
    server.enqueue(reply="很长的回答" * 5, chunk_delay=2.0)
    received: list[str] = []
    start = time.monotonic()
    with pytest.raises(LLMError) as info:
        for item in make_llm(server, timeout=0.3, max_retries=0).stream(MESSAGES):
            received.append(item)  # type: ignore[arg-type]
    assert time.monotonic() - start < 2.0
    assert info.value.retryable
    assert received and not any(isinstance(x, Completion) for x in received)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OpenAIChatLLM(LLMSettings(model=MODEL, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0))
    with pytest.raises(LLMError) as info:
        llm.complete(MESSAGES)
    assert info.value.retryable
    assert f"127.0.0.1:{port}" in info.value.message


# --- errors that need the user ------------------------------------------------------------


def _assert_secret_absent(secret: str, exc: BaseException, logs: str) -> None:
    assert secret not in str(exc)
    assert secret not in repr(exc)
    assert secret not in "".join(traceback.format_exception(exc))
    assert secret not in logs


def test_bad_key_raises_auth_error_without_the_key(server: FakeOpenAIServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    wrong = "sk-wrong-key-must-never-leak-42"
    caplog.set_level(logging.DEBUG)
    llm = make_llm(server, api_key=wrong)
    with pytest.raises(LLMAuthError) as info:
        llm.complete(MESSAGES)
    assert not info.value.retryable
    assert "rejected the API key (401)" in info.value.message
    assert "OPENAI_API_KEY" in info.value.hint
    assert len(server.requests) == 1  # 401 is not retried
    _assert_secret_absent(wrong, info.value, caplog.text)
    assert wrong not in repr(llm)

    with pytest.raises(LLMAuthError) as info:
        collect(llm, MESSAGES)
    _assert_secret_absent(wrong, info.value, caplog.text)


def test_forbidden_is_an_auth_error(server: FakeOpenAIServer) -> None:
    server.enqueue(status=403)
    with pytest.raises(LLMAuthError):
        make_llm(server).complete(MESSAGES)


def test_key_echoed_by_server_is_redacted(server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.enqueue(status=400, body={"error": {"message": f"context too long for key {KEY}",
                                               "type": "invalid_request_error", "param": None, "code": None}})
    with pytest.raises(LLMError) as info:
        make_llm(server).complete(MESSAGES)
    assert not info.value.retryable
    assert "context too long" in info.value.message
    _assert_secret_absent(KEY, info.value, caplog.text)


def test_successful_calls_do_not_log_the_key(server: FakeOpenAIServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    llm = make_llm(server)
    llm.complete(MESSAGES)
    collect(llm, MESSAGES)
    assert caplog.records  # the openai client does log at DEBUG
    assert KEY not in caplog.text


def test_unknown_model_raises_model_not_found(server: FakeOpenAIServer) -> None:
    with pytest.raises(LLMModelNotFoundError) as info:
        make_llm(server, model="no-such-model").complete(MESSAGES)
    assert "no-such-model" in info.value.message
    assert "LLM_MODEL" in info.value.hint and "/v1/models" in info.value.hint
    assert not info.value.retryable
    assert len(server.requests) == 1


def test_construction_checks_settings() -> None:
    with pytest.raises(ConfigError, match="API key"):
        OpenAIChatLLM(LLMSettings(provider="openai"))
    with pytest.raises(ConfigError, match="http"):
        OpenAIChatLLM(LLMSettings(base_url="localhost:8000/v1"))
    llm = OpenAIChatLLM(LLMSettings(api_key=KEY, context_window=32_000))  # cheap: no request
    assert llm.model == "gpt-4o-mini" and llm.context_window == 32_000
    assert isinstance(llm, LLM)
    assert KEY not in repr(llm)


def test_keyless_local_server(server: FakeOpenAIServer) -> None:
    server.api_key = None
    llm = OpenAIChatLLM(LLMSettings(model=MODEL, base_url=server.base_url))
    assert llm.complete(MESSAGES).text
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"


def test_llama_index_global_settings_are_never_touched(server: FakeOpenAIServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from llama_index.core import Settings

    def boom(self: object, *args: object) -> None:
        raise AssertionError("llama_index.core.Settings was touched")

    for name in ("llm", "embed_model", "callback_manager", "tokenizer", "context_window"):
        monkeypatch.setattr(type(Settings), name, property(boom, boom))
    llm = make_llm(server)
    llm.complete(MESSAGES)
    collect(llm, MESSAGES)


# --- FakeLLM ------------------------------------------------------------------------------


def test_fake_llm_replies_in_order_and_records_calls() -> None:
    llm = FakeLLM(["一[1]。", LLMError("down", retryable=True), "二[2]。"])
    assert isinstance(llm, LLM)
    assert llm.complete(MESSAGES).text == "一[1]。"
    with pytest.raises(LLMError):
        llm.complete(MESSAGES)
    deltas, (final,) = collect(llm, MESSAGES)
    assert "".join(deltas) == final.text == "二[2]。"
    assert final.usage == estimate_usage(MESSAGES, "二[2]。")
    assert llm.calls == [tuple(MESSAGES)] * 3
    with pytest.raises(LLMError, match="no replies left"):
        llm.complete(MESSAGES)


def test_fake_llm_with_a_function() -> None:
    llm = FakeLLM(lambda msgs: f"共{len(msgs)}条消息[1]。", piece_chars=2)
    deltas, (final,) = collect(llm, MESSAGES)
    assert deltas == ["共2", "条消", "息[", "1]", "。"]
    assert final.text == "共2条消息[1]。" and final.model == "fake-llm"


def test_message_role_is_checked() -> None:
    with pytest.raises(ValueError):
        Message("tool", "x")  # type: ignore[arg-type]


# --- embeddings through the same fake server -------------------------------------------


def make_embedder(server: FakeOpenAIServer, **overrides: object) -> OpenAIEmbedder:
    values: dict[str, object] = {"provider": "openai", "model": EMBED_MODEL, "base_url": server.base_url,
                                 "api_key": KEY, "batch_size": 2, **overrides}
    return OpenAIEmbedder(EmbeddingSettings(**values), timeout=5.0, max_retries=0)  # type: ignore[arg-type]


def test_openai_embedder_shape_norm_and_batch_order(server: FakeOpenAIServer) -> None:
    server.reverse_embeddings = True  # data items come back out of order; index decides
    texts = ["家庭医生签约率", "门诊量", "东莞市", "丽水市2019年排队时间", "疫苗接种"]
    emb = make_embedder(server)

    m = emb.embed_passages(texts)

    assert m.shape == (5, 32) and m.dtype == np.float32
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    expected = np.array([fake_embedding(t, 32) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(m, expected, atol=1e-5)
    batches = server.requests_to("/v1/embeddings")
    assert [r.json["input"] for r in batches] == [texts[0:2], texts[2:4], texts[4:5]]
    assert np.allclose(emb.embed_query(texts[3]), m[3], atol=1e-6)
    assert emb.dim == 32


def test_openai_embedder_dimensions_and_errors(server: FakeOpenAIServer) -> None:
    emb = make_embedder(server, dimensions=16)
    assert emb.embed_passages(["一", "二"]).shape == (2, 16)
    assert emb.model_id == f"openai:{EMBED_MODEL}@16"
    assert server.requests[-1].json["dimensions"] == 16

    with pytest.raises(LLMError) as info:
        make_embedder(server, api_key="sk-wrong-embedding-key").embed_query("一")
    assert "sk-wrong-embedding-key" not in str(info.value)
