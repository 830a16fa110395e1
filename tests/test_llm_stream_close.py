"""A stream the caller stops reading must release its HTTP response at once, in the caller's
thread. The openai stream under llama-index's generator sits in a reference cycle, so
closing the generator alone leaves the response open until some garbage collection runs,
possibly inside the HTTP pool's lock during the next request (the thread then waits for
itself: this suite once stalled 600 s on it)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from assistant.config import LLMSettings
from assistant.llm import Message, OpenAIChatLLM

MESSAGES = [Message("system", "只根据资料回答。"), Message("user", "问题?")]
REPLY = "全市家庭医生签约率达到60%以上。"


def _busy_connections(llm: OpenAIChatLLM) -> int:
    pool = llm._llm._get_client()._client._transport._pool  # httpx → httpcore connection pool
    return sum(not c.is_idle() for c in pool.connections)


@pytest.mark.timeout(120)
def test_a_stream_stopped_early_releases_its_connection_at_once(fake_openai: Any) -> None:
    fake_openai.responder = lambda _req: REPLY
    llm = OpenAIChatLLM(LLMSettings(base_url=fake_openai.base_url, model="fake-model", timeout=5, max_retries=0,
                                    context_window=16000))
    enabled = gc.isenabled()
    gc.disable()  # no collection may tidy up behind the stream's back
    try:
        gen = llm.stream(MESSAGES)
        assert isinstance(next(gen), str)
        assert _busy_connections(llm) == 1
        gen.close()
        assert _busy_connections(llm) == 0
        assert llm.complete(MESSAGES).text == REPLY
        assert _busy_connections(llm) == 0
    finally:
        if enabled:
            gc.enable()
