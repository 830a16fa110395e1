"""The time budget and retry policy of one LLM call, and redaction of the key from server text.

One :class:`Budget` per answer call: a deadline (a :func:`time.monotonic` instant shared
by every attempt), a retry count, exponential backoff (0.5 s doubling, capped at 8 s, or
the server's ``Retry-After``) that never sleeps past the deadline, and the record of
every attempt (:class:`~assistant.types.Attempt`) for the answer's timings.

>>> redact("Incorrect API key provided: sk-abcd****3456", "sk-abcdef123456")
'Incorrect API key provided: *******3456'
"""

from __future__ import annotations

import random
import time

from .config import LLMSettings
from .errors import LLMError
from .types import Attempt

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0  # seconds, doubling between retries (as the openai client)
REDACT_MIN = 6  # an echo of this many consecutive characters of the key is redacted


def redact(text: str, secret: str, min_len: int = REDACT_MIN) -> str:
    """``text`` with the secret and every echo of ``min_len``+ consecutive characters of it
    replaced by ``***`` (servers echo keys whole or partly: ``sk-abc1****wxyz``).

    >>> redact("bad key sk-abcdef123456 (sk-abcd***3456)", "sk-abcdef123456")
    'bad key *** (******3456)'
    """
    if not secret:
        return text
    text = text.replace(secret, "***")
    out: list[str] = []
    i = 0
    while i < len(text):
        n = 0
        while i + n < len(text) and text[i : i + n + 1] in secret:
            n += 1
        if n >= min_len:
            out.append("***")
            i += n
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class Budget:
    """The time and attempts one call may use: a deadline (monotonic) and a retry count."""

    def __init__(self, settings: LLMSettings, deadline: float | None) -> None:
        now = time.monotonic()
        self.deadline = deadline if deadline is not None else now + settings.deadline
        self.total = max(0.0, self.deadline - now)
        self.started = now
        self.timeout = settings.timeout
        self.max_retries = settings.max_retries
        self.attempts: tuple[Attempt, ...] = ()
        self.last_timeout = settings.timeout

    @property
    def n(self) -> int:
        return len(self.attempts)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def check_left(self) -> None:
        """Raise when the budget is spent before an attempt could start."""
        if self.expired():
            raise self.give_up(LLMError(
                f"The {self.total:g} s time budget for this answer was spent before the LLM could "
                "answer.", "Raise LLM_DEADLINE.", retryable=True))

    def attempt_timeout(self) -> float:
        """Per-attempt timeout: the configured one, never past the deadline (min 0.05 s)."""
        self.last_timeout = max(0.05, min(self.timeout, self.remaining()))
        return self.last_timeout

    def record(self, seconds: float, outcome: str) -> None:
        self.attempts = (*self.attempts, Attempt(seconds, outcome))

    def retry(self, err: LLMError, retry_after: float | None) -> bool:
        """Sleep the backoff (the server's ``Retry-After`` if it sent one) and return True
        when another attempt is allowed and fits in the budget."""
        if not err.retryable or self.n > self.max_retries:
            return False
        wait = retry_after if retry_after is not None else \
            min(BACKOFF_FIRST * 2 ** (self.n - 1), BACKOFF_MAX) * (1 - 0.25 * random.random())
        if wait >= self.remaining() - 0.05:
            return False
        time.sleep(wait)
        return True

    def give_up(self, err: LLMError) -> LLMError:
        """``err`` with every attempt attached (and the elapsed time when it was retried)."""
        elapsed = time.monotonic() - self.started
        message = err.message
        if self.n > 1:
            outcomes = ", ".join(a.outcome for a in self.attempts)
            message = f"{message} ({self.n} attempts in {elapsed:.1f} s: {outcomes})"
        out = type(err)(message, err.hint, retryable=err.retryable, attempts=self.attempts)
        return out


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms`` / ``retry-after``), if at most 60."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue
        if 0 <= seconds <= 60:
            return seconds
    return None


def attempt_outcome(exc: BaseException) -> str:
    """A short name for how an attempt failed, for timings and notices."""
    import httpx
    import openai

    if isinstance(exc, openai.APIStatusError):
        return str(exc.status_code)
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return "connection"
    return type(exc).__name__


__all__ = ["Budget", "attempt_outcome", "redact", "retry_after"]
