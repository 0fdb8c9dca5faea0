"""The report: figures exist, and the numbers shown are the plan's."""

import html
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from datamix.laws.qqt import QualityQuantity, qqt_error
from datamix.optimize import optimize_mixture
from datamix.optimize.frontier import threshold_curve
from datamix.predict.laws import QualityPredictor
from datamix.report import (decision_table, plot_frontier, plot_law_fit, plot_mixture, plot_predicted_vs_measured,
                            write_report)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fitted():
    """A QQT law fitted on noisy synthetic runs of two sources with two quality buckets each."""
    rng = np.random.default_rng(0)
    truth = {"web.0": (-0.30, 2.0), "web.1": (-0.18, 3.0), "books.0": (-0.40, 1.0), "books.1": (-0.25, 1.5)}
    sizes = {"web.0": 1500, "web.1": 1500, "books.0": 200, "books.1": 200}
    rows = []
    for pool, (b, tau) in truth.items():
        S = sizes[pool]
        for m in (0.25, 0.5, 1, 2, 4, 8):
            n = m * S
            rows.append({"pool": pool, "n": n, "S": S,
                         "y": float(qqt_error(n, S, 1.0, b, tau, 0.05)) * np.exp(rng.normal(0, 0.01))})
    df = pd.DataFrame(rows)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the near-L1 Huber fit stops at max_iter
        law = QualityQuantity(n_starts=2, max_iter=300, n_bootstrap=5).fit(df[["pool", "n", "S"]], df["y"])
    pools = {"web": {"web.0": 1500.0, "web.1": 1500.0}, "books": {"books.0": 200.0, "books.1": 200.0}}
    pred = QualityPredictor(law, pools=pools, output="accuracy").fit()
    return law, pred, df


@pytest.fixture(scope="module")
def rendered(fitted, tmp_path_factory):
    law, pred, df = fitted
    scores = {"web": np.linspace(0, 1, 3000), "books": np.linspace(1, 2, 400)}
    plan = optimize_mixture(pred, tokens=6000, sources={"web": 3000, "books": 400}, scores=scores, n_starts=3)
    front = threshold_curve(pred, [1500, 6000, 24000], sources={"web": 3000, "books": 400}, n_starts=2)
    X = df[["pool", "n", "S"]]
    cmp = pd.DataFrame({"label": ["plan", "uniform"], "measured": [0.93, 0.91], "predicted": [0.94, 0.90],
                        "lo": [0.92, 0.88], "hi": [0.95, 0.92]})
    figures = {
        "law_fit": plot_law_fit(law, X, df["y"], groups={"web": ["web.0", "web.1"], "books": ["books.0", "books.1"]}),
        "predicted_vs_measured": plot_predicted_vs_measured(cmp),
        "threshold_curve": plot_frontier(front, chosen=6000),
        "mixture": plot_mixture(plan),
    }
    out = tmp_path_factory.mktemp("report")
    files = write_report(out, plan, figures=figures, inputs={"tokens": 6000, "seed": 0}, comparisons=cmp,
                         frontier=front, notes=["test note"])
    return plan, front, files, out


def test_figures_exist_and_are_png(rendered):
    plan, front, files, out = rendered
    assert set(files.figures) == {"law_fit", "predicted_vs_measured", "threshold_curve", "mixture"}
    page = files.html.read_text()
    md = files.markdown.read_text()
    for name, path in files.figures.items():
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5_000
        assert f'src="figures/{name}.png"' in page
        assert f"(figures/{name}.png)" in md


def _cells(page: str) -> dict:
    """data-col -> list of exact values from the decision table (the first table)."""
    first = page[page.index("<table>"):page.index("</table>")]
    out = {}
    for col, value in re.findall(r'data-col="([^"]+)" data-value="([^"]+)"', first):
        out.setdefault(html.unescape(col), []).append(float(value))
    return out


def test_report_numbers_equal_the_plans(rendered):
    plan, front, files, out = rendered
    page = files.html.read_text()
    cells = _cells(page)
    names = list(plan.ratios)
    used = [n for n in names if plan.ratios[n] >= 1e-6]
    assert cells["ratio"] == [plan.ratios[n] if n in used else 0.0 for n in names]
    assert cells["keep_fraction"] == [plan.keep_fractions[n] for n in used]  # unused sources: no cell value
    assert cells["epochs"] == [plan.epochs[n] for n in names]
    np.testing.assert_array_equal(cells["threshold"], [plan.thresholds[n] for n in used])  # NaN: not filtered
    assert cells["kept"] == [plan.provenance["kept"][n] for n in names]
    assert cells["samples_seen"] == [plan.ratios[n] * 6000 for n in names]
    m = re.search(r'id="predicted" data-value="([^"]+)"', page)
    assert float(m.group(1)) == plan.predicted
    assert "); higher is better</p>" in page  # an accuracy predictor's plan, said in words
    assert html.escape(plan.to_yaml()) in page  # the plan itself, verbatim
    md = files.markdown.read_text()
    for n in used:  # Markdown shows the same numbers rounded to 6 significant digits
        assert (f"| {n} | yes | {plan.provenance['available'][n]} | {plan.ratios[n]:.6g} | "
                f"{plan.keep_fractions[n]:.6g} |") in md
    for n in set(names) - set(used):
        assert f"| {n} | unused | {plan.provenance['available'][n]} | 0 | — | — |" in md
    assert plan.to_yaml().rstrip() in md


def test_frontier_and_comparison_tables(rendered):
    plan, front, files, out = rendered
    md = files.markdown.read_text()
    assert "## Threshold curve" in md and "## Compared mixtures" in md and "test note" in md
    for b, v in zip(front.budgets, front.predicted):
        assert f"| {b:.6g} | {v:.6g} |" in md


def test_rerender_gives_the_same_bytes(fitted, rendered, tmp_path):
    plan, front, files, out = rendered
    again = write_report(tmp_path, plan, figures={"mixture": plot_mixture(plan)}, inputs={"tokens": 6000, "seed": 0},
                         frontier=front, notes=["test note"])
    assert again.figures["mixture"].read_bytes() == files.figures["mixture"].read_bytes()
    assert decision_table(plan).equals(decision_table(plan))


def test_decision_table_columns(rendered):
    plan, *_ = rendered
    t = decision_table(plan)
    assert list(t.columns) == ["source", "used", "available", "ratio", "keep_fraction", "threshold", "kept",
                               "samples_seen", "epochs", "buy"]
    assert t["ratio"].sum() == pytest.approx(1.0)


def test_unused_sources_show_ratio_zero_and_no_filter():
    """The optimizer's numerical dust (a ratio of 1e-11) is a source not used: ratio 0, "unused",
    no keep-fraction or threshold, a grey bar labelled unused."""
    from datamix.optimize import Plan

    plan = Plan(ratios={"a": 1.0 - 1e-11, "b": 1e-11}, keep_fractions={"a": 0.5, "b": 0.3},
                thresholds={"a": 0.2, "b": 0.9}, epochs={"a": 2.0, "b": 0.0}, buy={}, predicted=0.9,
                interval=(0.85, 0.95), provenance={})
    t = decision_table(plan).set_index("source")
    assert t.loc["b", "used"] == "unused" and t.loc["b", "ratio"] == 0.0
    assert t.loc["b", "keep_fraction"] is None and t.loc["b", "threshold"] is None
    assert t.loc["a", "used"] == "yes" and t.loc["a", "keep_fraction"] == 0.5
    fig = plot_mixture(plan)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels[1] == "unused" and labels[0].startswith("1.000  keep 0.50")


def test_what_a_plan_does_not_give_shows_a_dash_not_nan(tmp_path):
    """A runs plan has no thresholds and, without unique tokens, no epochs: "—" in the reports."""
    from datamix.optimize import Plan

    plan = Plan(ratios={"a": 0.6, "b": 0.4}, keep_fractions={"a": 1.0, "b": 1.0}, predicted=2.5, interval=(2.4, 2.6))
    t = decision_table(plan).set_index("source")
    assert t.loc["a", "threshold"] is None and t.loc["a", "epochs"] is None
    files = write_report(tmp_path, plan)
    table = files.markdown.read_text().split("## Decision")[1].split("##")[0]
    assert "nan" not in table and "| a | yes | — | 0.6 | 1 | — | — | — | — | — |" in table
