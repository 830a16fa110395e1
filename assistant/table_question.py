"""Reading a question for the indicator table: which metric it names, for which cities and years,
of which kind, and whether it ranks, compares, asks for a change or a trend.

Rules, like :mod:`assistant.query` (whose :class:`~assistant.query.QueryInfo` supplies the cities, years
and comparison groups): the metric is what is left of a piece of the question once places, years and
question words are stripped from its ends (:func:`asked_metric`).

>>> asked_metric("哪个城市的居民健康素养水平最高?", [])
'居民健康素养水平'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .indicators import Kind, split_metric_list
from .query import QueryInfo
from .types import Filters

Intent = Literal["figure", "compare", "rank", "trend", "change"]

_YEAR_RE = re.compile(r"(?:19|20)\d\d\s*年?(?:度|底|末)?")
_SPLIT_RE = re.compile(r"[,，。.?？!！:：;；()（）/\s|]+")
_RANK_RE = re.compile(r"哪(?:个|座|一个?)?(?:城市|地方|地市|市|县|区|地区|报告)|哪里|排名|排序|排列|从高到低|"
                      r"从低到高|依次")
_ORDER_RE = re.compile(r"最高|最低|最多|最少|最大|最小|最好|最差|最快|最短|最长")
_DIRECTION_RE = re.compile(r"更高|更低|更多|更少|更大|更小|谁高|谁低|哪个高|哪个低|高于|低于|哪个更|谁更")
_CHANGE_RE = re.compile(r"(?:变化|提高|增加|增长|下降|减少|降低|上升|缩短)了?多少|差(?:了|距)?多少|相差|差距|高出多少|"
                        r"低了?多少|变化幅度|变化量|差值")
_TREND_RE = re.compile(r"趋势|走势|历年|逐年|变化|→|->|到\s*(?:19|20)\d\d")
_HIGH_RE = re.compile(r"最高|最多|最大|最好|最长|更高|更多|更大|谁高|哪个高|高于|领先")
_LOW_RE = re.compile(r"最低|最少|最小|最差|最短|最快|更低|更少|更小|谁低|哪个低|低于")
_TARGET_RE = re.compile(r"目标|计划|力争|要求|预期|打算|定为|定的|拟")
_ACHIEVED_RE = re.compile(r"实际|完成|达到了|实现了|取得|已经|做到")


def _longest_first(words: str) -> tuple[str, ...]:
    return tuple(sorted(words.split(), key=len, reverse=True))


# Words around the metric in a question, stripped from the ends of each piece (longest first).
_LEAD = _longest_first(
    "哪一个城市 实际达到了 工作要点 工作总结 工作计划 哪个城市 哪座城市 哪个地方 哪个地区 实际达到 "
    "哪个市 哪一年 哪个县 哪个区 哪一个 报告中 报告里 实际上 达到了 实现了 完成了 定的 哪个 哪些 "
    "哪年 哪里 请问 报告 关于 对于 那么 还有 相比 比较 对比 实际 计划 目标 要求 预计 全市 "
    "全县 全区 全省 我市 各市 各地 各自 分别 达到 从 到 至 和 与 及 跟 比 较 在 其 各 的 "
    "谁 年 市 县 区 是 "
)
_TAIL = _longest_first(
    "分别达到多少 分别是多少 分别为多少 各达到多少 各是多少 各为多少 达到多少 控制目标 定了什么 "
    "是多少 为多少 有多少 变化了 提高了 增加了 增长了 下降了 减少了 降低了 排第几 设定为 要达到 "
    "达到了 实现了 完成了 提高到 提升到 增加到 降低到 缩短到 缩短至 控制在 目标值 哪一个 提高至 "
    "提升至 巩固在 保持在 多少 几个 几项 几家 变化 提高 增加 增长 下降 减少 降低 相差 差距 "
    "差了 高出 最高 最低 最多 最少 最大 最小 最好 更高 更低 更多 更少 排名 排序 依次 趋势 "
    "走势 情况 怎样 如何 定为 定在 达到 实现 完成 降到 降至 目标 计划 实际 分别 各自 之间 "
    "期间 前后 历年 逐年 年度 哪个 对比 比较 相比 对照 以下 以上 以内 左右 控制 增至 升至 "
    "达至 定得 具体 大概 大约 最终 什么 几 差 各 是 为 达 有 要 将 吗 呢 了 的 年 谁 "
)
_INNER_RE = re.compile(r"多少[个项家人所张名次]?|几[个项家人所张名次]")  # question words inside a name
HEAD_RE = re.compile(r"(?:率|比|比例|占比|水平|指数|数|人数|次数|量|寿命|时间|费用|收入|床位|托位)$")


@dataclass(frozen=True)
class TableQuestion:
    """What a question asks of the table. ``groups`` are the (city, year) scopes it names, in
    question order (empty: the whole corpus); per scope (one entry when there are none) the metric
    names asked (``metrics``: a list question asks several) and a kind hint (``kinds``; None: any)."""

    metrics: tuple[tuple[str, ...], ...]
    intent: Intent
    groups: tuple[Filters, ...]
    kinds: tuple[Kind | None, ...]
    highest: bool | None = None

    @property
    def asked(self) -> str:
        """The metric names asked, for messages."""
        return "、".join(dict.fromkeys(m for ms in self.metrics for m in ms))



def _strip(piece: str) -> str:
    changed = True
    while changed and piece:
        changed = False
        for w in _LEAD:
            if piece.startswith(w) and len(piece) > len(w):
                piece, changed = piece[len(w):], True
                break
        for w in _TAIL:
            if piece.endswith(w) and len(piece) > len(w):
                piece, changed = piece[:-len(w)], True
                break
    return "" if piece in _LEAD or piece in _TAIL else piece


def asked_metric(question: str, places: Sequence[str]) -> str:
    """The metric a question names, with places, years and question words removed ("" if none).

    >>> asked_metric("东莞和余姚2025年的家庭医生签约率目标各是多少?", ["东莞市", "余姚市"])
    '家庭医生签约率'
    """
    q = question
    aliases = {*places, *(re.sub(r"(市|县|区|自治州|地区|盟)$", "", p) for p in places)}
    for alias in sorted((a for a in aliases if len(a) >= 2), key=len, reverse=True):
        q = q.replace(alias, "|")
    q = _YEAR_RE.sub("|", q)
    pieces = [p for p in (_strip(_INNER_RE.sub("", x)) for x in _SPLIT_RE.split(q)) if len(p) >= 2]
    if not pieces:
        return ""
    headed = [p for p in pieces if HEAD_RE.search(p)]
    return max(headed or pieces, key=len)


def _shares_word(a: str, b: str) -> bool:
    return bool({a[i:i + 2] for i in range(len(a) - 1)} & {b[i:i + 2] for i in range(len(b) - 1)})


def _kind_hint(text: str) -> Kind | None:
    target, achieved = bool(_TARGET_RE.search(text)), bool(_ACHIEVED_RE.search(text))
    return "target" if target and not achieved else "achieved" if achieved and not target else None


def _group_texts(question: str, groups: Sequence[Filters]) -> list[str]:
    """The stretch of the question that speaks of each group: from its city/year to the next group's."""
    def pos(g: Filters) -> int:
        keys = [*(c for c in g.cities), *(re.sub(r"(市|县|区)$", "", c) for c in g.cities),
                *(str(y) for y in g.years)]
        hits = [question.find(k) for k in keys if k and question.find(k) >= 0]
        return max(hits) if hits else 0

    starts = [pos(g) for g in groups]
    order = sorted(range(len(groups)), key=lambda i: starts[i])
    out = [""] * len(groups)
    for n, i in enumerate(order):
        end = starts[order[n + 1]] if n + 1 < len(order) else len(question)
        out[i] = question[starts[i]:end]
    return out


def parse_table_question(question: str, info: QueryInfo) -> TableQuestion | None:
    """What ``question`` asks of the table, or None when it names no metric."""
    metric = asked_metric(question, [*info.cities, *info.unknown_places])
    if not metric:
        return None
    f = info.filters  # what the question names, or the filters the user set (a sidebar city, a report)
    if info.groups:
        groups = tuple(info.groups)
    elif f.cities or f.years or f.doc_ids:
        groups = (Filters(cities=f.cities, years=f.years, doc_ids=f.doc_ids),)
    else:
        groups = ()
    if _RANK_RE.search(question) and (_ORDER_RE.search(question) or _DIRECTION_RE.search(question)
                                      or "排" in question):
        intent: Intent = "rank"
    elif len(groups) > 1 and _CHANGE_RE.search(question):
        intent = "change"
    elif len(groups) > 1 and _DIRECTION_RE.search(question):
        intent = "compare"
    elif len(groups) > 1 and len({c for g in groups for c in g.cities}) <= 1 and _TREND_RE.search(question):
        intent = "trend"
    elif len(groups) > 1:
        intent = "compare"
    else:
        intent = "figure"
    overall = _kind_hint(question)
    places = [*info.cities, *info.unknown_places]
    texts = _group_texts(question, groups) if groups else [question]
    kinds = tuple(_kind_hint(t) or overall for t in texts)
    # A group may name its own measure (2024年常住人口签约率是多少,2025年目标是多少: the second asks the
    # first's): a name with a head word, or a variant of the question's (省级胸痛中心 of 胸痛中心数量).
    own = [asked_metric(t, places) if groups else metric for t in texts]
    metrics = tuple(tuple(split_metric_list(m if m and (HEAD_RE.search(m) or _shares_word(m, metric)) else metric))
                    for m in own)
    highest = True if _HIGH_RE.search(question) else False if _LOW_RE.search(question) else None
    return TableQuestion(metrics, intent, groups, kinds, highest)


__all__ = ["HEAD_RE", "Intent", "TableQuestion", "asked_metric", "parse_table_question"]
