"""The runs pipeline on synthetic tables whose best mixture is known, its stage commands, and bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from datamix.cli import main
from datamix.optimize import Plan

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
                unique_tokens={"a": 2e8, "b": 1e9, "c": 1e9}, max_epochs=4)
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
