"""Indicator extraction in the eval: scores against the gold sets, the report section, the gate floors."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import SEEDS

from assistant.config import ChunkSettings
from assistant.evals.gate import check, failing_metrics
from assistant.evals.indicator_eval import heldout_paths, indicator_section, score_corpus
from assistant.evals.report import indicator_lines
from assistant.resources import baseline_path, indicator_gold_path

ROOT = Path(__file__).resolve().parents[1]


def test_seed_extraction_meets_the_issue_targets() -> None:
    score = score_corpus(indicator_gold_path(), SEEDS, ChunkSettings())
    assert score["gold"] >= 250
    assert score["precision"] >= 0.95 and score["recall"] >= 0.90, (score["missed"], score["spurious"])


def test_section_scores_seeds_and_a_heldout_folder_only_when_present(tmp_path: Path) -> None:
    from assistant.indicators import extract_document
    from assistant.ingest import parse_paths

    records = [r for _d, chunks in parse_paths([SEEDS], ChunkSettings()) for r in extract_document(chunks)]
    assert heldout_paths(tmp_path) is None
    section = indicator_section(records, indicator_gold_path(), SEEDS, ChunkSettings(), tmp_path)
    assert set(section) == {"seeds"} and section["seeds"]["recall"] >= 0.9
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "r.txt").write_text("某县卫生健康局2024年工作总结\n\n全县签约率达61%。\n", encoding="utf-8")
    (tmp_path / "indicators_gold.jsonl").write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"type": "passage", "doc": "r.txt", "quote": "全县签约率达61%。"},
        {"type": "record", "doc": "r.txt", "city": "某县", "year": 2024, "metric": "签约率", "value": 61,
         "unit": "%", "comparator": "=", "kind": "achieved", "quote": "全县签约率达61%"}]), encoding="utf-8")
    section = indicator_section([], indicator_gold_path(), SEEDS, ChunkSettings(), tmp_path)
    assert section["heldout"]["precision"] == 1.0 and section["heldout"]["recall"] == 1.0
    assert section["seeds"]["recall"] == 0.0  # no stored records: nothing recalled


def test_report_lines_and_gate_floors() -> None:
    section = {"seeds": {"precision": 0.984, "recall": 0.984, "f1": 0.984, "gold": 253.0},
               "heldout": {"precision": 0.856, "recall": 0.831, "f1": 0.843, "gold": 130.0}}
    lines = "\n".join(indicator_lines(section))
    assert "| seed reports (gated) | 253 | 0.984 | 0.984 |" in lines
    assert "held-out reports (measured, never tuned on)" in lines
    assert indicator_lines({}) == []
    floors = json.loads(baseline_path().read_text(encoding="utf-8"))
    assert floors["indicators/seeds/precision"]["min"] >= 0.95 and floors["indicators/seeds/recall"]["min"] >= 0.90
    assert not any(k.startswith("indicators/heldout") for k in floors)  # measured, never gated
    ok = {"indicators": section}
    assert not [f for f in failing_metrics(check(ok, floors)) if f.startswith("indicators/")]
    bad = {"indicators": {"seeds": {**section["seeds"], "recall": 0.85}}}
    assert "indicators/seeds/recall" in failing_metrics(check(bad, floors))
