"""Numbers stated in a sentence, normalised so an answer can be checked against its sources.

Part of the verification stage: :func:`numbers_to_check` lists the claims in an
answer sentence, :func:`number_supported` says whether a cited source states the
same value.  Written forms are folded before comparison, so ``３．１５`` equals
``3.15``, ``百分之八十`` equals ``80%`` and ``6.47万`` equals ``64,700``.

>>> [(m.value, m.unit) for m in numbers_to_check("2019年签约率达百分之八十,建成十五个中心[1]。")]
[(80.0, '%'), (15.0, '个')]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

NumberKind = Literal["number", "year", "date", "ratio"]

# Full-width ASCII (digits, ．，％：～) and the ratio colon fold to half-width one
# character for one character, so offsets found in the folded text are offsets
# into the original and ``raw`` can quote what was actually written.
_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20, 0x2236: 0x3A}

#: Inline citation markers: ``[1]``, ``[1, 2]``, ``【1】``, ``［１］``, ``[1-3]``.  Shared with
#: :mod:`assistant.verification` so a marker is never read as a stated number.
MARKER_RE = re.compile(
    r"[\[［【]\s*([0-9０-９]{1,3}(?:\s*(?:[-–~～,，、;；]|\s)\s*[0-9０-９]{1,3})*)\s*[\]］】]"
)

_ARABIC = r"(?:[0-9]{1,3}(?:,[0-9]{3}(?![0-9]))+|[0-9]+)(?:\.[0-9]+)?"
_CN_DIGITS = "零〇一二两三四五六七八九"
_CN = rf"[{_CN_DIGITS}十百千万亿]+(?:点[{_CN_DIGITS}]+)?"
_TOKEN_RE = re.compile(
    rf"(?P<pct>百分之|千分之)\s*(?P<pnum>{_ARABIC}|{_CN})"
    rf"|(?<![0-9A-Za-z.])(?<![A-Za-z]-)(?P<arabic>{_ARABIC})(?![0-9A-Za-z])"
    rf"|(?P<cn>{_CN})"
)
_RATIO_TAIL_RE = re.compile(rf":(?P<num>{_ARABIC})(?![0-9A-Za-z])")
_APPROX_RE = re.compile(r"[多余]")
# A measure word that is really the first character of a longer word (2019-2021周期).
_NOT_UNIT_BEFORE = {
    "起": "来草步",
    "周": "期边年",
    "所": "有在属",
    "家": "庭",
    "元": "素旦",
    "期": "间",
    "分": "别之类析级",
    "人": "民才",  # 人民, 138人才工程
    "天": "然",
    "部": "分署门",
}
_SCALES = {"万亿": 1e12, "亿": 1e8, "千万": 1e7, "百万": 1e6, "万": 1e4, "千": 1e3}
_EN_SCALES = {"billion": 1e9, "million": 1e6, "thousand": 1e3}
_SCALE_RE = re.compile(
    r"万亿|千万|百万|亿|万|千(?![米克瓦])|\s+(?:billion|million|thousand)\b", re.IGNORECASE
)
# Measure words and units, written form → normalised unit.  Longest first when matching.
_UNITS: dict[str, str] = {
    "个百分点": "百分点",
    "百分点": "百分点",
    "%": "%",
    "‰": "‰",
    "人次": "人次",
    "场次": "场次",
    "周岁": "岁",
    "周年": "周年",
    "例次": "例次",
    "剂次": "剂次",
    "件次": "件次",
    "床位": "床",
    "个工作日": "工作日",
    "工作日": "工作日",
    "个月": "个月",
    "平方米": "平方米",
    "公里": "公里",
    "千米": "公里",
    "公斤": "公斤",
    "千克": "公斤",
    "毫升": "毫升",
    "分钟": "分钟",
    "小时": "小时",
    **{u: u for u in "个家项所张台支例户份条件次批处座辆种类篇部场期轮间套剂起宗针"},
    **{u: u for u in "岁倍元人床米亩吨克分秒天周年月日号"},
    "名": "人",
    "位": "人",
    "percent": "%",
    "per cent": "%",
    "minutes": "分钟",
    "minute": "分钟",
    "mins": "分钟",
    "hours": "小时",
    "hour": "小时",
    "days": "天",
    "day": "天",
    "years": "年",
    "people": "人",
}
_UNIT_RE = re.compile(
    r"\s?(?:" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")",
    re.IGNORECASE,
)
# A rate per population after the number or its unit: 17/10万, 1.8件/千人 (→ "/10万", "件/千人").
_PER_RE = re.compile(r"/\s*(?P<den>10万|十万|100000|1万|万|10000|千|1000|百|100)(?P<who>人口|人|名)?")
_PER_DENOMINATOR = {"十万": "10万", "100000": "10万", "1万": "万", "10000": "万", "1000": "千", "100": "百"}
_RANGE_SEP_RE = re.compile(r"\s*(?:-|~|—{1,2}|–|至|到|、|和)\s*")
# A date, not a quantity: 2023-08-02, 2023/8/2, 2023.08 — but 1986.4万人次 is a count.
_ISO_DATE_RE = re.compile(
    r"(?<![0-9])(?:19|20)[0-9]{2}([-/.])(?:0?[1-9]|1[0-2])(?:\1(?:0?[1-9]|[12][0-9]|3[01]))?(?![0-9])"
    r"(?!\s*(?:万|亿|千|百|%|‰|个|人|次|元|家|所|张|台|项|倍|分|公里|米))"
)
_MONTHS_EN = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+$"
_LINE_ORDINAL_PREFIX_RE = re.compile(r"[^\S\n]*(?:[-*+•·#]+[^\S\n]*)?")


@dataclass(frozen=True)
class NumberMention:
    """One number as stated in a text.

    ``value`` is the number with multipliers applied (``6.47万`` → 64700.0; a ratio
    ``1:2`` → 0.5); ``unit`` is the normalised unit or measure word that follows it
    (``"%"``, ``"‰"``, ``"个"``, ``"人"``…), the multiplier (``"万"``) when nothing
    follows it, or ``""``.  ``kind`` tells calendar references (``"year"``,
    ``"date"``) from claims (``"number"``, ``"ratio"``).
    """

    raw: str
    value: float
    unit: str
    kind: NumberKind = "number"
    scale: float = field(default=1.0, compare=False)  # the 万/亿 multiplier applied to the written number
    decimals: int = field(default=0, compare=False)  # digits after the point, as written
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)

    @property
    def is_year(self) -> bool:
        """True for calendar references (years, months, days), which are not checked."""
        return self.kind in ("year", "date")

    @property
    def written(self) -> float:
        """The number as written, before the multiplier: ``6.47万`` → 6.47."""
        return self.value / self.scale


def fold(text: str) -> str:
    """Full-width ASCII → half-width, character for character (offsets are kept)."""
    return text.translate(_FOLD)


def cn_to_number(s: str) -> float | None:
    """Read a Chinese numeral; None when it is not a well-formed number.

    >>> [cn_to_number(x) for x in ("十五", "二十六", "两", "一百零五", "三点五", "二〇一九", "一两")]
    [15.0, 26.0, 2.0, 105.0, 3.5, 2019.0, None]
    """
    whole, _, frac = s.partition("点")
    digits = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "两": 2}
    if frac and not all(c in digits for c in frac):
        return None
    if not any(c in "十百千万亿" for c in whole):  # 二〇一九: read digit by digit
        if len(whole) == 1 or len(whole) == 4:
            value = float("".join(str(digits[c]) for c in whole))
        else:
            return None
    else:
        total = section = number = 0.0
        prev_digit = False
        for c in whole:
            if c in digits:
                if prev_digit and digits[c] and number:
                    return None  # 一两, 三四: an estimate, not a number
                number, prev_digit = float(digits[c]), True
                continue
            prev_digit = False
            if c in "十百千":
                mult = {"十": 10, "百": 100, "千": 1000}[c]
                section += (number or (1 if c == "十" else 0)) * mult
                if not number and c != "十":
                    return None
            elif c == "万":
                section = (section + number) * 1e4
            else:  # 亿
                total, section = (total + section + number) * 1e8, 0.0
            number = 0.0
        value = total + section + number
    if frac:
        value += float("0." + "".join(str(digits[c]) for c in frac))
    return value


def _arabic(s: str) -> tuple[float, int]:
    s = s.replace(",", "")
    _, _, frac = s.partition(".")
    return float(s), len(frac)


def _raw_mentions(text: str) -> list[NumberMention]:
    """Every number in ``text`` with its unit, before ranges and calendar roles are resolved."""
    t = fold(text)
    skip = [(m.start(), m.end()) for m in MARKER_RE.finditer(t)]
    out: list[NumberMention] = []
    for m in _ISO_DATE_RE.finditer(t):
        skip.append((m.start(), m.end()))
        out.append(
            NumberMention(
                text[m.start() : m.end()], float(m.group()[:4]), "", "date", start=m.start(), end=m.end()
            )
        )
    pos = 0
    while (tok := _TOKEN_RE.search(t, pos)) is not None:
        m = tok
        pos = m.end()
        if any(a <= m.start() < b for a, b in skip):
            pos = max(pos, next(b for a, b in skip if a <= m.start() < b))
            continue
        mention = _read_token(t, m)
        if mention is None or _is_ordinal(t, mention):
            continue
        pos = mention.end
        out.append(replace(mention, raw=text[mention.start : mention.end]))
    return sorted(out, key=lambda x: x.start)


def _read_token(t: str, m: re.Match[str]) -> NumberMention | None:
    start, end = m.start(), m.end()
    if m.group("pct"):
        num = m.group("pnum")
        if num[0].isdigit():
            value, decimals = _arabic(num)
        else:
            cn = 100.0 if num == "百" else cn_to_number(num)  # 百分之百
            if cn is None:
                return None
            value, decimals = cn, len(num.partition("点")[2])
        unit = "%" if m.group("pct") == "百分之" else "‰"
        return NumberMention("", value, unit, start=start, end=end, decimals=decimals)
    if m.group("arabic"):
        value, decimals = _arabic(m.group("arabic"))
        if (r := _RATIO_TAIL_RE.match(t, end)) is not None:
            second, _ = _arabic(r.group("num"))
            ratio = value / second if second else math.inf
            return NumberMention("", ratio, ":", "ratio", start=start, end=r.end())
        scale = 1.0
        end = _skip_approx(t, end)
        if (s := _SCALE_RE.match(t, end)) is not None:
            word = s.group().strip().lower()
            scale = _SCALES.get(word) or _EN_SCALES[word]
            end = s.end()
    else:
        cn_text = m.group("cn")
        # A Chinese numeral counts only before a measure word and when it is not the
        # article-like 一 (一个平台) or a vague 几十/数十.
        if cn_text == "一" or not any(c in _CN_DIGITS or c == "十" for c in cn_text[:2]):
            return None
        if start and t[start - 1] in "几数若第":
            return None
        cn = cn_to_number(cn_text)
        if cn is None:
            return None
        scale = 1e8 if cn_text.endswith("亿") else 1e4 if cn_text.endswith("万") else 1.0
        value, decimals = cn / scale, len(cn_text.partition("点")[2])
    end = _skip_approx(t, end)
    unit = ""
    if (u := _UNIT_RE.match(t, end)) is not None and _is_unit(u.group().strip().lower(), t[u.end() :][:1]):
        unit = _UNITS[u.group().strip().lower()]
        end = u.end()
    elif m.group("cn"):
        return None
    if (per := _PER_RE.match(t, end)) is not None and scale == 1.0 and unit not in ("%", "‰", "百分点"):
        den = _PER_DENOMINATOR.get(per.group("den"), per.group("den"))
        unit = f"{unit}/{den}{'人' if unit and per.group('who') else ''}"
        end = per.end()
    if not unit and scale != 1.0:
        unit = {1e4: "万", 1e8: "亿"}.get(scale, "")
    return NumberMention("", value * scale, unit, scale=scale, decimals=decimals, start=start, end=end)


def _skip_approx(t: str, pos: int) -> int:
    """Step over 多/余 in 300多家, 10万余人 (the approximate number is still the claim)."""
    return pos + 1 if _APPROX_RE.match(t, pos) else pos


def _is_unit(word: str, following: str) -> bool:
    if word.isascii() and word[-1:].isalpha():  # "3 days", not "3 dayshift"
        return not (following.isascii() and following.isalpha())
    return following not in _NOT_UNIT_BEFORE.get(word, "") or not following


def _is_ordinal(t: str, n: NumberMention) -> bool:
    """第3, (1), （一）, and a line-leading ``1.`` / ``1、`` are list positions, not claims."""
    # The current line up to the number (bounded, so long sources stay linear).
    before = t[max(t.rfind("\n", 0, n.start) + 1, n.start - 40) : n.start]
    if before.rstrip().endswith("第"):
        return True
    if n.unit or n.decimals or n.scale != 1.0 or n.kind != "number":
        return False
    if before.endswith("(") and t[n.end : n.end + 1] == ")":
        return True
    nxt = t[n.end : n.end + 2]
    marks = nxt[:1] in ("、", ")") or (nxt[:1] == "." and not nxt[1:].isdigit())
    at_line_start = n.start - len(before) == t.rfind("\n", 0, n.start) + 1
    # A heading quoted in an answer keeps its numbering: 具体条目为「5.编制十四五规划」.
    return marks and ((at_line_start and bool(_LINE_ORDINAL_PREFIX_RE.fullmatch(before)))
                      or before.endswith(("「", "『")))


def _inherit_units(mentions: list[NumberMention], t: str) -> list[NumberMention]:
    """80-90%, 182、102、42人, 6.8万、6.7万人: a number listed with the next one takes its unit."""
    out = list(mentions)
    for i in range(len(out) - 2, -1, -1):
        a, b = out[i], out[i + 1]
        if a.kind != "number" or b.kind == "ratio" or not b.unit:
            continue
        if _RANGE_SEP_RE.fullmatch(t[a.end : b.start]) is None:
            continue
        if not a.unit and a.scale == 1.0:
            out[i] = replace(a, value=a.value * b.scale, unit=b.unit, scale=b.scale)
        elif a.unit in ("万", "亿") and a.scale == b.scale:
            out[i] = replace(a, unit=b.unit)
    return out


def _calendar_kind(n: NumberMention, t: str) -> NumberKind:
    if n.kind != "number":
        return n.kind
    integral = n.decimals == 0 and n.value == int(n.value) and n.scale == 1.0 and "," not in n.raw
    if not integral:
        return "number"
    v = int(n.value)
    if n.unit == "年" and 1000 <= v <= 2100:
        return "year"
    if n.unit == "" and 1900 <= v <= 2100 and len(n.raw.strip()) == 4:
        return "year"
    if (n.unit == "月" and 1 <= v <= 12) or (n.unit in ("日", "号") and 1 <= v <= 31):
        return "date"
    if (
        n.unit == ""
        and 1 <= v <= 31
        and re.search(_MONTHS_EN, t[max(0, n.start - 12) : n.start], re.IGNORECASE)
    ):
        return "date"
    return "number"


def extract_numbers(text: str) -> list[NumberMention]:
    """Numbers stated in ``text``, in order; years and dates are kept with ``kind`` set.

    Citation markers and list ordinals are dropped.

    >>> [(m.raw, m.value, m.unit, m.kind) for m in extract_numbers("2019年达6.47万人、80%-90%")]
    [('2019年', 2019.0, '年', 'year'), ('6.47万人', 64700.0, '人', 'number'), ('80%', 80.0, '%', 'number'), \
('90%', 90.0, '%', 'number')]
    """
    return list(_numbers(text))


@lru_cache(maxsize=16384)
def _numbers(text: str) -> tuple[NumberMention, ...]:
    """:func:`extract_numbers`, cached: the answerer reads the same report sentences and
    clauses for question after question (and twice in one when it widens an inferred filter),
    and the verifier the same sources."""
    t = fold(text)
    mentions = _inherit_units(_raw_mentions(text), t)
    return tuple(replace(n, kind=_calendar_kind(n, t)) for n in mentions)


def numbers_to_check(text: str) -> list[NumberMention]:
    """The numbers in ``text`` that are claims: no years, dates, markers or ordinals.

    >>> [n.raw for n in numbers_to_check("具体条目为「5.编制十四五规划」,新建5个。")]
    ['5个']
    """
    return [n for n in extract_numbers(text) if not n.is_year]


def _units_compatible(a: str, b: str) -> bool:
    # Counted nouns vary in paraphrase (15个/15家 医院), so only the kinds whose
    # confusion changes the claim are kept apart: percent, percentage points (提高2个百分点
    # is not 提高2%), per mille, ratio.
    def family(u: str) -> str:
        return u if u in ("%", "百分点", "‰", ":") else "n"

    if a in ("", "万", "亿") or b in ("", "万", "亿"):
        return ":" not in (a, b) or a == b
    return family(a) == family(b)


def _same_number(a: NumberMention, s: NumberMention, allow_rounding: bool) -> bool:
    if not _units_compatible(a.unit, s.unit):
        return False
    if math.isclose(a.value, s.value, rel_tol=1e-9, abs_tol=1e-9):
        return True
    # A table may give 6.47 under a 万人 header: compare the written numbers when one
    # side carries no multiplier and no unit.
    bare = (a.scale == 1.0 and not a.unit) or (s.scale == 1.0 and not s.unit)
    if bare and a.kind != "ratio" and math.isclose(a.written, s.written, rel_tol=1e-9, abs_tol=1e-9):
        return True
    if allow_rounding and a.kind != "ratio":
        half_step = 0.5 * 10 ** (-a.decimals) * a.scale
        return bool(abs(a.value - s.value) <= half_step * (1 + 1e-9))
    return False


def number_supported(mention: NumberMention, source_text: str, *, allow_rounding: bool = False) -> bool:
    """True when ``source_text`` states the same number as ``mention``.

    Values are compared after folding and scaling (``３．１５`` = ``3.15``, ``百分之八十`` =
    ``80%``, ``6.47万`` = ``64700``); a percentage never matches a count.  With
    ``allow_rounding`` an answer may round a source value (71.6% for 71.64%).

    >>> number_supported(extract_numbers("达百分之八十")[0], "覆盖率达80%。")
    True
    """
    return any(_same_number(mention, s, allow_rounding) for s in _numbers(source_text))


def units_compatible(a: str, b: str) -> bool:
    """Whether two normalised units can state the same quantity (15个 and 15家 can; 2% and
    2个百分点 cannot)."""
    return _units_compatible(a, b)


def same_number(a: NumberMention, b: NumberMention) -> bool:
    """Whether two mentions state the same value in compatible units."""
    return _same_number(a, b, allow_rounding=False)


def supporting_mentions(mention: NumberMention, source_text: str, *,
                        allow_rounding: bool = False) -> list[NumberMention]:
    """The mentions in ``source_text`` that state the same number as ``mention``."""
    return [s for s in _numbers(source_text) if _same_number(mention, s, allow_rounding)]


# --- ranks ------------------------------------------------------------------------------------

_RANK_NUM = r"[0-9]+|[一二三四五六七八九十百]+"
_RANK_RE = re.compile(
    rf"(?:排名|排在|排行|排位|位列|位居|名列|居于?)[^，。；,;：:\n]{{0,10}}?第\s*(?P<a>{_RANK_NUM})"
    rf"|第\s*(?P<b>{_RANK_NUM})\s*[名位]"
)
_ANY_ORDINAL_RE = re.compile(rf"第\s*({_RANK_NUM})")


@dataclass(frozen=True)
class RankMention:
    """A rank claimed in a text: 排名全省第5, 居全省第一, 第3名."""

    raw: str
    value: int


def _rank_value(written: str) -> int | None:
    if written.isdigit():
        return int(written)
    v = cn_to_number(written)
    return int(v) if v is not None else None


def ranks_in(text: str) -> list[RankMention]:
    """Ranks a sentence claims (an ordinal after 排名/位列/位居/居…, or 第N名/位).

    >>> [(r.raw, r.value) for r in ranks_in("考核排名全省第三，满意度居全市第1，第5名")]
    [('排名全省第三', 3), ('居全市第1', 1), ('第5名', 5)]
    """
    out = []
    for m in _RANK_RE.finditer(fold(text)):
        v = _rank_value(m.group("a") or m.group("b"))
        if v is not None:
            out.append(RankMention(text[m.start() : m.end()], v))
    return out


def ordinals_in(text: str) -> set[int]:
    """Every 第N a source states, whatever follows it (the ranks an answer may cite)."""
    return {v for m in _ANY_ORDINAL_RE.finditer(fold(text)) if (v := _rank_value(m.group(1))) is not None}


# --- years ------------------------------------------------------------------------------------


def years_in(text: str) -> set[int]:
    """Calendar years stated in ``text`` (2019年, 2019-2021, 二〇一九年)."""
    return {int(n.value) for n in extract_numbers(text) if n.kind in ("year", "date")}


# --- direction ----------------------------------------------------------------------------------

Direction = Literal["up", "down"]
_UP = ("提高", "增长", "增加", "上升", "提升", "升高", "上涨", "增幅", "增至", "增长到", "扩大", "延长", "多出")
_DOWN = ("下降", "减少", "降低", "下滑", "回落", "缩短", "降幅", "降至", "减至", "缩减", "压缩", "减轻", "降到")
_CLAUSE_STOP = "，。；,;：:！？!?\n"
_DIRECTION_REACH = 10  # characters before a number a direction word may stand


def direction_of(text: str, mention: NumberMention) -> Direction | None:
    """Whether ``text`` says the number is a rise or a fall (提高1.86个百分点 → "up"):
    the nearest direction word before it in the same clause, if any.

    >>> t = "同比提高1.86个百分点"
    >>> direction_of(t, extract_numbers(t)[0])
    'up'
    """
    t = fold(text)
    lo = mention.start
    while lo > 0 and mention.start - lo < _DIRECTION_REACH and t[lo - 1] not in _CLAUSE_STOP:
        lo -= 1
    before = t[lo : mention.start]
    up = max((before.rfind(w) for w in _UP), default=-1)
    down = max((before.rfind(w) for w in _DOWN), default=-1)
    if up < 0 and down < 0:
        return None
    return "up" if up > down else "down"


__all__ = [
    "MARKER_RE",
    "Direction",
    "NumberMention",
    "RankMention",
    "cn_to_number",
    "direction_of",
    "extract_numbers",
    "fold",
    "number_supported",
    "numbers_to_check",
    "ordinals_in",
    "ranks_in",
    "same_number",
    "supporting_mentions",
    "units_compatible",
    "years_in",
]
