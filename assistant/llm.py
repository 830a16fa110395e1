"""Chat LLMs behind one small protocol.

* :class:`OpenAIChatLLM` – OpenAI or any OpenAI-compatible ``/v1/chat/completions``
  server (vLLM, llama.cpp, Ollama, DeepSeek, Qwen …) through llama-index's
  ``OpenAILike``, which calls the official ``openai`` client.
* ``assistant.testing.FakeLLM`` – canned replies, for tests.

Failures surface as :class:`~assistant.errors.LLMError` (``retryable`` set for
timeouts, connection failures, rate limits and 5xx) or its subclasses
:class:`~assistant.errors.LLMAuthError` and :class:`~assistant.errors.LLMModelNotFoundError`.
The API key never appears in a message or a log line.

>>> Message("user", "问题").role
'user'
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .config import LLMSettings
from .errors import ConfigError, LLMAuthError, LLMError, LLMModelNotFoundError
from .retry import Budget, attempt_outcome, redact, retry_after
from .text import count_tokens
from .types import Attempt, Usage

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
_ROLES = ("system", "user", "assistant")
DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"
_NO_KEY = "not-needed"  # keyless local servers still need a non-empty string
_PER_MESSAGE_OVERHEAD = 4  # chat-format tokens per message, for the local estimate
# Ends the model chose itself; "length", "content_filter" and no reason at all are cut-offs.
_COMPLETE_REASONS = frozenset({"stop", "eos", "eos_token", "stop_sequence", "end_turn", "tool_calls",
                               "function_call"})


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"Message role must be one of {_ROLES}, not {self.role!r}")


@dataclass(frozen=True)
class Completion:
    """A finished answer: the full text, token usage and the model that produced it.

    ``finish_reason`` is what the server said about the end: ``"stop"`` (complete),
    ``"length"`` (cut at the token limit) or None (the stream just ended without saying);
    :attr:`truncated` is True unless the model ended the answer itself.  ``attempts`` lists
    every call it took, failed ones included.
    """

    text: str
    usage: Usage
    model: str
    finish_reason: str | None = "stop"
    attempts: tuple[Attempt, ...] = field(default=(), compare=False)

    @property
    def truncated(self) -> bool:
        return self.finish_reason not in _COMPLETE_REASONS


@runtime_checkable
class LLM(Protocol):
    """What the answer stage needs from a chat model.

    ``deadline`` is a :func:`time.monotonic` instant by which the call must be over,
    retries included (None: the model's own default budget).
    """

    @property
    def model(self) -> str: ...

    @property
    def context_window(self) -> int: ...

    def complete(self, messages: Sequence[Message], *, deadline: float | None = None) -> Completion: ...

    def stream(self, messages: Sequence[Message], *, deadline: float | None = None) -> Iterator[str | Completion]:
        """Yield text deltas, then exactly one final :class:`Completion`."""
        ...


def estimate_usage(messages: Sequence[Message], text: str) -> Usage:
    """Token usage counted locally (tiktoken), for servers that report none."""
    prompt = sum(count_tokens(m.content) + _PER_MESSAGE_OVERHEAD for m in messages)
    return Usage(prompt_tokens=prompt, completion_tokens=count_tokens(text))


# --- OpenAI-compatible servers -------------------------------------------------------


class OpenAIChatLLM:
    """A chat model on OpenAI or an OpenAI-compatible server.

    Retries happen in exactly one place, here: connection errors, timeouts, 408/409/429
    and 5xx are retried up to ``settings.max_retries`` times with exponential backoff
    (0.5 s doubling, capped at 8 s, honouring ``Retry-After``), all inside one time budget
    (``settings.deadline``, or the ``deadline`` a caller passes).  The openai client's and
    llama-index's own retry layers are switched off, so every attempt is seen and timed.
    Each attempt may take up to ``settings.timeout`` seconds (for streams: between chunks),
    never past the budget.  A stream that breaks after text was yielded is not retried
    (the caller has shown that text): it raises, and the caller decides.

    Construction is cheap and makes no request.
    """

    def __init__(self, settings: LLMSettings) -> None:
        import openai
        from llama_index.core.callbacks import CallbackManager
        from llama_index.llms.openai_like import OpenAILike

        if not settings.model.strip():
            raise ConfigError("LLM_MODEL is empty.", "Set LLM_MODEL (or OPENAI_MODEL) to a model name.")
        base_url = (settings.base_url or "").strip() or None
        if base_url and urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError("OPENAI_BASE_URL must start with http:// or https://.",
                              "For example http://127.0.0.1:8000/v1.")
        key = settings.api_key.get_secret_value().strip() if settings.api_key else ""
        if not key and not base_url:
            raise ConfigError("The OpenAI API needs an API key.",
                              "Set OPENAI_API_KEY, or OPENAI_BASE_URL for a local OpenAI-compatible server, "
                              "or LLM_PROVIDER=extractive to answer without an LLM.")
        self._settings = settings
        self._secret = key
        # Explicit, so neither library falls back to OPENAI_BASE_URL / OPENAI_API_BASE itself.
        self._base_url = base_url or DEFAULT_OPENAI_BASE
        self._host = _host_of(self._base_url)
        self._stream_usage = True  # ask for usage in streams until a server refuses
        self._lock = threading.Lock()
        client = openai.OpenAI(api_key=key or _NO_KEY, base_url=self._base_url,
                               timeout=settings.timeout, max_retries=0)
        self._llm = OpenAILike(
            model=settings.model,
            api_base=self._base_url,
            api_key=key or _NO_KEY,
            is_chat_model=True,
            is_function_calling_model=False,
            context_window=settings.context_window,
            max_tokens=settings.max_answer_tokens,
            temperature=settings.temperature,
            timeout=settings.timeout,
            # 0 turns off llama-index's tenacity retries; this class retries instead.
            max_retries=0,
            reuse_client=True,
            openai_client=client,  # type: ignore[call-arg]  # accepted at run time, absent from the stub
            callback_manager=CallbackManager([]),  # never fall back to the global Settings
        )

    @property
    def model(self) -> str:
        return self._settings.model

    @property
    def context_window(self) -> int:
        return self._settings.context_window

    def __repr__(self) -> str:
        return f"OpenAIChatLLM(model={self.model!r}, host={self._host!r})"

    # --- calls -------------------------------------------------------------------

    def complete(self, messages: Sequence[Message], *, deadline: float | None = None) -> Completion:
        """One answer, not streamed."""
        chat = _to_chat(messages)
        budget = Budget(self._settings, deadline)
        while True:
            budget.check_left()
            t = time.monotonic()
            caught: BaseException | None = None
            try:
                resp = self._llm.chat(chat, timeout=budget.attempt_timeout())
            except Exception as exc:
                caught = exc
            if caught is None:
                text = resp.message.content or ""
                raw = resp.raw
                finish = _finish_reason(raw)
                budget.record(time.monotonic() - t, "ok" if finish in _COMPLETE_REASONS else finish or "no_finish")
                usage = _reported_usage(getattr(raw, "usage", None)) or estimate_usage(messages, text)
                return Completion(text=text, usage=usage, model=getattr(raw, "model", None) or self.model,
                                  finish_reason=finish, attempts=budget.attempts)
            # Built outside the except block: the openai exception (whose request carries the
            # key) must not ride along as __context__.
            err = self._translate(caught, budget)
            budget.record(time.monotonic() - t, attempt_outcome(caught))
            wait = retry_after(caught)
            caught = None
            if not budget.retry(err, wait):
                raise budget.give_up(err)

    def stream(self, messages: Sequence[Message], *, deadline: float | None = None) -> Iterator[str | Completion]:
        """Yield text deltas as they arrive, then one :class:`Completion`.

        Usage comes from the server's final chunk (``stream_options.include_usage``)
        when it sends one, else it is counted locally.  ``finish_reason`` is the one the
        server sent (None when the stream ended without one: a cut-off, not an answer).
        """
        chat = _to_chat(messages)
        budget = Budget(self._settings, deadline)
        while True:
            budget.check_left()
            parts: list[str] = []
            usage: Usage | None = None
            model: str | None = None
            finish: str | None = None
            t = time.monotonic()
            caught: BaseException | None = None
            late = False
            kwargs: dict[str, Any] = {"timeout": budget.attempt_timeout()}
            if self._stream_usage:
                kwargs["stream_options"] = {"include_usage": True}
            gen = None
            finished = False
            try:
                gen = self._llm.stream_chat(chat, **kwargs)
                for resp in gen:
                    raw = resp.raw
                    usage = _reported_usage(getattr(raw, "usage", None)) or usage
                    model = getattr(raw, "model", None) or model
                    finish = _finish_reason(raw) or finish
                    if resp.delta:
                        parts.append(resp.delta)
                        yield resp.delta
                    if budget.expired():
                        late = True
                        break
                else:
                    finished = True
            except Exception as exc:
                caught = exc
            finally:
                if gen is not None:
                    gen.close()
                    if not finished:
                        # The openai stream under llama-index's generator sits in a reference
                        # cycle: only a collection closes its HTTP response. Collect now, in
                        # this thread, rather than whenever one happens to run, possibly
                        # inside the HTTP pool's lock during the next request (a deadlock).
                        gc.collect()
            seconds = time.monotonic() - t
            if caught is None and not late:
                text = "".join(parts)
                budget.record(seconds, "ok" if finish in _COMPLETE_REASONS else finish or "no_finish")
                yield Completion(text=text, usage=usage or estimate_usage(messages, text),
                                 model=model or self.model, finish_reason=finish, attempts=budget.attempts)
                return
            if late:
                budget.record(seconds, "deadline")
                raise budget.give_up(LLMError(
                    f"The LLM server at {self._host} did not finish its answer within the "
                    f"{budget.total:g} s budget ({len(''.join(parts))} characters received).",
                    "Raise LLM_DEADLINE, or use a faster model."))
            assert caught is not None
            if (not parts and self._stream_usage and budget.n == 0 and _rejects_stream_options(caught)):
                log.info("LLM server at %s rejects stream_options; counting tokens locally", self._host)
                with self._lock:
                    self._stream_usage = False
                caught = None
                continue
            err = self._translate(caught, budget, received=len("".join(parts)))
            budget.record(seconds, "broken" if parts else attempt_outcome(caught))
            wait = retry_after(caught)
            caught = None
            if parts or not budget.retry(err, wait):
                # Text was already yielded: a retry would repeat it. The caller decides.
                raise budget.give_up(err)

    # --- errors ------------------------------------------------------------------

    def _translate(self, exc: BaseException, budget: Budget, *, received: int = 0) -> LLMError:
        """Map an exception from openai/httpx to an :class:`LLMError`; never echo the key.

        ``received``: characters of the answer already streamed when ``exc`` happened; a
        failure then is a broken stream, not a failed connection.
        """
        import httpx
        import openai

        host, s = self._host, self._settings
        if isinstance(exc, LLMError):
            return exc
        err: LLMError
        if received and not isinstance(exc, openai.APIStatusError):
            stalled = isinstance(exc, openai.APITimeoutError | httpx.TimeoutException)
            what = f"stalled for {budget.last_timeout:g} s" if stalled else f"broke ({type(exc).__name__})"
            err = LLMError(f"The answer stream from the LLM server at {host} {what} after {received} "
                           "characters.", "Try again; if it keeps happening, check the server's logs.",
                           retryable=True)
            log.warning("LLM stream from %s failed: %s (%s)", host, type(exc).__name__, err.message)
            return err
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            err = LLMAuthError(f"The LLM server rejected the API key ({exc.status_code}).",
                               f"Check OPENAI_API_KEY for {host}.")
        elif isinstance(exc, openai.NotFoundError):
            err = LLMModelNotFoundError(
                f"The LLM server at {host} does not know the model {s.model!r} (404).",
                f"Check LLM_MODEL/OPENAI_MODEL against the models listed at {self._base_url}/models, "
                "and that OPENAI_BASE_URL ends in /v1.")
        elif isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
            err = LLMError(f"The LLM server at {host} did not answer within {budget.last_timeout:.3g} s.",
                           "Try again, or raise LLM_TIMEOUT / LLM_DEADLINE.", retryable=True)
        elif isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            err = LLMError(f"Could not connect to the LLM server at {host}.",
                           "Check that it is running and that OPENAI_BASE_URL is right.", retryable=True)
        elif isinstance(exc, openai.RateLimitError):
            if _error_code(exc) == "insufficient_quota":
                err = LLMError(f"The LLM account at {host} has no quota left (429 insufficient_quota).",
                               "Check the account's billing.")
            else:
                err = LLMError(f"The LLM server at {host} is rate limiting requests (429).",
                               "Wait and try again, or raise LLM_MAX_RETRIES.", retryable=True)
        elif isinstance(exc, openai.InternalServerError):
            err = LLMError(f"The LLM server at {host} failed ({exc.status_code}).", "Try again later.",
                           retryable=True)
        elif isinstance(exc, openai.APIStatusError):
            detail = self._redact(_error_message(exc))[:300]
            err = LLMError(f"The LLM server at {host} refused the request ({exc.status_code}): {detail}",
                           "Check the model settings (LLM_CONTEXT_WINDOW, max answer tokens).",
                           retryable=exc.status_code in (408, 409))
        elif isinstance(exc, openai.APIError):
            err = LLMError(f"The LLM call to {host} failed: {type(exc).__name__}.", "Try again.",
                           retryable=True)
        else:
            err = LLMError(f"The LLM call to {host} failed: {type(exc).__name__}.",
                           "This is probably a bug; please report it.")
        log.warning("LLM request to %s failed: %s (%s)", host, type(exc).__name__, err.message)
        return err

    def _redact(self, text: str) -> str:
        return redact(text, self._secret)


def _finish_reason(raw: Any) -> str | None:
    choices = getattr(raw, "choices", None) or []
    return getattr(choices[0], "finish_reason", None) if choices else None


def _to_chat(messages: Sequence[Message]) -> list[Any]:
    from llama_index.core.llms import ChatMessage

    if not messages:
        raise ValueError("complete()/stream() need at least one message")
    return [ChatMessage(role=m.role, content=m.content) for m in messages]


def _reported_usage(usage: Any) -> Usage | None:
    """The server's usage block, if it has both counts."""
    if usage is None:
        return None
    p, c = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
    if p is None or c is None:
        return None
    return Usage(prompt_tokens=int(p), completion_tokens=int(c))


def _host_of(url: str) -> str:
    """``host[:port]`` only: user info in a URL may hold credentials."""
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def _error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code")
    return getattr(exc, "code", None)


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return exc.message


def _rejects_stream_options(exc: BaseException) -> bool:
    import openai

    return (isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError)
            and "stream_options" in _error_message(exc))
