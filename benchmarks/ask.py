"""Offline answer latency: p50/p95 per stage over the gold questions, warm, against the
time of one bare query embedding; and the cold start of ``Assistant``.

    python benchmarks/ask.py [--data-dir DIR] [--rounds 3]

Targets: p50 ≤ 3 × one query embedding (issues 9 and 12; 8 × in issue 3);
cold start (construct + warm up on a
persisted index) < 5 s. The index is built once (incremental ingest) before timing.
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
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def _cold_start(data_dir: str) -> float:
    """Construct + warm up in a fresh process (imports included), on the persisted index."""
    code = (
        "import time; t=time.perf_counter()\n"
        "from assistant import Settings\n"
        "from assistant.facade import Assistant\n"
        f"a=Assistant.from_settings(Settings.load(env_file=None), index={{'data_dir': {data_dir!r}}}, "
        "llm={'provider': 'extractive'})\n"
        "a.warm_up(); a.ask('丽水2019年全市组建了几个县域医共体?')\n"
        "print(time.perf_counter()-t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench-ask-")

    from assistant import Settings
    from assistant.facade import Assistant

    a = Assistant.from_settings(Settings.load(env_file=None), index={"data_dir": data_dir},
                                llm={"provider": "extractive"})
    a.ingest([ROOT / "seeds"])
    a.warm_up()
    questions = [json.loads(line)["question"] for line in
                 (ROOT / "evals" / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]

    # One bare query embedding (the unit of the target), warm, median of many.
    emb = []
    for q in questions:
        t = time.perf_counter()
        a.embedder.embed_query(q)
        emb.append(time.perf_counter() - t)
    bare = statistics.median(emb)

    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for q in questions:
            t = time.perf_counter()
            ans = a.ask(q)
            totals.append(time.perf_counter() - t)
            for stage, secs in ans.timings:
                stages.setdefault(stage, []).append(secs)

    cold = _cold_start(data_dir)
    ms = 1000
    print(f"questions: {len(questions)} x {args.rounds} rounds, offline extractive mode, warm")
    print(f"bare query embedding (median): {bare * ms:.1f} ms")
    print(f"ask total: p50 {statistics.median(totals) * ms:.1f} ms   p95 {_pct(totals, 95) * ms:.1f} ms")
    for stage, xs in stages.items():
        print(f"  {stage:10} p50 {statistics.median(xs) * ms:6.1f} ms   p95 {_pct(xs, 95) * ms:6.1f} ms")
    ratio = statistics.median(totals) / bare
    print(f"p50 / bare embedding = {ratio:.1f}x  (target <= 3x)  {'OK' if ratio <= 3 else 'MISSED'}")
    print(f"cold start (new process: import + construct + warm up + first answer): {cold:.2f} s  "
          f"(target < 5 s)  {'OK' if cold < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
