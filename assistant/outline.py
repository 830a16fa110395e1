"""Parse a report's outline into a section tree.

Chinese government reports number their parts ``第一部分`` › ``一、`` › ``（一）`` ›
``1.``/``1、`` › ``（1）``, in any nesting order, with numbering that restarts under each part (or
runs on across parts).  Headings usually start a line, but some portals flatten a
report into one long line, so a marker is also accepted inline, after whitespace
or a sentence end, when its number is the next one expected at that level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .cleaning import years_in
from .types import Document, Section, YearRole

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}

_MARKER_RE = re.compile(
    r"第(?P<part>[一二三四五六七八九十]{1,3}|\d{1,2})(?:部分|章|篇)"
    r"|(?P<cn_top>[一二三四五六七八九十]{1,3})[、．]"
    r"|[（(](?P<cn_paren>[一二三四五六七八九十]{1,3})[)）]"
    r"|[（(](?P<ar_paren>\d{1,2})[)）]"
    r"|(?P<ar_dot>\d{1,2})(?:、|[.．](?![\d%]))"
)
_STYLES = ("part", "cn_top", "cn_paren", "ar_dot", "ar_paren")
_HEADING_END = "。！？；\n"
_DEPT_RE = re.compile(r"[（(]\s*责任(?:科室|处室|单位|部门)\s*[:：]\s*([^)）]{1,80})[)）]")
MAX_HEADING = 80
PREAMBLE = "前言"


def cn_to_int(s: str) -> int:
    """Chinese numeral 1-999 → int (一 → 1, 十 → 10, 二十六 → 26)."""
    if s.isdigit():
        return int(s)
    total, num = 0, 0
    for ch in s:
        if ch == "百":
            total += (num or 1) * 100
            num = 0
        elif ch == "十":
            total += (num or 1) * 10
            num = 0
        else:
            num = _CN_DIGITS.get(ch, 0)
    return total + num


@dataclass
class _Open:
    style: str
    number: int
    heading: str
    start: int
    body_start: int
    children: list[_Open] = field(default_factory=list)
    end: int = -1


def _at_line_start(text: str, pos: int) -> bool:
    i = pos - 1
    while i >= 0 and text[i] in " \t\u3000":
        i -= 1
    return i < 0 or text[i] == "\n"


def _inline_ok(text: str, pos: int) -> bool:
    """An inline marker must follow whitespace, a sentence end or a closing bracket."""
    if pos == 0:
        return True
    prev = text[pos - 1]
    return prev.isspace() or prev in "。！？；)）"


def _heading_end(text: str, start: int, marker_end: int) -> tuple[int, int]:
    """(end of heading label, start of body) for a heading whose marker ends at ``marker_end``."""
    limit = min(len(text), start + MAX_HEADING)
    i = marker_end
    while i < limit and text[i] in " \u3000\t":
        i += 1
    j = i
    while j < limit:
        ch = text[j]
        if ch in _HEADING_END:
            body = j + 1 if ch != "\n" else j
            return j, body
        # Inline headings end at a whitespace run (一、总体要求 坚持以……).
        if ch in " \u3000\t" and j > i + 1:
            return j, j
        j += 1
    if j >= len(text):
        return j, j
    # No terminator within the limit: this is a paragraph that opens with a number;
    # label it by its first clause.
    comma = re.search(r"[,，:：]", text[i:limit])
    cut = i + comma.start() if comma else limit
    return cut, cut


def _label(text: str, start: int, end: int) -> str:
    return re.sub(r"\s+", "", text[start:end]).rstrip("。:：,，;；")


def _candidates(text: str) -> list[tuple[int, int, str, int]]:
    out = []
    for m in _MARKER_RE.finditer(text):
        style = next(s for s in _STYLES if m.group(s))
        out.append((m.start(), m.end(), style, cn_to_int(m.group(style))))
    return out


def parse_outline(doc: Document) -> Section:
    """Return the root :class:`Section` (level 0) of ``doc``; its children are the parts."""
    text = doc.text
    root = _Open("root", 0, "", 0, 0)
    stack: list[_Open] = [root]
    last_seen: dict[str, int] = {}
    for start, mend, style, number in _candidates(text):
        line_start = _at_line_start(text, start)
        if not line_start and (style == "part" or not _inline_ok(text, start)):
            continue  # 第二部分 inside a sentence refers to a part; only a line of its own opens one
        depth = next((i for i, o in enumerate(stack) if o.style == style), None)
        sibling_prev = stack[depth].number if depth is not None else 0
        expected = {1, sibling_prev + 1, last_seen.get(style, 0) + 1}
        if number not in expected and not line_start:
            continue
        if number not in expected and line_start and style == "ar_dot" and number > 1 and depth is None:
            continue  # a stray "3." opening a line is not a new level
        h_end, body = _heading_end(text, start, mend)
        if h_end - mend < 1:
            continue
        node = _Open(style, number, _label(text, start, h_end), start, body)
        if depth is not None:
            for closed in stack[depth:]:
                closed.end = start
            del stack[depth:]
        stack[-1].children.append(node)
        stack.append(node)
        last_seen[style] = number
    for o in stack:
        o.end = len(text)
    root.end = len(text)
    return _freeze(root, text, (), 0, _doc_year(doc))


def _doc_year(doc: Document) -> tuple[int | None, YearRole]:
    if len(doc.meta.years) == 1:
        return doc.meta.years[0].year, doc.meta.years[0].role
    return None, "unknown"


def _freeze(node: _Open, text: str, parent_path: tuple[str, ...], level: int,
            inherited: tuple[int | None, YearRole]) -> Section:
    path = (*parent_path, node.heading) if node.heading else parent_path
    year, role = inherited
    named = years_in(node.heading) if node.heading else []
    if named:
        year, role = named[0].year, named[0].role if named[0].role != "unknown" else role
    own_end = node.children[0].start if node.children else node.end
    depts = tuple(dict.fromkeys(
        d.strip() for m in _DEPT_RE.finditer(text, node.body_start, own_end)
        for d in re.split(r"[、,，;；]", m.group(1)) if d.strip()
    ))
    children = tuple(_freeze(c, text, path, level + 1, (year, role)) for c in node.children)
    return Section(
        heading=node.heading, level=level, start=node.start, end=node.end, body_start=node.body_start,
        path=path, departments=depts, year=year, role=role, children=children,
    )


def outline_lines(root: Section) -> list[str]:
    """Indented outline for display (``assistant sections DOC``)."""
    lines = []
    for s in root.walk()[1:]:
        dept = f"  (责任科室: {'、'.join(s.departments)})" if s.departments else ""
        lines.append("  " * (s.level - 1) + s.heading + dept)
    return lines
