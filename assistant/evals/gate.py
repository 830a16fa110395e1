"""The regression gate: compare a run's metrics with the floors in ``evals/baseline.json``.

The baseline file maps metric names (as in :func:`assistant.evals.metrics.flatten`:
``hit@5``, ``fact_recall``, ``comparison/hit@5`` …) to a floor::

    {"hit@5": {"min": 0.95, "tolerance": 0.02},
     "false_refusal_rate": {"max": 0.10, "tolerance": 0.02}}

``min`` is for higher-is-better metrics, ``max`` for lower-is-better ones; a value
below ``min - tolerance`` (above ``max + tolerance``) fails.  Keys starting with
``_`` are comments.

>>> check({"hit@5": 0.90}, {"hit@5": {"min": 0.95, "tolerance": 0.02}})
['hit@5 = 0.9000 is below the floor 0.9500 (tolerance 0.0200)']
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError

# The issue's targets: floors never go below these once a run meets them.
TARGETS: dict[str, tuple[str, float]] = {
    "hit@5": ("min", 0.95),
    "fact_recall": ("min", 0.80),
    "refusal_accuracy": ("min", 0.80),
    "false_refusal_rate": ("max", 0.10),
    "indicators/seeds/precision": ("min", 0.95),
    "indicators/seeds/recall": ("min", 0.90),
    "comparison/fact_recall": ("min", 0.90),
}


@dataclass(frozen=True)
class Floor:
    """A bound on one metric."""

    metric: str
    bound: float
    direction: str  # "min" (higher is better) or "max" (lower is better)
    tolerance: float = 0.0

    def violated_by(self, value: float) -> bool:
        if math.isnan(value):
            return True
        if self.direction == "min":
            return value < self.bound - self.tolerance - 1e-12
        return value > self.bound + self.tolerance + 1e-12

    def describe(self, value: float) -> str:
        side = "below the floor" if self.direction == "min" else "above the ceiling"
        return f"{self.metric} = {value:.4f} is {side} {self.bound:.4f} (tolerance {self.tolerance:.4f})"


def _flat(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Accept flat dicts or a ``metrics.json`` document: ``overall`` and ``per_category``
    contribute bare and ``category/`` names; other sections (``baselines/bm25/hit@5``,
    ``config/...``) keep their path so they never shadow ours."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, prefix if key in ("overall", "per_category") else f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def parse_floors(data: Mapping[str, Any], source: str = "baseline") -> list[Floor]:
    """Floors from a baseline mapping; raise ConfigError on malformed entries."""
    floors: list[Floor] = []
    for metric, spec in data.items():
        if metric.startswith("_"):
            continue
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: entry {metric!r} must be an object like {{\"min\": 0.9}}.",
                              "Give each metric a min (higher is better) or a max (lower is better).")
        bounds = [d for d in ("min", "max") if d in spec]
        unknown = sorted(set(spec) - {"min", "max", "tolerance"})
        if len(bounds) != 1 or unknown:
            raise ConfigError(f"{source}: entry {metric!r} needs exactly one of min/max"
                              + (f" (unknown keys: {', '.join(unknown)})" if unknown else "") + ".",
                              "Example: {\"hit@5\": {\"min\": 0.95, \"tolerance\": 0.02}}.")
        bound, tol = spec[bounds[0]], spec.get("tolerance", 0.0)
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (bound, tol)) or tol < 0:
            raise ConfigError(f"{source}: entry {metric!r} needs numeric bound and a tolerance ≥ 0.")
        floors.append(Floor(metric, float(bound), bounds[0], float(tol)))
    return floors


def load_floors(path: str | Path) -> list[Floor]:
    """Read a baseline file; a missing or malformed file is a :class:`ConfigError`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: baseline file not found.",
                          "Run the eval once and write floors slightly below its metrics.") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: malformed JSON ({e.msg}, line {e.lineno}).",
                          "Fix the baseline file.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the baseline must be a JSON object of metric floors.")
    return parse_floors(data, p.name)


def check(metrics: Mapping[str, Any], baseline: str | Path | Mapping[str, Any]) -> list[str]:
    """Gate failures of ``metrics`` against a baseline file (or an already-parsed mapping).

    Each failure names the metric, its value and the floor; a floored metric missing
    from the run is a failure too.  An empty list means the gate passes.
    """
    floors = parse_floors(baseline) if isinstance(baseline, Mapping) else load_floors(baseline)
    flat = _flat(metrics)
    failures: list[str] = []
    for f in floors:
        if f.metric not in flat:
            failures.append(f"{f.metric} is missing from the run (floor {f.direction} {f.bound:.4f})")
        elif f.violated_by(flat[f.metric]):
            failures.append(f.describe(flat[f.metric]))
    return failures


def failing_metrics(failures: list[str]) -> list[str]:
    """The metric names in :func:`check`'s messages."""
    return [msg.split(" ", 1)[0] for msg in failures]


def propose_floors(metrics: Mapping[str, Any], names: Mapping[str, str], *, margin: float = 0.03,
                   tolerance: float = 0.02, targets: Mapping[str, tuple[str, float]] = TARGETS
                   ) -> dict[str, dict[str, float]]:
    """Floors slightly worse than a measured run, never looser than a target the run meets.

    ``names`` maps each metric to gate to ``"min"`` or ``"max"``.
    """
    flat = _flat(metrics)
    out: dict[str, dict[str, float]] = {}
    for name, direction in names.items():
        if name not in flat:
            continue
        v = flat[name]
        bound = v - margin if direction == "min" else v + margin
        # Round towards the looser side so a rerun of the same pipeline never trips the floor.
        bound = math.floor(bound * 1000) / 1000 if direction == "min" else math.ceil(bound * 1000) / 1000
        if 0.0 <= v <= 1.0:
            bound = max(0.0, min(1.0, bound))
        target = targets.get(name)
        if target and target[0] == direction:
            meets = v >= target[1] if direction == "min" else v <= target[1]
            if meets:
                bound = max(bound, target[1]) if direction == "min" else min(bound, target[1])
        out[name] = {direction: bound, "tolerance": tolerance}
    return out


__all__ = ["TARGETS", "Floor", "check", "failing_metrics", "load_floors", "parse_floors", "propose_floors"]
