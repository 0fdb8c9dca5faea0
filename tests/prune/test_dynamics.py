"""EL2N, GraNd, forgetting and margin (AUM) on hand-made training records with known answers."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from datamix.prune import dynamics_scores, el2n, forgetting, grand, margin, record_dynamics
from datamix.proxy import TrainingDynamics, train_proxy


def hand_record():
    """3 samples, 2 classes, snapshots at init + 4 epochs; logits chosen so answers are known."""
    right, wrong = [2.0, 0.0], [0.0, 2.0]
    logits = np.array([
        [[0, 0], right, right, right, right],  # learned at once, never forgotten
        [[0, 0], right, wrong, right, wrong],  # forgotten twice
        [[0, 0], wrong, wrong, wrong, wrong],  # never learned
    ], dtype=np.float32)
    grad_norms = np.arange(15, dtype=np.float32).reshape(3, 5)
    return TrainingDynamics(logits=logits, grad_norms=grad_norms, labels=np.zeros(3, dtype=np.int64))


def test_forgetting_known_answer():
    np.testing.assert_allclose(forgetting(hand_record()), [0, 2, 4])


def test_margin_is_minus_aum():
    # AUM over epochs 1..4: sample 0: +2 each; sample 1: (2 - 2 + 2 - 2) / 4 = 0; sample 2: -2.
    np.testing.assert_allclose(margin(hand_record()), [-2.0, 0.0, 2.0])


def test_el2n_known_answer():
    p = 1 / (1 + np.exp(-2.0))  # softmax of (2, 0)
    good, bad = np.sqrt(2) * (1 - p), np.sqrt(2) * p
    np.testing.assert_allclose(el2n(hand_record(), epoch=2), [good, bad, bad], rtol=1e-6)
    np.testing.assert_allclose(el2n(hand_record(), epoch=0), np.full(3, np.sqrt(2) * 0.5), rtol=1e-6)


def test_grand_reads_the_epoch_and_averages_runs():
    rec = hand_record()
    np.testing.assert_allclose(grand(rec, epoch=3), [3, 8, 13])
    doubled = TrainingDynamics(rec.logits, rec.grad_norms * 3, rec.labels)
    np.testing.assert_allclose(grand([rec, doubled], epoch=3), [6, 16, 26])
    # Default epoch: 10% of training, at least 1.
    np.testing.assert_allclose(grand(rec), [1, 6, 11])


def test_runs_must_agree_and_epoch_in_range():
    rec = hand_record()
    other = TrainingDynamics(rec.logits[:2], rec.grad_norms[:2], rec.labels[:2])
    with pytest.raises(ValueError, match="same training samples"):
        el2n([rec, other])
    with pytest.raises(ValueError, match=r"epoch \(0 = initialisation\) must be an int >= 0, <= 4"):
        el2n(rec, epoch=5)
    with pytest.raises(ValueError, match="TrainingDynamics or a non-empty sequence"):
        margin([])


def test_scores_flag_mislabelled_digits():
    X, y = load_digits(return_X_y=True)
    X, y = X[:800], y[:800].copy()
    rng = np.random.default_rng(0)
    flipped = rng.choice(800, size=40, replace=False)
    y[flipped] = (y[flipped] + 1) % 10
    runs = record_dynamics(X, y, seeds=(0, 1), epochs=15)
    one = train_proxy(X, y, epochs=15, seed=0, dynamics=True)
    np.testing.assert_allclose(margin(one), margin(runs[0]))  # a ProxyResult works as well
    truth = np.isin(np.arange(800), flipped)
    for name, scores in dynamics_scores(runs).items():
        # Observed AUCs 0.98-1.00; every metric ranks flipped labels as hard.
        assert roc_auc_score(truth, scores) > 0.9, name
