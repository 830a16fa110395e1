"""Command line: ``assistant ingest | docs | sections | ask | indicators | chat | eval | ui``.

Typer gives typed options and help for free; rich draws progress bars and tables.
The CLI only calls the ``assistant`` package; it holds no logic of its own.

Exit codes: 0 done; 1 ``ingest`` had files that failed; 2 an error (bad input,
configuration, an index or LLM that cannot be used); 3 ``ask`` answered, but some
sentence of the answer is not supported by its citations (marked ⚠ in the text).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import Settings
from .errors import AssistantError
from .resources import seeds_dir
from .types import WarningKind

if TYPE_CHECKING:
    from .facade import Assistant
    from .types import Answer

EXIT_UNSUPPORTED = 3  # `ask`: the answer holds sentences its citations do not support

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Question answering with verified citations over Chinese health-policy reports.")
console = Console()
err = Console(stderr=True)


def _assistant() -> Assistant:
    import logging

    from .facade import Assistant

    settings = Settings.load()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    return Assistant(settings)


def _fail(exc: AssistantError) -> None:
    err.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(2)


class _LineProgress:
    """Ingest progress as plain lines, for output that is not a terminal (``make run``, CI,
    a log file): one line per file, and the chunk count every ``every`` chunks."""

    def __init__(self, every: int = 50) -> None:
        self.total_files = self.done_files = self.total_chunks = self.done_chunks = 0
        self.every = every
        self._next = every

    def files(self, total: int) -> None:
        self.total_files = total
        err.print(f"ingest: {total} file(s)", highlight=False)

    def file_done(self, path: str, status: str) -> None:
        self.done_files += 1
        err.print(f"ingest: [{self.done_files}/{self.total_files}] {Path(path).name}: {status}", highlight=False)

    def chunks(self, total: int) -> None:
        self.total_chunks += total

    def chunks_done(self, n: int) -> None:
        self.done_chunks += n
        if self.done_chunks >= self._next:
            err.print(f"ingest: embedded {self.done_chunks}/{self.total_chunks} chunks", highlight=False)
            self._next = self.done_chunks + self.every


class _RichProgress:
    """Adapter from the ingest progress protocol to a rich progress display."""

    def __init__(self, progress: Progress) -> None:
        self.p = progress
        self.files_task = progress.add_task("files", total=0)
        self.chunks_task = progress.add_task("chunks", total=0)

    def files(self, total: int) -> None:
        self.p.update(self.files_task, total=total)

    def file_done(self, path: str, status: str) -> None:
        self.p.update(self.files_task, advance=1, description=f"files ({Path(path).name}: {status})")

    def chunks(self, total: int) -> None:
        task = self.p.tasks[self.chunks_task]
        self.p.update(self.chunks_task, total=(task.total or 0) + total)

    def chunks_done(self, n: int) -> None:
        self.p.update(self.chunks_task, advance=n)


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Report files or folders to index")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Also index the five bundled seed reports")] = False,
    prune: Annotated[bool, typer.Option(help="Remove documents whose files are gone")] = False,
    rebuild: Annotated[bool, typer.Option(help="Drop the index and re-embed everything")] = False,
) -> None:
    """Parse, chunk, embed and index reports (incremental: unchanged files are skipped)."""
    targets = [str(p) for p in paths or []] + ([str(seeds_dir())] if demo else [])
    if not targets and not prune:
        err.print("[red]error:[/red] no reports given. Name the files or folders to index "
                  "(`assistant ingest ~/reports`), or `assistant ingest --demo` for the five bundled seed reports.")
        raise typer.Exit(2)
    try:
        a = _assistant()
        if err.is_terminal:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err, transient=False) as prog:
                report = a.ingest(targets, prune=prune, rebuild=rebuild, progress=_RichProgress(prog))
        else:
            report = a.ingest(targets, prune=prune, rebuild=rebuild, progress=_LineProgress())
    except AssistantError as exc:
        _fail(exc)
        return
    for note in report.repaired:
        console.print(f"[yellow]repaired:[/yellow] {note}")
    for r in report.results:
        colour = {"failed": "red", "duplicate": "yellow", "removed": "yellow"}.get(r.status, "green")
        extra = f" — {r.error}" if r.error else ""
        console.print(f"[{colour}]{r.status:9}[/{colour}] {r.path} ({r.chunks} chunks){extra}")
    counts = {s: len(report.of(s)) for s in ("added", "updated", "unchanged", "failed", "duplicate", "removed")}
    console.print(f"{report.chunks_added} chunks written in {report.seconds:.1f}s; "
                  + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def docs(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List indexed documents with metadata and chunk counts."""
    try:
        items = _assistant().documents()
    except AssistantError as exc:
        _fail(exc)
        return
    if as_json:
        print(json.dumps([asdict(d) for d in items], ensure_ascii=False, indent=2))
        return
    from .index import flags_text

    t = Table()
    # The id is what `sections`/`--doc` take: never elide it, even in an 80-column pipe.
    t.add_column("doc id", no_wrap=True, min_width=16)
    for name in ("file", "city", "years", "title", "issuer", "date", "chunks"):
        t.add_column(name)
    t.add_column("flags", style="yellow")
    names = {d.doc_id: Path(d.path).name for d in items}
    for d in items:
        years = " ".join(f"{y}({ {'review': '回顾', 'plan': '计划'}.get(r, '?') })" for y, r in d.years)
        t.add_row(d.doc_id, Path(d.path).name, d.city or "?", years, d.title, d.issuer or "", d.date or "",
                  str(d.chunks), flags_text(d, names))
    console.print(t)


@app.command()
def sections(doc: Annotated[str, typer.Argument(help="doc id (or prefix), file name or stem")]) -> None:
    """Print a document's parsed outline as a tree."""
    from .ingest import parse_file
    from .outline import outline_lines

    try:
        a = _assistant()
        d = a.find_document(doc)
        if Path(d.path).exists():
            _doc, root, _chunks = parse_file(d.path, a.settings.chunk)
            lines = outline_lines(root)
        else:  # the file is gone (or on another machine): rebuild the outline from chunk paths
            seen: dict[tuple[str, ...], None] = {}
            for c in a.chunks_of(d.doc_id):
                for i in range(1, len(c.section_path) + 1):
                    seen.setdefault(c.section_path[:i], None)
            lines = ["  " * (len(p) - 1) + p[-1] for p in seen]
    except AssistantError as exc:
        _fail(exc)
        return
    console.print(f"[bold]{d.title}[/bold]  ({d.city or '?'}; {Path(d.path).name})", highlight=False)
    for line in lines:
        console.print(line, highlight=False, markup=False)


def _print_answer(ans: Answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer_to_dict(ans), ensure_ascii=False, indent=2))
        return
    badge = "离线抽取模式" if ans.mode == "extractive" else f"LLM: {ans.model}"
    console.print(f"[dim]{badge} · 筛选: {ans.filters.describe()}[/dim]")
    console.print(ans.text, style="yellow" if ans.refused else None, highlight=False, markup=False)
    for w in ans.warnings:
        bad = w.kind in (WarningKind.UNSUPPORTED, WarningKind.CONFLICT, WarningKind.SUSPECT_SOURCE,
                         WarningKind.TRUNCATED)
        console.print(f"[{'red' if bad else 'yellow'}]{'⚠' if bad else '注意:'}[/] ", end="")
        console.print(w.text, highlight=False, markup=False)
    if ans.citations:
        console.print("\n[bold]来源[/bold]")
    for c in ans.citations:
        console.print(f"[{c.marker}] {c.city or ''} {c.year or ''} 《{c.title}》 {' › '.join(c.section_path)}",
                      highlight=False, markup=False)
        console.print(f"    “{c.quote}” (字符 {c.start}–{c.end})", highlight=False, markup=False)


def answer_to_dict(ans: Answer) -> dict[str, Any]:
    d = asdict(ans)
    d["refused"] = ans.refused
    if ans.refusal is not None:
        d["refusal"] = {"reason": ans.refusal.reason, "missing": list(ans.refusal.missing),
                        "outside_filters": ans.refusal.outside_filters}
    d["warnings"] = [{"kind": w.kind.value, "text": w.text} for w in ans.warnings]
    d["contexts"] = [
        {"chunk_id": sc.chunk.chunk_id, "doc_id": sc.chunk.doc_id, "city": sc.chunk.city, "year": sc.chunk.year,
         "section_path": list(sc.chunk.section_path), "score": sc.score, "dense_rank": sc.dense_rank,
         "keyword_rank": sc.keyword_rank}
        for sc in ans.contexts
    ]
    return d


def _answer(a: Assistant, question: str, **kwargs: Any) -> Answer:
    """Ask through the stream: tell the user on stderr while the answer is slow to come
    (with the real time waited) and when a broken LLM stream was replaced."""
    from .streaming import watch
    from .types import Answer as AnswerType
    from .types import StreamReset, Waiting

    final: AnswerType | None = None
    with err.status("", spinner="dots") if err.is_terminal else _NoStatus() as status:
        for part in watch(a.stream(question, **kwargs)):
            if isinstance(part, Waiting):
                line = f"正在等待大模型回答…（已等待 {part.seconds:.0f} 秒）"
                if err.is_terminal:
                    status.update(line)
                elif int(part.seconds) % 5 == 3:  # a log gets a line now and then, not a flood
                    err.print(line, highlight=False)
            elif isinstance(part, StreamReset):
                err.print(f"[yellow]注意:[/yellow] 大模型的回答中途中断（{part.reason}），改用离线抽取模式。",
                          highlight=False)
            elif isinstance(part, AnswerType):
                final = part
    assert final is not None
    return final


class _NoStatus:
    def __enter__(self) -> _NoStatus:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, text: str) -> None:
        pass


@app.command()
def ask(
    question: str,
    city: Annotated[str | None, typer.Option(help="Only this city, e.g. 东莞市")] = None,
    year: Annotated[int | None, typer.Option(help="Only this year")] = None,
    doc: Annotated[str | None, typer.Option(help="Only this document (id or file name)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer object as JSON")] = False,
) -> None:
    """Answer one question with cited sources. Exit code 3: some sentence is unsupported."""
    try:
        a = _assistant()
        ans = _answer(a, question, city=city, year=year, doc=doc)
    except AssistantError as exc:
        _fail(exc)
        return
    _print_answer(ans, as_json)
    if ans.unsupported:
        raise typer.Exit(EXIT_UNSUPPORTED)


@app.command()
def indicators(
    metric: Annotated[str | None, typer.Option(help="Metric, matched fuzzily (签约率 finds 重点人群签约率)")] = None,
    city: Annotated[str | None, typer.Option(help="City, e.g. 东莞 or 东莞市")] = None,
    year: Annotated[int | None, typer.Option(help="Year the figure is about")] = None,
    kind: Annotated[str | None, typer.Option(help="achieved, target or change")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write the rows to this CSV file")] = None,
    xlsx_file: Annotated[Path | None, typer.Option("--xlsx", help="Write the rows to this Excel file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON")] = False,
    conflicts: Annotated[bool, typer.Option("--conflicts", help="List figures two reports state differently")] = False,
) -> None:
    """List the figures the reports state (indicator records), with their source sentences."""
    from .indicator_export import KIND_LABELS, to_json, write_export
    from .indicator_match import IndicatorMatch

    try:
        a = _assistant()
        if conflicts:
            groups = a.indicator_table.conflicts()
            rows = [IndicatorMatch(r) for g in groups for r in g]
        else:
            rows = a.indicators(metric=metric, city=city, year=year, kind=kind)
        for path, fmt in ((csv_file, "csv"), (xlsx_file, "xlsx")):
            if path is not None:
                err.print(f"wrote {len(rows)} rows to {write_export(rows, path, fmt)}", highlight=False)
    except AssistantError as exc:
        _fail(exc)
        return
    if as_json:
        print(to_json(rows))
        return
    if conflicts and not rows:
        console.print("No conflicts: no two reports state one measure differently.")
        return
    if not rows:
        hint = " (no records at all: run `assistant ingest` first)" if not metric and not city and not year else ""
        console.print(f"No indicator records match{hint}.", highlight=False)
        return
    t = Table(title="conflicts" if conflicts else None)
    for name in ("city", "year", "kind", "metric", "figure", "matched", "source"):
        t.add_column(name, overflow="fold")
    for m in rows:
        i = m.indicator
        t.add_row(i.city or "?", str(i.year or "?"), KIND_LABELS.get(i.kind, i.kind), i.metric, i.figure or
                  f"{i.value:g}{i.unit}", m.label, f"《{m.record.title}》“{i.sentence}”")
    console.print(t)
    if not conflicts and not (csv_file or xlsx_file):
        err.print(f"{len(rows)} records", highlight=False)


@app.command()
def chat() -> None:
    """A terminal conversation (follow-up questions use the history). Ctrl-D to quit."""
    try:
        a = _assistant()
        mode = a.mode
    except AssistantError as exc:
        _fail(exc)
        return
    history: list[tuple[str, str]] = []
    console.print(f"[dim]{'离线抽取模式' if mode == 'extractive' else 'LLM 模式'} — 输入问题，Ctrl-D 退出[/dim]")
    while True:
        try:
            q = console.input("[bold]问> [/bold]").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not q:
            continue
        try:
            ans = _answer(a, q, history=history)
        except AssistantError as exc:
            err.print(f"[red]error:[/red] {exc}")
            continue
        if ans.standalone_question:
            console.print(f"[dim]（理解为: {ans.standalone_question}）[/dim]", highlight=False)
        _print_answer(ans, False)
        history += [("user", q), ("assistant", ans.text)]


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port")] = 8501,
       host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1") -> None:
    """Launch the Streamlit chat UI."""
    import subprocess

    app_path = Path(__file__).parent / "ui" / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--browser.serverAddress", "localhost",
           "--client.toolbarMode", "minimal",
           "--server.address", host, "--server.port", str(port)]
    raise typer.Exit(subprocess.call(cmd))


def _register_eval() -> None:
    try:
        from .evals.cli import eval_command
    except ImportError:  # the eval harness is optional at import time
        return
    app.command(name="eval")(eval_command)


_register_eval()


if __name__ == "__main__":
    app()
