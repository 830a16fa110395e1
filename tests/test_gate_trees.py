"""The refusal gate as boosted trees: fitted with scikit-learn, shipped as plain node arrays,
evaluated without it; and the operating point read off out-of-fold probabilities, because
trees fit their own training questions too closely for an in-sample threshold to hold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.errors import ConfigError
from assistant.evals.calibrate import QRecord, cv_gate_probs, dumps, fit_gate
from assistant.evidence import FEATURES, GATE_FEATURES, SentenceModel, Tree


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    return float(np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg]))


def _interaction(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Answerable when exactly one of two signals is high: no linear gate separates that.
    The cut points differ (0.5, 0.4): with a perfectly even XOR neither signal alone tells
    anything, so which column a greedy first split takes is down to noise, and whether the
    trees found the pattern depended on how many other columns there were (4 seeds: 0.53 to
    0.995 right); with uneven cuts they find it every time (0.97 to 0.998)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, len(GATE_FEATURES)))
    a, b = GATE_FEATURES.index("chunk_cover"), GATE_FEATURES.index("dense")  # no direction imposed on these
    y = ((x[:, a] > 0.5) ^ (x[:, b] > 0.4)).astype(float)
    return x, y


def _model(trees: tuple[Tree, ...], base: float) -> SentenceModel:
    return SentenceModel(tuple([0.0] * len(FEATURES)), 0.0, 0.5, gate_bias=base, trees=trees)


def test_exported_trees_separate_what_a_linear_gate_cannot_on_new_questions() -> None:
    x, y = _interaction(600, 0)
    trees, base = fit_gate(x, y)
    xt, yt = _interaction(400, 1)
    p = _model(trees, base).gate_probs(xt)
    assert ((p >= 0.5) == (yt == 1)).mean() > 0.9
    # The best linear boundary is no better than chance on this pattern.
    lin = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    assert ((np.c_[xt, np.ones(len(xt))] @ lin >= 0.5) == (yt == 1)).mean() < 0.7


def test_all_trees_at_once_agree_with_walking_each_tree() -> None:
    x, y = _interaction(200, 6)
    trees, base = fit_gate(x, y)
    walked = np.array([base + sum(t.value_at(row) for t in trees) for row in x])
    assert np.allclose(_model(trees, base).gate_logits(x), walked)


def test_exported_trees_agree_with_scikit_learn() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from assistant.evals.calibrate import GATE_MONOTONE, GATE_TREES

    x, y = _interaction(300, 2)
    trees, base = fit_gate(x, y, seed=0)
    clf = HistGradientBoostingClassifier(**GATE_TREES, early_stopping=False, random_state=0,
                                         monotonic_cst=[GATE_MONOTONE.get(g, 0) for g in GATE_FEATURES]).fit(x, y)
    ours = _model(trees, base).gate_probs(x)
    assert np.allclose(ours, clf.predict_proba(x)[:, 1], atol=1e-6)


@pytest.mark.parametrize(("signal", "direction"), [("q_bigram", 1), ("unknown_mass", -1)])
def test_the_gate_never_reverses_the_direction_a_signal_means(signal: str, direction: int) -> None:
    """Trained on questions where more of the question in the sentence went with *less*
    answerable (and a missing name with more), the gate still does not learn that."""
    from assistant.evals.calibrate import GATE_MONOTONE

    assert GATE_MONOTONE[signal] == direction
    rng = np.random.default_rng(5)
    x = rng.random((400, len(GATE_FEATURES)))
    k = GATE_FEATURES.index(signal)
    y = ((x[:, k] < 0.5) if direction > 0 else (x[:, k] > 0.5)).astype(float)
    model = _model(*fit_gate(x, y))
    for row in x[:20]:
        sweep = np.repeat(row[None, :], 11, axis=0)
        sweep[:, k] = np.linspace(0, 1, 11)
        p = model.gate_probs(sweep)
        assert np.all(direction * np.diff(p) >= -1e-12)


def test_a_tree_gate_survives_its_json_and_the_answerer_reads_it() -> None:
    x, y = _interaction(300, 3)
    trees, base = fit_gate(x, y)
    model = _model(trees, base)
    again = SentenceModel.from_json(json.loads(dumps(model.to_json())))
    assert again.trees == model.trees and again.gate_bias == model.gate_bias
    feats = [0.0] * len(FEATURES)
    for name, value in zip(GATE_FEATURES[2:], x[0, 2:], strict=True):
        feats[FEATURES.index(name)] = float(value)
    # answers() builds the gate's inputs from the rank score, the margin and the features.
    assert again.answers(float(x[0, 0]), float(x[0, 1]), feats) == pytest.approx(model.gate_probs(x[:1])[0])


@pytest.mark.parametrize("node", [
    {"feature": [0, 0, 0], "threshold": [0.5, 0, 0], "left": [1, -1, -1], "right": [0, -1, -1],
     "value": [0, 1, -1]},  # a child pointing back at its parent: walking it would never end
    {"feature": [99, 0, 0], "threshold": [0.5, 0, 0], "left": [1, -1, -1], "right": [2, -1, -1],
     "value": [0, 1, -1]},  # splits on an input the gate does not have
    {"feature": [0], "threshold": [0.5, 0], "left": [-1], "right": [-1], "value": [0]},  # ragged arrays
])
def test_a_malformed_tree_is_refused_with_the_file_named(node: dict[str, list[float]]) -> None:
    data = _model((), 0.0).to_json() | {"gate_trees": [node]}
    with pytest.raises(ConfigError, match=r"my_model\.json"):
        SentenceModel.from_json(data, "my_model.json")


def test_out_of_fold_probabilities_do_not_see_the_noise_the_trees_fit() -> None:
    """Labels unrelated to the signals: the trees fit them on their own questions, and only
    the out-of-fold probabilities say so (a threshold read in-sample would trust them)."""
    rng = np.random.default_rng(4)
    n = 400
    x = rng.random((n, len(GATE_FEATURES)))
    y = (rng.random(n) < 0.5).astype(float)
    records = [QRecord(f"P{i // 4}_QUERY_{i % 4}", "cmrc", bool(y[i]), np.zeros((0, len(FEATURES))),
                       np.zeros(0, dtype=bool)) for i in range(n)]
    trees, base = fit_gate(x, y)
    assert _auc(_model(trees, base).gate_probs(x), y) > 0.8
    assert _auc(cv_gate_probs(records, x, y, np.ones(n)), y) < 0.65
