"""The compute-aware threshold curve and the QQT predictor behind it."""

import numpy as np
import pytest

from datamix.laws.qqt import QualityQuantity, qqt_error, qqt_mixture_error
from datamix.optimize.frontier import Frontier, threshold_curve
from datamix.predict.laws import QualityPredictor

# Goyal et al. (2024), results/parameter_values.jsonl at 251f695, "tmars_imagenet1k_utility": the
# four T-MARS quality buckets of 12.8M samples (top 0-10%, ..., 30-40%), shared a = 0.025, d = 0.1.
TMARS = {"a": 0.025, "d": 0.1, "b": [-0.16, -0.125, -0.1, -0.085],
         "tau": [6.7272727272727275, 8.545454545454547, 5.2727272727272725, 2.2727272727272725]}
POOLS = ["top0to10p", "top10to20p", "top20to30p", "top30to40p"]


def tmars(form="reference", output="accuracy"):
    params = {"a": TMARS["a"], "d": TMARS["d"]}
    for name, b, tau in zip(POOLS, TMARS["b"], TMARS["tau"]):
        params[f"b[{name}]"], params[f"tau[{name}]"] = b, tau
    law = QualityQuantity.from_params(params, form=form)
    return QualityPredictor(law, pools={"tmars": {p: 12.8e6 for p in POOLS}}, output=output).fit()


def test_published_parameters_pick_the_published_best_pools():
    pred = tmars()
    budgets = [32e6, 64e6, 128e6, 640e6]
    # the candidate pool is the top 40% (4 x 12.8M): keep-fraction 0.25 = top-10%, 0.5 = top-20%
    front = threshold_curve(pred, budgets, sources={"tmars": 51_200_000}, candidates={"tmars": [0.25, 0.5, 0.75, 1.0]})
    np.testing.assert_array_equal(front.keep("tmars"), [0.25, 0.25, 0.5, 0.5])
    # published predicted ImageNet accuracy of those pools: 18.3%, 24.6%, 29.6%, 38.6%
    np.testing.assert_allclose(front.predicted * 100, [18.3, 24.6, 29.6, 38.6], atol=0.06)
    assert front.mode == "candidates"


def test_candidates_agree_with_the_laws_best_pool_combination():
    from datamix.laws.filtering import best_pool_combination

    pred = tmars(output="error")
    budgets = [16e6, 32e6, 64e6, 128e6, 640e6, 2e9]
    front = threshold_curve(pred, budgets, sources={"tmars": 51_200_000}, candidates={"tmars": [0.25, 0.5, 0.75, 1.0]})
    for N, q, v in zip(budgets, front.keep("tmars"), front.predicted):
        choice = best_pool_combination(pred.law_, {p: 12.8e6 for p in POOLS}, N)
        assert q == choice.keep_fraction
        assert v == pytest.approx(choice.predicted, rel=1e-12)


@pytest.mark.parametrize("form", ["reference", "datamix"])
def test_whole_buckets_equal_the_laws_mixture_error(form):
    pred = tmars(form=form, output="error")
    for n in [5e6, 32e6, 640e6, 3.2e9]:  # up to 250 passes over one bucket
        for m in range(1, 5):
            ref = qqt_mixture_error(n, [12.8e6] * m, TMARS["a"], TMARS["b"][:m], TMARS["tau"][:m], TMARS["d"], form=form)
            # exact up to 64 passes; geometric blocks of passes beyond (observed error < 4e-5)
            rtol = 1e-12 if n / (12.8e6 * m) <= 64 else 5e-5
            np.testing.assert_allclose(pred.predict([1.0], n, q=[m / 4]), ref, rtol=rtol)


def test_sources_sampled_in_proportion_to_their_size_equal_the_laws_mixture_error():
    params = {"a": 2.0, "d": 0.05, "b[x]": -0.3, "b[y]": -0.2, "b[z]": -0.1,
              "tau[x]": 1.0, "tau[y]": 3.0, "tau[z]": 7.0}
    law = QualityQuantity.from_params(params)
    pred = QualityPredictor(law, pools={"A": {"x": 1000.0}, "B": {"y": 1000.0}, "C": {"z": 1000.0}}).fit()
    for n in [300, 3_000, 30_000]:
        ref = qqt_mixture_error(n, [1000] * 3, 2.0, [-0.3, -0.2, -0.1], [1.0, 3.0, 7.0], 0.05)
        np.testing.assert_allclose(pred.predict(np.full(3, 1 / 3), n), ref, rtol=1e-12)


def test_nested_pools_equal_the_law_at_their_sizes():
    params = {"a": 1.5, "d": 0.02, "b[top]": -0.4, "b[all]": -0.25, "tau[top]": 2.0, "tau[all]": 5.0}
    law = QualityQuantity.from_params(params)
    pred = QualityPredictor(law, pools={"web": {"top": 300.0, "all": 1200.0}}, nested=True).fit()
    for n in [100, 1_000, 20_000]:
        np.testing.assert_allclose(pred.predict([1.0], n, q=[0.25]), qqt_error(n, 300, 1.5, -0.4, 2.0, 0.02), rtol=1e-12)
        np.testing.assert_allclose(pred.predict([1.0], n, q=[1.0]), qqt_error(n, 1200, 1.5, -0.25, 5.0, 0.02), rtol=1e-12)


def test_more_compute_picks_more_data():
    # synthetic pools of known utility and half-life: better buckets decay faster when repeated
    params = {"a": 1.0, "d": 0.05}
    pools = {}
    for j, (b, tau) in enumerate([(-0.35, 0.5), (-0.30, 1.0), (-0.26, 2.0), (-0.22, 3.0)]):
        params[f"b[q{j}]"], params[f"tau[q{j}]"] = b, tau
        pools[f"q{j}"] = 1000.0
    pred = QualityPredictor(QualityQuantity.from_params(params), pools={"web": pools}).fit()
    budgets = np.geomspace(500, 2e6, 9)
    front = threshold_curve(pred, budgets, sources={"web": 4000}, n_starts=3)
    keep = front.keep("web")
    assert np.all(np.diff(keep) >= -1e-9), keep  # a lower threshold (more data) as compute grows
    assert keep[0] <= 0.25 and keep[-1] >= 0.75
    grid = np.linspace(0.01, 1.0, 397)
    for N, k, v in zip(budgets, keep, front.predicted):
        values = pred.predict(np.ones((grid.size, 1)), N, q=grid[:, None])
        assert v <= values.min() * (1 + 1e-3)  # as good as the best keep-fraction on a fine grid
    assert front.mode == "continuous"


def test_a_cap_per_budget_holds_at_each_budget():
    # the best bucket (fast decay) would be repeated at every budget; a cap per budget bounds its
    # epochs there and forces more data in where it binds, as the measured horizon does in curate
    params = {"a": 1.0, "d": 0.05, "b[q0]": -0.35, "tau[q0]": 50.0, "b[q1]": -0.25, "tau[q1]": 50.0}
    pred = QualityPredictor(QualityQuantity.from_params(params), pools={"web": {"q0": 1000.0, "q1": 1000.0}}).fit()
    budgets = [4_000, 16_000]
    free = threshold_curve(pred, budgets, sources={"web": 2000}, n_starts=3)
    assert free.epochs[:, 0].max() > 2.5  # uncapped: past 2 epochs at both budgets
    capped = threshold_curve(pred, budgets, sources={"web": 2000}, n_starts=3, max_epochs=[2.0, 8.0])
    assert capped.epochs[0, 0] <= 2.0 + 1e-6 and capped.epochs[1, 0] <= 8.0 + 1e-6
    assert capped.keep("web")[0] >= 4_000 / (2.0 * 2000) - 1e-6  # 2 epochs of 4000 seen: at least 2000 kept
    with pytest.raises(ValueError, match="max_epochs holds 1 caps for 2 budgets"):
        threshold_curve(pred, budgets, sources={"web": 2000}, max_epochs=[2.0])


def test_frontier_table_and_errors(two_sources):
    front = threshold_curve(two_sources, [2_000, 20_000], sources={"web": 6000, "books": 500}, n_starts=2)
    df = front.to_frame()
    assert list(df.columns[:2]) == ["budget", "predicted"] and "keep_books" in df and "epochs_web" in df
    assert isinstance(front, Frontier) and front.ratios.shape == (2, 2)
    np.testing.assert_allclose(front.ratios.sum(1), 1.0)
    with pytest.raises(ValueError, match="unknown source"):
        front.keep("news")
    with pytest.raises(ValueError, match="budgets must be"):
        threshold_curve(two_sources, [0.5], sources={"web": 6000, "books": 500})
    with pytest.raises(ValueError, match="candidates name unknown"):
        threshold_curve(two_sources, [100], sources={"web": 6000, "books": 500}, candidates={"news": [1.0]})


def test_fixed_ratios_and_candidates_for_several_sources(two_sources):
    front = threshold_curve(two_sources, [2_000, 100_000], sources={"web": 6000, "books": 500},
                            ratios={"web": 0.5, "books": 0.5}, candidates={"books": [0.5, 1.0], "web": [0.5, 1.0]})
    np.testing.assert_allclose(front.ratios, 0.5)
    for N, q, v in zip(front.budgets, front.keep_fractions, front.predicted):
        best = min(two_sources.predict([0.5, 0.5], N, q=[a, b]) for a in (0.5, 1.0) for b in (0.5, 1.0))
        assert v == pytest.approx(best)


def test_a_predictor_without_keep_fractions_is_refused():
    class NoQ:
        sources_ = ["a"]
        greater_is_better = True

        def predict(self, p, N):
            return 0.5

    with pytest.raises(ValueError, match="does not model keep-fractions"):
        threshold_curve(NoQ(), [10], sources={"a": 10})
