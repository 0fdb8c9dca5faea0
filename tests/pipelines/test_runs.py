"""The runs pipeline on synthetic tables whose best mixture is known, its stage commands, and bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from datamix.cli import main
from datamix.optimize import Plan

ROOT = Path(__file__).resolve().parents[2]
T = np.array([-1.0, 0.5, 0.0])  # planted mixing law: source a helps, b hurts, c is neutral


def table(rng, *, n=40, seeds=2, sizes=(1e6,), noise=0.002):
    """Runs of a planted mixing law L = c + k exp(t . r); a larger model has a lower floor and scale."""
    P = rng.dirichlet(np.ones(3), n)
    rows = []
    for N in sizes:
        level = (1e6 / N) ** 0.1
        for seed in range(seeds):
            y = (1.0 + 2.0 * np.exp(P @ T)) * level
            for p, v in zip(P, y * (1 + noise * rng.standard_normal(n))):
                rows.append({"N": N, "seed": seed, "w_a": p[0], "w_b": p[1], "w_c": p[2], "loss_x": v, "loss_y": 2 * v})
    return pd.DataFrame(rows)


def write(tmp_path, df, **runs):
    df.to_csv(tmp_path / "runs.csv", index=False)
    section = {"table": "runs.csv", "weight_prefix": "w_", "metric": "loss_x", "law": "mixing1", "folds": 3, **runs}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": "runs", "name": "t", "runs": section}))
    return cfg


def test_the_plan_is_the_known_best_mixture_under_the_constraints(tmp_path, rng, capsys):
    cfg = write(tmp_path, table(rng), seed_column="seed", max_ratio=0.7, tokens=1e9,
                unique_tokens={"a": 2e8, "b": 1e9, "c": 1e9}, max_epochs=4, extrapolate=True)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    plan = Plan.from_yaml(out / "plan.yaml")
    # best: as much of a as allowed (max_ratio 0.7, but 4 epochs of 2e8 unique tokens = 0.8 of 1e9), rest on c
    np.testing.assert_allclose([plan.ratios[s] for s in "abc"], [0.7, 0.0, 0.3], atol=1e-6)
    np.testing.assert_allclose(plan.epochs["a"], 0.7 * 1e9 / 2e8, rtol=1e-9)
    np.testing.assert_allclose(plan.predicted, 1.0 + 2.0 * np.exp(-0.7), rtol=0.01)
    assert plan.interval[0] <= plan.predicted <= plan.interval[1]
    assert Plan.from_yaml(out / "plan.yaml").to_yaml() == (out / "plan.yaml").read_text()  # round trip
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 40 and (preds["n_runs"] == 2).all()  # the two seeds of each mixture averaged
    assert preds["split"].str.startswith("held-out fold").all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stages_done"] == ["fit", "predict", "optimize", "report"]
    # seed-to-seed noise: 0.2% of a loss near 2.7, sd of one run ~0.0055; pooled over 40 pairs
    assert 0.003 < metrics["table"]["noise"] < 0.008
    assert metrics["held_out"]["spearman"] > 0.99 and metrics["held_out"]["coverage"] >= 0.75
    law = json.loads((out / "law.json").read_text())
    t = law["params"]["mixing1"]
    # exponents are identified up to a common shift (weights sum to 1): compare differences
    np.testing.assert_allclose([t["t_1"] - t["t_3"], t["t_2"] - t["t_3"]], [-1.0, 0.5], atol=0.05)
    assert set(law["kfold"]) == {"mixing1"}
    html = (out / "report.html").read_text()
    for fig in ("predicted_vs_measured", "chosen_mixture", "candidates"):
        assert f"figures/{fig}.png" in html and (out / "figures" / f"{fig}.png").stat().st_size > 1000


def test_a_weighted_objective_and_the_transfer_to_a_larger_model(tmp_path, rng):
    cfg = write(tmp_path, table(rng, seeds=1, sizes=(1e6, 1e9)), size_column="N",
                metric={"loss_x": 0.5, "loss_y": 0.25}, law="auto")
    out = tmp_path / "out"
    assert main(["predict", str(cfg), "--out", str(out), "-q"]) == 0
    assert not (out / "plan.yaml").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stages_done"] == ["fit", "predict"]
    big = metrics["transfer"]["1e+09"]
    assert big["chosen"]["runs"] == 40 and big["chosen"]["spearman"] > 0.98
    assert big["mixing1"]["regret"] == 0.0  # the law's top pick is the best 1e9 run
    preds = pd.read_csv(out / "predictions.csv")
    assert (preds.loc[preds["size"] == 1e9, "split"] == "transfer").all()
    fit = preds[preds["size"] == 1e6]
    np.testing.assert_allclose(fit["measured"], (1.0 + 2.0 * np.exp(fit[list("abc")].to_numpy() @ T)), rtol=0.01)
    # then the report stage reuses the held-out scoring
    assert main(["report", str(cfg), "--out", str(out), "-q"]) == 0
    assert (out / "report.html").exists() and (out / "plan.yaml").exists()


def test_the_plan_stays_within_the_measured_ratios_unless_told_to_extrapolate(tmp_path, rng, capsys):
    df = table(rng)
    measured = df[["w_a", "w_b", "w_c"]].agg(["min", "max"])
    out = tmp_path / "out"
    assert main(["optimize", str(write(tmp_path, df)), "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    plan = Plan.from_yaml(out / "plan.yaml")
    # the law's optimum (a = 1, a corner no run reached) lies past the runs: the plan stops at their edge
    assert plan.ratios["a"] == pytest.approx(measured.loc["max", "w_a"], abs=1e-9)
    assert plan.ratios["b"] == pytest.approx(measured.loc["min", "w_b"], abs=1e-9)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["at_edge"]) == {"a", "b"}
    assert metrics["at_edge"]["a"] == pytest.approx(measured["w_a"].tolist())
    assert "plan at the edge of the runs for a" in printed and "runs.extrapolate: true" in printed
    # the plan against the best measured run: the law predicts it a little better, beyond its error
    best = metrics["check"]["best measured run"]
    runs = df.groupby(["w_a", "w_b", "w_c"])["loss_x"].mean()
    assert best["difference"] == pytest.approx(plan.predicted - runs.min())
    assert best["outcome"] == ("predicted better" if -best["difference"] > 2 * best["se"] else "tie")
    assert "plan vs best measured run (a " in printed

    out2 = tmp_path / "out2"
    assert main(["optimize", str(write(tmp_path, df, extrapolate=True)), "--out", str(out2), "-q"]) == 0
    np.testing.assert_allclose(list(Plan.from_yaml(out2 / "plan.yaml").ratios.values()), [1, 0, 0], atol=1e-6)
    assert json.loads((out2 / "metrics.json").read_text())["at_edge"] == {}


def test_the_mixing_law_example_transfers_from_70m_and_plans_inside_its_runs(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(ROOT / "configs" / "runs_mixinglaws.yaml"), "--out", str(out), "-q"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    cands = metrics["candidates"]
    assert metrics["selection"]["ranker"] == max(cands, key=lambda c: cands[c]["spearman"]) == "mixing2"
    # Ye et al. 2024's 5-domain Pile runs: 26 mixtures at 70M, 160M, 305M, 410M and 6 at 1B
    assert {k: v["chosen"]["runs"] for k, v in metrics["transfer"].items()} == \
        {"1.6e+08": 26, "3.05e+08": 26, "4.1e+08": 26, "1e+09": 6}
    assert all(metrics["transfer"][k]["chosen"]["spearman"] > 0.85 for k in ("1.6e+08", "3.05e+08", "4.1e+08"))
    # measured 0.914, 0.891, 0.877: the ranking from 70M carries; the law ranks better than linear
    assert all(v["chosen"]["spearman"] > v["linear"]["spearman"] for k, v in metrics["transfer"].items() if k != "1e+09")
    # no run gave domain3 more than 0.094: the plan stays there (with extrapolate it put 0.75 on it)
    plan = Plan.from_yaml(out / "plan.yaml")
    assert plan.ratios["domain3"] <= 0.09375 + 1e-9 and max(plan.ratios.values()) <= 0.75 + 1e-9
    assert "domain3" in metrics["at_edge"]
    assert metrics["check"]["best measured run"]["outcome"] == "tie"


def _bad_metric(value, row=3):
    def change(df):
        df.loc[row, "loss_x"] = value
        return df
    return change


def _bad_weights(df):
    df.loc[5, "w_a"] += 0.01
    return df


BAD_TABLES = [
    ("misspelt metric", lambda df: df, {"metric": "loss_z"},
     r"runs.metric names column\(s\) \['loss_z'\] that the table does not have; its columns: \['N', 'seed', 'w_a'"),
    ("target not in table", lambda df: df, {"metric": {"loss_x": 1.0, "val": 1.0}}, r"column\(s\) \['val'\]"),
    ("misspelt weight", lambda df: df, {"weight_prefix": None, "weights": ["w_a", "w_bb", "w_c"]},
     r"runs.weights names column\(s\) \['w_bb'\] .* its columns: \['N', 'seed', 'w_a', 'w_b', 'w_c'"),
    ("prefix matches nothing", lambda df: df, {"weight_prefix": "weight_"}, r"no column starts with it"),
    ("weights off 1", _bad_weights, {}, r"runs.weights: row 5 sums to 1.01, not 1 within runs.sum_tolerance=0.001"),
    ("negative metric", _bad_metric(-0.5), {}, r"column 'loss_x' row 3 holds -0.5; every value must be a finite"),
    ("NaN metric", _bad_metric(np.nan), {}, r"column 'loss_x' row 3 holds nan"),
    ("text in a weight", lambda df: df.astype({"w_a": object}).assign(w_a=lambda d: d.w_a.where(d.index != 2, "x")),
     {}, r"runs.weights: column 'w_a' row 2 holds 'x'"),
    ("too few runs for the law", lambda df: df.iloc[:8], {"law": "mixing2"},
     r"runs.law=mixing2: 8 runs at the fit size \(5 per training fold of 3\) are fewer than the 10 it needs"),
    ("too few runs for any law", lambda df: df.iloc[:5], {"law": "auto"}, r"fewer than any predictor needs"),
    ("min ratios sum past 1", lambda df: df, {"min_ratio": 0.5}, r"infeasible: min_ratio sums to 1.5 > 1"),
    ("max ratios below 1", lambda df: df, {"max_ratio": 0.2}, r"infeasible: max_ratio sums to 0.6 < 1"),
    ("epochs cap", lambda df: df, {"tokens": 1e9, "unique_tokens": {"a": 1e6, "b": 1e6, "c": 1e6}, "max_epochs": 2},
     r"infeasible: max_epochs=2 lets the sources supply at most 6e\+06 of the tokens=1e\+09"),
    ("unknown source in unique tokens", lambda df: df, {"unique_tokens": {"a": 1e6, "d": 1e6}},
     r"runs.unique_tokens names unknown source\(s\) \['d'\]"),
    ("repeated seed", lambda df: pd.concat([df, df.iloc[:1]]), {"seed_column": "seed"},
     r"runs.seed_column: row 80 repeats the weights, size and seed"),
    ("size column missing", lambda df: df, {"size_column": "params"}, r"runs.size_column names column\(s\) \['params'\]"),
    ("scale without sizes", lambda df: df, {"select": "scale"}, r"need runs.size_column"),
    ("max_epochs without tokens", lambda df: df, {"max_epochs": 3}, r"max_epochs needs 'tokens'"),
    ("unknown key", lambda df: df, {"metrc": "loss_x"}, r"unknown key 'runs.metrc'; allowed keys here: .*metric"),
    ("unknown law", lambda df: df, {"law": "lightgbm"}, r"runs.law: Input should be 'auto', 'mixing1'"),
    ("bounds outside the measured range", lambda df: df.assign(w_a=0.5 * df.w_a, w_c=df.w_c + 0.5 * df.w_a),
     {"min_ratio": {"a": 0.6}}, r"min_ratio/max_ratio leave no mixture inside the ratios the runs measured "
                                r"\{'a': '0.\d+\.\.0.\d+'.*runs.extrapolate: true"),
]


@pytest.mark.parametrize("case, change, runs, match", BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
def test_bad_input_is_refused_naming_the_column_row_or_key(tmp_path, rng, refused, case, change, runs, match):
    runs = {k: v for k, v in runs.items()}
    cfg = write(tmp_path, change(table(rng)), **runs)
    if runs.get("weight_prefix", 0) is None:  # give weights instead of the prefix
        data = yaml.safe_load(cfg.read_text())
        del data["runs"]["weight_prefix"]
        cfg.write_text(yaml.safe_dump(data))
    refused(cfg, match)


def test_missing_table_and_missing_section_are_refused(tmp_path, refused):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": "runs", "runs": {"table": "nope.csv", "weight_prefix": "w_",
                                                                "metric": "loss"}}))
    refused(cfg, r"runs.table: .*nope.csv does not exist")
    cfg.write_text(yaml.safe_dump({"pipeline": "runs"}))
    refused(cfg, r"pipeline 'runs' needs a 'runs:' section")
