"""Answers from the indicator table: comparisons, rankings, trends and changes, each number cited.

The answer stage consults :class:`TableAnswerer` before the sentence answerer.  It reads the question
(:func:`~assistant.table_question.parse_table_question`: the metric asked for, the cities and years from
:class:`~assistant.query.QueryInfo`, and whether it ranks, compares, asks for a change or a trend),
finds the matching records per city/year with :class:`~assistant.indicator_match.MetricMatcher`, and
either

* answers: one line per record, its figure as the report writes it, cited to the record's sentence
  (a :class:`~assistant.types.Citation` built from the record's offsets, so verification passes by
  construction); derived statements (a difference, which is higher, an order) are marked 计算, show
  their arithmetic and carry a :attr:`~assistant.types.WarningKind.COMPUTED` notice; records of two
  reports that disagree are shown side by side with a :attr:`~assistant.types.WarningKind.CONFLICT`
  notice;
* refuses (``near_miss``) when the asked metric matches no record closely but the reports state
  related ones (asked 常住人口签约率, the report states only 重点人群签约率): the nearest number is
  not the answer;
* or steps aside (``None``) for the sentence answerer: single figures, lists and everything else.

In LLM mode the same records go into the prompt as a compact table (:func:`figures_table`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .indicator_match import IndicatorMatch, find_conflicts, surely_other
from .indicator_table import IndicatorTable
from .indicators import Indicator, IndicatorRecord, Kind, normalize_metric
from .query import QueryInfo
from .table_question import HEAD_RE, TableQuestion, parse_table_question
from .types import REFUSAL_PHRASE, Chunk, Citation, Draft, FigureRow, Filters, Refusal, Warning, WarningKind

MAX_ROWS_PER_GROUP = 4


@dataclass(frozen=True)
class Derived:
    """A statement computed from rows: ``text`` with its ``arithmetic``; ``numbers`` are the derived
    figures as written (what verification must not look for in a source)."""

    text: str
    arithmetic: str
    numbers: tuple[str, ...]
    rows: tuple[int, ...]


@dataclass(frozen=True)
class Missing:
    """A city/year the question names for which the table holds no record of the ``metrics`` asked, and
    the related measures it does hold there (named, never answered with)."""

    scope: Filters
    metrics: tuple[str, ...]
    nearest: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableResult:
    """The table's answer to a question: rows in display order, derived statements, conflicts and the
    groups it has nothing for; or a refusal."""

    question: TableQuestion
    rows: tuple[IndicatorMatch, ...] = ()
    derived: tuple[Derived, ...] = ()
    conflicts: tuple[tuple[int, ...], ...] = ()
    refusal: Refusal | None = None
    missing: tuple[Missing, ...] = ()


# --- reading the question ------------------------------------------------------------------


# --- matching -------------------------------------------------------------------------------


def _in_scope(ind: Indicator, g: Filters) -> bool:
    return (not g.cities or ind.city in g.cities) and (not g.years or ind.year in g.years) and \
        (not g.doc_ids or ind.doc_id in g.doc_ids)


def _best(matches: list[IndicatorMatch], kind: Kind | None, ranks: bool = False) -> list[IndicatorMatch]:
    """The best-scoring records (changes aside, ranks only when ``ranks`` are asked), of the hinted kind when
    there are any."""
    pool = [m for m in matches if m.indicator.kind != "change" and (m.indicator.unit == "名") == ranks]
    if kind is not None and any(m.indicator.kind == kind for m in pool):
        pool = [m for m in pool if m.indicator.kind == kind]
    if not pool:
        return []
    top = pool[0].score
    seen: set[tuple[str, float, str]] = set()
    out = []
    for m in pool:
        key = (m.indicator.metric, m.indicator.value, m.indicator.kind)
        if m.score >= top - 0.05 and (key not in seen or len({x.indicator.doc_id for x in pool}) > 1):
            seen.add(key)
            out.append(m)
    return out[:MAX_ROWS_PER_GROUP]


def _literal_in(metric: str, chunks: Sequence[Chunk], scope: Filters) -> bool:
    """Does a report in scope write ``metric`` word for word? Then the extractor missed it; never refuse."""
    want = normalize_metric(metric)
    return any(want in _normalized(c.text) for c in chunks if _chunk_in_scope(c, scope))


@lru_cache(maxsize=4096)
def _normalized(text: str) -> str:
    return normalize_metric(text)


def _chunk_in_scope(c: Chunk, g: Filters) -> bool:
    return (not g.cities or c.city in g.cities) and (not g.doc_ids or c.doc_id in g.doc_ids) and \
        (not g.years or c.year in g.years or (c.year is None and bool(set(c.doc_years) & set(g.years))))


class TableAnswerer:
    """Looks questions up in the indicator table (see the module docstring). Thread-safe."""

    def __init__(self, table: IndicatorTable) -> None:
        self.table = table
        self.matcher = table.matcher

    def lookup(self, question: str, info: QueryInfo, chunks: Sequence[Chunk] = (),
               suspect: Collection[str] = frozenset()) -> TableResult | None:
        """The table's answer or refusal for ``question``; None when the sentence answerer should answer.
        Records of the ``suspect`` chunks (a report holding text addressed to a model) are never used."""
        tq = parse_table_question(question, info)
        if tq is None or info.unknown_places or info.unknown_years or info.wants_department or info.wants_heading:
            return None
        if tq.intent == "figure" and not info.wants_figure:
            return None
        scopes = tq.groups or (Filters(),)
        pools = [self._scoped(g, suspect) for g in scopes]
        per_group: list[list[IndicatorMatch]] = []
        for pool, kind, metrics in zip(pools, tq.kinds, tq.metrics, strict=True):
            found: list[IndicatorMatch] = []
            for metric in metrics:
                matched = self.matcher.match(metric, pool)
                found += matched if tq.intent == "rank" else _best(matched, kind, info.wants_rank)
            per_group.append(found)
        if not any(per_group):
            return self._near_miss(tq, pools, scopes, chunks) if info.wants_figure or tq.intent != "figure" \
                else None
        if tq.intent == "rank":
            return _ranked(tq, [m for g in per_group for m in g])
        missing: list[Missing] = []
        for g, pool, found, metrics in zip(scopes, pools, per_group, tq.metrics, strict=True):
            if not found:
                nearest = self._refusable(metrics, pool, g, chunks)
                if nearest is None:
                    return None  # the report may state it in words the table missed: the sentence answerer looks
                missing.append(Missing(g, metrics, nearest))
        rows = [m for g in per_group for m in g]
        conflicts = _conflicts(rows)
        if tq.intent == "figure" and not conflicts:
            return None  # one figure: the sentence answerer quotes it with its context
        derived = _derive(tq, per_group) if not missing else ()
        return TableResult(tq, tuple(rows), derived, conflicts, missing=tuple(missing))

    def _scoped(self, g: Filters, suspect: Collection[str]) -> list[IndicatorRecord]:
        """The records in scope ``g``, read by city and year through the table's index (not every
        record of the corpus per question)."""
        out = [r for city in g.cities or (None,) for year in g.years or (None,)
               for r in self.table.store.records(city=city, year=year)]
        return [r for r in out if r.chunk_id not in suspect and _in_scope(r.indicator, g)]

    def _refusable(self, metrics: Sequence[str], pool: Sequence[IndicatorRecord], g: Filters,
                   chunks: Sequence[Chunk]) -> tuple[str, ...] | None:
        """The related measures the reports state in scope ``g`` when the asked ones are surely not
        there; None when they may be: the name is not clearly a measure's, a report writes it word for
        word (the extractor missed it), nothing related is stated (the table may have missed it under
        another name), or a related record may be it in other words (新增托位 for 新增3岁以下婴幼儿托位,
        婴儿死亡率 for 一岁以内宝宝的死亡率): only a record of another domain or population group
        (:func:`~assistant.indicator_match.surely_other`) is surely not the asked measure."""
        if not all(HEAD_RE.search(m) for m in metrics) or any(_literal_in(m, chunks, g) for m in metrics):
            return None
        near = [(metric, m) for metric in metrics for m in self.matcher.near(metric, pool)]
        if not near or not all(surely_other(metric, m.indicator.metric) for metric, m in near):
            return None  # nothing related to name, or a related record may be the asked one in other words
        return tuple(dict.fromkeys(m.indicator.metric for _metric, m in near))[:4]

    def _near_miss(self, tq: TableQuestion, pools: Sequence[Sequence[IndicatorRecord]], scopes: Sequence[Filters],
                   chunks: Sequence[Chunk]) -> TableResult | None:
        """A refusal naming what the reports state instead, when they state other measures of the same kind."""
        nearest: list[str] = []
        for g, pool, metrics in zip(scopes, pools, tq.metrics, strict=True):
            found = self._refusable(metrics, pool, g, chunks)
            if found is None:
                return None
            nearest += found
        if not nearest:
            return None
        refusal = Refusal(reason="near_miss", wants_figure=True, metric=tq.asked,
                          nearest=tuple(dict.fromkeys(nearest))[:4])
        return TableResult(tq, refusal=refusal)


def _conflicts(rows: Sequence[IndicatorMatch]) -> tuple[tuple[int, ...], ...]:
    groups = find_conflicts([m.record for m in rows])
    index = {m.record.id: i for i, m in enumerate(rows)}
    return tuple(tuple(index[r.id] for r in g) for g in groups)


def _ranked(tq: TableQuestion, matches: list[IndicatorMatch]) -> TableResult | None:
    """Rows of one kind (the asked one, else results when there are any) and the most common unit, one per
    (city, year, metric), ordered by value."""
    if not matches:
        return None
    # Like with like: the asked kind, else the kind most rows have (results on a tie).
    counts: Counter[str] = Counter(m.indicator.kind for m in matches if m.indicator.kind != "change")
    hint = tq.kinds[0] if tq.kinds else None
    kind = hint if hint in counts else max(counts, key=lambda k: (counts[k], k == "achieved"), default=None)
    matches = [m for m in matches if m.indicator.kind == kind]
    if not matches:
        return None
    units = [m.indicator.unit for m in matches]
    unit = max(set(units), key=units.count)
    seen: set[tuple[str | None, int | None, str]] = set()
    rows = []
    for m in matches:
        i = m.indicator
        if i.unit == unit and (i.city, i.year, i.metric) not in seen:
            seen.add((i.city, i.year, i.metric))
            rows.append(m)
    descending = tq.highest is not False
    rows.sort(key=lambda m: (-m.indicator.value if descending else m.indicator.value))
    derived: tuple[Derived, ...] = ()
    if len(rows) > 1:
        first = rows[0].indicator
        word = ("最高" if descending else "最低") if _is_rate(unit) else ("最多" if descending else "最少")
        op = " > " if descending else " < "
        derived = (Derived(f"{word}的是{_place(first)}（{_number(first)}）",
                           op.join(_number(m.indicator) for m in rows), (), tuple(range(len(rows)))),)
    return TableResult(tq, tuple(rows), derived, _conflicts(rows))


def _derive(tq: TableQuestion, per_group: Sequence[Sequence[IndicatorMatch]]) -> tuple[Derived, ...]:
    """A difference between the first row of the first two groups (change, trend, which is higher)."""
    if tq.intent not in ("change", "trend", "compare") or len(per_group) < 2:
        return ()
    if tq.intent == "compare" and tq.highest is None:
        return ()
    a, b = per_group[0][0].indicator, per_group[1][0].indicator
    if a.unit != b.unit:
        return ()
    i_a = 0
    i_b = len(per_group[0])
    if tq.intent == "compare":
        hi, lo = (a, b) if a.value >= b.value else (b, a)
        gap, unit = _fmt(hi.value - lo.value), _diff_unit(a.unit)
        more = "更高，高出" if _is_rate(a.unit) else "更多，多"
        text = f"{_place(hi)}{more}{gap}{unit}" if a.value != b.value else "两者相同"
        return (Derived(text, f"{_number(hi)} − {_number(lo)} = {gap}{unit}", (f"{gap}{unit}",), (i_a, i_b)),)
    early, late = (a, b) if (a.year or 0) <= (b.year or 0) else (b, a)
    diff = late.value - early.value
    unit = _diff_unit(a.unit)
    word = "提高" if diff > 0 else "下降" if diff < 0 else "持平"
    shown = _fmt(abs(diff))
    text = f"从{_place(early)}到{_place(late)}{word}{shown}{unit}" if diff else f"{_place(early)}与{_place(late)}持平"
    return (Derived(text, f"{_number(late)} − {_number(early)} = {_fmt(diff)}{unit}", (f"{shown}{unit}",),
                    (i_a, i_b)),)


# --- writing the answer ---------------------------------------------------------------------

_KIND_WORD = {"target": "目标", "achieved": "", "change": "变化"}


def _fmt(x: float) -> str:
    return f"{round(x, 4):g}"


def _is_rate(unit: str) -> bool:
    """A level (rate, share, per-population figure) is higher or lower; a count is more or fewer."""
    return unit in ("%", "‰", "百分点", "") or unit.startswith("/")


def _diff_unit(unit: str) -> str:
    return "个百分点" if unit == "%" else unit


def _number(i: Indicator) -> str:
    return f"{_fmt(i.value)}{i.unit}"


def _scope(g: Filters) -> str:
    return "".join(g.cities) + "".join(f"{y}年" for y in g.years)


def _place(i: Indicator) -> str:
    return f"{i.city or ''}{f'{i.year}年' if i.year else ''}"


def _shown(i: Indicator) -> str:
    """The figure as written, with the comparator when the words do not carry it."""
    fig = i.figure or _number(i)
    if i.comparator != "=" and not re.search(r"以上|以下|以内|之内|左右|[≥≤<>]", fig) and not fig.endswith("成"):
        fig = i.comparator + fig
    return fig


def row_line(m: IndicatorMatch, marker: int) -> str:
    """``东莞市2025年目标 家庭医生签约率：60%以上[1]`` (no full stop)."""
    i = m.indicator
    return f"{_place(i)}{_KIND_WORD[i.kind]} {i.metric}：{_shown(i)}[{marker}]"


def draft(result: TableResult) -> Draft:
    """The extractive answer (or refusal) for a :class:`TableResult`."""
    if result.refusal is not None:
        return Draft(text="", mode="extractive", refusal=result.refusal)
    citations: dict[tuple[str, int, int], Citation] = {}
    markers: list[int] = []
    for m in result.rows:
        i = m.indicator
        key = (i.doc_id, i.start, i.end)
        if key not in citations:
            citations[key] = Citation(marker=len(citations) + 1, chunk_id=m.record.chunk_id, doc_id=i.doc_id,
                                      title=m.record.title, city=i.city, year=i.year, section_path=i.section_path,
                                      quote=i.sentence, start=i.start, end=i.end, source_path=m.record.source_path)
        markers.append(citations[key].marker)
    lines = [row_line(m, n) + "。" for m, n in zip(result.rows, markers, strict=True)]
    warnings: list[Warning] = []
    computed: list[str] = []
    for d in result.derived:
        cites = "".join(f"[{n}]" for n in dict.fromkeys(markers[r] for r in d.rows))
        lines.append(f"{d.text}{cites}（计算：{d.arithmetic}）。")
        computed += d.numbers
        note = f"由表中数字计算得出，报告未直接写明：{d.text}（{d.arithmetic}）。"
        warnings.append(Warning(WarningKind.COMPUTED, note))
    for gap in result.missing:
        near = f"（报告中只有：{'、'.join(gap.nearest)}）" if gap.nearest else ""
        lines.append(f"{REFUSAL_PHRASE}{_scope(gap.scope)}“{'、'.join(gap.metrics)}”的数字{near}。")
    for group in result.conflicts:
        first = result.rows[group[0]].indicator
        shown = "、".join(f"{_shown(result.rows[r].indicator)}[{markers[r]}]《{result.rows[r].record.title}》"
                         for r in group)
        lines.append(f"注意：不同报告对{_place(first)}{first.metric}的数字不一致：{shown}。")
        values = "、".join(_shown(result.rows[r].indicator) for r in group)
        note = f"报告之间数字不一致：{_place(first)}{first.metric}（{values}）。"
        warnings.append(Warning(WarningKind.CONFLICT, note))
    figures = tuple(FigureRow(marker=n, city=m.indicator.city, year=m.indicator.year, metric=m.indicator.metric,
                              value=m.indicator.value, unit=m.indicator.unit, comparator=m.indicator.comparator,
                              kind=m.indicator.kind, figure=_shown(m.indicator), matched=m.matched, how=m.how,
                              doc_id=m.indicator.doc_id, record_id=m.record.id)
                    for m, n in zip(result.rows, markers, strict=True))
    cited = tuple(citations.values())
    evidence = tuple((c.marker, c.quote) for c in cited)
    return Draft(text="\n".join(lines), mode="extractive", evidence=evidence, citations=cited,
                 warnings=tuple(warnings), figures=figures, computed=tuple(computed))


def figures_table(result: TableResult, source_number: dict[str, int]) -> str:
    """The records as a compact table for the LLM prompt: one line per record, with the number of the
    source that holds its sentence (``source_number``: chunk id → [n]) and the derived values."""
    lines = ["来源 | 地区 | 年份 | 类型 | 指标 | 数值 | 原文"]
    for m in result.rows:
        i = m.indicator
        n = source_number.get(m.record.chunk_id)
        lines.append(f"[{n}] | {i.city or ''} | {i.year or ''} | {_KIND_WORD[i.kind] or '实际'} | {i.metric} | "
                     f"{_shown(i)} | {i.sentence}")
    for d in result.derived:
        lines.append(f"（计算）{d.text}：{d.arithmetic}")
    for group in result.conflicts:
        lines.append("（不一致）" + "、".join(_shown(result.rows[r].indicator) for r in group))
    return "\n".join(lines)


def computed_numbers(result: TableResult) -> tuple[str, ...]:
    """The derived figures of a result (what an LLM answer may state without a source saying it)."""
    return tuple(n for d in result.derived for n in d.numbers)


__all__ = ["Derived", "Missing", "TableAnswerer", "TableResult", "computed_numbers", "draft", "figures_table",
           "row_line"]
