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

from .numbers import (
    MARKER_RE,
    direction_of,
    extract_numbers,
    fold,
    numbers_to_check,
    ordinals_in,
    ranks_in,
    supporting_mentions,
    years_in,
)
from .text import normalize
from .types import SentenceCheck

__all__ = [
    "DEFAULT_REFUSAL_PHRASES",
    "MARKER_RE",
    "UNSUPPORTED_MARK",
    "MarkerGate",
    "Verified",
    "mark_unsupported",
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
REASON_RANK = "rank not in cited source"
REASON_YEAR = "year not in cited source"
_TITLE_RE = re.compile(r"《[^》]*》")
REASON_DIRECTION = "direction differs from cited source"
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
#: Put before an answer sentence its citations do not support, so it never reads as verified.
UNSUPPORTED_MARK = "⚠"
# What the end of a streamed text may hold of a marker not finished yet: "[", "【1", "[1, 2".
_OPEN_MARKER_RE = re.compile(r"[\[［【][0-9０-９\s,，、;；\-–~～]{0,24}$")


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


def _check_sentence(sentence: str, sources: Mapping[int, str], refusals: Sequence[str],
                    years: Mapping[int, Collection[int]] | None) -> SentenceCheck:
    markers = marker_numbers(sentence)
    body = strip_markers(sentence)
    refusal = any(p and p in normalize(body) for p in refusals)
    if not markers:
        if refusal:
            return SentenceCheck(sentence, (), True, "refusal")
        if _is_connective(body):
            return SentenceCheck(sentence, (), True, "connective")
        return SentenceCheck(sentence, (), False, REASON_NO_CITATION)
    cited = [sources[k] for k in markers]
    missing: dict[str, None] = {}
    wrong_way: dict[str, None] = {}
    for n in numbers_to_check(body):
        found = [(text, s) for text in cited for s in supporting_mentions(n, text)]
        if not found:
            missing.setdefault(n.raw.strip())
            continue
        # 提高 vs 下降: the same figure stated as a change the other way is a different claim.
        said = direction_of(body, n)
        if said is not None and all(direction_of(text, s) not in (None, said) for text, s in found):
            wrong_way.setdefault(n.raw.strip())
    if missing:
        return SentenceCheck(sentence, markers, False, REASON_NUMBER, tuple(missing))
    if wrong_way:
        return SentenceCheck(sentence, markers, False, REASON_DIRECTION, tuple(wrong_way))
    stated_ordinals = set().union(*(ordinals_in(text) for text in cited))
    bad_ranks = tuple(r.raw for r in ranks_in(body) if r.value not in stated_ordinals)
    if bad_ranks:
        return SentenceCheck(sentence, markers, False, REASON_RANK, bad_ranks)
    if years is not None:
        known = set().union(*(years_in(text) | set(years.get(k, ())) for k, text in zip(markers, cited,
                                                                                         strict=True)))
        claim = _TITLE_RE.sub("", body)  # a year inside 《…》 names a report, it claims nothing
        bad_years = tuple(dict.fromkeys(n.raw.strip() for n in extract_numbers(claim)
                                        if n.kind == "year" and int(n.value) not in known))
        if bad_years:
            return SentenceCheck(sentence, markers, False, REASON_YEAR, bad_years)
    return SentenceCheck(sentence, markers, True)


def verify_answer(
    text: str,
    sources: Mapping[int, str],
    *,
    refusal_phrases: Sequence[str] = DEFAULT_REFUSAL_PHRASES,
    years: Mapping[int, Collection[int]] | None = None,
) -> Verified:
    """Clean the markers of an answer and check every sentence against its cited sources.

    ``sources`` maps each valid marker number to the text it stands for.  A sentence
    fails with ``reason="no citation"`` when it cites nothing valid (refusals and short
    lead-ins such as ``具体如下:`` are exempt); with ``reason="number not in cited
    source"`` when a number it states is in none of the sources it cites (a percentage
    is not a count of percentage points); with ``"direction differs from cited source"``
    when it calls a rise what the source calls a fall (or the reverse); with ``"rank not
    in cited source"`` for a rank (排名第3) no cited source states; and, when ``years``
    gives the years each source speaks for besides its text (its section's or report's),
    with ``"year not in cited source"`` for a year neither states.

    >>> v = verify_answer("覆盖率达80%[1][7]。", {1: "覆盖率达到百分之八十"})
    >>> v.text, v.removed_markers, v.sentences[0].supported
    ('覆盖率达80%[1]。', (7,), True)
    """
    cleaned, removed = normalize_markers(text, valid=set(sources))
    refusals = [normalize(p) for p in refusal_phrases]
    checks = tuple(_check_sentence(s, sources, refusals, years) for s in split_answer_sentences(cleaned))
    return Verified(text=cleaned, sentences=checks, removed_markers=removed, cited=marker_numbers(cleaned))


def mark_unsupported(text: str, sentences: Sequence[SentenceCheck], mark: str = UNSUPPORTED_MARK) -> str:
    """``text`` with ``mark`` before each sentence that failed verification (found in order,
    so a sentence repeated later is marked where it occurs).

    >>> s = verify_answer("甲达80%[1]。乙达9%[1]。", {1: "甲达80%。"})
    >>> mark_unsupported(s.text, s.sentences)
    '甲达80%[1]。⚠乙达9%[1]。'
    """
    out: list[str] = []
    pos = 0
    for sent in sentences:
        i = text.find(sent.text, pos)
        if i < 0:
            continue
        out.append(text[pos:i])
        if not sent.supported and text[max(0, i - len(mark)) : i] != mark:
            out.append(mark)
        out.append(sent.text)
        pos = i + len(sent.text)
    out.append(text[pos:])
    return "".join(out)


class MarkerGate:
    """Streamed text, held back just long enough to check its citation markers.

    A marker is shown only once it is complete and points to a source that exists
    (``valid``); one that does not is dropped, as the final answer drops it.  Text that
    may be the start of a marker (``[``, ``【1``) waits for the next delta.

    >>> g = MarkerGate({1, 2})
    >>> [g.feed(x) for x in ("甲达80%[", "9]。乙[1", "]。")] + [g.flush()]
    ['甲达80%', '。乙', '[1]。', '']
    """

    def __init__(self, valid: Collection[int]) -> None:
        self._valid = set(valid)
        self._held = ""
        self.removed: dict[int, None] = {}

    def feed(self, delta: str) -> str:
        """The part of everything received so far that can be shown now."""
        text = self._held + delta
        tail = _OPEN_MARKER_RE.search(text)
        cut = tail.start() if tail is not None else len(text)
        # A complete marker run at the very end may still grow ("[1]" then "[2]"): hold it too.
        last = None
        for last in _RUN_WITH_SPACE_RE.finditer(text, 0, cut):  # noqa: B007 - the last run is wanted
            pass
        if last is not None and last.end() == cut:
            cut = last.start()
        self._held = text[cut:]
        return self._clean(text[:cut])

    def flush(self) -> str:
        """Whatever is still held, checked, at the end of the stream."""
        text, self._held = self._held, ""
        return self._clean(text)

    def _clean(self, text: str) -> str:
        cleaned, removed = normalize_markers(text, self._valid)
        for n in removed:
            self.removed.setdefault(n)
        return cleaned
