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

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .config import LLMSettings
from .errors import ConfigError, LLMAuthError, LLMError, LLMModelNotFoundError
from .text import count_tokens
from .types import Usage

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
_ROLES = ("system", "user", "assistant")
DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"
_NO_KEY = "not-needed"  # keyless local servers still need a non-empty string
_PER_MESSAGE_OVERHEAD = 4  # chat-format tokens per message, for the local estimate


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"Message role must be one of {_ROLES}, not {self.role!r}")


@dataclass(frozen=True)
class Completion:
    """A finished answer: the full text, token usage and the model that produced it."""

    text: str
    usage: Usage
    model: str


@runtime_checkable
class LLM(Protocol):
    """What the answer stage needs from a chat model."""

    @property
    def model(self) -> str: ...

    @property
    def context_window(self) -> int: ...

    def complete(self, messages: Sequence[Message]) -> Completion: ...

    def stream(self, messages: Sequence[Message]) -> Iterator[str | Completion]:
        """Yield text deltas, then exactly one final :class:`Completion`."""
        ...


def estimate_usage(messages: Sequence[Message], text: str) -> Usage:
    """Token usage counted locally (tiktoken), for servers that report none."""
    prompt = sum(count_tokens(m.content) + _PER_MESSAGE_OVERHEAD for m in messages)
    return Usage(prompt_tokens=prompt, completion_tokens=count_tokens(text))


# --- OpenAI-compatible servers -------------------------------------------------------


class OpenAIChatLLM:
    """A chat model on OpenAI or an OpenAI-compatible server.

    Retries happen in exactly one place: the openai client, which retries connection
    errors, timeouts, 408/409/429 and 5xx up to ``settings.max_retries`` times with
    exponential backoff (0.5 s doubling, capped at 8 s, honouring ``Retry-After``).
    llama-index's own retry layer is switched off (it would multiply the attempts).
    Each attempt may take up to ``settings.timeout`` seconds (for streams: between chunks).

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
                               timeout=settings.timeout, max_retries=settings.max_retries)
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
            # 0 turns off llama-index's tenacity retries; the client below retries instead.
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

    def complete(self, messages: Sequence[Message]) -> Completion:
        """One answer, not streamed."""
        chat = _to_chat(messages)
        try:
            resp = self._llm.chat(chat)
        except Exception as exc:
            raise self._translate(exc) from None
        text = resp.message.content or ""
        raw = resp.raw
        usage = _reported_usage(getattr(raw, "usage", None)) or estimate_usage(messages, text)
        return Completion(text=text, usage=usage, model=getattr(raw, "model", None) or self.model)

    def stream(self, messages: Sequence[Message]) -> Iterator[str | Completion]:
        """Yield text deltas as they arrive, then one :class:`Completion`.

        Usage comes from the server's final chunk (``stream_options.include_usage``)
        when it sends one, else it is counted locally.
        """
        chat = _to_chat(messages)
        parts: list[str] = []
        usage: Usage | None = None
        model: str | None = None
        gen = None
        try:
            for attempt in range(2):
                kwargs: dict[str, Any] = {}
                if self._stream_usage:
                    kwargs["stream_options"] = {"include_usage": True}
                try:
                    gen = self._llm.stream_chat(chat, **kwargs)
                    for resp in gen:
                        raw = resp.raw
                        usage = _reported_usage(getattr(raw, "usage", None)) or usage
                        model = getattr(raw, "model", None) or model
                        if resp.delta:
                            parts.append(resp.delta)
                            yield resp.delta
                    break
                except Exception as exc:
                    if attempt == 0 and not parts and self._stream_usage and _rejects_stream_options(exc):
                        log.info("LLM server at %s rejects stream_options; counting tokens locally",
                                 self._host)
                        with self._lock:
                            self._stream_usage = False
                        continue
                    raise self._translate(exc) from None
        finally:
            if gen is not None:
                gen.close()  # releases the HTTP response when the caller stops early
        text = "".join(parts)
        yield Completion(text=text, usage=usage or estimate_usage(messages, text), model=model or self.model)

    # --- errors ------------------------------------------------------------------

    def _translate(self, exc: BaseException) -> LLMError:
        """Map an exception from openai/httpx to an :class:`LLMError`; never echo the key."""
        import httpx
        import openai

        host, s = self._host, self._settings
        if isinstance(exc, LLMError):
            return exc
        err: LLMError
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            err = LLMAuthError(f"The LLM server rejected the API key ({exc.status_code}).",
                               f"Check OPENAI_API_KEY for {host}.")
        elif isinstance(exc, openai.NotFoundError):
            err = LLMModelNotFoundError(
                f"The LLM server at {host} does not know the model {s.model!r} (404).",
                f"Check LLM_MODEL/OPENAI_MODEL against the models listed at {self._base_url}/models, "
                "and that OPENAI_BASE_URL ends in /v1.")
        elif isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
            err = LLMError(f"The LLM server at {host} did not answer within {s.timeout:g} s.",
                           "Try again, or raise LLM_TIMEOUT.", retryable=True)
        elif isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            err = LLMError(f"Could not connect to the LLM server at {host}.",
                           "Check that it is running and that OPENAI_BASE_URL is right.", retryable=True)
        elif isinstance(exc, openai.RateLimitError):
            if _error_code(exc) == "insufficient_quota":
                err = LLMError(f"The LLM account at {host} has no quota left (429 insufficient_quota).",
                               "Check the account's billing.")
            else:
                err = LLMError(f"The LLM server at {host} is rate limiting requests (429) after "
                               f"{s.max_retries} retries.", "Wait and try again, or raise LLM_MAX_RETRIES.",
                               retryable=True)
        elif isinstance(exc, openai.InternalServerError):
            err = LLMError(f"The LLM server at {host} failed ({exc.status_code}) after {s.max_retries} "
                           "retries.", "Try again later.", retryable=True)
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
        return text.replace(self._secret, "***") if self._secret else text


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
