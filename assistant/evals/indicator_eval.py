"""Indicator extraction in the eval report: precision and recall against the hand-checked gold sets.

* **seeds**: the records the eval's own ingest stored for the bundled seed reports, scored against the
  bundled gold (``assistant/evals/data/indicators_gold.jsonl``). Gated by ``indicators/seeds/*`` floors.
* **heldout**: the held-out reports of a checkout (``evals/heldout/reports/`` with
  ``evals/heldout/indicators_gold.jsonl``), parsed and extracted here without an index. Measured and
  reported separately; never tuned on, never gated.

>>> sorted(SCORE_KEYS)[:3]
['comparator_accuracy', 'extracted', 'extracted_in_passages']
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.config import ChunkSettings
from assistant.errors import GoldSetError, LoadError
from assistant.indicators import IndicatorRecord, extract_document

from .indicator_gold import ExtractionScore, load_indicator_gold, score_extraction

#: The numbers of an :class:`~assistant.evals.indicator_gold.ExtractionScore` the report keeps.
SCORE_KEYS = ("precision", "recall", "f1", "gold", "extracted_in_passages", "matched", "value_accuracy",
              "unit_accuracy", "comparator_accuracy", "kind_accuracy", "extracted")


@dataclass(frozen=True)
class _Row:  # an extracted record as score_extraction reads it (doc = file name)
    doc: str
    metric: str
    value: float
    unit: str
    comparator: str
    kind: str
    quote: str


def _rows(records: Sequence[IndicatorRecord]) -> list[_Row]:
    return [_Row(Path(r.source_path).name or r.indicator.doc_id, r.indicator.metric, r.indicator.value,
                 r.indicator.unit, r.indicator.comparator, r.indicator.kind, r.indicator.sentence) for r in records]


def _documents(corpus_dir: Path, names: Sequence[str]) -> dict[str, str]:
    from assistant.loading import load_file

    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = load_file(corpus_dir / name).text
        except LoadError:
            continue
    return out


def score_records(records: Sequence[IndicatorRecord], gold_path: str | Path, corpus_dir: str | Path) -> ExtractionScore:
    """Score ``records`` (e.g. what an ingest stored) against a gold file over ``corpus_dir``."""
    passages, gold = load_indicator_gold(gold_path)
    names = sorted({p.doc for p in passages} | {g.doc for g in gold})
    return score_extraction(passages, gold, _rows(records), documents=_documents(Path(corpus_dir), names))


def score_corpus(gold_path: str | Path, corpus_dir: str | Path, chunk: ChunkSettings) -> ExtractionScore:
    """Parse and extract ``corpus_dir`` (no index) and score it against ``gold_path``."""
    from assistant.ingest import parse_paths

    records = [r for _doc, chunks in parse_paths([corpus_dir], chunk) for r in extract_document(chunks)]
    return score_records(records, gold_path, corpus_dir)


def summary(score: ExtractionScore) -> dict[str, float]:
    """The report's numbers of a score (:data:`SCORE_KEYS`)."""
    return {k: float(score[k]) for k in SCORE_KEYS}  # type: ignore[literal-required]


def heldout_paths(root: str | Path) -> tuple[Path, Path] | None:
    """(gold file, reports folder) of a held-out folder laid out like ``evals/heldout``; None if absent."""
    r = Path(root)
    gold, reports = r / "indicators_gold.jsonl", r / "reports"
    return (gold, reports) if gold.is_file() and reports.is_dir() else None


def indicator_section(records: Sequence[IndicatorRecord], seeds_gold: Path, seeds_dir: Path,
                      chunk: ChunkSettings, heldout: Path | None = None) -> dict[str, dict[str, float]]:
    """``{"seeds": …, "heldout": …}`` for ``metrics.json``; a missing or malformed gold file is left out."""
    out: dict[str, dict[str, float]] = {}
    with contextlib.suppress(GoldSetError):
        out["seeds"] = summary(score_records(records, seeds_gold, seeds_dir))
    found = heldout_paths(heldout) if heldout is not None else None
    if found is not None:
        with contextlib.suppress(GoldSetError):
            out["heldout"] = summary(score_corpus(found[0], found[1], chunk))
    return out


__all__ = ["SCORE_KEYS", "heldout_paths", "indicator_section", "score_corpus", "score_records", "summary"]
