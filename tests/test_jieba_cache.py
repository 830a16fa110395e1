"""jieba's dictionary from our pickle cache is jieba's own, and a bad cache is rebuilt."""

from __future__ import annotations

from pathlib import Path

import jieba
import pytest

from assistant.text import _load_dictionary


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("platformdirs.user_cache_dir", lambda *a, **k: str(tmp_path))
    return tmp_path / "jieba-test-dict.pickle"


def test_the_cached_dictionary_is_jiebas_own(cache: Path) -> None:
    own = jieba.Tokenizer()
    own.initialize()
    first = jieba.Tokenizer()
    _load_dictionary(first, "test")  # builds and writes the cache
    assert cache.exists()
    second = jieba.Tokenizer()
    _load_dictionary(second, "test")  # reads it
    assert second.initialized and second.total == own.total and second.FREQ == own.FREQ
    text = "东莞市2025年家庭医生签约率目标为60%，新增托位6000个"
    assert list(second.cut_for_search(text)) == list(own.cut_for_search(text))


def test_a_damaged_cache_is_rebuilt(cache: Path) -> None:
    cache.write_bytes(b"not a pickle")
    tok = jieba.Tokenizer()
    _load_dictionary(tok, "test")
    assert tok.initialized and len(tok.FREQ) > 100_000
    again = jieba.Tokenizer()
    _load_dictionary(again, "test")
    assert again.FREQ == tok.FREQ
