"""The eval dashboard, without Streamlit: load the latest report, run the offline eval.

Reads what :mod:`assistant.evals.report` writes (``metrics.json``, ``items.jsonl``,
``summary.md``, PNG charts, ``LATEST``); the harness is imported lazily so the UI
works, with a clear message, when ``assistant.evals`` is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.resources import gold_path, seeds_dir

if TYPE_CHECKING:
    from assistant.facade import Assistant

# --- eval dashboard -------------------------------------------------------------------------


# (metric key, label, higher is better): used when the eval package cannot be imported.
_COMPARISON_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("hit@1", "hit@1", True), ("hit@3", "hit@3", True), ("hit@5", "hit@5", True), ("mrr", "MRR", True),
    ("evidence_recall@5", "evidence recall@5", True), ("fact_recall", "fact recall", True),
    ("fact_exact", "all facts present", True), ("refusal_accuracy", "refusal accuracy", True),
    ("false_refusal_rate", "false-refusal rate", False),
)
_OURS_ONLY = ("citation_precision", "citation_recall", "unsupported_rate", "pass_rate",
              "latency_p50_total", "latency_p95_total")


class EvalUnavailableError(AssistantError):
    """The eval harness (``assistant.evals``) cannot be imported."""


@dataclass(frozen=True)
class EvalReport:
    """One report folder written by ``assistant eval``."""

    path: Path
    metrics: dict[str, Any]
    items: list[dict[str, Any]]
    charts: list[Path]
    summary: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.metrics.get("config", {})
        return config

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [i for i in self.items if not i.get("passed", False)]


def reports_dir(settings: Settings) -> Path:
    """The eval reports folder (``ASSISTANT_EVAL_REPORTS``, default ``evals/reports`` under the
    current directory)."""
    return settings.eval.reports_dir


def latest_eval(root: Path) -> EvalReport | None:
    """The report named by ``root/LATEST`` (else the newest folder), or None."""
    if not root.is_dir():
        return None
    latest = root / "LATEST"
    cand = root / latest.read_text(encoding="utf-8").strip() if latest.is_file() else None
    if cand is None or not (cand / "metrics.json").is_file():
        dirs = sorted(p for p in root.iterdir() if (p / "metrics.json").is_file())
        if not dirs:
            return None
        cand = dirs[-1]
    try:
        metrics = json.loads((cand / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    items: list[dict[str, Any]] = []
    if (cand / "items.jsonl").is_file():
        for line in (cand / "items.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    summary = (cand / "summary.md").read_text(encoding="utf-8") if (cand / "summary.md").is_file() else ""
    return EvalReport(cand, metrics, items, sorted(cand.glob("*.png")), summary)


def _comparison_keys() -> tuple[tuple[str, str, bool], ...]:
    try:
        from assistant.evals.report import COMPARISON_ROWS
    except ImportError:
        return _COMPARISON_ROWS
    return COMPARISON_ROWS


def _fmt(v: Any, key: str) -> str:
    if not isinstance(v, int | float):
        return "–"
    if key.startswith("latency"):
        return f"{v * 1000:.0f} ms"
    return f"{v:.3f}"


def comparison_rows(report: EvalReport) -> list[dict[str, str]]:
    """Ours vs each baseline, one row per metric (↑ higher is better, ↓ lower)."""
    overall = report.metrics.get("overall", {})
    baselines = report.metrics.get("baselines", {})
    k = report.config.get("eval_k", 5)
    rows = []
    for key, label, higher in _comparison_keys():
        if key.startswith(("evidence", "doc_coverage")):  # computed at the run's k, not always 5
            key, label = key.replace("@5", f"@{k}"), label.replace("@5", f"@{k}")
        if key not in overall:
            continue
        row = {"指标": f"{label} {'↑' if higher else '↓'}", "ours": _fmt(overall[key], key)}
        for b in baselines.values():
            row[b.get("label", "?")] = _fmt(b.get("overall", {}).get(key), key)
        rows.append(row)
    for key in _OURS_ONLY:
        if key in overall:
            row = {"指标": key, "ours": _fmt(overall[key], key)}
            row.update({b.get("label", "?"): "–" for b in baselines.values()})
            rows.append(row)
    return rows


_HEADLINE = (("hit@1", "hit@1"), ("fact_recall", "事实召回"), ("citation_precision", "引用精确率"),
             ("refusal_accuracy", "拒答准确率"), ("pass_rate", "通过率"))


def headline_metrics(report: EvalReport) -> list[tuple[str, str, str | None]]:
    """(label, ours, delta vs the best baseline) for the metric cards above the tables."""
    overall = report.metrics.get("overall", {})
    baselines = [b.get("overall", {}) for b in report.metrics.get("baselines", {}).values()]
    out = []
    for key, label in _HEADLINE:
        if not isinstance(overall.get(key), int | float):
            continue
        others = [b[key] for b in baselines if isinstance(b.get(key), int | float)]
        delta = f"{overall[key] - max(others):+.3f} vs 最佳基线" if others else None
        out.append((label, f"{overall[key]:.3f}", delta))
    return out


def category_rows(report: EvalReport) -> list[dict[str, Any]]:
    cols = ("n_items", "hit@1", "hit@5", "mrr", "fact_recall", "citation_precision", "refusal_accuracy",
            "false_refusal_rate", "pass_rate")
    out = []
    for cat, m in report.metrics.get("per_category", {}).items():
        row: dict[str, Any] = {"类别": cat}
        for c in cols:
            if c in m:
                row[c] = int(m[c]) if c.startswith("n_") else round(float(m[c]), 3)
        out.append(row)
    return out


def failure_rows(report: EvalReport) -> list[dict[str, Any]]:
    return [{"id": i.get("id"), "类别": i.get("category"), "问题": i.get("question"),
             "原因": "; ".join(i.get("reasons", [])), "是否拒答": i.get("refused"),
             "回答": i.get("answer", "")} for i in report.failures]


def eval_unavailable() -> str | None:
    """Why the eval harness cannot run here, or None when it can."""
    try:
        import assistant.evals.gold
        import assistant.evals.harness
        import assistant.evals.report  # noqa: F401
    except ImportError as exc:
        return f"评测模块不可用（{exc}）。请确认 assistant/evals 完整安装，或在命令行运行 assistant eval。"
    return None


def run_offline_eval(assistant: Assistant, out_root: Path,
                     progress: Callable[[float, str], object] | None = None, *, baselines: bool = True,
                     gold: Path | None = None, corpus: Path | None = None) -> Path:
    """What ``assistant eval`` does, offline: validate the gold set, index the corpus in the
    eval's own index (never the user's), answer and score every item, write a report;
    returns its folder. Defaults: the bundled gold set and seed reports."""
    try:
        from assistant.evals.gold import load_gold, validate_gold
        from assistant.evals.harness import eval_assistant, run_eval
        from assistant.evals.report import write_report
    except ImportError as exc:
        raise EvalUnavailableError(f"评测模块不可用（{exc}）。",
                                   "请确认 assistant/evals 完整，或在命令行运行 assistant eval。") from None
    gold, corpus = gold or gold_path(), corpus or seeds_dir()
    items = load_gold(gold)
    problems = validate_gold(items, corpus)
    if problems:
        raise AssistantError(f"标注集有 {len(problems)} 个问题: {problems[0]}", f"请先修正 {gold}。")
    if progress:
        progress(0.0, "正在建立评测索引…")
    assistant = eval_assistant(assistant, corpus)
    stages = ["ours", *(["naive", "bm25"] if baselines else [])]

    def step(done: int, total: int, label: str) -> None:
        if progress:
            i = stages.index(label) if label in stages else 0
            progress(min(1.0, (i + done / max(total, 1)) / len(stages)), f"{label}: {done}/{total}")

    run = run_eval(assistant, items, mode="extractive", baselines=baselines, progress=step, corpus_dir=corpus)
    return write_report(run, out_root)
