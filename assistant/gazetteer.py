"""Chinese place names: which city, county or district a report is about.

The gazetteer lists every prefecture-level division (the four municipalities
included) and the county-level divisions, from ``data/gazetteer.tsv``, and the
municipal districts (市辖区) with their parent city, from ``data/districts.tsv``. Each
place is matched by its full name (``余姚市``) and, where that is safe, by its short
form (``余姚``). A district is named with its parent (``广州市番禺区``) and found by
``番禺区``, ``广州番禺`` or (next to its full name) ``番禺``; a district name several
cities share (``鼓楼区``) counts only with its city in front. Text is scanned once, left to
right, and the longest name wins at each position; a 30,000-character report takes a few
milliseconds.

>>> g = Gazetteer.default()
>>> [(p.name, n) for p, n in g.find("宁波市余姚市卫生健康局:余姚2024年")]
[('余姚市', 2), ('宁波市', 1)]
>>> g.best_city("余姚市2025年卫生健康工作要点", "宁波市宁波市").name
'余姚市'
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from .errors import ConfigError

Level = Literal["prefecture", "county", "district"]
_LEVELS = ("prefecture", "county")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


PROVINCES = _words(
    "北京市 天津市 上海市 重庆市 河北省 山西省 内蒙古自治区 辽宁省 吉林省 黑龙江省 江苏省 浙江省 安徽省 "
    "福建省 江西省 山东省 河南省 湖北省 湖南省 广东省 广西壮族自治区 海南省 四川省 贵州省 云南省 西藏自治区 "
    "陕西省 甘肃省 青海省 宁夏回族自治区 新疆维吾尔自治区 香港特别行政区 澳门特别行政区 台湾省"
)
PROVINCE_SHORTS = _words(
    "北京 天津 上海 重庆 河北 山西 内蒙古 内蒙 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 "
    "湖南 广东 广西 海南 四川 贵州 云南 西藏 陕西 甘肃 青海 宁夏 新疆 香港 澳门 台湾"
)

# The 55 minority nationalities, as they appear inside names of autonomous areas.
_ETHNIC = _words(
    "蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳 佤 畲 高山 拉祜 水 东乡 "
    "纳西 景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 普米 塔吉克 怒 乌孜别克 俄罗斯 "
    "鄂温克 德昂 保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 基诺 各"
)
# Names that official titles use without 族 (伊犁哈萨克自治州, 巴音郭楞蒙古自治州).
_ETHNIC_BARE = ("蒙古", "哈萨克", "柯尔克孜", "锡伯", "塔吉克")
_ETHNIC_FORMS = sorted([e + "族" for e in _ETHNIC] + list(_ETHNIC_BARE), key=len, reverse=True)
_AUTONOMOUS = ("自治州", "自治县", "自治旗")
_SUFFIXES = ("地区", "林区", "特区", "市", "县", "盟", "旗")

# Short forms that are ordinary words in policy text (资源, 公安, 互助, 其中卫生 → 中卫,
# 朝阳产业): these places are found by their full name only.
_COMMON_WORDS = frozenset(
    _words(
        "中卫 朝阳 来宾 阿里 合作 安宁 东方 新星 白杨 双河 同仁 共和 通道 新兴 和平 富民 平和 大方 康乐 "
        "互助 沿河 江城 永和 和顺 太和 武功 大安 正安 三江 公安 南部 中方 资源 平原 友谊 方正 温泉 太湖 "
        "大城 康保 大名 清水河 东山 清流 大田 石门 长白 永兴 安远 定远 石林 河口 青龙 玉龙 龙山 南华 云龙"
    )
)
# Words that contain a place's short form across a word boundary (医保定点 → 保定,
# 美丽江苏 → 丽江, 健康定期 → 康定). They are matched and thrown away, so the scan
# resumes after them; 健康东莞 still finds 东莞.
_BLOCKERS = frozenset(
    _words(
        "创新 更新 重新 全新 最新 医保 确保 环保 社保 参保 担保 美丽 平安 健康 长治久安 中山大学 中山医院 "
        "中山医 广安门 大理石 银龄安康"
    )
)
# After a short form these mean it names something else (新乡村, 中山路, 西安区).
_NOT_A_CITY_AFTER = re.compile(r"区(?!域)|县(?!域)|镇(?!街)|乡(?!镇)|村|路|街道|旗|号|桥|港|湾|岛|峰|寺|湖|山|河"
                               r"|江(?!北|南)")


@dataclass(frozen=True)
class Place:
    """A prefecture- or county-level division.

    ``short`` is the name without its administrative suffix (``恩施``, ``余姚``), or the
    full name when the short form would be one character, a province's name
    (``吉林市``) or shared with another place (``长沙县``).
    """

    name: str
    short: str
    level: Level
    province: str
    parent: str | None = None  # districts: the prefecture-level city they belong to


def short_form(name: str) -> str:
    """Strip the administrative suffix and, for autonomous areas, the nationalities.

    >>> short_form("恩施土家族苗族自治州"), short_form("伊犁哈萨克自治州"), short_form("余姚市")
    ('恩施', '伊犁', '余姚')
    """
    for suffix in _AUTONOMOUS:
        if name.endswith(suffix):
            core = name[: -len(suffix)]
            stripped = True
            while stripped:
                stripped = False
                for form in _ETHNIC_FORMS:
                    if core.endswith(form) and len(core) - len(form) >= 2:
                        core = core[: -len(form)]
                        stripped = True
                        break
            return name if core.endswith("族") else core
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class _Alias:
    place: Place | None  # None: a blocker word
    full: bool
    needs_anchor: bool  # a short county name counts only when the full name is in the text too


class Gazetteer:
    """Place-name lookup and city detection.

    Build once (:meth:`default` caches the packaged list); every method is read-only
    and safe to call from several threads.
    """

    def __init__(self, places: Iterable[Place], extra_aliases: Iterable[tuple[str, Place, bool]] = ()) -> None:
        self._places: tuple[Place, ...] = tuple(places)
        if not self._places:
            raise ConfigError("the gazetteer has no places", "Check the gazetteer TSV file.")
        province_words = set(PROVINCES) | set(PROVINCE_SHORTS)
        aliases: dict[str, _Alias] = {w: _Alias(None, False, False) for w in province_words | _BLOCKERS}
        for p in self._places:
            aliases[p.name] = _Alias(p, True, False)  # a municipality's full name is also its province's
        for word, p, full in extra_aliases:  # districts: 番禺区, 广州番禺
            aliases.setdefault(word, _Alias(p, full, False))
        for p in self._places:
            s = p.short
            if s == p.name or s in _COMMON_WORDS or s in aliases:
                continue
            if s in province_words and p.province not in (s, s + "市"):
                continue
            aliases[s] = _Alias(p, False, p.level in ("county", "district") and len(s) < 3)
        self._aliases = aliases
        self._by_name = {p.name: p for p in self._places}
        self._names_of: dict[Place, list[str]] = {}
        for w, a in aliases.items():
            if a.place is not None:
                self._names_of.setdefault(a.place, []).append(w)
        # Every name has at least two characters: index the lengths by first two.
        starts: dict[str, set[int]] = {}
        for w in aliases:
            starts.setdefault(w[:2], set()).add(len(w))
        self._starts = {k: tuple(sorted(v, reverse=True)) for k, v in starts.items()}

    # --- construction ---------------------------------------------------------------

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str]],
                  districts: Iterable[tuple[str, str, str]] = ()) -> Gazetteer:
        """Build from ``(name, level, province)`` rows and ``(district, parent, province)``
        rows, deriving unambiguous short forms."""
        items = [(n.strip(), lv.strip(), pv.strip()) for n, lv, pv in rows]
        owners: dict[str, list[tuple[str, str]]] = {}
        for name, level, _ in items:
            owners.setdefault(short_form(name), []).append((name, level))
        province_words = set(PROVINCE_SHORTS)
        places = []
        for name, level, province in items:
            if level not in _LEVELS:
                raise ConfigError(f"gazetteer: {name}: unknown level {level!r}", "Use prefecture or county.")
            s = short_form(name)
            owner = _owner(owners[s])
            if len(s) < 2 or owner != name or (s in province_words and province not in (s, s + "市")):
                s = name
            places.append(Place(name=name, short=s, level=level, province=province))  # type: ignore[arg-type]
        by_name = {p.name: p for p in places}
        rows_d = [(d.strip(), pa.strip(), pv.strip()) for d, pa, pv in districts]
        named = Counter(d for d, _, _ in rows_d)
        shorts = Counter(_district_short(d) for d in named.elements())
        taken = set(owners) | set(by_name)
        extra: list[tuple[str, Place, bool]] = []
        for district, parent, province in rows_d:
            city = by_name.get(parent)
            if city is None or city.level != "prefecture":
                raise ConfigError(f"districts: {district}: unknown parent {parent!r}",
                                  "The parent must be a prefecture-level name in gazetteer.tsv.")
            own = _district_short(district)
            unique = named[district] == 1 and district not in by_name
            short = own if unique and own != district and own not in taken and own not in _COMMON_WORDS \
                and shorts[own] == 1 else district if unique else parent + district
            p = Place(name=parent + district, short=short, level="district", province=province, parent=parent)
            places.append(p)
            prefixes = {parent, city.short} if city.short != parent else {parent}
            for pre in prefixes:
                extra += [(pre + district, p, True)] + ([(pre + own, p, True)] if own != district else [])
            if unique:
                extra.append((district, p, True))
        return cls(places, extra)

    @classmethod
    def from_tsv(cls, path: str | Path) -> Gazetteer:
        """Read ``name<TAB>level<TAB>province`` lines (``#`` comments and a header allowed)."""
        text = Path(path).read_text(encoding="utf-8")
        return cls.from_rows(_parse_tsv(text, str(path)))

    @classmethod
    def default(cls) -> Gazetteer:
        """The packaged gazetteer, loaded on first use and shared afterwards."""
        global _default
        if _default is None:
            with _default_lock:
                if _default is None:
                    data = resources.files("assistant").joinpath("data")
                    rows = _parse_tsv(data.joinpath("gazetteer.tsv").read_text("utf-8"), "assistant/data/gazetteer.tsv")
                    districts = _parse_tsv(data.joinpath("districts.tsv").read_text("utf-8"),
                                           "assistant/data/districts.tsv", unique=False)
                    _default = cls.from_rows(rows, districts)
        return _default

    # --- lookups --------------------------------------------------------------------

    @property
    def places(self) -> tuple[Place, ...]:
        return self._places

    def __len__(self) -> int:
        return len(self._places)

    def get(self, name: str) -> Place | None:
        """The place with this full name or (usable) short form, else ``None``."""
        if name in self._by_name:
            return self._by_name[name]
        alias = self._aliases.get(name)
        return alias.place if alias else None

    def aliases_of(self, name: str) -> list[str]:
        """Every name a place is found by (``广州市番禺区`` → 广州市番禺区, 广州番禺区, 广州番禺,
        番禺区, 番禺), longest first; ``[name]`` for a name the gazetteer does not know."""
        p = self.get(name)
        if p is None:
            return [name]
        return sorted(set(self._names_of.get(p, [])) | {p.name}, key=len, reverse=True)

    def is_short_alias(self, word: str) -> bool:
        """A short form (``番禺``, ``东莞``), which counts as a place only as a word of its own."""
        a = self._aliases.get(word)
        return a is not None and not a.full

    def find(self, text: str, *, short_counties: bool = False) -> list[tuple[Place, int]]:
        """Places mentioned in ``text`` with their counts, most mentioned first.

        Each stretch of text counts once, for the longest name there: ``余姚市`` is
        not also ``余姚``, ``恩施土家族苗族自治州`` not also ``恩施``. A two-character county
        short form (``余姚``, but also ``惠民`` in 惠民生, ``会同`` in 会同有关部门) counts only
        when the full name is in the text as well, unless ``short_counties`` is set.
        """
        hits = self._scan(text)
        anchors = {p for p, _, alias in hits if alias.full}
        counts: dict[Place, int] = {}
        first: dict[Place, int] = {}
        for p, pos, alias in hits:
            if alias.needs_anchor and p not in anchors and not short_counties:
                continue
            counts[p] = counts.get(p, 0) + 1
            first.setdefault(p, pos)
        return sorted(counts.items(), key=lambda kv: (-kv[1], first[kv[0]]))

    def best_city(self, title: str, body: str, issuer: str | None = None) -> Place | None:
        """The place a report is about, or ``None`` when it names none.

        Mentions weigh 10 in the title, 5 in the issuer and 1 in the body. A
        county-level place in the title beats its prefecture (余姚市 in the title with
        宁波市 all over the body → 余姚市); so does one in the issuer when the title
        names no place.
        """
        sources = (("title", title or ""), ("issuer", issuer or ""), ("body", body or ""))
        scans = [(kind, self._scan(text)) for kind, text in sources]
        anchors = {p for _, hits in scans for p, _, alias in hits if alias.full}
        weight = {"title": 10, "issuer": 5, "body": 1}
        score: dict[Place, int] = {}
        order: dict[Place, int] = {}
        seen_in: dict[str, list[Place]] = {"title": [], "issuer": [], "body": []}
        rank = 0
        for kind, hits in scans:
            for p, _, alias in hits:
                if alias.needs_anchor and p not in anchors:
                    continue
                score[p] = score.get(p, 0) + weight[kind]
                order.setdefault(p, rank)
                rank += 1
                seen_in[kind].append(p)
        if not score:
            return None
        candidates: Sequence[Place] = list(score)
        title_counties = [p for p in seen_in["title"] if p.level in ("county", "district")]
        issuer_counties = [p for p in seen_in["issuer"] if p.level in ("county", "district")]
        if title_counties:
            candidates = title_counties
        elif not seen_in["title"] and issuer_counties:
            candidates = issuer_counties
        return min(candidates, key=lambda p: (-score[p], order[p]))

    # --- internals ------------------------------------------------------------------

    def _scan(self, text: str) -> list[tuple[Place, int, _Alias]]:
        """``(place, position, alias)`` for each place-name match, blockers dropped.

        Left to right, longest name first at each position, matches never overlap.
        A plain loop over two-character keys: Python's ``re`` would try thousands of
        alternatives one by one at every position and be several times slower.
        """
        out = []
        aliases = self._aliases
        starts = self._starts.get
        i, n = 0, len(text) - 1
        while i < n:
            lengths = starts(text[i : i + 2])
            if lengths is None:
                i += 1
                continue
            for size in lengths:
                alias = aliases.get(text[i : i + size])
                if alias is not None:
                    break
            else:
                i += 1
                continue
            end = i + size
            if alias.place is not None and (alias.full or not _NOT_A_CITY_AFTER.match(text, end)):
                out.append((alias.place, i, alias))
            i = end
        return out


_default: Gazetteer | None = None
_default_lock = threading.Lock()


def _district_short(district: str) -> str:
    """番禺区 → 番禺, 浦东新区 → 浦东; a one-character core (城区, 东区) keeps its 区."""
    for suffix in ("新区", "区"):
        if district.endswith(suffix) and len(district) - len(suffix) >= 2:
            return district[: -len(suffix)]
    return district


def _owner(claims: list[tuple[str, str]]) -> str | None:
    """Who owns a short form several places share: the only prefecture, else the only
    county-level city, else nobody."""
    if len(claims) == 1:
        return claims[0][0]
    prefectures = [n for n, lv in claims if lv == "prefecture"]
    if len(prefectures) == 1:
        return prefectures[0]
    if not prefectures:
        cities = [n for n, _ in claims if n.endswith("市")]
        if len(cities) == 1:
            return cities[0]
    return None


def _parse_tsv(text: str, source: str, *, unique: bool = True) -> list[tuple[str, str, str]]:
    rows = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#") or line.startswith("name\t"):
            continue
        cols = line.split("\t")
        if len(cols) != 3 or not all(c.strip() for c in cols):
            raise ConfigError(f"{source}:{lineno}: expected three tab-separated columns", f"Got {line!r}.")
        key = cols[0] if unique else "\t".join(cols[:2])
        if key in seen:
            raise ConfigError(f"{source}:{lineno}: duplicate place {cols[0]}", "Remove the repeated line.")
        seen.add(key)
        rows.append((cols[0], cols[1], cols[2]))
    return rows
