"""Predictors of a mixtures runs table: held-out choice, the ensemble, the capped simplex, the top pick."""

import numpy as np
import pytest

from datamix.laws import MixingLaw
from datamix.optimize._projection import project_capped_simplex
from datamix.predict.runs import (
    RankEnsemble,
    capped_simplex_rows,
    make_candidate,
    min_runs,
    pick_mixture,
    select_mixture_predictor,
)

T = np.array([-1.0, 0.5, 0.0])  # planted mixing-law exponents: source 0 helps, source 1 hurts


def law_runs(rng, n=60, noise=0.002):
    P = rng.dirichlet(np.ones(3), n)
    y = 1.0 + 2.0 * np.exp(P @ T)
    return P, y * (1 + noise * rng.standard_normal(n))


def test_capped_simplex_rows_match_the_exact_projection(rng):
    X = rng.normal(size=(50, 4))
    lo, hi = np.array([0.0, 0.1, 0.0, 0.05]), np.array([0.6, 0.5, 1.0, 0.3])
    got = capped_simplex_rows(X, lo, hi)
    want = np.array([project_capped_simplex(x, lo, hi) for x in X])
    np.testing.assert_allclose(got, want, atol=1e-9)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)


def test_pick_mixture_finds_the_known_optimum_at_the_bounds():
    law = MixingLaw.from_params({"c": 1.0, "k": 2.0, "t_1": -1.0, "t_2": 0.5, "t_3": 0.0})
    # the loss falls with t . r: as much of source 0 as max_ratio allows, the rest on source 2 (t = 0)
    p, value = pick_mixture(law, np.zeros(3), np.full(3, 0.7), n_samples=2000)
    np.testing.assert_allclose(p, [0.7, 0.0, 0.3], atol=1e-6)
    np.testing.assert_allclose(value, 1.0 + 2.0 * np.exp(-0.7), rtol=1e-9)
    # maximising instead: all the allowed weight on the harmful source
    p, _ = pick_mixture(law, np.zeros(3), np.full(3, 0.7), greater_is_better=True, n_samples=2000)
    np.testing.assert_allclose(p, [0.0, 0.7, 0.3], atol=1e-6)


def test_average_top_is_the_mean_of_the_best_sampled_mixtures():
    law = MixingLaw.from_params({"c": 1.0, "k": 2.0, "t_1": -1.0, "t_2": 0.5, "t_3": 0.0})
    lo, hi = np.zeros(3), np.full(3, 0.7)
    p, value = pick_mixture(law, lo, hi, n_samples=2000, average_top=50, seed=3)
    # brute force: the same draws, ranked by the law, the 50 best averaged
    rng = np.random.default_rng(3)
    P = capped_simplex_rows(np.vstack([rng.dirichlet(np.ones(3), 1000), rng.dirichlet(np.full(3, 0.2), 1000),
                                       np.eye(3)]), lo, hi)
    np.testing.assert_allclose(p, P[np.argsort(law.predict(P), kind="stable")[:50]].mean(axis=0), atol=1e-12)
    assert value == pytest.approx(law.predict(p[None, :])[0])
    assert np.all(p >= lo - 1e-12) and np.all(p <= hi + 1e-12) and p.sum() == pytest.approx(1.0)
    assert p[1] < 0.1 < p[2] < 0.3 < p[0] < 0.7  # near the corner optimum (0.7, 0, 0.3), not on it
    assert value > 1.0 + 2.0 * np.exp(-0.7)  # and a little worse than it, as the law says


def test_rank_ensemble_is_in_the_first_members_units():
    class Affine:
        """A fitted stand-in whose predictions are a * x_0 + b."""

        def __init__(self, a, b):
            self.a, self.b = a, b

        def predict(self, X):
            return self.a * np.asarray(X)[:, 0] + self.b

    X = np.linspace(0, 1, 11)[:, None]
    ens = RankEnsemble()._set_members([("first", Affine(2.0, 1.0)), ("second", Affine(-30.0, 7.0))], X)
    # the second member ranks the opposite way: standardised, the two cancel to the first's mean
    np.testing.assert_allclose(ens.predict(X), np.full(11, 2.0 * 0.5 + 1.0), atol=1e-12)
    ens = RankEnsemble()._set_members([("first", Affine(2.0, 1.0)), ("second", Affine(30.0, 7.0))], X)
    np.testing.assert_allclose(ens.predict(X), 2.0 * X[:, 0] + 1.0, atol=1e-12)


def test_rank_ensemble_fits_clones_of_its_members(rng):
    P, y = law_runs(rng)
    ens = RankEnsemble(estimators=[("mixing1", make_candidate("mixing1")), ("linear", make_candidate("linear"))])
    ens.fit(P, y)
    assert [n for n, _ in ens.estimators_] == ["mixing1", "linear"]
    assert not hasattr(ens.estimators[0][1], "params_")  # the template is untouched
    assert np.corrcoef(ens.predict(P), y)[0, 1] > 0.99


def test_auto_chooses_the_law_on_law_shaped_runs(rng):
    P, y = law_runs(rng, n=80)
    sel = select_mixture_predictor(P, y, folds=4)
    assert set(sel.scores.index) == {"mixing1", "mixing2", "linear", "boosting", "ensemble"}
    assert sel.picker in ("mixing1", "mixing2")
    assert sel.scores.loc["mixing1", "spearman"] > 0.99  # observed 0.997 at 0.2% noise
    assert sel.scores.loc["mixing1", "spearman"] > sel.scores.loc["boosting", "spearman"]
    assert sel.scores.loc["mixing1", "mae"] < sel.scores.loc["linear", "mae"]
    assert (sel.scores["regret"] >= 0).all()
    assert sel.held_out.shape == (80, 6) and sorted(set(sel.held_out["fold"])) == [0, 1, 2, 3]


def test_auto_leaves_out_candidates_the_runs_cannot_support(rng):
    P, y = law_runs(rng, n=30)  # 24 per training fold: the laws and linear, not boosting (>= 40) nor the ensemble
    sel = select_mixture_predictor(P, y, folds=5)
    assert list(sel.scores.index) == ["mixing1", "mixing2", "linear"]


def test_a_named_law_needs_more_runs_than_its_parameters(rng):
    P, y = law_runs(rng, n=10)
    with pytest.raises(ValueError, match=r"law=mixing2: 10 runs \(8 per training fold of 5\) are fewer than the 10"):
        select_mixture_predictor(P, y, law="mixing2")
    assert min_runs("mixing2", 3) == 10
    with pytest.raises(ValueError, match="unknown predictor 'lgbm'"):
        make_candidate("lgbm")
