"""Understand a question before retrieval: which cities and years it names, whether it
compares, whether it asks for a figure, a department, a rank or a heading; and turn a
follow-up into a question that stands on its own (with the LLM, or offline by carrying
the previous question's topic over)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from .errors import LLMAuthError, LLMError, LLMModelNotFoundError
from .gazetteer import Gazetteer, Place
from .llm import LLM, Message
from .prompts import PromptLibrary
from .text import is_foreign
from .types import Filters, Refusal, RefusalReason, ScoredChunk, Warning, WarningKind, YearRole

_YEAR_RE = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
_FIGURE_RE = re.compile(
    r"多少|多久|多长时间|多高|多大|(?<!哪)几[个项家所名万人次岁张床%％]?|比例|比率|占比|百分之|目标值|数量|数值|达到?\s*[？?]|"
    r"how many|how much|what (?:percentage|share|rate|number)|\brate\b|number of|life expectancy", re.I)
_DEPT_RE = re.compile(r"责任科室|哪个科室|哪些科室|什么科室|负责科室|牵头科室|科室负责|由哪|谁负责|责任单位|"
                      r"which (?:department|office)|responsible", re.I)
_HEADING_RE = re.compile(r"第[（(]?[一二三四五六七八九十\d]+[)）]?大?部分|标题|哪几个部分|哪几部分|分为几|几个部分|"
                         r"哪个部分|哪一部分|哪部分|属于哪|哪[个一]?大?板?块|哪一项任务|哪个章节|哪一大部分|第几条|第几项|第几部分|归在|"
                         r"哪几个方面|哪些方面|章节|section|part (?:one|two|\d)|heading", re.I)
_ISSUER_RE = re.compile(r"落款|(?:哪家|哪个|什么)(?:单位|机构|部门|机关)(?:印发|发布|下发|发的|发出|制定|出的)|"
                        r"由谁(?:印发|发布|下发)|谁(?:印发|发布|下发)|印发单位|发文单位|发文机关|发布单位|发布机构|成文日期|印发日期|发文日期|"
                        r"(?:哪天|哪一天|什么时候|何时)(?:印发|发布|下发|发文)|who issued|issued by", re.I)
_REVIEW_RE = re.compile(r"总结|回顾|完成了?|取得|实现了|做了|成效|过去一年|review|achiev|last year", re.I)
_PLAN_RE = re.compile(r"要点|计划|安排|目标|打算|将要|力争|拟|plan|target|goal", re.I)
# A part of the year: its figures are not the year's (1—6月总诊疗人次 is not 全年总诊疗人次).
PART_YEAR_RE = re.compile(r"上半年|下半年|前三季度|(?:第?[一二三四1-4])季度"
                          r"|(?<!\d)1\s*[-—–~至到]\s*(?:[1-9]|1[01])\s*月")
_FULL_YEAR_RE = re.compile(r"全年|全年度|whole year|full year", re.I)
# Asked what was actually achieved: a target (计划新建6个) does not answer 实际建成了多少.
ACHIEVED_RE = re.compile(r"实际|最终|实绩|actual|achieved", re.I)
_COMPARE_RE = re.compile(
    r"比较|对比|相比|分别|各是|各自|差异|不同|和.{1,12}的|与.{1,12}的|compare|versus|vs\.?|both", re.I)
# What the question word asks for, in order of precedence (see evidence.has_answer_type).
_ANSWER_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("reason", re.compile(r"为什么|为何|什么原因|原因是|何故|why", re.I)),
    ("time", re.compile(r"何时|什么时候|什么时间|哪一?年|哪个年份|几月|哪一?天|何年|哪个时期|什么时期|哪个朝代|"
                        r"多少年(?!来)|when|what year", re.I)),
    ("person", re.compile(r"谁|哪位|何人|什么人|哪个人|who", re.I)),
    ("place", re.compile(r"哪里|哪儿|何处|什么地方|哪个(?:国家|城市|省|地区|地方|州|县)|位于|where", re.I)),
    ("title", re.compile(r"哪[部本首篇]|什么(?:作品|著作|书|歌|电影|小说)|作品是|著作是")),
    ("rate", re.compile(r"比例|比率|占比|百分之几|百分比|"
                        r"率(?:的)?(?:具体|大概|大约|实际|最终|预计|计划)?(?:目标值?|要求|指标)?(?:是|为|达到?|有)?多少|"
                        r"率(?:的)?(?:目标值?|要求)?(?:是|为|达到?)?(?:多少)?\s*[？?]?\s*$"
                        r"|what (?:percentage|share|rate)", re.I)),
    ("count", re.compile(r"几[个项家所名人次岁张床位条批台辆支种类]|多少[个项家所名人次张床位条批台辆支种类]"
                         r"|how many", re.I)),
    ("number", re.compile(r"多少|多久|多长|多高|多大|多重|多远|几|how much|how long|life expectancy", re.I)),
)
# What a count is of, read from the question: the units a figure of that kind is written in. A
# question about 出生人口 is not answered by 三个全覆盖, nor one about 经费 by 40个.
_UNIT_CUES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = (
    (frozenset({"人", "人次", "例", "户"}), re.compile(r"(?:多少|几)(?:十|百|千|万)?(?:人|名|位|例|户)|人口|人数|人次|"
                                                     r"户数|how many (?:people|persons|residents|patients)", re.I)),
    (frozenset({"元"}), re.compile(r"多少钱|(?:多少|几)(?:十|百|千|万|亿)?元|费用|资金|经费|金额|的钱|花了?多少")),
    (frozenset({"岁"}), re.compile(r"寿命|(?:多少|几)岁|年龄(?!段)|how old|life expectancy", re.I)),
    (frozenset({"张", "床"}), re.compile(r"床位|(?:多少|几)张", re.I)),
    # How long: a duration is written in units of time (3.15分钟), never as a count of things.
    (frozenset({"秒", "分钟", "小时", "天", "日", "工作日", "周", "个月", "月", "年"}),
     re.compile(r"多久(?![^，,。？?]{0,6}[一1]次)|多长时间|(?:多少|几)(?:秒|分钟|个?小时|天|个?工作日|周|个月)"
                r"|how long", re.I)),
)
# A change or share of the thing counted is not counted in its units (费用增幅 is a percentage).
_CHANGE_AFTER_RE = re.compile(r"[^，,。？?；;]{0,3}?(?:增幅|增速|增长|增加|下降|减少|幅度|率|比例|占比|比重)")
_LIST_RE = re.compile(r"哪些|哪几[个项类种方面条块件]|哪[两二三四五六七八九十]\s*[个项类种条件家所大]|有哪几"
                      r"|包括什么|包括哪|几个方面|都有什么|分别是什么|列举"
                      r"|which (?:ones|measures)", re.I)
_PART_RE = re.compile(
    r"第\s*([（(]?[一二三四五六七八九十]+[)）]?)\s*(?:大?部分|条|项)|([（(][一二三四五六七八九十]+[)）])")
_FOLLOWUP_RE = re.compile(r"^(那么?|那|还有|另外|同样|以及|再看|and |what about|how about)", re.I)


@dataclass(frozen=True)
class QueryInfo:
    """What a question asks, as far as rules can tell."""

    question: str
    cities: tuple[str, ...] = ()
    unknown_places: tuple[str, ...] = ()  # places named that are not in the corpus
    locating: tuple[str, ...] = ()  # places named only to say where another is (宁波 in 宁波余姚)
    years: tuple[int, ...] = ()
    unknown_years: tuple[int, ...] = ()
    role: YearRole | None = None
    comparison: bool = False
    wants_figure: bool = False
    wants_department: bool = False
    wants_heading: bool = False
    wants_rank: bool = False  # 排第几: answered by an ordinal (第5), not a count
    wants_list: bool = False  # 哪些, 有哪几项: answered by every item of an enumeration
    wants_last: bool = False  # the last part of a report
    wants_issuer: bool = False  # who issued the report and when (its 落款)
    wants_achieved: bool = False  # 实际/最终 and nothing of a plan: what was done, not what was aimed at
    wants_full_year: bool = False  # 全年: a figure for part of the year (1—6月, 上半年) is another figure
    bridge: tuple[str, ...] = ()  # the question's words in the reports' terms (see bridge_terms)
    part_mark: str | None = None  # 第(八)部分 / (三) → "八" / "三": a heading asked for by its number
    foreign: bool = False  # mostly Latin letters: jieba terms will not meet the Chinese text
    answer_type: str | None = None  # number, count, rate, time, person, place, reason, title (see _ANSWER_TYPES)
    units: tuple[str, ...] = ()  # a count's units, when the question says what is counted (see _UNIT_CUES)
    filters: Filters = field(default_factory=Filters)
    groups: tuple[Filters, ...] = ()

    def refusal(self, reason: RefusalReason, closest: Sequence[ScoredChunk] = (), *,
                outside_filters: bool = False) -> Refusal:
        """The refusal for this question: what it asked and which places/years are missing."""
        if self.unknown_places and not self.cities:
            reason, missing = "unknown_place", self.unknown_places
        elif self.unknown_years and not self.years:
            reason, missing = "unknown_year", tuple(str(y) for y in self.unknown_years)
        else:
            missing = ()
        # A place or year no report covers: the closest sections are necessarily of other reports.
        return Refusal(reason=reason, wants_figure=self.wants_figure, missing=missing, closest=tuple(closest[:3]),
                       outside_filters=outside_filters or bool(missing))


def _city_aliases(cities: Sequence[str], gazetteer: Gazetteer | None = None) -> dict[str, str]:
    """alias → full corpus place name (东莞 → 东莞市; 番禺, 广州番禺 → 广州市番禺区); computed once
    per corpus (the corpus's places change only with an ingest)."""
    key = (tuple(cities), id(gazetteer))
    cached = _ALIAS_CACHE.get(key)
    if cached is not None:
        return cached
    out: dict[str, str] = {}
    # A district's own name (西湖区) is several cities' (杭州, 南昌): it names the one of them the
    # corpus has a report for, when it has one.
    own: dict[str, list[str]] = {}
    for c in cities:
        p = gazetteer.get(c) if gazetteer is not None else None
        if p is not None and p.parent and p.name.startswith(p.parent):
            own.setdefault(p.name[len(p.parent):], []).append(c)
    for c in cities:
        names = gazetteer.aliases_of(c) if gazetteer is not None else [c]
        short = re.sub(r"(市|县|区|自治州|地区|盟)$", "", c)
        for a in [*names, short, *(d for d, cs in own.items() if cs == [c])]:
            if len(a) >= 2:
                out.setdefault(a, c)
    if len(_ALIAS_CACHE) > 8:  # a handful of corpora per process at most
        _ALIAS_CACHE.clear()
    _ALIAS_CACHE[key] = out
    return out


_ALIAS_CACHE: dict[tuple[tuple[str, ...], int], dict[str, str]] = {}


def _rows(name: str) -> list[list[str]]:
    """The entries of a packaged word list (``assistant/data/NAME``), longest first."""
    from importlib import resources

    text = resources.files("assistant").joinpath("data", name).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return sorted(rows, key=lambda r: -len(r[0]))


@lru_cache(maxsize=1)
def _glossary() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """``assistant/data/glossary_en.tsv``: English words of health policy, longest first."""
    return tuple((re.compile(rf"(?<![a-z]){re.escape(_plain(en))}(?![a-z])"), tuple(zh.split()))
                 for en, zh in _rows("glossary_en.tsv"))


@lru_cache(maxsize=1)
def _lay_terms() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """``assistant/data/lay_terms_zh.tsv``: everyday words for what reports name officially."""
    return tuple((re.compile(re.escape(lay)), tuple(terms.split())) for lay, terms in _rows("lay_terms_zh.tsv"))


@lru_cache(maxsize=1)
def section_kinds() -> tuple[tuple[str, ...], ...]:
    """``assistant/data/section_kinds_zh.tsv``: the words that name one kind of part of a work
    report (问题, 不足, 短板 … ; 打算, 安排, 思路 …), one tuple per kind.

    >>> {"问题", "不足", "困难"} <= set(next(k for k in section_kinds() if "短板" in k))
    True
    """
    return tuple(tuple(words.split()) for _, words in _rows("section_kinds_zh.tsv"))


def _words(text: str) -> set[str]:
    from .text import word_spans

    return {text[a:b] for a, b in word_spans(text)}


def kinds_named(text: str) -> frozenset[int]:
    """Which kinds of report part (:func:`section_kinds`, by index) ``text`` names, each by a word of
    its own: 三、存在的困难和不足 names the problems; 计划 inside 计划生育 names no plan.

    >>> kinds_named("（三）计划生育工作"), len(kinds_named("二、存在的困难和不足"))
    (frozenset(), 1)
    """
    words = _words(text)
    return frozenset(i for i, kind in enumerate(section_kinds()) if words.intersection(kind))


def kind_terms(question: str) -> tuple[str, ...]:
    """For a question that names a kind of report part as a word of its own (哪些不足), the other
    words of that kind that headings most often use (the first four of its line): what the part's
    heading may call it.

    >>> kind_terms("2023年有哪些短板?")
    ('问题', '不足', '困难')
    >>> kind_terms("计划生育工作有哪些?")  # 计划 inside 计划生育 names no plan
    ()
    """
    words = _words(question)
    kinds = section_kinds()
    return tuple(w for i in sorted(kinds_named(question)) for w in kinds[i][:4] if w not in words)


def _plain(text: str) -> str:
    """Lower case, hyphens as spaces: family-doctor is family doctor."""
    return re.sub(r"\s+", " ", re.sub(r"[-_‐–]", " ", text.strip().lower()))


def bridge_terms(question: str) -> tuple[str, ...]:
    """The question's words in the reports' own terms: an English question's from the glossary
    (``glossary_en.tsv``), a Chinese question's everyday words from ``lay_terms_zh.tsv`` (宝宝 →
    婴儿). What keyword search and the lexical signals can meet in the text. Each span of the
    question is read once, by its longest entry (infant mortality, not mortality).

    >>> bridge_terms("What was the infant mortality rate in 2023?")
    ('婴儿死亡率', '率')
    >>> bridge_terms("2024年一岁以内宝宝的死亡率是多少?")
    ('婴儿', '婴幼儿')
    >>> bridge_terms("家庭医生签约率是多少?")  # 医生 inside 家庭医生 is no everyday word
    ()
    """
    foreign = is_foreign(question)
    low = _plain(question) if foreign else question
    if not foreign:
        # Whole words only: 医生 in 家庭医生 is the report's own term, not an everyday word.
        from .text import word_spans

        spans = word_spans(low)
        starts, ends = {a for a, _ in spans}, {b for _, b in spans}
    taken = [False] * len(low)
    out: list[str] = []
    for pattern, zh in _glossary() if foreign else _lay_terms():
        for m in pattern.finditer(low):
            if not foreign and (m.start() not in starts or m.end() not in ends):
                continue
            if not any(taken[m.start() : m.end()]):
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                out += zh
    return tuple(dict.fromkeys(out))


@lru_cache(maxsize=4096)
def _pinyin_pattern(name: str) -> re.Pattern[str] | None:
    """How a place is spelled in English: its pinyin syllables, run together or apart (Dongguan,
    Xi'an, Dong Guan). None for names that are not all Chinese characters."""
    if not name or not all("\u4e00" <= ch <= "\u9fff" for ch in name):
        return None
    from pypinyin import lazy_pinyin

    # ü is written u, v or ü (吕梁: Lüliang, Lvliang, Luliang).
    syllables = [re.escape(p).replace("v", "(?:v|u|ü)") for p in lazy_pinyin(name)]
    return re.compile(r"\b" + r"[\s'’-]?".join(syllables) + r"\b")


def _find_places_in_pinyin(q: str, aliases: dict[str, str]) -> list[tuple[str, int]]:
    """Corpus places an English question names by their pinyin (only places the corpus has reports
    for: a pinyin syllable run is too easily another word to name places at large)."""
    low = q.lower()
    found: list[tuple[str, int]] = []
    for alias, city in sorted(aliases.items(), key=lambda kv: -len(kv[0])):
        pattern = _pinyin_pattern(alias)
        m = pattern.search(low) if pattern is not None else None
        if m is not None and all(city != c for c, _ in found):
            found.append((city, m.start()))
    return sorted(found, key=lambda x: x[1])


# After a place's short form these make it part of another name (永安号, 黄山路, 中山大学).
_NOT_PLACE_AFTER = re.compile(r"号|路|街|桥|港|湾|岛|峰|寺|湖|山|河|江(?!北|南)|大学|医院|公司|集团|牌|型|式"
                              r"|医科|师范|理工|科技|学院|银行|日报")
# A two-character short form (新建, 城区 are districts too) names a place in a question only
# where a place name stands: before a year, a suffix, a conjunction or the end.
_PLACE_HEAD_AFTER = re.compile(r"\s*(?:\d|[〇一二两三四五六七八九十]{2,4}年|年|市|区|县|的|和|与|及|、|，|,|呢|吗|在"
                               r"|今年|去年|明年|全|卫|健|[?？。]|$"
                               # a place as the subject of a comparison: 余姚谁 / 余姚哪个 / 余姚分别 / 余姚比
                               r"|谁|哪|各|分别|比|相比|对比|还是|两地|两市)")


# ... or where a subject stands: at the start, after a year, a comma or a conjunction
# (2024年东莞有多少…, 截至2024年，东莞累计…), unless an aspect particle makes it a verb (新建了).
_PLACE_HEAD_BEFORE = re.compile(r"(?:^|[年,，、;；:：在和与及对比从同跟])\s*$")
_VERB_AFTER = re.compile(r"了|过|着")


def mentions_place(text: str, name: str) -> bool:
    """Does ``text`` name the place ``name`` (not as the head of a longer proper noun:
    广州医科大学 does not speak of 广州)?"""
    start = text.find(name)
    while start >= 0:
        if not _NOT_PLACE_AFTER.match(text, start + len(name)):
            return True
        start = text.find(name, start + 1)
    return False


def _find_places(q: str, aliases: dict[str, str], gazetteer: Gazetteer) -> list[tuple[str, int]]:
    """(corpus place, position) for each place named in ``q``, longest alias first, spans
    consumed (广州番禺 is 番禺区, not also 广州市). A short form counts only as a word of its
    own: not before 号, 路, 大学… and not inside a longer jieba word."""
    taken = [False] * len(q)
    found: list[tuple[str, int]] = []
    words = None
    for alias in sorted(aliases, key=len, reverse=True):
        start = q.find(alias)
        while start >= 0:
            end = start + len(alias)
            ok = not any(taken[start:end])
            if ok and (gazetteer.is_short_alias(alias) or alias == re.sub(r"(市|县|区)$", "", aliases[alias])):
                if _NOT_PLACE_AFTER.match(q, end) or (len(alias) == 2 and not _PLACE_HEAD_AFTER.match(q, end) and (
                        not _PLACE_HEAD_BEFORE.search(q, 0, start) or _VERB_AFTER.match(q, end))):
                    ok = False
                else:
                    if words is None:
                        from .text import word_spans

                        words = word_spans(q)
                    ok = not any(a < start < b or a < end < b for a, b in words)
            if ok:
                taken[start:end] = [True] * (end - start)
                found.append((aliases[alias], start))
            start = q.find(alias, end)
    return sorted(found, key=lambda x: x[1])


def _locates(place: Place, found: str, q: str, gazetteer: Gazetteer) -> bool:
    """Is ``place`` a prefecture the question writes right before ``found``, a county of its province
    (宁波余姚: 宁波 says where 余姚 is)? The gazetteer knows a county's province, not its prefecture:
    杭州余姚 passes too (the county is still the place asked about)."""
    f = gazetteer.get(found)
    if place.level != "prefecture" or f is None or f.level not in ("county", "district") \
            or f.province != place.province:
        return False
    return any(a + b in q for a in gazetteer.aliases_of(place.name) for b in gazetteer.aliases_of(found))


def _nested(q: str, mentions: list[tuple[str, int]], aliases: dict[str, str],
            gazetteer: Gazetteer) -> list[tuple[str, int]]:
    """A prefecture written right before a county of its province names where that county is
    (宁波余姚 is 余姚, not 宁波 and 余姚): the county is the place asked about."""
    out = []
    for i, (c, pos) in enumerate(mentions):
        if i + 1 < len(mentions):
            nxt, npos = mentions[i + 1]
            p = gazetteer.get(c)
            if p is not None and aliases.get(q[pos:npos]) == c and _locates(p, nxt, q, gazetteer):
                continue
        out.append((c, pos))
    return out


def analyze(question: str, *, corpus_cities: Sequence[str], corpus_years: Sequence[int],
            gazetteer: Gazetteer, explicit: Filters | None = None, infer: bool = True) -> QueryInfo:
    """Infer filters from ``question``; explicit filters always win over inferred ones."""
    explicit = explicit or Filters()
    q = question
    aliases = _city_aliases(corpus_cities, gazetteer)
    foreign = is_foreign(q)
    raw = _find_places_in_pinyin(q, aliases) if foreign else _find_places(q, aliases, gazetteer)
    mentions = raw if foreign else _nested(q, raw, aliases, gazetteer)
    locating = [c for c, _pos in raw if (c, _pos) not in mentions]
    found = list(dict.fromkeys(c for c, _pos in mentions))
    unknown: list[str] = []
    for place, _n in gazetteer.find(q):
        if place.name in corpus_cities or place.name in found:
            continue
        if any(_locates(place, c, q, gazetteer) for c in found):
            locating.append(place.name)
        elif not any(place.short in c or c.startswith(place.short) or c.startswith(place.name) for c in found):
            unknown.append(place.name)
    if unknown:
        # 西湖区 inside 南昌市西湖区 is not the corpus's 杭州市西湖区.
        covered = {i for u in unknown for a in gazetteer.aliases_of(u) for m in re.finditer(re.escape(a), q)
                   for i in range(m.start(), m.end())}
        kept = [(c, pos) for c, pos in mentions if pos not in covered]
        found = list(dict.fromkeys(c for c, _pos in kept))
    years = [int(y) for y in _YEAR_RE.findall(q)]
    years = list(dict.fromkeys(years))
    known_years = [y for y in years if y in corpus_years]
    unknown_years = [y for y in years if y not in corpus_years]
    role: YearRole | None = None
    if _PLAN_RE.search(q) and not _REVIEW_RE.search(q):
        role = "plan"
    elif _REVIEW_RE.search(q) and not _PLAN_RE.search(q):
        role = "review"
    places = found + unknown
    comparison = len(places) > 1 or len(years) > 1 or (bool(_COMPARE_RE.search(q)) and len(places) + len(years) > 2)

    if explicit.cities or explicit.years or explicit.doc_ids or not infer:
        filters = replace(explicit, inferred=False)
    else:
        # Only places and years the corpus has reports for filter; one it lacks is checked
        # against the evidence instead (the answer must speak of it, or it is a refusal).
        filters = Filters(cities=tuple(found), years=tuple(known_years), role=role,
                          inferred=bool(found or known_years))
    groups: tuple[Filters, ...] = ()
    if comparison and not filters.doc_ids:
        # Every side asked about gets a group, those the reports lack too (they answer "not found").
        sides = (list(filters.cities), list(filters.years)) if not filters.inferred and not filters.empty \
            else (places, years)
        pairs = _pair_cities_years(q, *sides, aliases | {u: u for u in unknown})
        groups = tuple(
            Filters(cities=(c,) if c else (), years=(y,) if y else (), inferred=filters.inferred)
            for c, y in pairs
        )
    part = _PART_RE.search(q)
    answer_type = next((kind for kind, rx in _ANSWER_TYPES if rx.search(q)), None)
    units = sorted({u for us, rx in _UNIT_CUES for m in rx.finditer(q) for u in us
                    if not _CHANGE_AFTER_RE.match(q, m.end())}) if answer_type in ("number", "count") else []
    return QueryInfo(
        question=q, cities=tuple(found), unknown_places=tuple(unknown), locating=tuple(dict.fromkeys(locating)),
        years=tuple(known_years),
        unknown_years=tuple(unknown_years), role=role, comparison=comparison and len(groups) > 1,
        wants_figure=bool(_FIGURE_RE.search(q)) or answer_type == "rate", wants_department=bool(_DEPT_RE.search(q)),
        wants_heading=bool(_HEADING_RE.search(q)), wants_rank="第几" in q, wants_last="最后" in q,
        wants_list=bool(_LIST_RE.search(q)), wants_issuer=bool(_ISSUER_RE.search(q)),
        wants_achieved=bool(ACHIEVED_RE.search(q)) and not _PLAN_RE.search(q) and "要求" not in q,
        wants_full_year=bool(_FULL_YEAR_RE.search(q)) and not PART_YEAR_RE.search(q),
        bridge=bridge_terms(q) + (kind_terms(q) if _LIST_RE.search(q) else ()),
        part_mark=(part.group(1) or part.group(2)).strip("（()）") if part else None, foreign=foreign,
        answer_type=answer_type, units=tuple(units),
        filters=filters, groups=groups,
    )


def _pair_cities_years(q: str, cities: list[str], years: list[int],
                       aliases: dict[str, str]) -> list[tuple[str | None, int | None]]:
    """Pair each city with the years written after it ("丽水2019年和东莞2024年" →
    (丽水,2019), (东莞,2024)); a city with no year of its own gets every year named
    before the first city ("2025年东莞和余姚" → (东莞,2025), (余姚,2025))."""
    if not cities:
        return [(None, y) for y in years] or [(None, None)]
    if not years:
        return [(c, None) for c in cities]

    def pos(city: str) -> int:
        hits = [q.find(a) for a, full in aliases.items() if full == city and a in q]
        hits = [h for h in hits if h >= 0]
        return min(hits) if hits else len(q)

    ordered = sorted(cities, key=pos)
    starts = [pos(c) for c in ordered] + [len(q)]
    leading = [int(m.group(1)) for m in _YEAR_RE.finditer(q[: starts[0]])]
    pairs: list[tuple[str | None, int | None]] = []
    for i, c in enumerate(ordered):
        own = [int(m.group(1)) for m in _YEAR_RE.finditer(q[starts[i] : starts[i + 1]])]
        for y in own or leading or years:
            if (c, y) not in pairs:
                pairs.append((c, y))
    return pairs


def condense(question: str, history: Sequence[tuple[str, str]], *, llm: LLM | None, prompts: PromptLibrary,
             corpus_cities: Sequence[str], gazetteer: Gazetteer,
             deadline: float | None = None) -> tuple[str, tuple[Warning, ...]]:
    """A follow-up as a question that stands on its own, and any warning about how.

    With an LLM the ``condense`` prompt rewrites it (within ``deadline``); the rewrite is
    used only when :func:`rewrite_problem` finds nothing wrong with it.  Offline, or when
    the call fails or the rewrite is unusable, :func:`carry_over` does (with a
    :attr:`WarningKind.CONDENSE` warning).  A rejected key or unknown model is raised.
    """
    offline = carry_over(question, history, corpus_cities=corpus_cities, gazetteer=gazetteer)
    if llm is None:
        return offline, ()
    hist = "\n".join(f"{'用户' if r == 'user' else '助手'}: {txt[:500]}" for r, txt in history[-6:])
    prompt = prompts.render("condense", history=hist, question=question)
    problem: str | None
    try:
        out = llm.complete([Message("user", prompt)], deadline=deadline)
    except (LLMAuthError, LLMModelNotFoundError):
        raise
    except LLMError as exc:
        problem = f"调用失败：{exc.message}"
    else:
        problem = "回答被截断" if out.truncated else rewrite_problem(out.text, question, history,
                                                                 corpus_cities=corpus_cities)
        if problem is None:
            return _clean_rewrite(out.text), ()
    note = Warning(WarningKind.CONDENSE, f"追问改写不可用（{problem}），按上一问题的主题处理。")
    return offline, (note,)


#: The longest rewrite accepted, in characters beyond the follow-up and the question before it.
CONDENSE_SLACK_CHARS = 40
_PREAMBLE_RE = re.compile(
    r"^(?:好的|好|当然|可以|没问题|以下|下面|改写|重写|独立问题|完整问题|问题|答案|回答|解释|"
    r"sure|ok(?:ay)?|here|rewritten|standalone|the (?:rewritten|standalone) question|question)"
    r"|改写(?:后|为|成|如下)|如下[:：]|[:：]\s*$", re.I)
_QUESTION_RE = re.compile(
    r"[?？]\s*$|多少|什么|哪|几|如何|怎样|怎么|是否|有无|多久|多长|多高|吗|呢|是不是|有没有|"
    r"^(?:what|which|how|when|where|who|why|is|are|does|do|did|was|were|can|should)\b", re.I)
_QUOTES = "\"'“”‘’「」『』《》 \t"


def _clean_rewrite(text: str) -> str:
    return text.strip().strip(_QUOTES).strip()


def rewrite_problem(text: str, question: str, history: Sequence[tuple[str, str]], *,
                    corpus_cities: Sequence[str]) -> str | None:
    """Why an LLM's rewrite of a follow-up cannot be used as the retrieval query (None: it can).

    It must be one line that reads as a question, in the follow-up's language, no longer
    than the follow-up plus the question before it plus :data:`CONDENSE_SLACK_CHARS`,
    with no preamble (好的，改写后的问题如下：), and it must keep every place and year
    the follow-up names.

    >>> hist = [("user", "东莞2025年家庭医生签约率目标是多少?")]
    >>> rewrite_problem("好的，改写后的问题如下：\\n余姚2025年签约率目标是多少?", "那余姚呢?", hist,
    ...                 corpus_cities=["东莞市", "余姚市"])
    '不止一行'
    >>> rewrite_problem("余姚市2025年家庭医生签约率目标是多少？", "那余姚呢?", hist,
    ...                 corpus_cities=["东莞市", "余姚市"]) is None
    True
    """
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "空白"
    if len(lines) > 1:
        return "不止一行"
    out = _clean_rewrite(lines[0])
    prev = next((t for r, t in reversed(history) if r == "user"), "")
    limit = len(question) + len(prev) + CONDENSE_SLACK_CHARS
    if len(out) > limit:
        return f"长于 {limit} 个字符"
    if _PREAMBLE_RE.search(out):
        return "带有开场白"
    if is_foreign(out) != is_foreign(question):
        return "语言与问题不同"
    if not _QUESTION_RE.search(out):
        return "不像一个问题"
    aliases = _city_aliases(corpus_cities)
    for alias in [a for a in sorted(aliases, key=len, reverse=True) if a in question]:
        full = aliases[alias]
        if not any(a in out for a, f in aliases.items() if f == full):
            return f"丢掉了“{alias}”"
    for year in _YEAR_RE.findall(question):
        if year not in out:
            return f"丢掉了 {year} 年"
    return None


def carry_over(question: str, history: Sequence[tuple[str, str]], *, corpus_cities: Sequence[str],
               gazetteer: Gazetteer) -> str:
    """Offline follow-up handling: "那余姚呢?" after a question about 东莞's 签约率 becomes
    that question with 东莞 replaced by 余姚. Returns ``question`` unchanged when it
    stands on its own or there is no earlier user question."""
    prev = next((text for role, text in reversed(history) if role == "user"), None)
    if not prev:
        return question
    q = question.strip()
    content = re.sub(r"[呢吗吧啊？?！!。.，,\s]|^(那么?|还有|另外|以及|and|what about|how about)", "", q, flags=re.I)
    aliases = _city_aliases(corpus_cities, gazetteer)
    new_cities = [a for a in sorted(aliases, key=len, reverse=True) if a in q]
    new_years = _YEAR_RE.findall(q)
    for a in new_cities + new_years:
        content = content.replace(a, "")
    content = re.sub(r"(市|年|的|呢)", "", content)
    if len(content) > 4 and not _FOLLOWUP_RE.search(q):
        return question  # it brings its own topic
    out = prev
    if new_cities:
        old = [a for a in sorted(aliases, key=len, reverse=True) if a in out]
        first_new = aliases[new_cities[0]]
        first_new_short = re.sub(r"(市|县|区)$", "", first_new)
        for a in old:
            out = out.replace(a, first_new if a.endswith(("市", "县", "区")) else first_new_short)
        if not old:
            out = first_new + out
    if new_years:
        old_years = _YEAR_RE.findall(out)
        if old_years:
            for y in set(old_years):
                out = out.replace(y, new_years[0])
        else:
            out = f"{new_years[0]}年" + out
    return out
