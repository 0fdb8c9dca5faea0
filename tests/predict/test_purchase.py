import json

import numpy as np
import pandas as pd
import pytest
import yaml

from datamix.config import ConfigError, parse_config
from datamix.data.bundled import load_scenario
from datamix.run import RunDir
from pipelines.purchase import PurchaseConfig, _alternatives, run

SMALL = {"budget": 150.0, "sources": ["clean", "noisy_labels", "corrupted"], "sizes": [20, 40, 80], "n_mixtures": 5,
         "trainer": {"model": "logistic"}, "predictor": {"n_bootstrap": 10}, "max_iter": 15, "verify": True}


def config(purchase: dict):
    data = {"pipeline": "purchase", "name": "t", "seed": 0,
            "data": {"bundled": "digits", "options": {"revealed": 0.2}}, "purchase": purchase}
    try:
        return parse_config(data)
    except ConfigError as exc:  # until config.py has the purchase section
        if "purchase" not in str(exc):
            raise
        section = data.pop("purchase")
        cfg = parse_config(data)
        object.__setattr__(cfg, "purchase", PurchaseConfig(**section))
        return cfg


def test_purchase_pipeline_end_to_end(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    metrics = run(config(SMALL), run_dir, progress=False)
    for name in ("config.yaml", "runs.csv", "plan.yaml", "plan.json", "predictions.csv", "metrics.json",
                 "report.html", "report.md", "figures/predicted_vs_measured.png"):
        assert (run_dir.root / name).exists(), name
    plan = yaml.safe_load((run_dir.root / "plan.yaml").read_text())
    prices = {"clean": 1.0, "noisy_labels": 0.2, "corrupted": 0.3}
    assert sum(prices[k] * v for k, v in plan["buy"].items()) <= 150.0
    assert sum(plan["ratios"].values()) == pytest.approx(1.0)
    lo, hi = plan["interval"]
    assert lo <= plan["predicted"] <= hi
    assert metrics["runs"]["trained"] == 15 and metrics["verified"]["plan"]["mean"] > 0
    cv = metrics["cross_validation"]  # checked on the revealed runs alone: 5 mixtures x 3 sizes
    assert cv["held-out size"]["runs"] == 5 and cv["held-out mixtures"]["runs"] == 15
    for v in cv.values():
        assert v["mae"] > 0 and 0 <= v["coverage"] <= 1 and v["width"] > 0
    assert json.loads((run_dir.root / "metrics.json").read_text())["plan"]["buy"] == plan["buy"]
    again = run(config(SMALL), run_dir, progress=False)  # measurements are reused from runs.csv
    assert again["runs"]["trained"] == 0 and again["runs"]["reused"] == 15
    assert again["verified"] == metrics["verified"]  # the verify trainings too, from verify_runs.csv
    verify_runs = pd.read_csv(run_dir.root / "verify_runs.csv")
    distinct = {tuple(v["buy"].values()) for v in metrics["compared"].values()}  # equal purchases train once
    assert len(verify_runs) == len(distinct) * len(PurchaseConfig(budget=1.0).seeds)
    assert again["plan"] == metrics["plan"]
    assert metrics["stages_done"] == ["measure", "fit", "optimize", "verify", "report"]
    report = (run_dir.root / "report.md").read_text()
    assert metrics["decision"] in report and "cheapest_first" in report and "only corrupted" in report
    for point in metrics["compared"].values():  # every alternative has an interval holding its prediction
        assert point["interval"][0] <= point["predicted"] <= point["interval"][1]
    # calibrated up to the largest revealed size times the held-out size check's step (sizes 20, 40, 80)
    assert metrics["predictor"]["calibrated_size"] == 160.0
    flags = {k: v["interval_calibrated"] for k, v in metrics["compared"].items()}
    assert flags == {k: v["size"] <= 160 for k, v in metrics["compared"].items()}  # every offer distinct here
    assert flags["only clean"] and not flags["only noisy_labels"]  # 150 samples, 750
    assert "interval calibrated" in report
    assert metrics["plan"]["provenance"]["interval_calibrated"] is flags["plan"]  # the headline says it when not
    assert ("the interval is not calibrated" in report) is not flags["plan"]


def test_purchase_stages_stop_where_asked_and_reuse_the_runs(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    fit = run(config(SMALL), run_dir, progress=False, until="fit")
    assert fit["stages_done"] == ["measure", "fit"] and fit["runs"]["trained"] == 15
    assert (run_dir.root / "predictions.csv").exists() and not (run_dir.root / "plan.yaml").exists()
    planned = run(config(SMALL), run_dir, progress=False, until="optimize")
    assert planned["runs"]["trained"] == 0 and (run_dir.root / "plan.yaml").exists()
    assert "verified" not in planned and not (run_dir.root / "report.html").exists()
    assert json.loads((run_dir.root / "metrics.json").read_text())["stages_done"] == ["measure", "fit", "optimize"]
    with pytest.raises(ValueError, match="no stage 'apply'"):
        run(config(SMALL), run_dir, until="apply")


def test_purchase_config_errors(tmp_path):
    with pytest.raises(ValueError, match="budget"):
        PurchaseConfig()
    with pytest.raises(ValueError, match="extra"):
        PurchaseConfig(budget=1.0, bugdet=2.0)
    with pytest.raises(ValueError, match="sizes"):
        PurchaseConfig(budget=1.0, sizes=[0, 10])
    with pytest.raises(ValueError, match="dedup_eps"):
        PurchaseConfig(budget=1.0, dedup_eps=0.0)
    with pytest.raises(ValueError, match="unknown source"):
        run(config({**SMALL, "sources": ["clean", "nope"]}), RunDir(tmp_path / "x"))
    with pytest.raises(ValueError, match=r"sizes goes up to 250 .*clean 200.*<= 200"):
        run(config({**SMALL, "sizes": [50, 250]}), RunDir(tmp_path / "z"))
    assert not (tmp_path / "z" / "runs.csv").exists()
    with pytest.raises(ValueError, match="buys no sample"):
        run(config({**SMALL, "budget": 0.05, "verify": False}), RunDir(tmp_path / "y"))
    assert np.isfinite(PurchaseConfig(budget=1.0).level)


def test_purchase_takes_text_sources_with_string_labels(tmp_path):
    """Text offers go through the shared embed stage (bundled MiniLM) and string labels work in the
    runs, the label-aware OT and the plan; the full offers are embedded for the verify stage."""
    cfg = parse_config({
        "pipeline": "purchase", "name": "text", "seed": 0,
        "data": {"bundled": "pydocs", "options": {"revealed": 0.3}},
        "embed": {"model": "minilm", "shard_size": 256},
        "purchase": {"budget": 60.0, "prices": {"stdlib": 1.0, "stdlib_noisy": 0.3, "reference": 0.2},
                     "sources": ["stdlib", "stdlib_noisy", "reference"], "sizes": [20, 40], "n_mixtures": 5,
                     "seeds": [0], "trainer": {"model": "logistic"}, "predictor": {"n_bootstrap": 4},
                     "max_iter": 10, "verify": True}})
    run_dir = RunDir(tmp_path / "run")
    metrics = run(cfg, run_dir, progress=False)
    assert set(metrics["embed"]) == {"stdlib", "stdlib_noisy", "reference", "target"}
    assert all(v["dim"] == 384 and v["model"].endswith("all-MiniLM-L6-v2") for v in metrics["embed"].values())
    assert isinstance(load_scenario("pydocs").target.labels[0], str)  # labels like "text", "numeric"
    runs = pd.read_csv(run_dir.root / "runs.csv")
    assert len(runs) == 10 and runs["metric"].between(0, 1).all()
    plan = yaml.safe_load((run_dir.root / "plan.yaml").read_text())
    assert sum(cfg.purchase.prices[k] * v for k, v in plan["buy"].items()) <= 60.0 + 1e-9
    assert set(metrics["verified"]) == set(metrics["compared"])
    assert all((run_dir.root / "offers" / "embeddings" / n).is_dir() for n in ("stdlib", "reference"))
    again = run(cfg, run_dir, progress=False)  # embeddings, runs and verify trainings are reused
    assert again["runs"]["trained"] == 0 and again["verified"] == metrics["verified"]


def test_purchase_refuses_unlabelled_sources(tmp_path):
    cfg = parse_config({"pipeline": "purchase", "name": "t", "seed": 0,
                        "data": {"bundled": "pretrain_text", "options": {"size": 0.05, "target_size": 0.1}},
                        "purchase": {"budget": 10.0}})
    with pytest.raises(ValueError, match="no labels.*label field"):
        run(cfg, RunDir(tmp_path / "run"), progress=False)
    assert not (tmp_path / "run" / "embeddings").exists()


def test_owned_data_is_used_in_full_and_every_alternative_is_compared(tmp_path):
    """A price-0 source is the buyer's own: the plan holds all of it, and is compared with buying
    nothing (owned data alone), cheapest first, even spend and each single offer; the decision
    says in words whether any purchase is worth its price."""
    metrics = run(config({**SMALL, "prices": {"clean": 0.0}, "verify": False}), RunDir(tmp_path / "run"),
                  progress=False)
    offer = metrics["sources"]["clean"]["offer_size"]
    assert metrics["owned"]["sources"] == ["clean"]
    compared = metrics["compared"]
    assert {"plan", "buy nothing", "cheapest_first", "even_spend", "only noisy_labels", "only corrupted"} <= set(compared)
    assert compared["buy nothing"]["buy"] == {"clean": offer, "noisy_labels": 0, "corrupted": 0}
    for label, point in compared.items():
        assert point["buy"]["clean"] == offer, label  # owned data in full everywhere
    if metrics["owned"]["used_in_full"]:
        assert metrics["plan"]["buy"]["clean"] == offer
    decision = metrics["decision"]
    assert "owned data alone" in decision
    assert decision.startswith(("no purchase is clearly worth its price", "buy {"))


def test_the_alternatives_split_the_budget_among_the_offers_and_keep_owned_data_in_full():
    """Known answer: 100 to spend, owned data (price 0) and two offers at 1.0 and 0.5 per sample."""
    alt = _alternatives(["own", "a", "b"], {"own": 0.0, "a": 1.0, "b": 0.5}, {"own": 10, "a": 1000, "b": 150}, 100.0)
    assert alt == {"buy nothing": {"own": 10, "a": 0, "b": 0},
                   "cheapest_first": {"own": 10, "a": 25, "b": 150},   # b first: 150 for 75, then 25 of a
                   "even_spend": {"own": 10, "a": 50, "b": 100},       # 50 to each offer
                   "only a": {"own": 10, "a": 100, "b": 0},
                   "only b": {"own": 10, "a": 0, "b": 150}}            # all of b costs 75


def test_an_offer_of_copies_is_predicted_at_its_distinct_samples(tmp_path, caplog):
    """near_dup holds 150 digits ten times each: from its 20% reveal the pipeline estimates ~150
    distinct samples of 1500 and predicts buying all of it at those; with dedup_eps null it is
    predicted as 1500 distinct samples, higher."""
    small = {**SMALL, "sources": ["clean", "near_dup"], "budget": 150.0, "verify": False}
    aware = run(config(small), RunDir(tmp_path / "aware"), progress=False)
    assert 130 <= aware["sources"]["near_dup"]["distinct"] <= 175
    assert aware["sources"]["clean"]["distinct"] == aware["sources"]["clean"]["offer_size"]
    assert "offer 'near_dup': its 300 revealed samples hold duplicates" in caplog.text
    assert aware["plan"]["provenance"]["distinct"]["near_dup"] == pytest.approx(aware["sources"]["near_dup"]["distinct"], abs=0.05)
    naive = run(config({**small, "dedup_eps": None}), RunDir(tmp_path / "naive"), progress=False)
    assert naive["sources"]["near_dup"]["distinct"] == 1500
    only = "only near_dup"
    assert aware["compared"][only]["buy"] == naive["compared"][only]["buy"] == {"clean": 0, "near_dup": 1500}
    assert aware["compared"][only]["predicted"] < naive["compared"][only]["predicted"] - 0.02
    assert "distinct samples in each offer" in (tmp_path / "aware" / "report.md").read_text()


def test_revealed_samples_that_cannot_be_grouped_are_refused_by_source():
    from pipelines.purchase import offer_distinct

    X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    X[3] = 0.0  # no direction: no cosine similarity
    with pytest.raises(ValueError, match=r"source 'a': its revealed samples cannot be grouped.*zero vectors.*"
                                         r"dedup_eps: null"):
        offer_distinct({"a": (X, None)}, {"a": 20}, 0.01)
    assert offer_distinct({"a": (X, None)}, {"a": 20}, None) == {"a": 20.0}


def test_cross_validation_holds_out_the_largest_size_and_folds_of_mixtures():
    """Bookkeeping on a known answer: a predictor that knows the truth has no error and covers
    every run; one off by 0.1 with a +-0.05 interval has error 0.1 and covers none. It is fitted
    only on the runs it does not predict."""
    from pipelines.purchase import cross_validate

    def truth(p, N):
        return 0.5 + 0.3 * p[0] - 10.0 / N

    names, sizes = ["a", "b"], [20, 40, 80]
    mixtures = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.2, 0.8), (0.7, 0.3), (0.9, 0.1)]
    runs = pd.DataFrame([{"p_a": a, "p_b": b, "size": N, "metric": truth((a, b), N)}
                         for a, b in mixtures for N in sizes])

    class Planted:
        def __init__(self, sizes, bias):
            self.sizes, self.bias = sizes, bias

        def fit(self, features, train):
            assert set(train["size"]) <= set(self.sizes)
            self.seen = {(r.p_a, r.size) for r in train.itertuples()}
            return self

        def predict(self, p, N):
            assert (p[0], N) not in self.seen  # never asked about a run it was fitted on
            return truth(p, N) + self.bias

        def predict_interval(self, p, N, level):
            return self.predict(p, N) - 0.05 * (self.bias > 0) - 1e-9, self.predict(p, N) - 0.05 * (self.bias > 0) + 1e-9

    exact = cross_validate(lambda s: Planted(s, 0.0), {}, runs, names, sizes, 0.9, folds=3)
    assert exact["held-out size"]["runs"] == 6 and exact["held-out mixtures"]["runs"] == 18
    for v in exact.values():
        assert v["mae"] == pytest.approx(0.0, abs=1e-12) and v["coverage"] == 1.0
    off = cross_validate(lambda s: Planted(s, 0.1), {}, runs, names, sizes, 0.9, folds=3)
    for v in off.values():
        assert v["mae"] == pytest.approx(0.1) and v["coverage"] == 0.0
