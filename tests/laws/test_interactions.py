"""The pairwise interaction term of the QQT mixture rule (QualityPredictor.fit(mixtures=...))."""

import numpy as np
import pandas as pd
import pytest
import torch

from datamix.laws import QualityQuantity
from datamix.laws.base import calibrated_interval
from datamix.predict.laws import QualityPredictor, pair_products

PARAMS = {"a": 1.0, "d": 0.0, "b[a]": -0.3, "b[b]": -0.2, "b[c]": -0.25, "tau[a]": 2.0, "tau[b]": 3.0,
          "tau[c]": 2.0}
POOLS = {"A": {"a": 1000.0}, "B": {"b": 1000.0}, "C": {"c": 1000.0}}
GAMMA = np.array([-0.4, 0.2, -0.1])  # A*B, A*C, B*C


def _truth(pred, p, n):
    """The planted model: the QQT rule times exp(sum gamma_ij p_i p_j)."""
    return pred.predict(p, n) * np.exp(pair_products(torch.tensor(np.asarray(p, dtype=float))).numpy() @ GAMMA)


def _mixtures(pred, ratios, n=2000.0, noise=0.0, rng=None):
    rows = []
    for p in ratios:
        e = _truth(pred, p, n) * (np.exp(noise * rng.standard_normal()) if noise else 1.0)
        rows.append({"p_A": p[0], "p_B": p[1], "p_C": p[2], "n": n, "metric": e})
    return pd.DataFrame(rows)


@pytest.fixture
def plain():
    return QualityPredictor(QualityQuantity.from_params(PARAMS), pools=POOLS).fit()


def test_pair_products_order():
    np.testing.assert_allclose(pair_products(torch.tensor([0.2, 0.3, 0.5])).numpy(), [0.06, 0.1, 0.15])


def test_planted_interactions_are_recovered(plain):
    """Runs from a known gamma: the pairs and the uniform mixture give gamma back; predictions of other
    mixtures and their gradient match the planted model; a source alone is unchanged."""
    design = [(0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5), (1 / 3, 1 / 3, 1 / 3)]
    fitted = QualityPredictor(QualityQuantity.from_params(PARAMS), pools=POOLS).fit(mixtures=_mixtures(plain, design))
    np.testing.assert_allclose(list(fitted.interactions_.values()), GAMMA, atol=2e-3)
    assert list(fitted.interactions_) == ["A*B", "A*C", "B*C"]
    p = [0.2, 0.5, 0.3]
    assert fitted.predict(p, 2000.0) == pytest.approx(_truth(plain, p, 2000.0), rel=1e-3)
    assert fitted.predict([1.0, 0.0, 0.0], 2000.0) == plain.predict([1.0, 0.0, 0.0], 2000.0)
    # d/dp_k of e exp(sum gamma_ij p_i p_j) = exp(.) (de/dp_k + e sum_j gamma_kj p_j)
    G = np.zeros((3, 3))
    G[np.triu_indices(3, k=1)] = GAMMA
    G = G + G.T
    e, de = plain.predict(p, 2000.0), plain.gradient(p, 2000.0)
    expected = np.exp(pair_products(torch.tensor(p)).numpy() @ GAMMA) * (de + e * G @ np.array(p))
    np.testing.assert_allclose(fitted.gradient(p, 2000.0), expected, rtol=5e-3)


def test_without_mixtures_nothing_changes(plain):
    assert plain.interactions_ == {} and plain.mixture_residuals_.size == 0
    ref = QualityPredictor(QualityQuantity.from_params(PARAMS), pools=POOLS).fit()
    assert plain.predict([0.3, 0.3, 0.4], 500.0) == ref.predict([0.3, 0.3, 0.4], 500.0)


def test_accuracy_output_corrects_the_error(plain):
    acc = QualityPredictor(QualityQuantity.from_params(PARAMS), pools=POOLS, output="accuracy")
    m = _mixtures(plain, [(0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5), (1 / 3, 1 / 3, 1 / 3)])
    acc.fit(mixtures=m.assign(metric=1.0 - m["metric"]))
    np.testing.assert_allclose(list(acc.interactions_.values()), GAMMA, atol=2e-3)
    assert acc.predict([0.2, 0.5, 0.3], 2000.0) == pytest.approx(1 - _truth(plain, [0.2, 0.5, 0.3], 2000.0), rel=1e-3)


def test_interval_of_a_mixture_covers_its_leave_one_out_error(rng):
    """With noisy mixture runs, a mixture's interval is spread by the leave-one-out errors; a source
    alone keeps the law's own interval."""
    from tests.laws.test_qqt import synthetic

    df = synthetic(rng, lo_frac=0.1)
    law = QualityQuantity(n_starts=4, n_bootstrap=10).fit(df, df.y)
    pools = {"hi": ["hi"], "mid": ["mid"], "lo": ["lo"]}
    base = QualityPredictor(law, pools=pools).fit()
    ratios = [(0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.6, 0.2, 0.2), (0.2, 0.2, 0.6)]
    rows = [{"p_hi": p[0], "p_mid": p[1], "p_lo": p[2], "n": 3e5,
             "metric": base.predict(p, 3e5) * np.exp(0.05 * rng.standard_normal())} for p in ratios]
    fitted = QualityPredictor(law, pools=pools).fit(mixtures=pd.DataFrame(rows))
    assert fitted.mixture_residuals_.shape == (6,) and (fitted.mixture_residuals_ > 0).all()
    lo, hi = fitted.predict_interval([0.4, 0.3, 0.3], 3e5, level=0.9)
    point = fitted.predict([0.4, 0.3, 0.3], 3e5)
    assert lo < point < hi
    assert np.log(hi / lo) >= 0.9 * 2 * np.quantile(fitted.mixture_residuals_, 0.5)
    assert fitted.predict_interval([1.0, 0.0, 0.0], 3e5) == base.predict_interval([1.0, 0.0, 0.0], 3e5)
    # at a size no mixture was run at, the law's own residuals on its pool runs add to the mixture's
    assert fitted.mixture_sizes_.tolist() == [3e5]
    p, n = np.array([0.4, 0.3, 0.3]), 1e5
    assert not fitted.extrapolation(p, n).any()  # inside the pool runs: no held-out-scale widening
    with torch.no_grad():
        boot = np.array([float(fitted.predict_torch(torch.tensor(p), n, params=t)) for t in law.bootstrap_params()])
    m = np.concatenate([fitted.mixture_residuals_, -fitted.mixture_residuals_])
    both = (m[:, None] + law._residuals()[0][None, :]).ravel()
    expected = calibrated_interval(boot[:, None], np.array([fitted.predict(p, n)]), both, 0.9)
    np.testing.assert_allclose(fitted.predict_interval(p, n, level=0.9), np.ravel(expected), rtol=1e-10)
    at_runs = calibrated_interval(boot[:, None], np.array([fitted.predict(p, n)]), m, 0.9)
    assert not np.allclose(expected, at_runs)


def test_bad_mixture_runs_are_named(plain):
    pred = QualityPredictor(QualityQuantity.from_params(PARAMS), pools=POOLS)
    good = _mixtures(plain, [(0.5, 0.5, 0), (0.5, 0, 0.5)])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['n'\]"):
        pred.fit(mixtures=good.drop(columns="n"))
    with pytest.raises(ValueError, match="p_D.*of no source"):
        pred.fit(mixtures=good.assign(p_D=0.0))
    with pytest.raises(ValueError, match="at least 2 distinct mixtures"):
        pred.fit(mixtures=pd.concat([good.iloc[:1]] * 3))
    with pytest.raises(ValueError, match="errors > 0"):
        pred.fit(mixtures=good.assign(metric=[0.1, 0.0]))
    with pytest.raises(ValueError, match="sum to 1"):
        pred.fit(mixtures=good.assign(p_A=0.9))
