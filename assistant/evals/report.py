"""Write an :class:`~assistant.evals.harness.EvalRun` to ``evals/reports/<YYYYmmdd-HHMMSS>/``.

Files: ``metrics.json`` (overall, per category, baselines, config), ``summary.md``
(ours vs baselines, per category, failing items by cause), ``items.jsonl`` (one
result per gold item) and three PNG charts (``by_category.png``,
``vs_baselines.png``, ``latency.png``).  ``evals/reports/LATEST`` names the newest
directory.  Charts use English labels: a CJK font may be missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .gold import CATEGORIES
from .harness import EvalRun, ItemResult

# Rows of the "ours vs baselines" table: (metric, label, higher is better).
COMPARISON_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("hit@1", "hit@1", True),
    ("hit@3", "hit@3", True),
    ("hit@5", "hit@5", True),
    ("mrr", "MRR", True),
    ("evidence_recall@5", "evidence recall@5", True),
    ("doc_coverage@5", "evidence-document coverage@5", True),
    ("fact_recall", "fact recall", True),
    ("fact_exact", "all facts present", True),
    ("refusal_accuracy", "refusal accuracy", True),
    ("false_refusal_rate", "false-refusal rate", False),
)
OURS_ONLY_ROWS: tuple[tuple[str, str], ...] = (
    ("citation_precision", "citation precision"),
    ("citation_recall", "citation recall"),
    ("unsupported_rate", "unsupported-sentence rate"),
    ("answers_with_missing_numbers", "answers with numbers missing from cited quotes"),
    ("numbers_missing_per_answer", "numbers missing from cited quotes per answer"),
    ("pass_rate", "items passed"),
    ("answer_chars_p50", "median answer length (characters, answered items)"),
    ("judge_correctness", "judge correctness (1-5)"),
    ("judge_faithfulness", "judge faithfulness (1-5)"),
    ("prompt_tokens_mean", "prompt tokens per answer"),
    ("completion_tokens_mean", "completion tokens per answer"),
    ("cost_per_answer_usd", "cost per answer (USD)"),
)
CATEGORY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("n_items", "n"), ("hit@1", "hit@1"), ("hit@5", "hit@5"), ("mrr", "MRR"),
    ("evidence_recall@5", "ev. recall@5"), ("fact_recall", "fact recall"), ("fact_exact", "exact"),
    ("citation_precision", "cit. P"), ("citation_recall", "cit. R"), ("refusal_accuracy", "refusal acc."),
    ("false_refusal_rate", "false refusals"), ("pass_rate", "pass"),
)
CAUSE_HELP: dict[str, str] = {
    "retrieval_miss": "no gold evidence in the top k contexts (retrieval)",
    "facts_missing": "evidence retrieved or not, but the answer lacks required facts (extraction/generation)",
    "partial_evidence": "some but not all evidence items in the top k (comparison/list coverage)",
    "false_refusal": "refused an answerable question",
    "answered_unanswerable": "answered a question the reports cannot answer",
    "error": "the pipeline raised an error",
}


def _fmt(v: float | None, name: str = "") -> str:
    if v is None:
        return "–"
    if name.startswith("n_"):
        return str(int(v))
    if "usd" in name:
        return f"{v:.6f}"
    if "tokens" in name or "judge" in name:
        return f"{v:.1f}"
    return f"{v:.3f}"


def _at_k(name: str, k: int) -> str:
    """Evidence metrics are computed at the run's k, not always 5."""
    return name.replace("@5", f"@{k}") if name.startswith(("evidence", "doc_coverage", "ev.")) else name


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows]
    return out


def metrics_document(run: EvalRun) -> dict[str, Any]:
    """What ``metrics.json`` holds."""
    return {
        "overall": run.metrics,
        "per_category": run.per_category,
        "baselines": {name: {"label": b.label, "overall": b.metrics, "per_category": b.per_category,
                             "build_seconds": b.build_seconds} for name, b in run.baselines.items()},
        "config": run.config,
        "seconds": run.seconds,
        "indicators": run.indicators,
    }


def summary_markdown(run: EvalRun, title: str = "Evaluation") -> str:
    """The human summary: ours vs baselines, per category, speed, failing items by cause."""
    names = list(run.baselines)
    lines = [f"# {title}", ""]
    cfg = run.config
    answered = cfg.get("answered_by") or {}
    by = "; answered by " + ", ".join(f"{m} {n}" for m, n in answered.items() if n) if answered else ""
    lines += [f"- mode: **{run.mode}**" + (f" ({cfg['llm_model']})" if cfg.get("llm_model") else "") + by,
              f"- embedding: `{cfg.get('embedding_model')}`; chunk budget: {cfg.get('chunk')}; "
              f"retrieval top_k: {cfg.get('top_k')}; eval k: {run.k}",
              f"- items: {len(run.items)}; passed: {sum(r.passed for r in run.items)}; "
              f"git: `{cfg.get('git_commit')}`; run time: {run.seconds:.1f}s", ""]

    lines += ["## Ours vs baselines", ""]
    if names:
        lines += ["Baselines answer with their top-1 chunk text, which is generous to them for fact recall; "
                  "they never refuse.", ""]
    header = ["metric", "ours", *[run.baselines[n].label for n in names]]
    rows = []
    for key, label, higher in COMPARISON_ROWS:
        key, label = _at_k(key, run.k), _at_k(label, run.k)
        if key not in run.metrics:
            continue
        arrow = "↑" if higher else "↓"
        rows.append([f"{label} {arrow}", _fmt(run.metrics.get(key), key),
                     *[_fmt(run.baselines[n].metrics.get(key), key) for n in names]])
    lines += [*_table(header, rows), ""]
    extra = [[label, _fmt(run.metrics[key], key)] for key, label in OURS_ONLY_ROWS if key in run.metrics]
    if extra:
        lines += ["## Answers and citations (ours)", "", *_table(["metric", "value"], extra), ""]

    lines += ["## Per category", ""]
    cats = [c for c in CATEGORIES if c in run.per_category]
    cats += [c for c in run.per_category if c not in CATEGORIES]
    cols = [(_at_k(key, run.k), _at_k(label, run.k)) for key, label in CATEGORY_COLUMNS]
    rows = [[c, *[_fmt(run.per_category[c].get(key), key) for key, _ in cols]] for c in cats]
    lines += [*_table(["category", *[label for _, label in cols]], rows), ""]
    if names:
        rows = [[c, *[f"{_fmt(run.baselines[n].per_category.get(c, {}).get('hit@5'))} / "
                      f"{_fmt(run.baselines[n].per_category.get(c, {}).get('fact_recall'))}" for n in names]]
                for c in cats if c != "unanswerable"]
        lines += ["Baselines per category (hit@5 / fact recall):", "",
                  *_table(["category", *[run.baselines[n].label for n in names]], rows), ""]

    lines += indicator_lines(run.indicators)

    stages = sorted({k.removeprefix("latency_p50_") for k in run.metrics if k.startswith("latency_p50_")},
                    key=lambda s: (s == "total", s))
    if stages:
        rows = [[st, *(f"{run.metrics[f'latency_{p}_{st}'] * 1000:.1f}" for p in ("p50", "p95"))]
                for st in stages]
        lines += ["## Latency per stage (ms)", "", *_table(["stage", "p50", "p95"], rows), ""]

    for heading, groups in (("Failing items by cause", run.failures_by_cause()),
                            ("Passing items with warnings", run.warnings_by_cause())):
        lines += [f"## {heading}", ""]
        if not groups:
            lines += ["None.", ""]
        for cause, items in groups.items():
            lines += [f"### {cause} ({len(items)}) — {CAUSE_HELP.get(cause, '')}", ""]
            lines += [f"- `{r.item.id}` [{r.item.category}] {r.item.question} → {_short(r)}" for r in items]
            lines.append("")
    return "\n".join(lines)


INDICATOR_PARTS = {"seeds": "seed reports (gated)", "heldout": "held-out reports (measured, never tuned on)"}


def indicator_lines(indicators: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The summary's indicator-extraction section: precision/recall per gold set (nothing if none)."""
    if not indicators:
        return []
    header = ["gold set", "gold records", "precision", "recall", "F1", "value", "unit", "comparator", "kind"]
    rows = [[INDICATOR_PARTS.get(part, part), _fmt(m.get("gold"), "n_"), _fmt(m.get("precision")),
             _fmt(m.get("recall")), _fmt(m.get("f1")), _fmt(m.get("value_accuracy")), _fmt(m.get("unit_accuracy")),
             _fmt(m.get("comparator_accuracy")), _fmt(m.get("kind_accuracy"))] for part, m in indicators.items()]
    return ["## Indicator extraction", "",
            "Records stored at ingest scored against the hand-checked indicator gold (docs/indicators.md); "
            "value/unit/comparator/kind: accuracy on the records paired by document, quote and metric.", "",
            *_table(header, rows), ""]


def _short(r: ItemResult, n: int = 90) -> str:
    bits = []
    if r.score.facts_missing:
        bits.append("missing " + ", ".join(r.score.facts_missing))
    bits.append(f"hit rank {r.score.first_hit_rank}")
    text = r.answer_text.replace("\n", " ")
    bits.append(("refused: " if r.refused else "answer: ") + (text[:n] + "…" if len(text) > n else text))
    return "; ".join(bits)


# --- charts --------------------------------------------------------------------------------


def _bars(ax: Any, groups: Sequence[str], series: Mapping[str, Sequence[float]]) -> None:
    n = max(len(series), 1)
    width = 0.8 / n
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=label)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=15)
    ax.set_ylim(0, 1.18)  # headroom so the legend row never covers a bar
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.legend(loc="upper center", ncol=n, fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)


def write_charts(run: EvalRun, out_dir: Path) -> list[Path]:
    """by_category.png, vs_baselines.png, latency.png (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    cats = [c for c in CATEGORIES if c in run.per_category]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    series = {
        "fact recall": [run.per_category[c].get("fact_recall", 0.0) for c in cats],
        "hit@5": [run.per_category[c].get("hit@5", 0.0) for c in cats],
        "refusal (accuracy / false-refusal)": [
            run.per_category[c].get("refusal_accuracy", run.per_category[c].get("false_refusal_rate", 0.0))
            for c in cats],
    }
    _bars(ax, cats, series)
    ax.set_title(f"By category ({run.mode}; unanswerable: refusal accuracy, others: false-refusal rate)",
                 fontsize=9)
    fig.tight_layout()
    paths.append(out_dir / "by_category.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    keys = [("hit@1", "hit@1"), ("hit@5", "hit@5"), ("mrr", "MRR"), ("fact_recall", "fact recall")]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    series = {"ours": [run.metrics.get(k, 0.0) for k, _ in keys]}
    for b in run.baselines.values():
        series[b.label] = [b.metrics.get(k, 0.0) for k, _ in keys]
    _bars(ax, [label for _, label in keys], series)
    ax.set_title("Ours vs baselines (baseline 'answer' = top-1 chunk)", fontsize=9)
    fig.tight_layout()
    paths.append(out_dir / "vs_baselines.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    totals = [dict(r.score.stages).get("total", 0.0) * 1000 for r in run.items]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(totals, bins=min(30, max(5, len(totals) // 3)), color="tab:blue", alpha=0.8)
    ax.set_xlabel("total latency per answer (ms)")
    ax.set_ylabel("answers")
    ax.set_title(f"Latency ({run.mode}), p50 {run.metrics.get('latency_p50_total', 0) * 1000:.0f} ms, "
                 f"p95 {run.metrics.get('latency_p95_total', 0) * 1000:.0f} ms", fontsize=9)
    fig.tight_layout()
    paths.append(out_dir / "latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


# --- writing -----------------------------------------------------------------------------


def write_report(run: EvalRun, out_root: str | Path, *, stamp: str | None = None,
                 charts: bool = True) -> Path:
    """Write the report directory and update ``LATEST``; returns the directory."""
    root = Path(out_root)
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    out = root / stamp
    n = 1
    while out.exists():  # two runs within one second must not overwrite each other
        out = root / f"{stamp}-{n}"
        n += 1
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(metrics_document(run), ensure_ascii=False, indent=2) + "\n",
                                      encoding="utf-8")
    with (out / "items.jsonl").open("w", encoding="utf-8") as fh:
        for r in run.items:
            fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    (out / "summary.md").write_text(summary_markdown(run, f"Evaluation {out.name}") + "\n", encoding="utf-8")
    if charts:
        write_charts(run, out)
    (root / "LATEST").write_text(out.name + "\n", encoding="utf-8")
    return out


__all__ = ["indicator_lines", "metrics_document", "summary_markdown", "write_charts", "write_report"]
