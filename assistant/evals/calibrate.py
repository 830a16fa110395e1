"""Fit the sentence model and choose its refusal threshold on tuning data only.

The extractive answerer scores each candidate sentence with :class:`~assistant.evidence.SentenceModel`
(a linear ranker over meaning-carrying signals, :data:`~assistant.evidence.FEATURES`, and a
refusal gate of boosted trees over the best sentence's signals). This module fits both and
picks the threshold, with splits it never tunes on:

* **CMRC 2018** (out of genre): the questions *not* in the benchmark's fixed evaluation
  sample (:func:`assistant.evals.cmrc.sample_questions`) are the tuning set; the sample
  itself is only measured.
* **The in-genre gold sets, leave one report out**: the seed gold set, its paraphrases and
  the tuning split of our own reports (``evals/tuning``). For each report, the model is
  fitted on the gold items of the others (plus CMRC tuning questions), its threshold chosen
  there, and it is tested on the left-out report's items.
* **The held-out reports** (``evals/heldout``) are never used here at all.

A candidate is positive when it contains a gold answer span (CMRC) or overlaps an
evidence quote of the gold item (seed gold); a question whose passage or report is not
indexed (or an unanswerable gold item) must be refused. The report draws the trade-off
between false refusals and refusal accuracy as a curve and marks the operating point
(:func:`choose`). The curve is read off out-of-fold gate probabilities (:func:`cv_gate_probs`),
so the threshold is one that held on questions the gate was not fitted on.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.evidence import FEATURES, GATE_COLUMNS, GATE_FEATURES, Candidate, SentenceModel, Tree

if TYPE_CHECKING:
    from assistant.facade import Assistant

    from .gold import GoldItem
    from .metrics import ItemScore

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
    """The candidates the answerer weighs, less those that cannot answer whatever their score
    (:func:`assistant.extractive.eligible`). With inferred filters that is the evidence inside
    them and, as the answerer widens to it (:meth:`~assistant.answer.AnswerStage.widened`),
    the whole corpus's: records read off the filtered search alone showed the gate answerable
    questions with only unrelated evidence, or none. Both pools are kept whatever the current
    model's threshold, so a refit reproduces from the same records."""
    from assistant.extractive import eligible

    req = assistant.prepare(question)
    stage, corpus = assistant.answer_stage, assistant.retriever.corpus
    ev = list(stage.evidence(req, corpus)) if req.contexts else []
    if req.info.filters.inferred and not req.info.filters.empty:
        ev += stage.widened(req, corpus, assistant.widen(req))[1]
    return [c for c in ev if eligible(c, req.info)]


def for_collecting(assistant: Assistant) -> Assistant:
    """``assistant``, able to collect records whatever sentence model it was given. Records hold
    each candidate's features and labels, and both evidence pools whatever the threshold, so
    they do not depend on the model; one fitted on other features than this version computes
    (the model a refit is to replace, after a signal was added) gives way to a neutral one."""
    from assistant.errors import ConfigError

    try:
        _ = assistant.answer_stage
    except ConfigError:
        return assistant.with_answer_model(SentenceModel(tuple(0.0 for _ in FEATURES), 0.0, 0.5))
    return assistant


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
    rows, ys = [], []
    for r in records:
        if not len(r.labels):
            rows.append(np.zeros(len(GATE_FEATURES)))
        else:
            i, z, m = _best(r, w)
            rows.append(np.array([z, m, *r.features[i, list(GATE_COLUMNS)]]))
        ys.append(float(r.answerable))
    return np.array(rows), np.array(ys)


#: The boosted gate: shallow trees, slow learning; chosen by passage-grouped 5-fold
#: cross-validation on the CMRC tuning questions (at 5% false refusals it refused 0.90 of the
#: unanswerable ones, the linear gate 0.79); deeper or longer made no difference.
GATE_TREES = {"max_iter": 150, "max_depth": 3, "learning_rate": 0.05, "min_samples_leaf": 20}

#: Signals whose direction is part of their meaning, so the trees may not reverse it where
#: training questions are few: more of the question in the sentence (its words, its character
#: pairs, its figure next to the asked metric) never makes it less answerable, nor does the
#: sentence's document leading the other retrieved ones by more; a name or an identifier the
#: reports lack, or a sentence stating nothing of the asked type, never makes it more.
#: (Constraining every signal cost CMRC refusal accuracy 0.90 -> 0.83 at 5% false refusals:
#: chunk-level covers are high for a withheld passage's siblings.)
GATE_MONOTONE = {"term_cover_ctx": 1, "q_bigram": 1, "figure_key": 1,
                 "unknown_mass": -1, "names_missing": -1, "ids_missing": -1, "type_miss": -1, "doc_lead": 1}


def fit_gate(x: np.ndarray, y: np.ndarray, *, weights: np.ndarray | None = None,
             seed: int = 0) -> tuple[tuple[Tree, ...], float]:
    """Gradient-boosted trees (scikit-learn's histogram boosting, a dev dependency) on the
    gate's inputs, exported as plain node arrays (:class:`~assistant.evidence.Tree`):
    answering needs no scikit-learn. Returns the trees (leaf values already scaled by the
    learning rate) and the base log-odds."""
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:  # pragma: no cover - dev extra
        raise SystemExit("Fitting the gate needs scikit-learn: pip install -e '.[dev]'.") from None
    clf = HistGradientBoostingClassifier(**GATE_TREES, early_stopping=False, random_state=seed,
                                         monotonic_cst=[GATE_MONOTONE.get(g, 0) for g in GATE_FEATURES])
    clf.fit(x, y, sample_weight=weights)
    trees = []
    # The fitted trees' node table (``_predictors``) has kept this layout since scikit-learn
    # 0.21; tests/test_gate_trees.py checks that the export agrees with predict_proba.
    for (predictor,) in clf._predictors:
        n = predictor.nodes
        leaf = n["is_leaf"].astype(bool)
        trees.append(Tree(tuple(int(v) for v in n["feature_idx"]), tuple(float(v) for v in n["num_threshold"]),
                          tuple(-1 if f else int(v) for f, v in zip(leaf, n["left"], strict=True)),
                          tuple(-1 if f else int(v) for f, v in zip(leaf, n["right"], strict=True)),
                          tuple(float(v) for v in n["value"])))
    # The base log-odds, read off the fitted model rather than its private baseline.
    summed = SentenceModel((), 0.0, 0.5, trees=tuple(trees)).gate_logits(x[:50])
    base = float(np.median(clf.decision_function(x[:50]) - summed))
    return tuple(trees), base


THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.round(np.arange(0.02, 0.99, 0.02), 2))


def rows_at(p: np.ndarray, y: np.ndarray, right: np.ndarray,
            thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float]]:
    """False refusals, refusal accuracy and answered-correctly at each gate threshold, for gate
    probabilities ``p``, answerability ``y`` and whether the best candidate answers (``right``)."""
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


def _right(records: Sequence[QRecord], w: np.ndarray) -> np.ndarray:
    return np.array([bool(len(r.labels)) and bool(r.labels[_best(r, w)[0]]) for r in records])


def curve(records: Sequence[QRecord], model: SentenceModel,
          thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float]]:
    """:func:`rows_at` for ``model``'s own gate on ``records`` (records it was not fitted on)."""
    w = np.array(model.weights)
    x, y = gate_matrix(records, w)
    return rows_at(model.gate_probs(x), y, _right(records, w), thresholds)


def by_domain(records: Sequence[QRecord], p: np.ndarray, w: np.ndarray) -> dict[str, list[dict[str, float]]]:
    """Curves per domain (``cmrc``, ``seed``) and ``balanced``, their average: each domain counts
    the same whatever its number of questions, so the operating point serves both."""
    y = np.array([float(r.answerable) for r in records])
    right = _right(records, w)
    out = {}
    for name in ("cmrc", "seed"):
        m = np.array([(r.group == "cmrc") == (name == "cmrc") for r in records])
        if m.any():
            out[name] = rows_at(p[m], y[m], right[m])
    parts = list(out.values())
    out["balanced"] = [{k: float(np.mean([c[i][k] for c in parts])) for k in parts[0][i]}
                       for i in range(len(parts[0]))]
    return out


def _unit(r: QRecord) -> str:
    """What must not straddle cross-validation folds: a CMRC passage (its questions share
    wording), a seed report."""
    return r.qid.split("_QUERY")[0] if r.group == "cmrc" else r.group


def cv_gate_probs(records: Sequence[QRecord], x: np.ndarray, y: np.ndarray, sw: np.ndarray,
                  k: int = 5) -> np.ndarray:
    """Out-of-fold gate probabilities (folds by :func:`_unit`): what the gate says about
    questions it was not fitted on. Boosted trees fit their own training questions closely,
    so a threshold read off in-sample probabilities would refuse too little elsewhere."""
    units = sorted({_unit(r) for r in records})
    order = np.random.default_rng(0).permutation(len(units))
    fold_of = {units[i]: n % k for n, i in enumerate(order)}
    fold = np.array([fold_of[_unit(r)] for r in records])
    p = np.zeros(len(records))
    for f in range(k):
        test = fold == f
        if not test.any() or test.all():
            continue
        trees, base = fit_gate(x[~test], y[~test], weights=sw[~test])
        p[test] = SentenceModel((), 0.0, 0.5, gate_bias=base, trees=trees).gate_probs(x[test])
    return p


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


def fit_model(records: Sequence[QRecord], *, weights: dict[str, float],
              meta: dict[str, Any]) -> tuple[SentenceModel, dict[str, list[dict[str, float]]]]:
    """Ranker, gate, threshold and second-sentence ratio, all on ``records``; also the tuning
    curves the threshold was chosen on (:func:`by_domain` over out-of-fold gate probabilities)."""
    w = fit_ranker(records, weights=weights)
    x, y = gate_matrix(records, w)
    sw = np.array([weights.get(r.group, 1.0) for r in records])
    curves = by_domain(records, cv_gate_probs(records, x, y, sw), w)
    point = choose(curves["balanced"])
    trees, base = fit_gate(x, y, weights=sw)
    model = SentenceModel(tuple(float(a) for a in w), 0.0, point["threshold"], choose_second(records, w),
                          gate_bias=base, trees=trees,
                          meta=tuple(sorted({**meta, "tune_point": point, "top1_tune": top1(records, w)}.items())))
    return model, curves


# --- the whole procedure ----------------------------------------------------------------------


def calibrate(cmrc_tune: Sequence[QRecord], seed: Sequence[QRecord],
              meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Leave-one-report-out over ``seed`` (each fold tuned on the other reports plus CMRC),
    then the final model fitted on everything; returns the fold models, curves and the model.
    ``meta`` goes into every model (the embedder the features were computed with, its floor)."""
    meta = meta or {}
    groups = sorted({r.group for r in seed if r.group.endswith(".txt")})
    folds = []
    for g in groups:
        train = [r for r in seed if r.group != g]
        test = [r for r in seed if r.group == g]
        model, _ = fit_model([*cmrc_tune, *train], weights={r.group: SEED_WEIGHT for r in train},
                             meta={**meta, "held_out": g})
        row = curve(test, model, thresholds=(model.threshold,))[0]
        folds.append({"held_out": g, "model": model, "threshold": model.threshold,
                      "top1": top1(test, np.array(model.weights)), **row,
                      "n_items": len(test), "n_answerable": sum(r.answerable for r in test)})
    final, curves = fit_model([*cmrc_tune, *seed], weights={r.group: SEED_WEIGHT for r in seed},
                              meta={**meta, "cmrc_tune_questions": len(cmrc_tune), "seed_gold_items": len(seed)})
    return {"folds": folds, "model": final, "curve": curves["balanced"],
            "curves": {"cmrc": curves["cmrc"], "seed": curves["seed"]}}


def loro_eval(seeds: Assistant, items: Sequence[GoldItem], folds: Sequence[dict[str, Any]], out: Path,
              thresholds: Sequence[float] = THRESHOLDS) -> dict[str, Any]:
    """Answer each held-out report's gold items with the model fitted without it (the full
    pipeline: retrieval, answer, verification) and score them together; the same at every
    refusal threshold in ``thresholds`` (each fold's model moved to it) for the full pipeline's
    side of the trade-off, which the gate-level curve understates: comparisons, lists, tables
    and a figure next to its metric answer there by other routes. Each question is searched
    once and answered at every threshold (:meth:`Assistant.respond`)."""
    from dataclasses import replace

    from assistant.types import Answer

    from .harness import for_mode
    from .metrics import aggregate, score_item

    target = for_mode(seeds, "extractive")
    grid = sorted({*thresholds, *(f["threshold"] for f in folds)})
    at: dict[float, list[ItemScore]] = {t: [] for t in grid}
    own: list[ItemScore] = []
    per_fold: dict[str, list[ItemScore]] = {}
    for f in folds:
        path = out / "folds" / f"{Path(f['held_out']).stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(f["model"].to_json()), encoding="utf-8")
        fold_items = [it for it in items if (it.evidence[0].doc if it.evidence else it.closest) == f["held_out"]]
        if not fold_items:
            continue
        asked = [(it, target.prepare(it.question)) for it in fold_items]
        for t in grid:
            a = target.with_answer_model(replace(f["model"], threshold=t))
            scores = []
            for it, req in asked:
                *_, answer = a.respond(req)
                assert isinstance(answer, Answer)
                scores.append(score_item(it, answer, k=5))
            at[t] += scores
            if t == f["threshold"]:
                own += scores
                per_fold[f["held_out"]] = scores
    def figures(scores: Sequence[ItemScore]) -> dict[str, float | None]:
        m = aggregate(scores, k=5)
        return {k: m.get(k) for k in _LORO_KEYS}

    return {"overall": figures(own), "per_fold": {g: figures(v) for g, v in per_fold.items()}, "n_items": len(own),
            "pipeline_curve": [{"threshold": t, **figures(at[t])} for t in grid]}


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
                    help="gold sets over the --corpus reports to tune on (repeatable) [default: the bundled one, "
                         "evals/paraphrase_gold.jsonl and evals/tuning/gold.jsonl when present]")
    ap.add_argument("--corpus", type=Path, action="append", default=None,
                    help="folders of reports the gold sets ask about (repeatable) [default: the seeds and "
                         "evals/tuning/reports when present]")
    ap.add_argument("--records", type=Path, default=None,
                    help="cache of the CMRC candidate features (.npz): read if it exists, else written")
    args = ap.parse_args(argv)
    t0 = time.time()
    corpus = args.corpus or [seeds_dir(), *[p for p in [Path("evals/tuning/reports")] if p.is_dir()]]
    seeds = for_collecting(eval_assistant(Assistant(Settings()), corpus))
    gold_files = args.gold or [gold_path(), *[p for p in [Path("evals/paraphrase_gold.jsonl"),
                                                           Path("evals/tuning/gold.jsonl")] if p.is_file()]]
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
        cmrc_records = collect_cmrc(for_collecting(cmrc.cmrc_assistant(indexed)), tune_items)
        if args.records:
            save_records(args.records, cmrc_records)
    # The gate reads retrieval similarity above the embedder's floor: record both, so an
    # answerer with this embedder uses the same floor without measuring it.
    result = calibrate(cmrc_records, seed_records,
                       {"embedder": seeds.embedder.model_id, "floor": round(seeds.answer_stage.floor, 4)})
    model = result["model"]
    out = args.out / time.strftime("calibration-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    loro = loro_eval(seeds, gold, result["folds"], out)
    point = dict(model.meta)["tune_point"]
    doc = {"model": model.to_json(), "curve": result["curve"], "curves": result["curves"], "point": point,
           "loro": loro, "gold_files": [str(f) for f in gold_files], "corpus": [str(d) for d in corpus],
           "folds": [{k: v for k, v in f.items() if k != "model"} for f in result["folds"]],
           "seconds": round(time.time() - t0, 1)}
    (out / "calibration.json").write_text(dumps(doc), encoding="utf-8")
    _plot(result["curve"], point, out / "refusal_curve.png", loro["pipeline_curve"])
    if args.write_model:
        args.write_model.write_text(dumps(model.to_json()) + "\n", encoding="utf-8")
    for f in doc["folds"]:
        print(f"LORO {f['held_out']}: top1 {f['top1']:.3f} FR {f['false_refusal_rate']:.3f} "
              f"RA {f['refusal_accuracy']:.3f} (t={f['threshold']})")
    print("LORO full pipeline:", {k: None if v is None else round(v, 3) for k, v in loro["overall"].items()})
    for r in loro["pipeline_curve"]:
        print(f"  at t={r['threshold']:.2f}: FR {r['false_refusal_rate']:.3f} RA {r['refusal_accuracy']:.3f} "
              f"fact recall {r['fact_recall']:.3f}")
    print(f"tune point t={point['threshold']}: FR {point['false_refusal_rate']:.3f} "
          f"RA {point['refusal_accuracy']:.3f}; second {model.second}; report {out}")
    return 0


_NUMBERS = re.compile(r"\[\n[-+0-9.eE,\s]*\]")


def dumps(doc: Any) -> str:
    """Indented JSON with each list of numbers on one line (a gate tree's node arrays would
    otherwise take a line per number)."""
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    return _NUMBERS.sub(lambda m: "[" + ", ".join(v.rstrip(",") for v in m.group(0)[1:-1].split()) + "]", text)


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


def _plot(rows: Sequence[dict[str, float]], point: dict[str, float], path: Path,
          pipeline: Sequence[dict[str, Any]] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([r["false_refusal_rate"] for r in rows], [r["refusal_accuracy"] for r in rows], marker=".",
            label="gate, CMRC and in-genre balanced (out of fold)")
    if pipeline:
        ax.plot([r["false_refusal_rate"] for r in pipeline], [r["refusal_accuracy"] for r in pipeline], marker=".",
                label="in-genre, full pipeline (leave one report out)")
    ax.scatter([point["false_refusal_rate"]], [point["refusal_accuracy"]], color="red", zorder=3,
               label=f"chosen t={point['threshold']:.2f}")
    ax.set_xlabel("false refusals (answerable questions refused)")
    ax.set_ylabel("refusal accuracy (unanswerable refused)")
    ax.set_title("Refusal trade-off on the tuning splits")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
