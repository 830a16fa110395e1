"""``assistant eval``: validate the gold set, run the harness, write a report, gate.

Registered by :mod:`assistant.cli` as the ``eval`` command.  Exit codes: 0 ok,
1 the gate failed (with ``--check``), 2 bad input or configuration.

    assistant eval                       # offline extractive mode, baselines, report
    assistant eval --check               # ... and fail when a metric drops below the floors
    assistant eval --mode llm --judge    # with a configured LLM, graded by the same LLM
    assistant eval --gold G --corpus DIR # your own gold set over your own reports

Defaults work outside a checkout: the bundled gold set, seed reports and floors
(:mod:`assistant.resources`); reports go to ``ASSISTANT_EVAL_REPORTS`` (default
``evals/reports`` under the current directory).  The eval indexes its corpus in an
index of its own (:func:`~assistant.evals.harness.eval_settings`), never the user's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.resources import baseline_path, gold_path, seeds_dir

if TYPE_CHECKING:
    from .harness import EvalRun

console = Console()
err = Console(stderr=True)

_TABLE_ROWS = ("hit@1", "hit@3", "hit@5", "mrr", "fact_recall", "fact_exact", "citation_precision",
               "citation_recall", "unsupported_rate", "refusal_accuracy", "false_refusal_rate",
               "latency_p50_total", "latency_p95_total")


class _ItemProgress:
    """One rich task per pipeline (ours, naive, bm25), advanced after each question."""

    def __init__(self, progress: Progress) -> None:
        self.p = progress
        self.tasks: dict[str, TaskID] = {}

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
    gold: Annotated[Path | None, typer.Option(help="Gold set (.jsonl or .yaml) [default: the bundled one]")] = None,
    mode: Annotated[str, typer.Option(help="extractive (offline) or llm (needs an LLM)")] = "extractive",
    k: Annotated[int, typer.Option(help="Cut-off for evidence recall and pass/fail", min=1)] = 5,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when a metric misses its floor")] = False,
    baselines: Annotated[bool, typer.Option(help="Also score naive llama-index and BM25-only")] = True,
    judge: Annotated[bool, typer.Option("--judge", help="LLM-as-judge grades (needs an LLM)")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for report folders [default: ASSISTANT_EVAL_REPORTS "
                                                  "or ./evals/reports]")] = None,
    corpus: Annotated[list[Path] | None, typer.Option(help="Folder of the gold evidence documents (repeat for "
                                                           "several) [default: the bundled seed reports]")] = None,
    baseline: Annotated[Path | None, typer.Option(help="Floors for --check [default: the bundled ones]")] = None,
    benchmark: Annotated[str | None, typer.Option(help="A public benchmark instead of a gold set: cmrc2018")] = None,
    data: Annotated[Path | None, typer.Option(help="The benchmark's data file (cmrc2018_dev.json)")] = None,
    n: Annotated[int, typer.Option(help="Benchmark questions to sample", min=10)] = 1200,
    heldout: Annotated[Path | None, typer.Option(help="Held-out folder (indicators_gold.jsonl + reports/) whose "
                                                      "indicator extraction is measured [default: ./evals/heldout "
                                                      "when present]")] = None,
) -> None:
    """Evaluate retrieval, answers, citations and refusals on a gold set; write a report."""
    from assistant.facade import Assistant

    if benchmark is not None:
        _benchmark(benchmark, data, n, mode, out)
        return

    from .gate import check as gate_check
    from .gold import load_gold, validate_gold
    from .harness import MODES, eval_assistant, run_eval
    from .report import write_report

    gold, corpus, baseline = gold or gold_path(), corpus or [seeds_dir()], baseline or baseline_path()
    if mode not in MODES:
        err.print(f"[red]error:[/red] unknown mode {mode!r}; use one of: {', '.join(MODES)}.")
        raise typer.Exit(2)
    try:
        settings = Settings.load()
        items = load_gold(gold)
    except AssistantError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    out = out or settings.eval.reports_dir
    problems = validate_gold(items, corpus)
    if problems:
        err.print(f"[red]The gold set has {len(problems)} problem(s); fix them first:[/red]")
        for prob in problems:
            err.print(f"  - {prob}", markup=False, highlight=False)
        raise typer.Exit(2)

    try:
        with err.status("Indexing the eval corpus in its own index (unchanged files are skipped)…"):
            assistant = eval_assistant(Assistant(settings), corpus)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as prog:
            run = run_eval(assistant, items, mode=mode, k=k, baselines=baselines, judge=judge,
                           progress=_ItemProgress(prog), corpus_dir=corpus,
                           heldout=heldout or (Path("evals") / "heldout"))
        report_dir = write_report(run, out)
    except AssistantError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    console.print(_summary_table(run))
    for part, m in run.indicators.items():
        console.print(f"indicator extraction ({part}): precision {m['precision']:.3f}, recall {m['recall']:.3f} "
                      f"on {int(m['gold'])} gold records", highlight=False)
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


def _benchmark(name: str, data: Path | None, n: int, mode: str, out: Path | None) -> None:
    """``assistant eval --benchmark cmrc2018 --data cmrc2018_dev.json``: the out-of-genre
    benchmark in its own cached index, with the naive anchor beside it."""
    from . import cmrc

    if name != "cmrc2018":
        err.print(f"[red]error:[/red] unknown benchmark {name!r}; available: cmrc2018.")
        raise typer.Exit(2)
    if data is None or not data.is_file():
        err.print("[red]error:[/red] --data must name the CMRC 2018 dev file (cmrc2018_dev.json, SQuAD style); "
                  "it is not shipped with the package (CC BY-SA 4.0).")
        raise typer.Exit(2)
    try:
        settings = Settings.load()
        if mode == "extractive":
            settings = settings.with_overrides(llm={"provider": "extractive"})
        passages = cmrc.load_cmrc(data)
        indexed, held = cmrc.split(passages)
        items = cmrc.sample_questions(passages, {p.id for p in held}, n)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as prog:
            bar = _ItemProgress(prog)
            assistant = cmrc.cmrc_assistant(indexed, settings=settings, progress=bar)
            run = cmrc.run_cmrc(assistant, items, indexed=indexed, progress=bar)
        report = cmrc.write_cmrc_report(run, out or settings.eval.reports_dir)
    except (AssistantError, OSError, ValueError, KeyError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    t = Table("metric", "ours", "naive anchor", title=f"CMRC 2018 dev, {len(items)} questions")
    for row in cmrc.summary_rows(run):
        t.add_row(*row)
    console.print(t)
    console.print(cmrc.interval_line(run), highlight=False)
    console.print(f"report: {report}", highlight=False)


__all__ = ["eval_command"]
