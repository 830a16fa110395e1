"""Stage timings: a stopwatch the orchestrator owns, read out as the immutable
``(stage, seconds)`` pairs an :class:`~assistant.types.Answer` carries.

>>> clock = Laps()
>>> clock.lap("analyze")
>>> [name for name, _s in clock.timings]
['analyze']
"""

from __future__ import annotations

import time


class Laps:
    """Each :meth:`lap` records the time since the previous one (or since creation)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._laps: list[tuple[str, float]] = []

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._laps.append((stage, now - self._last))
        self._last = now

    def skip(self) -> None:
        """Start the next lap now (time spent on nothing worth reporting)."""
        self._last = time.perf_counter()

    @property
    def timings(self) -> tuple[tuple[str, float], ...]:
        return tuple(self._laps)
