"""Figures contradicted by another report: part of verification, after the citations check.

A planted or outdated report can state, for the same city and year, another figure
than the real one (丽水 2019 居民健康素养水平 99% against 28.82%).  Each figure an
answer takes from a source is compared with every figure the *other* retrieved reports
state for the same city and year (and, when both say, the same kind of year: review or
plan) whose metric words overlap.  Until a table of indicators exists, the "metric" of a
figure is the words of its clause before it (居民健康素养水平 in 居民健康素养水平达28.82%).

>>> from assistant.types import Chunk
>>> def ch(doc, text): return Chunk(doc, doc, text, 0, len(text), (), "", f"{doc}报告", "丽水市", (2019,), 2019,
...                                 "review", (), 10, text)
>>> tok = lambda t: [t[i:i + 2] for i in range(len(t) - 1)]
>>> found = find_conflicts_in_text("居民健康素养水平为99%[1]。", {1: ch("a", "居民健康素养水平为99%。")},
...                                [ch("b", "居民健康素养水平达28.82%。")], tok)
>>> found[0].stated, found[0].other
('99%', '28.82%')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .numbers import (
    NumberMention,
    extract_numbers,
    numbers_to_check,
    same_number,
    supporting_mentions,
    units_compatible,
)
from .types import Chunk, SentenceCheck
from .verification import split_answer_sentences, strip_markers

_CLAUSE_STOP = "，。；,;：:！？!?\n"
# Words around a figure that say how it is stated, not what it measures.
_NOT_METRIC = frozenset({
    "同比", "提高", "增长", "增加", "上升", "提升", "下降", "减少", "降低", "达到", "达", "为", "至", "分别", "全市",
    "全省", "全国", "累计", "其中", "以上", "以下", "左右", "约", "共", "回答", "完成", "实现", "比例", "年度", "目标",
    "力争", "确保", "保持", "控制", "同期", "较", "上年", "去年", "今年", "全年",
})
_MIN_SHARED = 2
_MIN_OVERLAP = 0.6


@dataclass(frozen=True)
class Conflict:
    """A figure the answer takes from source ``marker`` that another report contradicts."""

    marker: int
    stated: str  # as the cited source writes it
    other: str  # as the other report writes it
    metric: str  # the metric words both use
    city: str
    year: int
    other_title: str
    other_doc: str

    def describe(self) -> str:
        return (f"报告之间数字矛盾：[{self.marker}] 称{self.city}{self.year}年“{self.metric}”为 {self.stated}，"
                f"而《{self.other_title}》为 {self.other}。请核对原始报告。")


def _year(ch: Chunk) -> int | None:
    return ch.year if ch.year is not None else (ch.doc_years[0] if len(ch.doc_years) == 1 else None)


def _metric(text: str, m: NumberMention, tokenize: Callable[[str], list[str]]) -> frozenset[str]:
    """The words of the clause before ``m`` that name what it measures."""
    a = m.start
    while a > 0 and text[a - 1] not in _CLAUSE_STOP:
        a -= 1
    clause = text[a : m.start]
    return frozenset(t for t in tokenize(clause) if len(t) >= 2 and re.search(r"[\u4e00-\u9fff]", t)
                     and t not in _NOT_METRIC and not re.search(r"\d", t))


def _same_metric(a: frozenset[str], b: frozenset[str]) -> frozenset[str] | None:
    shared = a & b
    if len(shared) >= _MIN_SHARED and len(shared) >= _MIN_OVERLAP * min(len(a), len(b)):
        return shared
    return None


def find_conflicts(sentences: Sequence[SentenceCheck], cited: Mapping[int, Chunk], pool: Sequence[Chunk],
                   tokenize: Callable[[str], list[str]]) -> list[Conflict]:
    """Conflicts for the figures of ``sentences`` (verified answer sentences with their
    markers): ``cited`` maps markers to chunks, ``pool`` holds the other retrieved chunks."""
    out: dict[tuple[int, str, str, str], Conflict] = {}
    for sent in sentences:
        body = strip_markers(sent.text)
        for n in numbers_to_check(body):
            for marker in sent.markers:
                src = cited.get(marker)
                year = _year(src) if src is not None else None
                if src is None or not src.city or year is None:
                    continue
                for s in supporting_mentions(n, src.text):
                    metric = _metric(src.text, s, tokenize)
                    if not metric:
                        continue
                    for c in _contradictions(marker, src, s, metric, year, pool, tokenize):
                        out.setdefault((marker, c.other_doc, c.other, c.stated), c)
    return list(out.values())


def _contradictions(marker: int, src: Chunk, s: NumberMention, metric: frozenset[str], year: int, pool: Sequence[Chunk],
                    tokenize: Callable[[str], list[str]]) -> list[Conflict]:
    found = []
    for other in pool:
        if other.doc_id == src.doc_id or other.city != src.city or _year(other) != year:
            continue
        if "unknown" not in (src.role, other.role) and src.role != other.role:
            continue  # a plan's target is no contradiction of a review's result
        for o in extract_numbers(other.text):
            if o.kind != "number" or not units_compatible(s.unit, o.unit) or same_number(s, o):
                continue
            shared = _same_metric(metric, _metric(other.text, o, tokenize))
            if shared is None:
                continue
            words = "".join(sorted(shared, key=lambda w: src.text.rfind(w, 0, s.start)))  # in clause order
            found.append(Conflict(marker, s.raw, o.raw, words, src.city or "", year, other.title, other.doc_id))
    return found


def find_conflicts_in_text(text: str, cited: Mapping[int, Chunk], pool: Sequence[Chunk],
                           tokenize: Callable[[str], list[str]]) -> list[Conflict]:
    """:func:`find_conflicts` for an answer text not verified yet (tests, scripts)."""
    from .verification import marker_numbers

    sentences = [SentenceCheck(s, marker_numbers(s), True) for s in split_answer_sentences(text)]
    return find_conflicts(sentences, cited, pool, tokenize)


__all__ = ["Conflict", "find_conflicts", "find_conflicts_in_text"]
