"""Indicator records: every figure a report states about its work, as a typed row (``docs/indicators.md``).

Regex/linear rules, one sentence and clause at a time:

* Figures: :func:`assistant.numbers.extract_numbers`, plus ranks (``排名全省第3``, ``数量全省第1``) and tenths
  (``超六成`` → 60%).  Not records: years, dates, ordinals (``全省第一家``), numbers in quotes or titles
  (``“1+5”``, ``《…》``), ``N+M``, ``每10万人口``, ``五届十一次``, slogans (``三个全覆盖``), bare numbers glued to
  a name (``138人才工程``), baselines (``由58%提高到``), totals the next figure is counted in (``20项指标中``),
  named rule sets (``落实18项核心制度``) and qualifiers: ages, durations and categories before a noun
  (``65岁以上老年人``, ``三年行动``, ``8类重点人群``), ``5000万以上项目``, a count qualifying the next figure.
  A count heading a list is a record (``两个续建项目:``).
* Metric: the clause before the figure without verbs, comparators, place and year words (达到, 提高到, 控制在,
  分别, 同比增长, 全市, 2019年); a count followed by its noun is named by it (``建成41家工作室``), a share so
  named ends in 占比 (``其中80%为护理型床位``); ``A、B分别达x、y`` pairs items and values, sharing a head word
  (``常住人口、重点人群签约率``), and ``A、B率达x`` gives x to both; a clause naming nothing (``同比提高1.86个
  百分点``, ``占73.18%``, ``新建7家``) takes the subject of the clause before it.
* Comparator: 以上/不低于/不少于/至少/超/力争 → ``≥``; 以下/以内/控制在/不超过/低于 → ``≤``; ``2-3家`` → 2, ``≥``.
* Kind: ``change`` (signed) for 增长/提高/下降/缩短… right before the figure, against 同比/较上年 or in
  %/百分点, and any figure in 百分点; ``target`` in a plan section or after 力争/确保/争取/到20xx年 (a planned
  change too, its metric naming the change: ``双向转诊服务量增长``); else ``achieved``.

>>> [(r.metric, r.value, r.unit, r.comparator, r.kind) for r in extract_from_text(
...     "居民健康素养水平达28.82%,同比提高1.86个百分点。", role="review")]
[('居民健康素养水平', 28.82, '%', '=', 'achieved'), ('居民健康素养水平', 1.86, '百分点', '=', 'change')]
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .numbers import NumberMention, cn_to_number, extract_numbers, fold
from .text import _tokenizer, sentence_spans  # the jieba tokenizer ingest has already loaded
from .types import Chunk, YearRole

Comparator = Literal["=", "≥", "≤"]
Kind = Literal["achieved", "target", "change"]


def _alt(*parts: str) -> str:
    return "|".join(parts)


_CJK = "\u4e00-\u9fff"
_PLACE = _alt("全市", "全县", "全区", "全省", "全州", "全旗", "全镇", "我市", "我县", "我区", "我省", "本市",
              "本县", "本区", "市本级", "辖区内?", "全系统", "全行业")
_TIME = _alt(r"(?:到|至|截至)?(?:19|20)\d\d年(?:度|底|末|内)?(?:之?前)?", r"\d{1,2}月(?:底|末|份)?(?:之?前)?",
             r"第?[一二三四1-4]季度", "[上下]半年", "今年",
             "去年", "上年", "当年", "全年", "年内", "年底前?", "年末", "一年来", "过去一年", "截至目前", "目前",
             "近年来")
_LEAD = _alt("其中", "并且", "同时", "以及", "此外", "另外", "共计", "累计", "合计", "总计", "总共", "分别",
             "已经", "先后", "全部", "努力", "力争", "确保", "争取", "预计", "推动", "推进", "促进", "实现",
             "进一步", "持续", "继续", "稳步", "加快", "着力", "全力", "不断", "切实", "积极", "大力", "深入",
             "顺利", "成功", "按要求", "将", "计划(?!生育)")
_GE = _alt("不低于", "不少于", "至少", "超过", "超出", "(?<!不)高于", "(?<!不)多于", "(?<!不)大于", "逾",
           "(?<!赶)超", "≥", ">")
_LE = _alt("不超过", "不高于", "不多于", "(?<!不)低于", "(?<!不)少于", "(?<!不)小于", "控制在", "≤", "<")
_LEVEL = _alt("达到了?", "(?<!到)达", "(?<![作行认成])为", "(?<![但就还])是", "(?<![所拥])有", "(?:提高|提升|上升"
              "|下降|降低|减少|缩短|增加|增长|扩大)(?:到|至)", "升至", "升到", "降至", "降到", "减至", "缩短为",
              "缩减至", "增至", "突破", "(?:保持|巩固|稳定|维持|控制)在", "(?<![存现所正])在", "(?<![对由关])于",
              "(?<!做)到", "至", "完成", "实现")
_FILLER = _alt("分别", "(?<!人)均", "(?<![签节制预])约", "(?<![就附最将])近", "了", "共计", "(?<!公)共", "累计",
               "合计", "总计", "仅", "只有", "多达", "高达", "力争", "确保", "争取", "(?<![需重主必])要", "将",
               "已经", "已", "继续", "持续", "进一步", "全年", "年内")
_CHANGE = r"(?<!新)(?:增长|增加|提高|提升|上升|下降|减少|降低|回落|下滑|缩减|缩短|延长|[增减降]幅|涨幅|增|减|降)"
_CMP = r"同比(?:上年|去年)?|环比|(?:较|比|与)(?:上年|去年|上一年|(?:19|20)\d\d年|年初)(?:同期)?(?:相比)?"
_TAIL_LEVEL_RE = re.compile(rf"(?:{_GE}|{_LE}|{_LEVEL})$")
_TAIL_FILLER_RE = re.compile(rf"(?:{_FILLER}|{_PLACE}|\s|[、:(])$")
_TAIL_CHANGE_RE = re.compile(rf"(?:{_CHANGE}|{_CMP})$")
_RANK_TAIL_RE = re.compile(r"(?:排名|位居|位列|居于|排在|排|居)[^排居]{0,12}$")
_FROM_RE = re.compile(r"(?:由|从)[^由从]{0,12}$")
_GE_RE, _LE_RE, _CMP_RE = re.compile(_GE), re.compile(_LE), re.compile(_CMP + "|较|相比")
_NEGATIVE_RE = re.compile(r"下降|减少|降低|回落|下滑|缩减|缩短|[减降]幅|(?<!增)减|(?<![增升])降")
_RATE_CHANGE_RE = re.compile(r"(?<!新)(?:增长|提高|提升|上升|下降|降低|回落|下滑|缩短|缩减|延长|[增减降涨]幅)")
_TARGET_RE = re.compile(_alt("目标(?:是|为|值)", "力争", "确保", "争取", "预计", "要(?:达|实现|完成|确保|力争)",
                             "计划(?:到|在|于|完成|新增|建成|实现|投入|开展)",
                             "将(?:达|实现|提高|提升|增加|新增|建成|完成|开展)"))
_BY_YEAR_RE = re.compile(r"(?:到|至)\s*((?:19|20)\d\d)\s*年|((?:19|20)\d\d)\s*年(?:底|末)前")
_AFTER_CMP_RE = re.compile(r"\s*(?:及|或)?(以上|以下|以内|之内|左右)")
_QUOTED_RE = re.compile(_alt("“[^“”]{0,40}”", "《[^《》]{0,60}》", "〔[^〔〕]{0,12}〕", "「[^「」]{0,40}」",
                             '"[^"]{0,40}"', "【[^【】]{0,20}】"))
_CLAUSE_RE = re.compile(r"[,;:。!?]|\s+(?=\((?:\d{1,2}|[一二三四五六七八九十]{1,3})\))")
_RANK_RE = re.compile(r"第\s*(\d+|[一二三四五六七八九十]+)\s*(?:名|位)?")
_RANK_VERB_RE = re.compile(r"排名|位居|位列|居于|排在|排第|居第|居全|排全|列全|居首")
_DIRECT_RANK_RE = re.compile(r"全[国省市区县州]\s*$")
_RANK_NOUN_RE = re.compile(r"\s*[个家所项批支座条次]")  # 全省第一家: an ordinal, not a rank
# 成 after a quantity word, or before 以上/左右; not the first character of 成为, 成效, 成功…
_TENTHS_RE = re.compile(r"(?:(?<=超)|(?<=超过)|(?<=近)|(?<=约)|(?<=逾)|(?<=达)|(?<=达到)|(?<=占)|(?<=有)"
                        r"|(?=\S成(?:以上|左右)))([1-9]|[一二三四五六七八九])成(?![为效功立果本员熟绩都人长型交就品])")
_RATIO_RE = re.compile(r":\s*\d")
_HEADER_RE = re.compile(r"[^,;:。\d]{1,12}:")
_RELATIVE_RE = re.compile(r"(?:超过?|超出|高于|低于|优于|好于)\S{0,6}?(?:目标|平均水平|平均值?|均值|水平|标准|要求)")
_LIST_SEP_RE = re.compile(r"\s*(?:\([^()]{0,10}\))?\s*(?:、|和|及|与|以及)\s*")
_RANGE_SEP_RE = re.compile(r"\s*(?:-|~|—{1,2}|–|至|到)\s*")
_RANGE_TAIL_RE = re.compile(r"\s*(?:-|~|—{1,2}|–|至|到)\s*[\d.]+\s*(?:周岁|岁|年|个月|天|小时|分钟)?")
_ITEM_SEP_RE = re.compile(r"、|以及|和|及|与|”(?=“)")
_HAS_HEAD_RE = re.compile(r"(?:率|比例|比|费用|人次|人数|数|量|额|收入|水平|指数|筛查|检查|幅|幅度)$")
_LEVEL_WORD_RE = re.compile(r"(?:国家|中央|省部|市厅|地市|省|市|县|区|乡镇|镇|村)级?")
_FILLERS = rf"{_PLACE}|{_TIME}|{_LEAD}|为|向|对|给|在|从|于|中有|中|了|同比|环比|较|其|[^{_CJK}A-Za-z0-9]"
_FILLER_LEAD_RE = re.compile(rf"^(?:{_FILLERS})")
_LEAD_RE = re.compile(rf"^(?:[、\s:“”\"'(]|{_PLACE}|{_TIME}|{_LEAD})")
_WEAK_LEAD_RE = re.compile(rf"^(?:{_FILLERS}|" + _alt(
    "新增", "新建", "建成", "建设", "建立", "引进", "培训", "培养", "招聘", "招录", "组建", "开展", "举办", "完成",
    "投入", "发放", "设置", "开设", "配备", "选派", "派出", "增设", "遴选", "评选出?", "免费", "有", "共", "服务",
    "达", "占") + ")")
_GENERIC_RE = re.compile(r"数量|总数|总量|占比|比例|人数|规模|数")
_VERB_RE = re.compile(_alt("中有", "实现", "达", "为", "是", "获", "通过", "完成", "有", "开展", "建成", "建立",
                           "启用", "提供", "参加", "入选", "纳入", "覆盖", "取得", "配备", "设立", "开设", "成为",
                           "进入", "发放", "接受", "开通", "上线", "运行", "推进", "实施", "竣工", "增至", "降至",
                           "升至"))
_SLOGAN_RE = re.compile(_alt("全覆盖", "制度", "机制", "改革", "工程", "行动", "体系", "融合", "统一", "服务",
                             "能力", "意识", "自信", "维护", "一批", "目标", "任务", "方向", "根本", "重点"))
_COUNT_VERB_RE = re.compile("(?:" + _alt(
    "建成", "新建", "新增", "建立", "设立", "增设", "培训", "引进", "招聘", "完成", "开展", "举办", "组建", "开设",
    "设置", "配备", "达到?", "为", "有", "共", "累计", "增至", "超过", "不少于", "不低于", "至少", "选派", "派出",
    "获得?", "获批", "立项", "入选", "建设", "培育") + r")\s*$")
_OF_WHICH_RE = re.compile(r"[^,;:。\d]{1,12}中有?\s*(?:\d|[一二三四五六七八九十]+[项个家类])")
_COMPLY_RE = re.compile(r"(?:落实|执行|遵守|贯彻|遵循|对照|依照|按照)[^,;:。]{0,30}$")
_RULES_RE = re.compile(r"[^,;:。\d]{0,12}(?:制度|规定|要求|措施|原则|标准|规范|清单|意见|办法)")
_LEVEL_BEFORE_RE = re.compile(r"(?:达到?|为|是|至|到|超|约|近|在|于|排名|第|≥|>|≤|<)\s*$")
_BASELINE_RE = re.compile(r"(?:由|从)(?:(?:19|20)\d\d年)?(?:底|末)?的?$")
_TO_RE = re.compile(r"(?:提高|提升|增加|增长|下降|降低|减少|上升|缩短|扩大|降|升|增)?(?:到|至)")
_NOUN_RE = re.compile(rf"(?![达为是和及与或完实通获提增降减占并以被由将已均在])[{_CJK}A-Za-z“]")
_NOUN_START_RE = re.compile(rf"{_NOUN_RE.pattern}|\d")
_CJK_RE = re.compile(f"[{_CJK}]")
_COUNT_UNITS_NOT = frozenset({"%", "‰", "百分点", "元", "岁", "年", "个月", "月", "天", "小时", "分钟", "", "万", "亿"})
_PROPERTY_UNITS = frozenset({"岁", "百分点", "年", "个月", "天", "小时", "分钟", "周"})  # + noun: a qualifier
_THRESHOLD_UNITS = frozenset({"元", "", "万", "亿", "床", "公里", "米", "平方米"})  # + 以上 + noun: a qualifier
_DROP_UNITS = frozenset({"周年", "号", "日", "月"})
_CHANGE_UNITS = frozenset({"%", "百分点", "倍"})
_EDGE = " \t\n\u3000,;:、"  # trimmed off a quote
_QUOTE_CHARS = str.maketrans("", "", "“”‘’\"'《》「」【】〔〕")


@dataclass(frozen=True)
class Indicator:
    """One figure a report states: ``value`` in ``unit`` for ``metric``, and where it is quoted.

    ``sentence`` is the clause stating it, ``document text[start:end]``.
    """

    doc_id: str
    city: str | None
    year: int | None
    role: YearRole
    metric: str
    value: float
    unit: str
    comparator: Comparator
    kind: Kind
    section_path: tuple[str, ...]
    start: int
    end: int
    sentence: str
    figure: str = ""  # the figure as the report writes it (``60%以上``, ``1.86万人次``): a substring of ``sentence``


@dataclass
class _Group:  # figures listed together (71.64%、60.43%) or a range (2-3家)
    mentions: list[NumberMention]
    is_range: bool
    end: int  # after the unit and any 以上/以下/左右
    comparator: Comparator = "="


@dataclass
class _State:
    subject: str = ""  # what the last clause of the sentence was about, for clauses that name nothing
    subject_start: int = 0
    last_metric: str = ""


# mention, metric, comparator, kind, sign, quote start, unit, end of the figure as written (with 以上, a range)
_Row = tuple[NumberMention, str, Comparator, Kind, float, int, str, int]


def normalize_metric(name: str) -> str:
    """Fold a metric name for comparison: NFKC, no spaces or quote marks, no leading place/year words.

    >>> normalize_metric("全市“优质服务基层行”达标率 ")
    '优质服务基层行达标率'
    """
    s = re.sub(r"\s+", "", unicodedata.normalize("NFKC", name)).translate(_QUOTE_CHARS)
    while (m := re.match(rf"(?:{_PLACE}|{_TIME})", s)) and len(s) > m.end():
        s = s[m.end():]
    return re.sub(r"(?:的|了|等|和|及|、)+$", "", s)


def metric_similarity(a: str, b: str) -> float:
    """1.0 when one normalised name contains the other (2+ characters), else their character-bigram Dice.

    >>> metric_similarity("门诊智慧结算率", "全市公立医院门诊智慧结算率")
    1.0
    >>> round(metric_similarity("家庭医生签约率", "家庭医生签约覆盖率"), 2)
    0.71
    """
    x, y = normalize_metric(a), normalize_metric(b)
    if not x or not y:
        return 0.0
    if min(len(x), len(y)) >= 2 and (x in y or y in x):
        return 1.0
    bx, by = (Counter(z[i:i + 2] for i in range(len(z) - 1)) if len(z) > 1 else Counter(z) for z in (x, y))
    return 2 * sum((bx & by).values()) / (sum(bx.values()) + sum(by.values()))


def _lstrip(s: str, pattern: re.Pattern[str]) -> str:
    while s and (m := pattern.match(s)) and m.end():
        s = s[m.end():]
    return s


def _strip_lead(s: str, city: str | None) -> str:
    """Drop leading place, year and filler words, and the report's own place (丽水市, 丽水)."""
    places = [c for c in (city, city[:-1] if city and len(city) > 2 else None) if c]
    while s:
        m = _LEAD_RE.match(s)
        n = m.end() if m else next((len(c) for c in places if s.startswith(c)), 0)
        if not n:
            break
        s = s[n:]
    return s.strip()


def _strip_tail(s: str, rank: bool) -> tuple[str, str, bool]:
    """Split the text before a figure into (metric core, verb zone, whether the zone is a change verb)."""
    full, level, change = s, False, False
    if rank and (m := _RANK_TAIL_RE.search(s)):
        s, level = s[:m.start()], True
    while s:
        if m := _TAIL_FILLER_RE.search(s):
            s = s[:m.start()]
        elif m := _TAIL_LEVEL_RE.search(s):
            s, level = s[:m.start()], True
        elif not level and (m := _TAIL_CHANGE_RE.search(s)):  # 增幅|控制在: the change word is the metric
            change = change or bool(re.fullmatch(_CHANGE, m.group()))
            s = s[:m.start()]
        elif (m := _FROM_RE.search(s)) and re.search(r"\d", m.group()):
            s = s[:m.start()]  # 基层就诊率|由58%提高到
        else:
            break
    return s, full[len(s):], change


def _clean(s: str) -> str:
    return normalize_metric(re.sub(r"(?:的|和|及|与|、|等|了)+$", "", s.strip()))


def _weak(core: str) -> bool:
    """True when ``core`` names nothing: place/time words, fillers and bare verbs (全市, 累计建成, 同比)."""
    return len(_lstrip(core, _WEAK_LEAD_RE)) < 2


def _ranks(t: str, a: int, b: int) -> list[NumberMention]:
    """``排名全省第3``, ``居全省第1、第2``: a rank stated as a result (the number reader drops 第N)."""
    out = []
    for m in _RANK_RE.finditer(t, a, b):
        value = float(m.group(1)) if m.group(1).isdigit() else cn_to_number(m.group(1))
        direct = _DIRECT_RANK_RE.search(t, a, m.start()) and not _RANK_NOUN_RE.match(t, m.end())  # 数量全省第1
        if value is not None and (direct or _RANK_VERB_RE.search(t, a, m.start())):
            out.append(NumberMention(m.group(), value, "名", start=m.start(), end=m.end()))
    return out


def _tenths(t: str, a: int, b: int) -> list[NumberMention]:
    """``超六成公立医院``, ``九成以上``: a share in tenths (成), read as a percentage."""
    out = []
    for m in _TENTHS_RE.finditer(t, a, b):
        value = float(m.group(1)) if m.group(1).isdigit() else cn_to_number(m.group(1))
        if value is not None and 0 < value <= 10:
            out.append(NumberMention(m.group(1) + "成", value * 10, "%", start=m.start(1), end=m.end()))
    return out


def _keep(t: str, m: NumberMention, cs: int, quoted: list[tuple[int, int]]) -> bool:
    """False for numbers that are not records: calendar, quoted names, codes, baselines and qualifiers."""
    if m.kind != "number" or m.unit in _DROP_UNITS or any(a <= m.start < b for a, b in quoted):
        return False
    before = t[max(cs, m.start - 6):m.start]
    if before.endswith(("+", "每", "届", "/", "连续")) or t[m.end:m.end + 1] == "+" or _RATIO_RE.match(t, m.end):
        return False
    end = rng.end() if (rng := _RANGE_TAIL_RE.match(t, m.end)) else m.end  # 0-3岁儿童: judge by the range end
    after_cmp = _AFTER_CMP_RE.match(t, end)
    pos = after_cmp.end() if after_cmp else end
    pos += t[pos:pos + 1] == ")"
    noun_follows = bool(_NOUN_RE.match(t, pos))
    if (m.unit in _PROPERTY_UNITS or m.unit == "类") and noun_follows:
        return False  # 65岁以上老年人, 三年行动, 24小时监控, 8类重点人群
    if noun_follows and _OF_WHICH_RE.match(t, pos):
        return False  # 20项指标中|11项: the total the next figure is counted in
    if noun_follows and _COMPLY_RE.search(t, cs, m.start) and _RULES_RE.match(t, pos):
        return False  # 落实…18项医疗核心制度: a named set of rules, not an amount
    if _BASELINE_RE.search(t, cs, m.start) and _TO_RE.match(t, pos):
        return False  # 由58%提高到65%: the earlier value
    if m.unit in _THRESHOLD_UNITS:
        if after_cmp and after_cmp.group(1) != "左右" and noun_follows:
            return False  # 5000万以上招商项目
        if m.unit == "" and m.scale == 1.0 and (noun_follows or not _LEVEL_BEFORE_RE.search(before)):
            return False  # 138人才工程, 4级乙等, 挺进50强
    if not any(ch.isdigit() for ch in m.raw) and m.value <= 10 and m.unit != "名":  # 三个全覆盖
        header = not t[cs:m.start].strip() and bool(_HEADER_RE.match(t, pos))  # 两个续建项目: (what follows lists them)
        return (header or bool(_COUNT_VERB_RE.search(t, cs, m.start))) and not _SLOGAN_RE.match(t, pos)
    return True


def _qualifier(t: str, m: NumberMention, nxt: NumberMention | None) -> bool:
    """A count glued to the noun of the next figure of its clause: 10类重点人群…达75.09%, 1针23价疫苗11万人."""
    if nxt is None or m.unit in _COUNT_UNITS_NOT or not _NOUN_START_RE.match(t, m.end):
        return False
    between = t[m.end:nxt.start]
    if re.search(r"、|和|及|与", between):
        return False
    if not between.strip() and nxt.unit != m.unit and nxt.unit not in _COUNT_UNITS_NOT:
        return False  # 派遣2批18名卫生应急分队: two counts of one noun, both records
    return nxt.unit.startswith(("%", "‰", "/")) or (m.value <= 10 and not _VERB_RE.search(between))


def _groups(t: str, ms: list[NumberMention]) -> list[_Group]:
    groups: list[_Group] = []
    for m in ms:
        if groups:
            g = groups[-1]
            sep = t[g.mentions[-1].end:m.start]
            ranged = len(g.mentions) == 1 and bool(_RANGE_SEP_RE.fullmatch(sep))
            if ranged or (not g.is_range and _LIST_SEP_RE.fullmatch(sep)):
                g.is_range = g.is_range or ranged
                g.mentions.append(m)
                g.end = m.end
                continue
        groups.append(_Group([m], False, m.end))
    for g in groups:
        if c := _AFTER_CMP_RE.match(t, g.end):
            g.end = c.end()
            g.comparator = "≥" if c.group(1) == "以上" else "=" if c.group(1) == "左右" else "≤"
    return groups


def _split_items(s: str) -> list[str]:
    """``A、B和C`` → items, ignoring separators inside brackets and quotes."""
    items, depth, last = [], 0, 0
    for i, ch in enumerate(s):
        depth += 1 if ch in "(“" else -1 if ch in ")”" else 0
        if depth <= 0 and i >= last and (m := _ITEM_SEP_RE.match(s, i)):
            items.append(s[last:i + (ch == "”")])
            last = m.end()
    items.append(s[last:])
    return [x for x in (i.strip() for i in items) if x]


def _shared_tail(item: str, last: str) -> str:
    """What ``last`` adds to its own item, cut at a word boundary near ``len(item)``: 重点人群|签约率."""
    words = _tokenizer().lcut(last)
    cuts = [sum(len(w) for w in words[:k]) for k in range(1, len(words))]
    if not cuts:
        return ""
    if len(item) >= len(last) - 1:  # the item carries the shared prefix: 市级医院门急诊、住院|均次费用
        return last[cuts[0]:]
    return last[min(cuts, key=lambda c: (abs(c - len(item)), -c)):]


def _pair(core: str, n: int, city: str | None) -> list[str] | None:
    """``A、B分别Y`` with n values → n names ``AY``, ``BY``; a headless item borrows the last item's head."""
    subject, _, predicate = core.partition("分别")
    items = [_clean(_strip_lead(x, city)) for x in _split_items(subject)]
    if len(items) != n:
        return None
    for i, x in enumerate(items[:-1]):
        if not _HAS_HEAD_RE.search(x) and (tail := _shared_tail(x, items[-1])) and (
                _HAS_HEAD_RE.search(tail) or (_LEVEL_WORD_RE.fullmatch(x) and _LEVEL_WORD_RE.match(items[-1]))):
            items[i] = x + tail
    return [x + predicate for x in items]


def _broadcast(core: str, city: str | None) -> list[str] | None:
    """``老年人、重点慢病基层规范管理率达65%``: one figure for every item of a list whose last item alone
    names the head (率, 费用…) → one name per item; None when the core is not such a list."""
    subject = core.partition("分别")[0]
    if "等" in subject:  # 老年人、慢性病病人等重点人群签约率: examples of one group
        return None
    items = [_clean(_strip_lead(x, city)) for x in _split_items(subject)]
    if len(items) < 2 or _HAS_HEAD_RE.search(items[0]) or not _HAS_HEAD_RE.search(items[-1]):
        return None
    if any(len(x) > 8 or _HAS_HEAD_RE.search(x) or re.search(r"\d", x) for x in items[:-1]):
        return None
    named = _pair(subject, len(items), city)
    return named if named and all(_HAS_HEAD_RE.search(x) for x in named) else None


def split_metric_list(phrase: str) -> list[str]:
    """The names a list of measures sharing one head stands for; any other phrase stands for itself.

    >>> split_metric_list("门诊和住院智慧结算率"), split_metric_list("居民健康素养水平")
    (['门诊智慧结算率', '住院智慧结算率'], ['居民健康素养水平'])
    """
    return _broadcast(phrase, None) or [phrase]


def _kind(t: str, sa: int, cs: int, g: _Group, zone: str, change: bool, role: YearRole,
          year: int | None) -> tuple[Kind, Comparator, float, str]:
    """(kind, comparator, sign, suffix): ``suffix`` is the change word a planned change adds to its metric."""
    first, sent_before = g.mentions[0], t[sa:g.mentions[0].start]
    comparator = g.comparator
    if comparator == "=":
        comparator = "≤" if _LE_RE.search(zone) else "≥" if _GE_RE.search(zone) else "="
    if comparator == "=" and ("力争" in sent_before or g.is_range):
        comparator = "≥"
    changing = change and (bool(_CMP_RE.search(t, cs, first.start)) or first.unit in _CHANGE_UNITS
                           or bool(_RATE_CHANGE_RE.search(zone)))
    planned = role == "plan" or bool(_TARGET_RE.search(sent_before)) or any(
        int(a or b) > (year or 0) for a, b in _BY_YEAR_RE.findall(sent_before))
    negative = -1.0 if changing and _NEGATIVE_RE.search(zone) else 1.0
    if changing and planned:
        # A change set for a coming period is a target; its metric names the change (双向转诊服务量增长).
        word = m.group() if (m := re.search(_CHANGE, zone)) else ""
        return "target", comparator, 1.0, word
    if changing or first.unit == "百分点":  # a percentage-point figure is always a difference
        return "change", comparator, negative, ""
    return ("target" if planned else "achieved"), comparator, 1.0, ""


def _clause(t: str, sa: int, cs: int, ce: int, ms: list[NumberMention], st: _State, city: str | None,
            role: YearRole, year: int | None) -> list[_Row]:
    """The records of the figures ``ms`` of clause ``t[cs:ce]`` (sentence from ``sa``)."""
    out: list[_Row] = []
    pending: list[tuple[int, int]] = []  # records named only by a verb, waiting for a later noun
    groups = _groups(t, ms)
    cut, shared_lead = cs, ""
    for gi, g in enumerate(groups):
        first, n, last_group = g.mentions[0], len(g.mentions), gi + 1 == len(groups)
        nxt = ce if last_group else groups[gi + 1].mentions[0].start
        rank = first.raw.startswith("第") or (
            (first.unit == "名" or first.raw.endswith("名")) and bool(_RANK_VERB_RE.search(t, cs, first.start)))
        before = t[cut:first.start] if cut == cs else re.sub(r"^[、\s]*(?:以及|及|和|与|并)?", "", t[cut:first.start])
        if gi and not t[groups[gi - 1].end:first.start].strip():
            before = shared_lead  # 派遣2批|18名…: adjacent counts share the words before the first
        shared_lead = before
        core, zone, change = _strip_tail(before, rank)
        core = _strip_lead(core, city)
        if m := re.fullmatch(r"(.*?)在(.{2,20})中", core):  # 总体应用水平在全省统建地市中|排名第2
            place = len(_strip_lead(m.group(1), city)) < 2 or re.fullmatch(r".{1,4}[市县区州旗镇乡]", m.group(1))
            core = m.group(2) if place else m.group(1)
        raw_after = t[g.end:nxt]
        after = after0 = re.sub(r"^(?:的|为|是)", "", raw_after)
        weak, inherited, name = _weak(core), False, ""
        counted = not rank and (first.unit not in _COUNT_UNITS_NOT or first.unit in ("万", "亿"))  # 2万重点人群
        if len(_CJK_RE.findall(after)) >= 2 and not after.startswith("、") and (
                weak or (counted and _NOUN_START_RE.match(after))):  # 建成41家|香港金牌家庭医生服务工作室
            if not last_group and counted and (v := _VERB_RE.search(after, 1)):
                after = after[:v.start()]  # 45家医院|实现114项…
            elif n == 1 and "、" in after and _VERB_RE.search(after, after.index("、")):
                after = after[:after.index("、")]  # 指导10家医院开展…试点|、遂昌县开展…
            after = after[:30] if last_group else re.sub(r"中有?$", "", after[:30])  # 20项指标中|11项
            name = _strip_lead(_clean(after), city)
            if first.unit in ("%", "‰") and name and not re.search(r"(?:率|比|比例|占比)$", name):
                name += "占比"  # 其中80%为…护理型床位, 对100%乡镇卫生院…: a share of what follows
            prefix = _lstrip(core, _FILLER_LEAD_RE) if len(core) <= 8 or len(name) <= 3 else ""
            metrics = [prefix + x for x in (_pair(_clean(after), n, city) if n > 1 else None) or [name] * n]
            cut = g.end + len(raw_after) - len(after0) + len(after)
            subject = "、".join(dict.fromkeys(metrics))
        else:
            cut = g.end
            if (tail := re.match(r"[^、\d]{1,12}、", raw_after)) and not re.match(r"以及|及|和|与|并", raw_after):
                cut += tail.end()  # 100%零次跑、|即办率96.72%
            if _RELATIVE_RE.fullmatch(core) and st.last_metric:  # …87.1%,|超省定目标12.1个百分点
                core, inherited = st.last_metric + core, True
            elif core.startswith("占") and st.subject:
                core, inherited = st.subject + ("占比" if core == "占" else core), True
            elif (weak or _GENERIC_RE.fullmatch(core)) and (st.subject or (change and st.last_metric)):
                core, inherited = (st.subject or st.last_metric) + _lstrip(core, _FILLER_LEAD_RE), True
            metrics = (_pair(core, n, city) if n > 1 and not g.is_range else None) or [_clean(core)] * n
            if n == 1 and not g.is_range and not inherited and (shared := _broadcast(core, city)):
                metrics, g = shared, _Group([first] * len(shared), False, g.end, g.comparator)
            subject = st.subject if inherited else _clean(core.partition("分别")[0])
        kind, comparator, sign, suffix = _kind(t, sa, cs, g, zone, change, role, year)
        if suffix:
            metrics = [x + suffix for x in metrics]
        qs, first_row = (st.subject_start if inherited else cs), len(out)
        for mention, metric in zip(g.mentions[:1] if g.is_range else g.mentions, metrics, strict=False):
            unit = "名" if rank else "" if mention.unit in ("万", "亿") else mention.unit
            fig_end = g.end if g.is_range or mention is g.mentions[-1] else mention.end
            if metric := _clean(metric):
                out.append((mention, metric, comparator, kind, sign, qs, unit, fig_end))
        glued = not last_group and not t[g.end:groups[gi + 1].mentions[0].start].strip()
        if (weak or glued) and not name and not inherited:
            pending.append((first_row, len(out) - first_row))  # 新增3个、更新改造20个社区卫生服务站
        elif name:
            for i, k in pending:
                out[i:i + k] = [(r[0], _clean(r[1] + name), *r[2:]) for r in out[i:i + k]]
            pending.clear()
        st.subject, st.last_metric, st.subject_start = subject, metrics[-1], qs
    if not groups and ce - cs <= 24 and 2 <= len(topic := _clean(_strip_lead(t[cs:ce], city))) <= 20:
        st.subject, st.subject_start = topic, cs  # 稳步推进母婴设施建设,|新建7家
    return out


def extract_from_text(text: str, *, doc_id: str = "", city: str | None = None, year: int | None = None,
                      role: YearRole = "unknown", section_path: tuple[str, ...] = (),
                      offset: int = 0) -> list[Indicator]:
    """Every indicator record stated in ``text``; ``start``/``end`` are shifted by ``offset``.

    >>> [(r.metric, r.value, r.unit, r.comparator, r.kind) for r in extract_from_text(
    ...     "力争基层就诊率达65%以上,孕产妇死亡率控制在10/10万以下。", role="plan")]
    [('基层就诊率', 65.0, '%', '≥', 'target'), ('孕产妇死亡率', 10.0, '/10万', '≤', 'target')]
    """
    t = fold(text)  # same length: offsets in t are offsets in text
    out: list[Indicator] = []
    st = _State()
    for sa, sb in sentence_spans(t):
        quoted = [(m.start() + sa, m.end() + sa) for m in _QUOTED_RE.finditer(t[sa:sb])]
        mentions = [NumberMention(m.raw, m.value, m.unit, m.kind, m.scale, m.decimals, m.start + sa, m.end + sa)
                    for m in extract_numbers(t[sa:sb])]
        st.subject, st.subject_start = "", sa
        seps = [(m.start() + sa, m.end() + sa) for m in _CLAUSE_RE.finditer(t[sa:sb])]
        for cs, ce in zip([sa] + [b for _, b in seps], [a for a, _ in seps] + [sb], strict=True):
            ms = sorted([m for m in mentions if cs <= m.start < ce] + _ranks(t, cs, ce) + _tenths(t, cs, ce),
                        key=lambda m: m.start)
            ms = [m for m in ms if _keep(t, m, cs, quoted)]
            ms = [m for i, m in enumerate(ms) if not _qualifier(t, m, ms[i + 1] if i + 1 < len(ms) else None)]
            for m, metric, comparator, kind, sign, qs, unit, fig_end in _clause(t, sa, cs, ce, ms, st, city, role,
                                                                                 year):
                q = t[qs:ce]
                q0, q1 = qs + len(q) - len(q.lstrip(_EDGE)), ce - len(q) + len(q.rstrip(_EDGE))
                out.append(Indicator(doc_id, city, year, role, metric, round(sign * m.value, 6), unit, comparator,
                                     kind, tuple(section_path), q0 + offset, q1 + offset, text[q0:q1],
                                     text[m.start:fig_end].strip()))
    return out


def extract_from_chunk(chunk: Chunk) -> list[Indicator]:
    """The records of a chunk, with its city, year (or the document's only year), role and section.

    Offsets are document offsets: ``doc.text[r.start:r.end] == r.sentence``.  Overlapping chunks
    yield the same record twice; deduplicate on ``(doc_id, start, end, metric, value)``.
    """
    year = chunk.year if chunk.year is not None else (chunk.doc_years[0] if len(chunk.doc_years) == 1 else None)
    return extract_from_text(chunk.text, doc_id=chunk.doc_id, city=chunk.city, year=year, role=chunk.role,
                             section_path=chunk.section_path, offset=chunk.start)


@dataclass(frozen=True)
class IndicatorRecord:
    """An :class:`Indicator` as the indicator table stores it: with a stable id and what a citation of it
    needs (the chunk holding its sentence, the report's title and file)."""

    id: str
    indicator: Indicator
    chunk_id: str
    title: str
    source_path: str = ""


def record_id(ind: Indicator) -> str:
    """A content id: the same figure of the same document gets the same id on every ingest."""
    key = f"{ind.doc_id}|{ind.start}|{ind.end}|{ind.metric}|{ind.value!r}|{ind.unit}|{ind.kind}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def extract_document(chunks: Sequence[Chunk]) -> list[IndicatorRecord]:
    """The extraction stage: the records of every chunk of a document, in document order.

    Overlapping chunks state the same figure twice; such records (same document, offsets, metric and
    value) are kept once, with the first chunk that holds them.

    >>> from assistant.types import Chunk
    >>> c = Chunk("c1", "d", "签约率达60%。", 0, 8, (), "", "《某县报告》", "某县", (2024,), 2024, "review", (), 5, "")
    >>> [(r.indicator.metric, r.indicator.value, r.chunk_id) for r in extract_document([c, c])]
    [('签约率', 60.0, 'c1')]
    """
    out: dict[tuple[str, int, int, str, float], IndicatorRecord] = {}
    for chunk in sorted(chunks, key=lambda c: (c.doc_id, c.ordinal, c.start)):
        for ind in extract_from_chunk(chunk):
            key = (ind.doc_id, ind.start, ind.end, ind.metric, ind.value)
            if key not in out:
                out[key] = IndicatorRecord(record_id(ind), ind, chunk.chunk_id, chunk.title, chunk.source_path)
    return sorted(out.values(), key=lambda r: (r.indicator.doc_id, r.indicator.start, r.indicator.end))


__all__ = ["Comparator", "Indicator", "IndicatorRecord", "Kind", "extract_document", "extract_from_chunk",
           "extract_from_text", "metric_similarity", "normalize_metric", "record_id", "split_metric_list"]
