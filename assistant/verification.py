"""Post-generation verification: clean the citation markers, then check each sentence.

The last pipeline stage before an :class:`~assistant.types.Answer` is returned.  A
marker that points to no source is removed; every answer sentence must cite a
source, and every number it states (years, dates and ordinals aside) must appear in
at least one source it cites.

>>> v = verify_answer("门诊智慧结算率达71.46%[1]。", {1: "门诊智慧结算率达71.64%。"})
>>> v.sentences[0].supported, v.sentences[0].missing_numbers
(False, ('71.46%',))
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from .numbers import MARKER_RE, fold, number_supported, numbers_to_check
from .text import normalize
from .types import SentenceCheck

__all__ = [
    "DEFAULT_REFUSAL_PHRASES",
    "MARKER_RE",
    "Verified",
    "marker_numbers",
    "normalize_markers",
    "split_answer_sentences",
    "strip_markers",
    "verify_answer",
]

DEFAULT_REFUSAL_PHRASES: tuple[str, ...] = (
    "所提供的报告中没有找到",
    "报告中没有找到",
    "not found in the provided reports",
)
REASON_NO_CITATION = "no citation"
REASON_NUMBER = "number not in cited source"
_CONNECTIVE_MAX_CHARS = 15
_MAX_RANGE = 20  # [1-3] expands; [1-300] is not a citation

# A run of adjacent markers, [1][2] or [1] 【2】, handled as one citation group.
_RUN_RE = re.compile(rf"(?:{MARKER_RE.pattern})(?:[ \t]*(?:{MARKER_RE.pattern}))*")
_RUN_WITH_SPACE_RE = re.compile(rf"[ \t]*(?:{_RUN_RE.pattern})")
_END_RE = re.compile(r"(?:[。！？!?]+|\.(?=\s|$))[”’」』）)》\"']*")
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s|^\s*(?:[-*_]\s*){3,}$|^\s*\*\*[^*]+\*\*\s*[:：]?\s*$")
_TABLE_RULE_RE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_BULLET_RE = re.compile(r"^\s*(?:[-*+•·●▪◦]\s+)")
_ORDINAL_RE = re.compile(
    r"^\s*(?:[0-9０-９]{1,2}[.．、)）](?![0-9０-９])|[（(][0-9０-９一二三四五六七八九十]{1,3}[)）]"
    r"|[一二三四五六七八九十]{1,3}[、.．])\s*"
)
_HEADING_MAX_CHARS = 20


@dataclass(frozen=True)
class Verified:
    """The outcome of :func:`verify_answer`.

    ``text`` is the answer with invalid markers removed and the rest written as
    ``[n]``; ``cited`` lists the valid markers in the order they are first used.
    """

    text: str
    sentences: tuple[SentenceCheck, ...]
    removed_markers: tuple[int, ...]
    cited: tuple[int, ...]

    @property
    def unsupported(self) -> tuple[SentenceCheck, ...]:
        return tuple(s for s in self.sentences if not s.supported)

    @property
    def ok(self) -> bool:
        """True when every sentence passed."""
        return not self.unsupported


def marker_numbers(text: str) -> tuple[int, ...]:
    """The source numbers the markers in ``text`` point to, first use first, no repeats.

    >>> marker_numbers("甲[2]。乙[1, 2]【3】［4］[5-6]")
    (2, 1, 3, 4, 5, 6)
    """
    out: dict[int, None] = {}
    for m in MARKER_RE.finditer(text):
        for n in _parse_group(m.group(1)):
            out.setdefault(n)
    return tuple(out)


def _parse_group(inner: str) -> list[int]:
    nums: list[int] = []
    compact = re.sub(r"\s*([-–~])\s*", r"\1", fold(inner).strip())
    for part in re.split(r"[,，、;；\s]+", compact):
        if (r := re.fullmatch(r"([0-9]+)[-–~]([0-9]+)", part)) is not None:
            lo, hi = int(r.group(1)), int(r.group(2))
            nums.extend(range(lo, hi + 1) if 0 <= hi - lo <= _MAX_RANGE else (lo, hi))
        elif part.isdigit():
            nums.append(int(part))
    return nums


def normalize_markers(text: str, valid: Collection[int] | None = None) -> tuple[str, tuple[int, ...]]:
    """Write every marker group as ``[n][m]``, dropping numbers not in ``valid``.

    Returns the new text and the dropped numbers (first occurrence order).  When a
    whole group goes, the space before it goes too.

    >>> normalize_markers("达80% [7]。达90%【1, 7】。", valid={1})
    ('达80%。达90%[1]。', (7,))
    """
    removed: dict[int, None] = {}
    pieces: list[str] = []
    pos = 0
    for run in _RUN_RE.finditer(text):
        pieces.append(text[pos : run.start()])
        pos = run.end()
        keep: dict[int, None] = {}
        for m in MARKER_RE.finditer(run.group()):
            for n in _parse_group(m.group(1)):
                if valid is None or n in valid:
                    keep.setdefault(n)
                else:
                    removed.setdefault(n)
        if keep:
            pieces.append("".join(f"[{n}]" for n in keep))
        else:
            pieces[-1] = pieces[-1].rstrip(" \t")
    pieces.append(text[pos:])
    return "".join(pieces), tuple(removed)


def strip_markers(text: str) -> str:
    """``text`` without citation markers (and without the space before each).

    >>> strip_markers("达到80% [1][2]。乙【3】")
    '达到80%。乙'
    """
    return _RUN_WITH_SPACE_RE.sub("", text)


def _has_content(s: str) -> bool:
    return any(ch.isalnum() for ch in strip_markers(s))


def _split_line(line: str) -> list[str]:
    pieces: list[str] = []
    pos = 0
    while (m := _END_RE.search(line, pos)) is not None:
        end = m.end()
        # Markers after the full stop belong to the sentence they follow: 达到80%。[1]
        while (r := _RUN_WITH_SPACE_RE.match(line, end)) is not None:
            end = r.end()
        pieces.append(line[pos:end].strip())
        pos = end
    pieces.append(line[pos:].strip())
    return [p for p in pieces if p]


def split_answer_sentences(text: str) -> list[str]:
    """Split an answer into the sentences that verification checks.

    Sentences end at 。！？!? (and ``.`` before a space); the markers right after the end
    stay with the sentence; each bullet or list line starts a new sentence and loses its
    bullet; headings, rules, table separators and blank lines are skipped.

    >>> split_answer_sentences("## 概况\\n- 甲达到80%。[1] 乙为3个[2]。\\n- 丙[1]")
    ['甲达到80%。[1]', '乙为3个[2]。', '丙[1]']
    """
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip() or _HEADING_RE.match(line) or _TABLE_RULE_RE.match(line):
            continue
        body = _BULLET_RE.sub("", line, count=1)
        ordinal = _ORDINAL_RE.match(body)
        if ordinal is not None:
            body = body[ordinal.end() :]
            if _looks_like_heading(body):
                continue
        pieces = [body.strip()] if body.lstrip().startswith("|") else _split_line(body)
        for piece in pieces:
            if _has_content(piece):
                out.append(piece)
            elif MARKER_RE.search(piece) and out:  # a line holding only markers
                out[-1] += piece
    return out


def _looks_like_heading(body: str) -> bool:
    """（一）医疗服务 — short, unpunctuated, uncited and without a number to check."""
    b = body.strip().strip("*").strip()
    return (
        len(b) <= _HEADING_MAX_CHARS
        and not _END_RE.search(b)
        and not b.endswith(("。", "；", ";", "，", ","))
        and not MARKER_RE.search(b)
        and not numbers_to_check(b)
    )


def _is_connective(body: str) -> bool:
    """具体如下: — a short lead-in ending with a colon, stating nothing itself."""
    b = body.strip().strip("*").strip()
    return b.endswith((":", "：")) and len(b) < _CONNECTIVE_MAX_CHARS and not numbers_to_check(b)


def _check_sentence(sentence: str, sources: Mapping[int, str], refusals: Sequence[str]) -> SentenceCheck:
    markers = marker_numbers(sentence)
    body = strip_markers(sentence)
    refusal = any(p and p in normalize(body) for p in refusals)
    if not markers:
        if refusal:
            return SentenceCheck(sentence, (), True, "refusal")
        if _is_connective(body):
            return SentenceCheck(sentence, (), True, "connective")
        return SentenceCheck(sentence, (), False, REASON_NO_CITATION)
    missing: dict[str, None] = {}
    for n in numbers_to_check(body):
        if not any(number_supported(n, sources[k]) for k in markers):
            missing.setdefault(n.raw.strip())
    if missing:
        return SentenceCheck(sentence, markers, False, REASON_NUMBER, tuple(missing))
    return SentenceCheck(sentence, markers, True)


def verify_answer(
    text: str,
    sources: Mapping[int, str],
    *,
    refusal_phrases: Sequence[str] = DEFAULT_REFUSAL_PHRASES,
) -> Verified:
    """Clean the markers of an answer and check every sentence against its cited sources.

    ``sources`` maps each valid marker number to the text it stands for.  A sentence
    fails with ``reason="no citation"`` when it cites nothing valid (refusals and short
    lead-ins such as ``具体如下:`` are exempt) and with ``reason="number not in cited
    source"`` when a number it states is in none of the sources it cites.

    >>> v = verify_answer("覆盖率达80%[1][7]。", {1: "覆盖率达到百分之八十"})
    >>> v.text, v.removed_markers, v.sentences[0].supported
    ('覆盖率达80%[1]。', (7,), True)
    """
    cleaned, removed = normalize_markers(text, valid=set(sources))
    refusals = [normalize(p) for p in refusal_phrases]
    checks = tuple(_check_sentence(s, sources, refusals) for s in split_answer_sentences(cleaned))
    return Verified(text=cleaned, sentences=checks, removed_markers=removed, cited=marker_numbers(cleaned))
