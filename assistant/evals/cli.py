"""``assistant eval``: validate the gold set, run the harness, write a report, gate.

Registered by :mod:`assistant.cli` as the ``eval`` command.  Exit codes: 0 ok,
1 the gate failed (with ``--check``), 2 bad input or configuration.

    assistant eval                       # offline extractive mode, baselines, report
    assistant eval --check               # ... and fail when a metric drops below evals/baseline.json
    assistant eval --mode llm --judge    # with a configured LLM, graded by the same LLM
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assistant.config import PROJECT_ROOT, Settings
from assistant.errors import AssistantError

if TYPE_CHECKING:
    from .harness import EvalRun

DEFAULT_GOLD = PROJECT_ROOT / "evals" / "gold.jsonl"
DEFAULT_OUT = PROJECT_ROOT / "evals" / "reports"
DEFAULT_BASELINE = PROJECT_ROOT / "evals" / "baseline.json"
DEFAULT_CORPUS = PROJECT_ROOT / "seeds"

console = Console()
err = Console(stderr=True)

_TABLE_ROWS = ("hit@1", "hit@3", "hit@5", "mrr", "fact_recall", "fact_exact", "citation_precision",
               "citation_recall", "unsupported_rate", "refusal_accuracy", "false_refusal_rate",
               "latency_p50_total", "latency_p95_total")


class _ItemProgress:
    """One rich task per pipeline (ours, naive, bm25), advanced after each question."""

    def __init__(self, progress: Progress) -> None:
        self.p = progress
        self.tasks: dict[str, int] = {}

    def __call__(self, done: int, total: int, label: str) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.p.add_task(f"eval {label}", total=total)
        self.p.update(self.tasks[label], completed=done)


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _summary_table(run: EvalRun) -> Table:
    names = list(run.baselines)
    t = Table("metric", "ours", *[run.baselines[n].label for n in names], title=f"eval ({run.mode})")
    for key in _TABLE_ROWS:
        if key not in run.metrics:
            continue
        fmt = _ms if key.startswith("latency") else (lambda v: f"{v:.3f}")
        others = [run.baselines[n].metrics.get(key) for n in names]
        t.add_row(key, fmt(run.metrics[key]), *["–" if v is None else fmt(v) for v in others])
    return t


def eval_command(
    gold: Annotated[Path, typer.Option(help="Gold set (.jsonl or .yaml)")] = DEFAULT_GOLD,
    mode: Annotated[str, typer.Option(help="extractive (offline) or llm (needs an LLM)")] = "extractive",
    k: Annotated[int, typer.Option(help="Cut-off for evidence recall and pass/fail", min=1)] = 5,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when a metric misses its floor")] = False,
    baselines: Annotated[bool, typer.Option(help="Also score naive llama-index and BM25-only")] = True,
    judge: Annotated[bool, typer.Option("--judge", help="LLM-as-judge grades (needs an LLM)")] = False,
    out: Annotated[Path, typer.Option(help="Directory for report folders")] = DEFAULT_OUT,
    corpus: Annotated[Path, typer.Option(help="Folder holding the gold evidence documents")] = DEFAULT_CORPUS,
    baseline: Annotated[Path, typer.Option(help="Floors for --check")] = DEFAULT_BASELINE,
) -> None:
    """Evaluate retrieval, answers, citations and refusals on the gold set; write a report."""
    from assistant.facade import Assistant

    from .gate import check as gate_check
    from .gold import load_gold, validate_gold
    from .harness import MODES, run_eval
    from .report import write_report

    if mode not in MODES:
        err.print(f"[red]error:[/red] unknown mode {mode!r}; use one of: {', '.join(MODES)}.")
        raise typer.Exit(2)
    try:
        items = load_gold(gold)
    except AssistantError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    problems = validate_gold(items, corpus)
    if problems:
        err.print(f"[red]The gold set has {len(problems)} problem(s); fix them first:[/red]")
        for prob in problems:
            err.print(f"  - {prob}", markup=False, highlight=False)
        raise typer.Exit(2)

    try:
        assistant = Assistant(Settings.load())
        with err.status("Indexing the corpus (unchanged files are skipped)…"):
            ingest = assistant.ingest([str(corpus)])
        for r in ingest.results:
            if r.status == "failed":
                err.print(f"[yellow]ingest failed:[/yellow] {r.path}: {r.error}", highlight=False)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as prog:
            run = run_eval(assistant, items, mode=mode, k=k, baselines=baselines, judge=judge,
                           progress=_ItemProgress(prog), corpus_dir=corpus)
        report_dir = write_report(run, out)
    except AssistantError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    console.print(_summary_table(run))
    failed = len(run.failures())
    console.print(f"{len(run.items) - failed}/{len(run.items)} items passed; report: {report_dir}",
                  highlight=False)
    if not check:
        return
    try:
        failures = gate_check(run.flat_metrics, baseline)
    except AssistantError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if failures:
        console.print(f"[red]Gate FAILED ({len(failures)} metric(s) below {baseline.name}):[/red]")
        for f in failures:
            console.print(f"  - {f}", highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(f"[green]Gate passed[/green] ({baseline.name}).")


__all__ = ["eval_command"]
