"""MixingLaw (Ye et al. 2024) and its weighted sum over target domains."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression

from datamix.laws import MixingLaw, MultiDomainMixingLaw, extrapolation_split, mixing_law

T = np.array([-1.0, 0.5, -2.0, 1.0])


def test_mixing_law_known_values():
    R = np.array([[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0]])
    np.testing.assert_allclose(mixing_law(R, 2.0, 1.5, T), [3.5, 2.0 + 1.5 * np.exp(-1.5)])


def test_planted_recovery_and_extrapolation_in_a_proportion(rng):
    R = rng.uniform(0, 1, (200, 4))
    truth = mixing_law(R, 2.0, 1.5, T)
    y = truth * (1 + 0.01 * rng.standard_normal(200))
    law = MixingLaw().fit(R, y)
    np.testing.assert_allclose([law.params_[k] for k in ("c", "k", "t_1", "t_2", "t_3", "t_4")],
                               [2.0, 1.5, *T], rtol=0.05)
    train = extrapolation_split(R[:, 2])
    law = MixingLaw().fit(R[train], y[train])
    assert -law.score(R[~train], truth[~train]) < 0.02  # observed 0.3%


def test_simplex_mixtures_identify_differences_of_t(rng):
    R = rng.dirichlet(np.ones(4), 120)
    y = mixing_law(R, 2.0, 1.5, T) * (1 + 0.01 * rng.standard_normal(120))
    law = MixingLaw().fit(pd.DataFrame(R, columns=list("abcd")), y)
    t = np.array([law.params_[f"t_{j}"] for j in range(1, 5)])
    np.testing.assert_allclose(t - t[0], T - T[0], atol=0.15 * np.ptp(T))
    np.testing.assert_allclose(law.params_["c"], 2.0, rtol=0.05)
    R_new = rng.dirichlet(np.ones(4), 20)
    np.testing.assert_allclose(law.predict(pd.DataFrame(R_new, columns=list("abcd"))),
                               mixing_law(R_new, 2.0, 1.5, T), rtol=0.01)
    with pytest.raises(ValueError, match="missing column"):
        law.predict(pd.DataFrame(R_new[:, :3], columns=list("abc")))


def test_implicit_domains_fit_a_sum_of_exponentials(rng):
    R = rng.dirichlet(np.ones(3), 150)
    truth = 1.0 + 0.8 * np.exp(R @ [2.0, -3.0, 0.0]) + 0.5 * np.exp(R @ [-4.0, 1.0, 1.5])
    y = truth * (1 + 0.005 * rng.standard_normal(150))
    single = MixingLaw().fit(R, y)
    double = MixingLaw(n_components=2).fit(R, y)
    assert set(double.params_) == {"c", "k[1]", "k[2]"} | {f"t_{j}[{i}]" for j in (1, 2, 3) for i in (1, 2)}
    assert -double.score(R, truth) < 0.5 * -single.score(R, truth)
    assert -double.score(R, truth) < 0.005
    again = MixingLaw.from_params(double.params_, n_components=2)
    np.testing.assert_allclose(again.predict(R), double.predict(R))


def test_regmix_pile_cc_ranking(regmix):
    """512 train mixtures of 1M-parameter runs -> rank the held-out mixtures' Pile-CC loss."""
    X_train, y_train, X_test, y_test = regmix
    linear = spearmanr(LinearRegression().fit(X_train, y_train).predict(X_test), y_test)[0]
    single = spearmanr(MixingLaw(n_starts=2).fit(X_train, y_train).predict(X_test), y_test)[0]
    with warnings.catch_warnings():
        # 36 parameters under a Huber loss converge slowly; the best state after max_iter is used.
        warnings.simplefilter("ignore", ConvergenceWarning)
        double = MixingLaw(n_components=2, n_starts=2).fit(X_train, y_train)
    double = spearmanr(double.predict(X_test), y_test)[0]
    # Published: LightGBM 0.989, linear 0.90. One exponential ranks like any monotone function of
    # one linear index t.r; a pairwise-ranking-trained index reaches 0.964 here (observed 0.962).
    # Two implicit domains (Ye et al.'s sum of exponentials): observed 0.977.
    np.testing.assert_allclose(linear, 0.90, atol=0.01)
    assert single >= 0.95
    assert double >= 0.97 and double > single


def test_multi_domain_weighted_sum(rng):
    R = rng.dirichlet(np.ones(3), 60)
    Y = pd.DataFrame({
        "web": mixing_law(R, 2.0, 1.0, [-1.0, 0.5, 0.2]),
        "code": mixing_law(R, 1.0, 2.0, [0.3, -2.0, 0.1]),
    })
    law = MultiDomainMixingLaw(weights={"web": 0.75, "code": 0.25}).fit(R, Y)
    assert law.domains_ == ["web", "code"]
    np.testing.assert_allclose(law.laws_["code"].params_["c"], 1.0, rtol=1e-3)
    assert law.params_["web:c"] == law.laws_["web"].params_["c"]
    R_new = rng.dirichlet(np.ones(3), 5)
    per_domain = law.predict_domains(R_new)
    assert per_domain.shape == (5, 2)
    np.testing.assert_allclose(law.predict(R_new), per_domain @ [0.75, 0.25])
    np.testing.assert_allclose(law.predict(R_new), 0.75 * mixing_law(R_new, 2.0, 1.0, [-1.0, 0.5, 0.2])
                               + 0.25 * mixing_law(R_new, 1.0, 2.0, [0.3, -2.0, 0.1]), rtol=1e-4)
    np.testing.assert_allclose(law.score(R, Y), 0.0, atol=1e-4)
    small = MultiDomainMixingLaw(law=MixingLaw(n_bootstrap=20)).fit(R, Y)
    np.testing.assert_allclose(small.weights_, [0.5, 0.5])
    lo, hi = small.predict_interval(R_new, level=0.8)
    pred = small.predict(R_new)
    assert np.all(lo <= pred + 1e-9) and np.all(pred <= hi + 1e-9)
    with pytest.raises(ValueError, match="missing domains"):
        MultiDomainMixingLaw(weights={"web": 1.0}).fit(R, Y)
    with pytest.raises(ValueError, match="must be a MixingLaw"):
        MultiDomainMixingLaw(law=object()).fit(R, Y)
