"""optimize_mixture: brute-force oracles, exact constraints, determinism, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from datamix.apply import select_rows
from datamix.optimize import MixtureOptimizer, Plan, check_constraints, optimize_mixture
from datamix.optimize._projection import project_capped_simplex, project_mixture

SOURCES2 = {"web": 6000, "books": 500}


# ------------------------------------------------------------------------------------------------ oracles
@pytest.mark.parametrize("tokens", [2_000, 8_000, 40_000, 150_000])
def test_two_sources_with_thresholds_match_brute_force(two_sources, oracle, tokens):
    value, p, q = oracle(two_sources, tokens, [6000, 500], free=np.array([True, True]))
    plan = optimize_mixture(two_sources, tokens=tokens, sources=SOURCES2)
    assert abs(plan.predicted - value) <= 1e-3 * abs(value)
    # observed: the optimizer matched the refined grid to 2e-8 relative at every budget
    assert plan.predicted <= value * (1 + 1e-6)


def test_small_books_source_is_not_repeated_past_its_usefulness(two_sources):
    small = optimize_mixture(two_sources, tokens=2_000, sources=SOURCES2)
    large = optimize_mixture(two_sources, tokens=150_000, sources=SOURCES2)
    # with little compute the excellent small source is used alone; with much more it would be
    # repeated hundreds of times, so the big source takes a growing share
    assert small.ratios["books"] == pytest.approx(1.0)
    assert large.ratios["web"] > 0.2
    assert large.epochs["books"] < 150_000 / (0.5 * 500)


def test_three_sources_with_epoch_limit_and_minimum_ratio_match_brute_force(make_qqt, oracle):
    pred = make_qqt({"a": [(400, -0.30, 2.0), (400, -0.20, 2.0), (400, -0.10, 2.0)],
                          "b": [(900, -0.25, 3.0)], "c": [(3000, -0.12, 6.0)]}, nested=False)
    U = [1200, 900, 3000]
    lo = [0.0, 0.1, 0.0]
    value, p, q = oracle(pred, 6_000, U, free=np.array([True, False, False]), lo=lo, max_epochs=3)
    plan = optimize_mixture(pred, tokens=6_000, sources=dict(zip("abc", U)), thresholds=["a"],
                            min_ratio={"b": 0.1}, max_epochs=3)
    assert abs(plan.predicted - value) <= 1e-3 * abs(value)
    assert plan.ratios["b"] >= 0.1 and max(plan.epochs.values()) <= 3


def test_nested_pools_match_brute_force(make_qqt, oracle):
    pred = make_qqt({"x": [(300, -0.35, 1.0), (600, -0.28, 2.0), (1200, -0.20, 4.0)],
                          "y": [(800, -0.22, 2.0), (1600, -0.15, 3.0)]}, nested=True, output="accuracy")
    value, p, q = oracle(pred, 5_000, [1200, 1600], free=np.array([True, True]))
    plan = optimize_mixture(pred, tokens=5_000, sources={"x": 1200, "y": 1600})
    assert pred.greater_is_better
    assert abs(plan.predicted - value) <= 1e-3 * abs(value)


class _Toy:
    """A NumPy predictor of the protocol (no torch): accuracy from quality minus repetition."""

    sources_ = ["s1", "s2"]
    greater_is_better = True
    quality = np.array([0.9, 0.7])
    sizes = np.array([500.0, 4000.0])

    def predict(self, p, N, q=None):
        p = np.asarray(p, float)
        q = np.ones_like(p) if q is None else np.asarray(q, float)
        epochs = p * N / (q * self.sizes)
        util = self.quality * (1.0 - 0.3 * q)  # filtering keeps better samples
        return float(p @ util - 0.01 * np.sum(p * epochs ** 2) + 0.2 * np.sqrt(p[0] * p[1] + 1e-12))

    def gradient(self, p, N):
        h = 1e-7
        return np.array([(self.predict(p + h * e, N) - self.predict(p - h * e, N)) / (2 * h) for e in np.eye(2)])


def test_numpy_predictor_runs_through_the_autograd_function():
    pred = _Toy()
    opt = MixtureOptimizer(seed=0).fit(pred, tokens=3_000, sources={"s1": 500, "s2": 4000})
    assert opt.gradient_methods_["q"] == "finite differences"
    assert "finite differences" in opt.gradient_methods_["p"]
    grid_p = np.linspace(0, 1, 201)
    grid_q = np.linspace(0.005, 1, 200)
    best = max(pred.predict([a, 1 - a], 3_000, [b, c]) for a in grid_p[::2] for b in grid_q[::4] for c in grid_q[::4])
    assert opt.plan_.predicted >= best - 1e-3 * abs(best)


def test_mixing_law_predictor_without_q_matches_a_grid():
    from datamix.laws.mixing import MixingLaw
    from datamix.predict.laws import MixingLawPredictor

    pred = MixingLawPredictor(metric="loss")
    params = {"c": 1.5, "k": 2.0, "t_1": -1.2, "t_2": 0.3, "t_3": -0.6}
    pred.laws_ = {1000: MixingLaw.from_params(params)}
    pred.sources_, pred.sizes_, pred.params_ = ["a", "b", "c"], np.array([1000]), params
    plan = optimize_mixture(pred, tokens=1000, sources={"a": 100, "b": 100, "c": 100}, max_ratio=0.6)
    g = np.linspace(0, 1, 401)
    P = np.array([(x, y, 1 - x - y) for x in g for y in g if x + y <= 1 + 1e-12 and max(x, y, 1 - x - y) <= 0.6])
    best = pred.predict(np.clip(P, 0, 1), 1000).min()
    assert plan.predicted == pytest.approx(best, rel=1e-3)
    assert plan.keep_fractions == {"a": 1.0, "b": 1.0, "c": 1.0}  # a predictor without q keeps everything
    assert plan.provenance["gradients"] == {"p": "autograd", "q": "none (predictor ignores q)"}


def test_money_budget_matches_brute_force(two_sources, oracle):
    prices = {"web": 0.01, "books": 1.0}
    value, p, q = oracle(two_sources, 20_000, [6000, 500], free=np.array([True, True]),
                         prices=[0.01, 1.0], budget=150.0 - 1.01, step=0.02, keep=10)
    plan = optimize_mixture(two_sources, tokens=20_000, sources=SOURCES2, budget=150.0, prices=prices)
    cost = sum(prices[n] * plan.buy[n] for n in plan.buy)
    assert cost <= 150.0
    # the oracle searches the same continuous problem (budget less one sample per priced source)
    assert abs(plan.predicted - value) <= 1e-3 * abs(value)
    unconstrained = optimize_mixture(two_sources, tokens=20_000, sources=SOURCES2)
    assert plan.predicted >= unconstrained.predicted  # error: the budget binds


# ------------------------------------------------------------------------------------------------ constraints
@pytest.mark.parametrize("seed", range(6))
def test_constraints_hold_exactly_in_every_plan(make_qqt, seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    spec = {f"s{i}": [(int(rng.integers(200, 3000)), -rng.uniform(0.1, 0.4), rng.uniform(0.5, 6))
                      for _ in range(int(rng.integers(1, 4)))] for i in range(k)}
    pred = make_qqt(spec)
    U = {s: int(v) for s, v in pred.sizes_.items()}
    lo = {s: 0.02 for s in U}
    while True:  # draw feasible limits
        E = float(rng.uniform(1.5, 6))
        T = float(rng.uniform(0.2, 0.8) * E * sum(U.values()))
        hi = {s: float(rng.uniform(0.5, 1)) for s in U}
        if sum(min(hi[s], E * U[s] / T) for s in U) >= 1 and all(lo[s] <= E * U[s] / T for s in U):
            break
    prices = {s: float(rng.uniform(0.1, 2)) for s in list(U)[:2]}
    least = check_constraints(names=list(U), tokens=T, available=U, prices=prices, max_epochs=E, min_ratio=lo,
                              max_ratio=hi)
    budget = float(sum(prices.values()) + sum(prices[s] * U[s] * rng.uniform(0.2, 0.8) for s in prices))
    try:
        plan = optimize_mixture(pred, tokens=T, sources=U, prices=prices, budget=budget, max_epochs=E,
                                min_ratio=lo, max_ratio=hi, n_starts=2, seed=seed)
    except ValueError as exc:  # a random budget may be infeasible; then it must say so
        assert "budget" in str(exc)
        return
    assert least.k == k
    assert sum(plan.ratios.values()) == pytest.approx(1.0, abs=1e-12)
    for s in U:
        r, qf, e = plan.ratios[s], plan.keep_fractions[s], plan.epochs[s]
        assert lo[s] - 1e-15 <= r <= hi[s] + 1e-15
        assert 0 < qf <= 1
        kept = round(qf * U[s])
        assert kept == pytest.approx(qf * U[s], abs=1e-6)  # whole samples
        assert e <= E
        assert r * T <= E * kept * (1 + 1e-12)
    assert sum(prices[s] * plan.buy[s] for s in prices) <= budget
    assert all(plan.buy[s] <= U[s] for s in prices)


def test_projection_is_the_euclidean_projection():
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(150):
        k = int(rng.integers(2, 6))
        x, z = rng.normal(0.3, 0.5, k), rng.normal(0.6, 0.5, k)
        lo = rng.uniform(0, 0.1, k) * (rng.random(k) < 0.5)
        hi = np.maximum(lo, rng.uniform(0.2, 1, k))
        qlo, qhi = rng.uniform(0.001, 0.2, k), np.ones(k)
        a = np.where(rng.random(k) < 0.7, rng.uniform(0.3, 3, k), np.inf)
        if lo.sum() > 1 or np.minimum(hi, a).sum() < 1:
            continue
        p, q = project_mixture(x, z, lo, hi, qlo, qhi, a)
        assert p.sum() == pytest.approx(1, abs=1e-12)
        assert np.all(p <= a * q * (1 + 1e-12)) and np.all((lo <= p) & (p <= hi)) and np.all((qlo <= q) & (q <= qhi))
        fa = np.isfinite(a)
        res = minimize(lambda v: ((v[:k] - x) ** 2).sum() + ((v[k:] - z) ** 2).sum(), np.r_[p, q],
                       bounds=list(zip(lo, hi)) + list(zip(qlo, qhi)), method="SLSQP",
                       constraints=[{"type": "eq", "fun": lambda v: v[:k].sum() - 1},
                                    {"type": "ineq", "fun": lambda v: np.where(fa, np.where(fa, a, 0) * v[k:] - v[:k], 1)}],
                       options={"ftol": 1e-15, "maxiter": 1000})
        if res.success:
            assert ((p - x) ** 2).sum() + ((q - z) ** 2).sum() <= res.fun + 1e-9
            checked += 1
    assert checked > 50
    np.testing.assert_allclose(project_capped_simplex([2.0, 0.0], [0, 0], [0.7, 1.0]), [0.7, 0.3])


# ------------------------------------------------------------------------------------------------ plan
def test_rerun_gives_a_byte_identical_plan(two_sources):
    a = optimize_mixture(two_sources, tokens=9_000, sources=SOURCES2, seed=3, max_epochs=40)
    b = optimize_mixture(two_sources, tokens=9_000, sources=SOURCES2, seed=3, max_epochs=40)
    assert a.to_yaml() == b.to_yaml()
    assert Plan.from_yaml(a.to_yaml()).to_yaml() == a.to_yaml()


def test_thresholds_are_score_cutoffs_that_apply_plan_reproduces(two_sources):
    rng = np.random.default_rng(0)
    scores = {"web": rng.normal(size=6000), "books": rng.normal(size=500)}
    plan = optimize_mixture(two_sources, tokens=40_000, sources=SOURCES2, scores=scores)
    assert all(r > 0 for r in plan.ratios.values())
    for name, sc in scores.items():
        sel = select_rows(sc, plan.keep_fractions[name], plan.epochs[name], name=name)
        assert sel.threshold == plan.thresholds[name]
        assert len(sel.rows) == round(plan.keep_fractions[name] * len(sc))
        assert np.all(sc[sel.rows] >= plan.thresholds[name])


def test_thresholds_false_and_fixed_values(two_sources):
    plan = optimize_mixture(two_sources, tokens=40_000, sources=SOURCES2, thresholds=False)
    assert plan.keep_fractions == {"web": 1.0, "books": 1.0}
    plan = optimize_mixture(two_sources, tokens=40_000, sources=SOURCES2, thresholds={"books": 0.25, "web": None})
    assert plan.keep_fractions["books"] == 0.25
    assert plan.provenance["optimised_keep_fractions"] == ["web"]


def test_plan_records_provenance(two_sources):
    plan = optimize_mixture(two_sources, tokens=5_000, sources=SOURCES2, seed=7)
    prov = plan.provenance
    assert prov["seed"] == 7 and prov["predictor"] == "QualityPredictor"
    assert prov["gradients"] == {"p": "autograd", "q": "autograd"}
    assert prov["law_params"]["b[books.0]"] == -0.45
    assert len(prov["inputs"]) == 64 and prov["datamix_version"]


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,match", [
    (dict(min_ratio=0.6), "min_ratio sums to 1.2 > 1"),
    (dict(max_ratio=0.4), "max_ratio sums to 0.8 < 1"),
    (dict(min_ratio={"books": 0.5}, max_ratio={"books": 0.4}), "exceeds max_ratio"),
    (dict(max_epochs=1.0, tokens=10_000), "max_epochs=1 lets the sources supply at most 6500"),
    (dict(min_ratio={"books": 0.5}, max_epochs=2.0, tokens=10_000), r"min_ratio\['books'\]=0.5 needs 5000"),
    (dict(tokens=0.5), "below one sample"),
    (dict(budget=0.5, prices={"books": 1.0}), "below the price of one sample"),
    (dict(budget=20.0, prices={"books": 1.0}, min_ratio={"books": 0.1}, max_epochs=2.0),
     r"budget=20 is below the least the constraints need \(201"),
    (dict(budget=10.0), "no source has a price"),
    (dict(prices={"magazines": 1.0}), r"prices names unknown source\(s\) \['magazines'\]"),
    (dict(sources={"web": 6000, "books": 500, "news": 10}), r"unknown source\(s\) \['news'\]"),
    (dict(sources={"web": 6000}), r"sources lack \['books'\]"),
    (dict(scores={"web": np.zeros(6000)}), r"scores missing for source\(s\) \['books'\]"),
    (dict(thresholds=["magazines"]), "thresholds names unknown"),
])
def test_bad_input_raises_clear_errors(two_sources, kwargs, match):
    args = dict(tokens=4_000, sources=SOURCES2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        optimize_mixture(two_sources, **args)


def test_a_predictor_must_follow_the_protocol():
    with pytest.raises(TypeError, match="sources_"):
        optimize_mixture(object(), tokens=10, sources={"a": 1})


def test_q_gradients_by_autograd_match_finite_differences(two_sources):
    p, q = np.array([0.4, 0.6]), np.array([0.7, 0.3])
    g = two_sources.gradient_q(p, 20_000, q=q)
    h = 1e-6
    fd = [(two_sources.predict(p, 20_000, q=q + h * e) - two_sources.predict(p, 20_000, q=q - h * e)) / (2 * h)
          for e in np.eye(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-5)
    assert math.isfinite(float(two_sources.predict_torch(torch.tensor(p), 20_000, torch.tensor(q))))


def test_mixing_law_predictor_fits_runs_and_interpolates_in_log_size():
    import pandas as pd

    from datamix.predict.laws import MixingLawPredictor

    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(3), 40)
    truth = {100: (1.0, 1.5, np.array([-1.0, 0.2, -0.5])), 1000: (0.8, 1.2, np.array([-1.4, 0.1, -0.3]))}
    rows = []
    for N, (c, k, t) in truth.items():
        loss = c + k * np.exp(P @ t)
        rows += [{"p_a": a, "p_b": b, "p_c": cc, "size": N, "loss": v} for (a, b, cc), v in zip(P, loss)]
    pred = MixingLawPredictor(metric="loss").fit(["a", "b", "c"], pd.DataFrame(rows))
    assert not pred.greater_is_better and pred.sources_ == ["a", "b", "c"]
    p = np.array([0.5, 0.2, 0.3])
    for N, (c, k, t) in truth.items():
        assert pred.predict(p, N) == pytest.approx(c + k * np.exp(p @ t), rel=1e-4)
    mid = pred.predict(p, np.sqrt(100 * 1000))  # halfway in log N
    assert mid == pytest.approx(0.5 * (pred.predict(p, 100) + pred.predict(p, 1000)), rel=1e-9)
    h, g = 1e-6, pred.gradient(p, 300)
    for i, j in [(0, 1), (1, 2), (0, 2)]:  # directional derivatives along the simplex
        d = np.eye(3)[i] - np.eye(3)[j]
        fd = (pred.predict(p + h * d, 300) - pred.predict(p - h * d, 300)) / (2 * h)
        assert g @ d == pytest.approx(fd, rel=1e-5)
    lo, hi = pred.predict_interval(p, 300)
    assert lo <= pred.predict(p, 300) + 1e-6 and hi >= pred.predict(p, 300) - 1e-6
    plan = optimize_mixture(pred, tokens=1000, sources={"a": 50, "b": 50, "c": 50})
    assert plan.ratios["a"] == pytest.approx(1.0, abs=1e-6)  # t_1 most negative: all of a


def test_works_with_a_two_stage_predictor_of_the_predict_package():
    import pandas as pd

    from datamix.predict import RatioPolynomial

    rng = np.random.default_rng(1)
    P = np.vstack([np.eye(3), rng.dirichlet(np.ones(3), 30)])
    rows = []
    for N in (100, 400):
        acc = 0.5 + 0.1 * np.log10(N) + P @ [0.1, 0.05, -0.05] - 0.3 * ((P - [0.5, 0.4, 0.1]) ** 2).sum(1)
        rows += [{"p_a": a, "p_b": b, "p_c": c, "size": N, "metric": v} for (a, b, c), v in zip(P, acc)]
    pred = RatioPolynomial(degree=2, n_bootstrap=5).fit(["a", "b", "c"], pd.DataFrame(rows))
    opt = MixtureOptimizer(n_starts=4).fit(pred, tokens=400, sources={"a": 100, "b": 100, "c": 100})
    assert opt.gradient_methods_ == {"p": "predictor.gradient", "q": "none (predictor ignores q)"}
    g = np.linspace(0, 1, 201)
    grid = np.array([(x, y, 1 - x - y) for x in g for y in g if x + y <= 1 + 1e-12])
    best = pred.predict(np.clip(grid, 0, 1), 400).max()
    assert opt.plan_.predicted == pytest.approx(best, rel=1e-3)
    assert opt.plan_.predicted >= best - 1e-9
    assert np.isfinite(opt.plan_.interval).all()
