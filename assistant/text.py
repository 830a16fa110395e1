"""Chinese text utilities shared by every stage: normalisation, sentence spans,
jieba term tokens and tiktoken counts.

Heavy objects (the jieba dictionary, the tiktoken encoding) are created once per
process behind a lock, on first use, and are read-only afterwards.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

SENTENCE_END = "。！？；!?;"
_CLOSERS = "”’」』）)】》\"'"
# Brackets and quotes that hold a phrase together: no sentence or clause ends inside them.
_BRACKET_OPEN, _BRACKET_CLOSE = "（(《「『【“", "）)》」』】”"
_CLAUSE_END = ",，;；:："
_SPLIT_RE = re.compile(rf"[{re.escape(SENTENCE_END)}]+[{re.escape(_CLOSERS)}]*|\n+")

ENCODING_NAME = "o200k_base"


def normalize(text: str) -> str:
    """NFKC (full-width digits, letters and punctuation → half-width), lower case,
    whitespace collapsed. Use for *matching* only; stored text is never normalised.

    >>> normalize("签约率达３５％ ， ＯＫ")
    '签约率达35%,ok'
    """
    t = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", "", t)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into sentences on 。！？；!?; and line breaks.

    Returns absolute ``(start, end)`` offsets with surrounding whitespace trimmed;
    a closing quote or bracket stays with its sentence.

    >>> t = "甲。乙“丙。”丁"
    >>> [t[a:b] for a, b in sentence_spans(t)]
    ['甲。', '乙“丙。”', '丁']
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _SPLIT_RE.finditer(text, start, end):
        _append_trimmed(text, pos, m.end(), spans)
        pos = m.end()
    _append_trimmed(text, pos, end, spans)
    return spans


def balanced_spans(text: str, spans: list[tuple[int, int]], max_chars: int = 300) -> list[tuple[int, int]]:
    """``spans`` (from :func:`sentence_spans`) with a sentence whose brackets are still open
    (``安哥拉匡撒(符号: Kz;`` … ``)是安哥拉的流通货币。``) run on into the next ones until the
    bracket closes, up to ``max_chars``: a ；or ！ inside brackets or a title ends nothing.

    >>> t = "话剧《快跑！小城》首演。观众逾万。"
    >>> [t[a:b] for a, b in balanced_spans(t, sentence_spans(t))]
    ['话剧《快跑！小城》首演。', '观众逾万。']
    """
    def depth(a: int, b: int) -> int:
        return sum(text.count(o, a, b) for o in _BRACKET_OPEN) - sum(text.count(c, a, b) for c in _BRACKET_CLOSE)

    out: list[tuple[int, int]] = []
    i = 0
    while i < len(spans):
        a, b = spans[i]
        open_ = depth(a, b)
        while open_ > 0 and i + 1 < len(spans) and spans[i + 1][1] - a <= max_chars:
            i += 1
            na, b = spans[i]
            open_ += depth(na, b)
        out.append((a, b))
        i += 1
    return out


def answer_sentences(text: str) -> list[tuple[int, int]]:
    """The sentences an answer quotes from ``text`` (a chunk): :func:`sentence_spans` with
    open brackets run on (:func:`balanced_spans`). Ingest embeds exactly these, so the
    answerer finds a vector for every sentence it weighs."""
    return balanced_spans(text, sentence_spans(text))


def clause_bounds(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``text[start:end]`` cut after each ， ； ： (never inside brackets or quotes: 依法利珠单抗（，药品…）
    is one clause)."""
    bounds, pos, depth = [], start, 0
    for i in range(start, end):
        ch = text[i]
        if ch in _BRACKET_OPEN:
            depth += 1
        elif ch in _BRACKET_CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0 and ch in _CLAUSE_END:
            bounds.append((pos, i + 1))
            pos = i + 1
    if pos < end:
        bounds.append((pos, end))
    return bounds


def _append_trimmed(text: str, a: int, b: int, out: list[tuple[int, int]]) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a and not all(ch in "|" for ch in text[a:b]):
        out.append((a, b))


def is_foreign(text: str) -> bool:
    """Mostly Latin letters (an English question): jieba terms won't meet the Chinese reports.

    >>> is_foreign("What is the 2025 target?"), is_foreign("东莞2025年的目标?")
    (True, False)
    """
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(ch.isascii() for ch in letters) / len(letters) > 0.6


# --- jieba -----------------------------------------------------------------------

_jieba_lock = threading.Lock()
_jieba = None

_CJK_RE = re.compile(r"[\u4e00-\u9fff]+")
_CLASSIFIERS = frozenset("个项家名所位张台座条次件例种类批支")

_STOP = frozenset([
    "的", "了", "和", "与", "及", "等", "在", "是", "为", "对", "将", "把", "被", "从",
    "以", "于", "并", "或", "也", "都", "而", "其", "之", "中", "上", "下", "个", "年",
    "有", "多少", "什么", "哪些", "哪个", "怎么", "如何", "是否", "吗", "呢", "吧", "啊",
    "请问", "请", "一下", "各", "每", "这", "那", "该", "市", "方面", "情况", "工作", "提出",
    "要求", "主要", "分别", "各自", "达到", "达", "到", "目标", "the", "a", "an", "of",
    "to", "in", "and", "or", "is", "are", "what", "how",
])


def _tokenizer() -> Any:  # jieba.Tokenizer (untyped)
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                tok = jieba.Tokenizer()
                _load_dictionary(tok, jieba.__version__)
                _jieba = tok
    return _jieba


def _load_dictionary(tok: Any, version: str) -> None:
    """jieba's prefix dictionary from a pickle in the user's cache folder: 0.16 s where
    jieba's own marshal cache takes 0.64 s at every start. Built by jieba the first time
    (or when the cache is missing or unreadable); a cache that cannot be written costs
    only the time."""
    import os
    import pickle
    import tempfile

    import platformdirs

    from .config import APP_NAME

    path = Path(platformdirs.user_cache_dir(APP_NAME)) / f"jieba-{version}-dict.pickle"
    try:
        with open(path, "rb") as f:
            freq, total = pickle.load(f)
        if isinstance(freq, dict) and isinstance(total, int) and freq:
            tok.FREQ, tok.total, tok.initialized = freq, total, True
            return
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError):
        pass
    tok.initialize()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jieba-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump((tok.FREQ, tok.total), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass


def terms(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """jieba search-mode terms of ``text``, normalised, punctuation and stop words dropped.

    Search mode also yields the sub-words of long words (签约率 → 签约, 签约率), so a
    question's phrasing and a report's phrasing meet more often.
    """
    norm = unicodedata.normalize("NFKC", text).lower()
    out = []
    for w in _tokenizer().cut_for_search(norm):
        w = w.strip()
        if not w or not any(ch.isalnum() for ch in w):
            continue
        if not keep_stopwords and w in _STOP:
            continue
        if len(w) >= 3 and w[0] in _CLASSIFIERS and _CJK_RE.fullmatch(w):
            w = w[1:]  # 多少个托位 → 个托位 → 托位: the report writes 新增托位
        out.append(w)
        # jieba glues measure words and particles to unknown words (多少个托位 → 个托位,
        # 新增托位 → 托位 only sometimes); the bigrams of long Chinese words let the
        # question's and the report's segmentations meet.
        if len(w) >= 3 and _CJK_RE.fullmatch(w):
            out.extend(w[i : i + 2] for i in range(len(w) - 1) if w[i : i + 2] not in _STOP)
    return out


def word_spans(text: str, *, hmm: bool = True) -> list[tuple[int, int]]:
    """(start, end) of each jieba word of ``text`` (accurate mode), for word-boundary checks.
    Without ``hmm``, jieba does not guess words its dictionary lacks: an unknown name comes
    out as its single characters (王|沈 rather than 王沈是)."""
    out, pos = [], 0
    for w in _tokenizer().cut(text, HMM=hmm):
        out.append((pos, pos + len(w)))
        pos += len(w)
    return out


_TAGS_KEPT = ("nr", "nrt", "nrfg", "ns", "nsf", "nt", "nz")
_tags: dict[str, str] | None = None


def _tag_table() -> dict[str, str]:
    """jieba's part-of-speech tags, read once from its dictionary (~110,000 words) without its
    slower HMM tagger: the naming tags (:data:`_TAGS_KEPT`) of every word, every tag of single
    characters."""
    global _tags
    if _tags is None:
        with _jieba_lock:
            if _tags is None:
                import os

                import jieba

                table: dict[str, str] = {}
                path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        parts = line.split()
                        if len(parts) == 3 and (parts[2] in _TAGS_KEPT or len(parts[0]) == 1):
                            table[parts[0]] = parts[2]
                _tags = table
    return _tags


def word_tag(word: str) -> str | None:
    """jieba's part-of-speech tag of a dictionary word, for the tags that name things:
    people (nr, nrt, nrfg), places (ns, nsf), organisations (nt), other proper nouns (nz).

    >>> word_tag("上海"), word_tag("签约率")
    ('ns', None)
    """
    tag = _tag_table().get(word)
    return tag if tag in _TAGS_KEPT else None


#: jieba's tags of characters that say something about a name rather than spell it: verbs,
#: adverbs, prepositions, conjunctions, particles, pronouns, numerals and measure words,
#: directions, times, modal words (又, 是, 在, 为, 年, 后, 该).
_FUNCTION_TAGS = frozenset({"v", "d", "p", "c", "u", "uj", "ul", "uz", "ug", "uv", "ud", "r", "m", "q", "f", "t",
                            "y", "e", "o"})


def function_char(ch: str) -> bool:
    """A single character jieba's dictionary knows as a function word, a verb, a numeral or
    a measure word: no piece of a name jieba broke up (朱|祐|杬 are; 又, 是, 年 are not).

    >>> function_char("又"), function_char("是"), function_char("祐"), function_char("朱")
    (True, True, False, False)
    """
    return len(ch) == 1 and _tag_table().get(ch) in _FUNCTION_TAGS


def is_name_like(word: str) -> bool:
    """A proper name rather than an ordinary word: tagged as a person, place, organisation
    or other proper noun, or not in jieba's dictionary at all (a new name, a transliteration).
    An unknown *name* in a question says the reports are about something else; an unknown
    ordinary word (活到, 接诊) is just another way of saying what they say.

    >>> is_name_like("上海"), is_name_like("接诊"), is_name_like("葵扇树")
    (True, False, True)
    """
    if word_tag(word) is not None:
        return True
    w = word.strip()
    if not w or not any("\u4e00" <= ch <= "\u9fff" for ch in w):
        return False
    return _tokenizer().FREQ.get(w) is None


def warm_up() -> None:
    """Load jieba's dictionary now (~1 s) instead of on the first question."""
    _tokenizer()


# --- tiktoken -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _encoding() -> Any:  # tiktoken.Encoding
    from .runtime import apply_process_defaults

    apply_process_defaults()
    import tiktoken

    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """tiktoken count (``o200k_base``), the unit of every budget in this project."""
    return len(_encoding().encode(text, disallowed_special=()))


def count_tokens_many(texts: Iterable[str]) -> list[int]:
    enc = _encoding()
    return [len(x) for x in enc.encode_batch(list(texts), disallowed_special=())]
