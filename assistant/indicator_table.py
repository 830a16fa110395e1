"""The indicator table as users query it: the store, fuzzy metric matching and conflicts together.

:class:`IndicatorTable` is what :meth:`assistant.Assistant.indicators`, the ``assistant indicators``
command, the 指标 page and the table answerer (:mod:`assistant.table_answer`) use.

>>> t = IndicatorTable(IndicatorStore(None))
>>> t.query(metric="签约率")
[]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import IndexSettings
from .embedding import Embedder
from .errors import AssistantError
from .indicator_match import Embed, IndicatorMatch, MetricMatcher, find_conflicts
from .indicator_store import IndicatorStore
from .indicators import IndicatorRecord

KINDS = ("achieved", "target", "change")


class IndicatorTable:
    """Queries over an :class:`IndicatorStore`. ``embed`` (names → unit vectors) ranks metric
    matches; without it matching is by characters only. Thread-safe."""

    def __init__(self, store: IndicatorStore, embed: Embed | None = None) -> None:
        self.store = store
        self.matcher = MetricMatcher(embed)

    @classmethod
    def beside(cls, index: IndexSettings, embedder: Embedder, store: IndicatorStore | None = None) -> IndicatorTable:
        """The table of the index ``index`` names (``store`` overrides where it lives), matching metric
        names with ``embedder``'s query vectors."""
        def embed(names: Sequence[str]) -> np.ndarray:
            return np.vstack([embedder.embed_query(n) for n in names])

        return cls(store if store is not None else IndicatorStore.for_index(index), embed)

    def query(self, metric: str | None = None, city: str | None = None, year: int | None = None,
              kind: str | None = None, *, known_cities: Sequence[str] = ()) -> list[IndicatorMatch]:
        """Records filtered by city (``东莞`` finds ``东莞市`` among ``known_cities``), year and kind; with
        ``metric``, only those whose metric matches it, best first, each labelled with how it matched."""
        if kind is not None and kind not in KINDS:
            raise AssistantError(f"Unknown indicator kind {kind!r}.", f"Use one of: {', '.join(KINDS)}.")
        records = self.store.records(city=resolve_city(city, known_cities) if city else None, year=year, kind=kind)
        if not metric or not metric.strip():
            return [IndicatorMatch(r) for r in records]
        return self.matcher.match(metric.strip(), records)

    def conflicts(self) -> list[tuple[IndicatorRecord, ...]]:
        """Records of different reports that state one measure differently (see
        :func:`~assistant.indicator_match.find_conflicts`)."""
        return find_conflicts(self.store.records())


def resolve_city(city: str, known: Sequence[str]) -> str:
    """``东莞`` → ``东莞市`` when that is the one indexed city it starts; else ``city`` unchanged.

    >>> resolve_city("东莞", ["东莞市", "丽水市"]), resolve_city("杭州", ["东莞市"])
    ('东莞市', '杭州')
    """
    if city in known:
        return city
    hits = [c for c in known if c.startswith(city)]
    return hits[0] if len(hits) == 1 else city


__all__ = ["KINDS", "IndicatorTable", "resolve_city"]
