"""Fit the sentence model and choose its refusal threshold on tuning data only.

The extractive answerer scores each candidate sentence with :class:`~assistant.evidence.SentenceModel`
(a logistic combination of meaning-carrying signals, :data:`~assistant.evidence.FEATURES`).
This module fits those weights and picks the threshold, with splits it never tunes on:

* **CMRC 2018** (out of genre): the questions *not* in the benchmark's fixed evaluation
  sample (:func:`assistant.evals.cmrc.sample_questions`) are the tuning set; the sample
  itself is only measured.
* **The seed gold set** (in genre), **leave one report out**: for each of the five
  reports, the model is fitted on the gold items of the other four (plus CMRC tuning
  questions), its threshold chosen there, and it is tested on the held-out report's items.
* **The held-out reports** (``evals/heldout``) are never used here at all.

A candidate is positive when it contains a gold answer span (CMRC) or overlaps an
evidence quote of the gold item (seed gold); a question whose passage or report is not
indexed (or an unanswerable gold item) must be refused. The report draws the trade-off
between false refusals and refusal accuracy as a curve and marks the operating point
(:func:`choose`).

    python -m assistant.evals.calibrate --cmrc /path/cmrc2018_dev.json --out evals/reports
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.evidence import FEATURES, GATE_FEATURES, Candidate, SentenceModel

if TYPE_CHECKING:
    from assistant.facade import Assistant

    from .gold import GoldItem

SEED_WEIGHT = 4.0  # a seed gold question counts this many times a CMRC one (our genre, fewer items)


@dataclass(frozen=True)
class QRecord:
    """One question: its candidates' features, which of them answer, and whether it should
    be answered at all. ``group`` is ``cmrc`` or the seed report an item's evidence is in."""

    qid: str
    group: str
    answerable: bool
    features: np.ndarray  # (n_candidates, n_features)
    labels: np.ndarray  # (n_candidates,) bool

    @property
    def has_positive(self) -> bool:
        return bool(self.labels.any())


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def _record(qid: str, group: str, answerable: bool, cands: Sequence[Candidate],
            positive: Callable[[Candidate], bool]) -> QRecord:
    feats = np.array([c.features for c in cands], dtype=np.float64).reshape(len(cands), len(FEATURES))
    labels = np.array([answerable and positive(c) for c in cands], dtype=bool)
    return QRecord(qid, group, answerable, feats, labels)


def _evidence(assistant: Assistant, question: str) -> list[Candidate]:
    """The candidates the answerer would weigh: evidence that cannot answer whatever its score
    (:func:`assistant.extractive.eligible`) is ruled out before any model sees it."""
    from assistant.extractive import eligible

    req = assistant.prepare(question)
    stage, corpus = assistant.answer_stage, assistant.retriever.corpus
    if not req.contexts:
        return []
    return [c for c in stage.evidence(req, corpus) if eligible(c, req.info)]


def collect_cmrc(assistant: Assistant, items: Sequence[Any],
                 progress: Callable[[int, int], None] | None = None) -> list[QRecord]:
    """Records for CMRC items (:class:`assistant.evals.cmrc.Item`)."""
    out = []
    for i, it in enumerate(items, start=1):
        golds = [_norm(a) for a in it.question.answers if a.strip()]

        def positive(c: Candidate, golds: list[str] = golds) -> bool:
            return any(x in _norm(c.text) for x in golds)

        out.append(_record(it.question.id, "cmrc", it.answerable, _evidence(assistant, it.question.question),
                           positive))
        if progress:
            progress(i, len(items))
    return out


def _overlaps(sentence: str, quote: str) -> bool:
    s, q = _norm(sentence), _norm(quote)
    if not s or not q:
        return False
    if q in s or s in q:
        return True
    probe = q[: min(len(q), 12)]
    return len(probe) >= 8 and (probe in s or q[-12:] in s)


def collect_gold(assistant: Assistant, items: Sequence[GoldItem],
                 progress: Callable[[int, int], None] | None = None) -> list[QRecord]:
    """Records for gold items; the group is the document of the item's first evidence quote
    (unanswerable items: the ``closest`` document they are about)."""
    out = []
    for i, item in enumerate(items, start=1):
        docs = {e.doc for e in item.evidence}
        group = item.evidence[0].doc if item.evidence else (item.closest or "none")

        def positive(c: Candidate, item: GoldItem = item, docs: set[str] = docs) -> bool:
            if Path(c.sc.chunk.source_path).name not in docs:
                return False
            return any(_overlaps(c.text, e.quote) for e in item.evidence)

        out.append(_record(item.id, group, item.answerable, _evidence(assistant, item.question), positive))
        if progress:
            progress(i, len(items))
    return out


# --- fitting ---------------------------------------------------------------------------------


def fit_ranker(records: Sequence[QRecord], *, weights: dict[str, float] | None = None, l2: float = 1e-3,
               steps: int = 1500, lr: float = 0.5) -> np.ndarray:
    """Listwise ranker: softmax over each answerable question's candidates, maximising the
    probability mass on the candidates that answer; a question weighs ``weights[group]``."""
    rs = [r for r in records if r.answerable and r.has_positive]
    x = np.vstack([r.features for r in rs])
    y = np.concatenate([r.labels for r in rs]).astype(np.float64)
    sizes = [len(r.labels) for r in rs]
    seg = np.cumsum([0, *sizes])[:-1]
    qid = np.repeat(np.arange(len(rs)), sizes)
    qw = np.array([(weights or {}).get(r.group, 1.0) for r in rs])
    qw = qw / qw.sum()
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        z = x @ w
        e = np.exp(z - np.maximum.reduceat(z, seg)[qid])
        p = e / np.add.reduceat(e, seg)[qid]
        pos = np.add.reduceat(p * y, seg)[qid]
        g = (p - y * p / np.maximum(pos, 1e-12)) * qw[qid]
        w -= lr * (x.T @ g + l2 * w)
    return w


def _best(r: QRecord, w: np.ndarray) -> tuple[int, float, float]:
    """(index, rank score, margin over the runner-up) of a question's best candidate."""
    z = r.features @ w
    order = np.argsort(-z)
    i = int(order[0])
    margin = float(z[i] - z[order[1]]) if len(order) > 1 else 5.0
    return i, float(z[i]), margin


def gate_matrix(records: Sequence[QRecord], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gate's inputs for each question's best candidate, and whether it should be answered."""
    idx = {f: k for k, f in enumerate(FEATURES)}
    rows, ys = [], []
    for r in records:
        if not len(r.labels):
            rows.append(np.zeros(len(GATE_FEATURES)))
        else:
            i, z, m = _best(r, w)
            rows.append(np.array([z, m, *(r.features[i, idx[g]] for g in GATE_FEATURES[2:])]))
        ys.append(float(r.answerable))
    return np.array(rows), np.array(ys)


def fit_gate(x: np.ndarray, y: np.ndarray, *, weights: np.ndarray | None = None, l2: float = 1e-3,
             steps: int = 4000) -> tuple[np.ndarray, float]:
    """Logistic gate on standardised inputs, returned in raw units (no scaler to ship)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xn = (x - mu) / sd
    sw = np.ones(len(y)) if weights is None else weights
    sw = sw / sw.sum()
    v, c = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xn @ v + c)))
        g = (p - y) * sw
        v -= 0.5 * (xn.T @ g + l2 * v)
        c -= 0.5 * float(g.sum())
    return v / sd, float(c - np.sum(v * mu / sd))


def balanced_curve(records: Sequence[QRecord], model: SentenceModel) -> list[dict[str, float]]:
    """:func:`curve` per domain (CMRC, the seed reports), averaged: each domain counts the
    same whatever its number of questions, so the operating point serves both."""
    parts = [[r for r in records if r.group == "cmrc"], [r for r in records if r.group != "cmrc"]]
    curves = [curve(p, model) for p in parts if p]
    return [{k: float(np.mean([c[i][k] for c in curves])) for k in curves[0][i]} for i in range(len(curves[0]))]


def curve(records: Sequence[QRecord], model: SentenceModel,
          thresholds: Sequence[float] = tuple(np.round(np.arange(0.02, 0.99, 0.02), 2))) -> list[dict[str, float]]:
    """False refusals, refusal accuracy and answered-correctly at each gate threshold."""
    w = np.array(model.weights)
    x, y = gate_matrix(records, w)
    p = 1.0 / (1.0 + np.exp(-(x @ np.array(model.gate) + model.gate_bias)))
    right = np.array([bool(len(r.labels)) and bool(r.labels[_best(r, w)[0]]) for r in records])
    rows = []
    for t in thresholds:
        answered = p >= t
        rows.append({
            "threshold": float(t),
            "false_refusal_rate": float(((~answered) & (y == 1)).sum() / max((y == 1).sum(), 1)),
            "refusal_accuracy": float(((~answered) & (y == 0)).sum() / max((y == 0).sum(), 1)),
            "answered_correct": float((answered & right & (y == 1)).sum() / max((y == 1).sum(), 1)),
        })
    return rows


#: The false-refusal rate the operating point may not exceed on the tuning curve: a refusal
#: hides what the reports say, an answer quotes its source and can be checked.
MAX_FALSE_REFUSALS = 0.08


def choose(rows: Sequence[dict[str, float]], max_fr: float = MAX_FALSE_REFUSALS) -> dict[str, float]:
    """The operating point: the threshold that refuses the most unanswerable questions while
    false refusals stay within ``max_fr`` (ties go to the lower threshold). When no threshold
    keeps them there, the one where refusing right most exceeds refusing wrong (refusal
    accuracy − false refusals, Youden's J)."""
    within = [r for r in rows if r["false_refusal_rate"] <= max_fr]
    if within:
        return max(within, key=lambda r: (r["refusal_accuracy"], -r["threshold"]))
    return max(rows, key=lambda r: (r["refusal_accuracy"] - r["false_refusal_rate"], -r["threshold"]))


def top1(records: Sequence[QRecord], w: np.ndarray) -> float:
    """Share of answerable questions (with an answering candidate) whose best candidate answers."""
    hits = [bool(r.labels[_best(r, w)[0]]) for r in records if r.answerable and r.has_positive]
    return sum(hits) / max(len(hits), 1)


def choose_second(records: Sequence[QRecord], w: np.ndarray, max_share: float = 0.5) -> float:
    """The softmax ratio above which a runner-up is quoted too: as low as it can be while at
    most ``max_share`` of answers carry a second sentence (answers stay short)."""
    margins = sorted(_best(r, w)[2] for r in records if r.answerable and len(r.labels) > 1)
    if not margins:
        return 0.85
    cut = margins[min(len(margins) - 1, int(len(margins) * max_share))]
    return float(round(np.exp(-cut), 3))


def fit_model(records: Sequence[QRecord], *, weights: dict[str, float], meta: dict[str, Any]) -> SentenceModel:
    """Ranker, gate, threshold (tuning curve) and second-sentence ratio, all on ``records``."""
    w = fit_ranker(records, weights=weights)
    x, y = gate_matrix(records, w)
    v, c = fit_gate(x, y, weights=np.array([weights.get(r.group, 1.0) for r in records]))
    draft = SentenceModel(tuple(float(a) for a in w), 0.0, 0.5, 0.85, tuple(float(a) for a in v), c)
    point = choose(balanced_curve(records, draft))
    return replace(draft, threshold=point["threshold"], second=choose_second(records, w),
                   meta=tuple(sorted({**meta, "tune_point": point, "top1_tune": top1(records, w)}.items())))


# --- the whole procedure ----------------------------------------------------------------------


def calibrate(cmrc_tune: Sequence[QRecord], seed: Sequence[QRecord]) -> dict[str, Any]:
    """Leave-one-report-out over ``seed`` (each fold tuned on the other reports plus CMRC),
    then the final model fitted on everything; returns the fold models, curves and the model."""
    groups = sorted({r.group for r in seed if r.group.endswith(".txt")})
    folds = []
    for g in groups:
        train = [r for r in seed if r.group != g]
        test = [r for r in seed if r.group == g]
        model = fit_model([*cmrc_tune, *train], weights={r.group: SEED_WEIGHT for r in train},
                          meta={"held_out": g})
        row = curve(test, model, thresholds=(model.threshold,))[0]
        folds.append({"held_out": g, "model": model, "threshold": model.threshold,
                      "top1": top1(test, np.array(model.weights)), **row,
                      "n_items": len(test), "n_answerable": sum(r.answerable for r in test)})
    final = fit_model([*cmrc_tune, *seed], weights={r.group: SEED_WEIGHT for r in seed},
                      meta={"cmrc_tune_questions": len(cmrc_tune), "seed_gold_items": len(seed)})
    return {"folds": folds, "model": final, "curve": balanced_curve([*cmrc_tune, *seed], final),
            "curves": {"cmrc": curve(cmrc_tune, final), "seed": curve(seed, final)}}


def loro_eval(seeds: Assistant, items: Sequence[GoldItem], folds: Sequence[dict[str, Any]],
              out: Path) -> dict[str, Any]:
    """Answer each held-out report's gold items with the model fitted without it (the full
    pipeline: retrieval, answer, verification) and score them together."""
    from assistant.facade import Assistant

    from .harness import run_eval
    from .metrics import aggregate

    scores, per_fold = [], {}
    for f in folds:
        path = out / "folds" / f"{Path(f['held_out']).stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(f["model"].to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        fold_items = [it for it in items if (it.evidence[0].doc if it.evidence else it.closest) == f["held_out"]]
        if not fold_items:
            continue
        a = Assistant(seeds.settings.with_overrides(answer={"model_path": path}), embedder=seeds.embedder,
                      store=seeds.store)
        run = run_eval(a, fold_items, mode="extractive", baselines=False)
        per_fold[f["held_out"]] = {k: run.metrics.get(k) for k in _LORO_KEYS}
        scores += [r.score for r in run.items]
    overall = aggregate(scores, k=5)
    return {"overall": {k: overall.get(k) for k in _LORO_KEYS}, "per_fold": per_fold, "n_items": len(scores)}


_LORO_KEYS = ("fact_recall", "fact_exact", "false_refusal_rate", "refusal_accuracy", "hit@1", "answer_chars_p50")


def main(argv: Sequence[str] | None = None) -> int:
    from assistant.config import Settings
    from assistant.facade import Assistant
    from assistant.resources import gold_path, seeds_dir

    from . import cmrc
    from .gold import load_gold
    from .harness import eval_assistant

    ap = argparse.ArgumentParser(prog="python -m assistant.evals.calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("--cmrc", type=Path, required=True, help="cmrc2018_dev.json")
    ap.add_argument("--n-tune", type=int, default=1500, help="CMRC tuning questions (outside the eval sample)")
    ap.add_argument("--out", type=Path, default=Path("evals/reports"))
    ap.add_argument("--write-model", type=Path, default=None,
                    help="write the fitted model here (the packaged one: assistant/data/sentence_model.json)")
    ap.add_argument("--gold", type=Path, action="append", default=None,
                    help="gold sets over the seed reports to tune on (repeatable) [default: the bundled one and "
                         "evals/paraphrase_gold.jsonl when present]")
    ap.add_argument("--records", type=Path, default=None,
                    help="cache of the CMRC candidate features (.npz): read if it exists, else written")
    args = ap.parse_args(argv)
    t0 = time.time()
    seeds = eval_assistant(Assistant(Settings()), seeds_dir())
    gold_files = args.gold or [gold_path(), *[p for p in [Path("evals/paraphrase_gold.jsonl")] if p.is_file()]]
    gold = [item for f in gold_files for item in load_gold(f)]
    seed_records = collect_gold(seeds, gold)
    if args.records and args.records.is_file():
        cmrc_records = [r for r in load_records(args.records) if r.group == "cmrc"]
    else:
        passages = cmrc.load_cmrc(args.cmrc)
        indexed, held = cmrc.split(passages)
        held_ids = {p.id for p in held}
        eval_ids = {it.question.id for it in cmrc.sample_questions(passages, held_ids)}
        pool = [cmrc.Item(q, p.id, p.id not in held_ids) for p in passages for q in p.questions
                if q.id not in eval_ids]
        import random

        tune_items = random.Random(7).sample(pool, min(args.n_tune, len(pool)))
        print(f"cmrc tuning questions: {len(tune_items)} (eval sample of {len(eval_ids)} excluded)",
              file=sys.stderr)
        cmrc_records = collect_cmrc(cmrc.cmrc_assistant(indexed), tune_items)
        if args.records:
            save_records(args.records, cmrc_records)
    result = calibrate(cmrc_records, seed_records)
    model = result["model"]
    out = args.out / time.strftime("calibration-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    loro = loro_eval(seeds, gold, result["folds"], out)
    point = dict(model.meta)["tune_point"]
    doc = {"model": model.to_json(), "curve": result["curve"], "curves": result["curves"], "point": point,
           "loro": loro, "gold_files": [str(f) for f in gold_files],
           "folds": [{k: v for k, v in f.items() if k != "model"} for f in result["folds"]],
           "seconds": round(time.time() - t0, 1)}
    (out / "calibration.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    _plot(result["curve"], point, out / "refusal_curve.png")
    if args.write_model:
        args.write_model.write_text(json.dumps(model.to_json(), ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")
    for f in doc["folds"]:
        print(f"LORO {f['held_out']}: top1 {f['top1']:.3f} FR {f['false_refusal_rate']:.3f} "
              f"RA {f['refusal_accuracy']:.3f} (t={f['threshold']})")
    print("LORO full pipeline:", {k: None if v is None else round(v, 3) for k, v in loro["overall"].items()})
    print(f"tune point t={point['threshold']}: FR {point['false_refusal_rate']:.3f} "
          f"RA {point['refusal_accuracy']:.3f}; second {model.second}; report {out}")
    return 0


def save_records(path: Path, records: Sequence[QRecord]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for r in records:
        key = f"{r.group}|{r.qid}|{int(r.answerable)}"
        arrays[key + "|f"] = r.features
        arrays[key + "|l"] = r.labels
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def load_records(path: Path) -> list[QRecord]:
    data = np.load(path)
    parts: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}
    for k in data.files:
        group, qid, ans, kind = k.split("|")
        parts.setdefault((group, qid, ans), {})[kind] = data[k]
    return [QRecord(q, g, a == "1", v["f"], v["l"]) for (g, q, a), v in parts.items()]


def _plot(rows: Sequence[dict[str, float]], point: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([r["false_refusal_rate"] for r in rows], [r["refusal_accuracy"] for r in rows], marker=".")
    ax.scatter([point["false_refusal_rate"]], [point["refusal_accuracy"]], color="red", zorder=3,
               label=f"chosen t={point['threshold']:.2f}")
    ax.set_xlabel("false refusals (answerable questions refused)")
    ax.set_ylabel("refusal accuracy (unanswerable refused)")
    ax.set_title("Refusal trade-off on the tuning split")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
