"""One exception type per kind of failure; every message says what to do next."""

from __future__ import annotations

from .types import Attempt


class AssistantError(Exception):
    """Base class. ``hint`` tells the user what to do next."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}".strip())


class ConfigError(AssistantError):
    """A setting is missing or invalid."""


class LoadError(AssistantError):
    """A file could not be read as a report (empty, binary, undecodable, unsupported)."""

    def __init__(self, path: str, message: str, hint: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}", hint)


class IndexMismatchError(AssistantError):
    """The index was built with another embedding model or dimension."""


class IndexError_(AssistantError):  # noqa: N801 - avoid shadowing the builtin IndexError
    """The vector store cannot be reached or is inconsistent."""


class LLMError(AssistantError):
    """The LLM call failed. ``retryable`` says whether a retry or fallback makes sense;
    ``attempts`` lists every call made before giving up (each with its time and outcome)."""

    def __init__(self, message: str, hint: str = "", *, retryable: bool = False,
                 attempts: tuple[Attempt, ...] = ()) -> None:
        self.retryable = retryable
        self.attempts = attempts
        super().__init__(message, hint)


class LLMAuthError(LLMError):
    """The API key was rejected (401/403)."""


class LLMModelNotFoundError(LLMError):
    """The configured model does not exist on the server (404)."""


class PromptError(AssistantError):
    """A prompt template is missing or uses unknown placeholders."""


class GoldSetError(AssistantError):
    """The gold set is malformed or a quote/fact is not in its evidence."""
