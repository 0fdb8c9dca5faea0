"""Sorscher et al. (2022)'s perceptron theory, reproduced small and fast."""

import numpy as np

from datamix.prune.theory import (
    best_fraction_frontier,
    frontier_exponents,
    perceptron_error,
    teacher_student_pruning,
)


def test_perceptron_error_known_answers():
    t = np.array([1.0, 0.0])
    np.testing.assert_allclose(perceptron_error(np.array([2.0, 0.0]), t), 0.0)
    np.testing.assert_allclose(perceptron_error(np.array([0.0, 1.0]), t), 0.5)
    np.testing.assert_allclose(perceptron_error(np.array([-1.0, 0.0]), t), 1.0)


def test_keep_easy_wins_small_keep_hard_wins_large():
    table = teacher_student_pruning([1.0, 16.0], [0.3], n_features=40, n_seeds=6, seed=0)
    err = table.groupby(["alpha_tot", "keep"])["error"].mean()
    # Observed (d=100, f=0.2): alpha 1: easy 0.28, hard 0.48; alpha 16: easy 0.054, hard 0.030.
    assert err[(1.0, "easy")] < err[(1.0, "hard")]
    assert err[(16.0, "hard")] < err[(16.0, "easy")]


def test_best_fraction_beats_random_scaling():
    frontier = best_fraction_frontier([0.5, 1, 2, 4, 8], [0.1, 0.3], n_features=30, n_seeds=4,
                                      seed=0)
    table = frontier_exponents(frontier)
    exps = table.attrs["exponents"]
    # Observed: random b ~ 0.65, best b ~ 1.3.
    assert exps["best"] > exps["random"] + 0.3, exps
    assert (table["best_error"] < table["random_error"]).all()
    assert table["best_keep"].iloc[0] == "easy" and table["best_keep"].iloc[-1] == "hard"
