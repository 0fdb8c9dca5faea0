"""The curate pipeline on unlabelled text with the LM proxy: tokens as the unit, dedup, label-free
scores, data sufficiency, checks against the baselines; bad input refused before anything is written."""

import json
from pathlib import Path

import pandas as pd
import pytest

import pipelines.curate as curate
from datamix.config import parse_config
from datamix.run import RunDir

TINY_LM = {"model": "lm", "width": 32, "depth": 1, "heads": 2, "context": 32, "batch_size": 8}
FAST = {"buckets": 2, "passes": [0.5, 1.0, 2.0], "seeds": [0], "frontier": [0.5, 1.0, 2.0], "verify_seeds": [0, 1],
        "n_bootstrap": 4, "n_starts": 2, "trainer": TINY_LM, "floor_cap": None}


def config(**curate_options):
    return parse_config({"pipeline": "curate", "name": "text", "seed": 0,
                         "data": {"bundled": "pretrain_text", "options": {"size": 0.08, "target_size": 0.15}},
                         "embed": {"model": "minilm", "shard_size": 256},
                         "curate": {**FAST, **curate_options}})


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("curate_text")
    return out, curate.run(config(), RunDir(out), progress=False)


def test_unlabelled_text_end_to_end_in_tokens(done):
    out, metrics = done
    assert metrics["stages_done"] == list(curate.STAGES)
    assert metrics["unit"] == "tokens" and metrics["trainer"].startswith("lm(tokenizer='bytes'")
    # tokens are bytes by default: the budget is one pass over the deduplicated sources
    assert metrics["tokens"] == sum(v["tokens"] for v in metrics["units"].values())
    runs = pd.read_csv(out / "runs.csv")
    assert runs["metric_name"].eq("bits_per_byte").all() and runs["metric"].between(0.5, 9).all()
    assert (runs["seen"] >= runs["unique"]).all()
    # pool runs span up to 2 epochs of the smallest pool; mixture runs train at the budget itself
    assert pd.read_csv(out / "pool_runs.csv")["epochs"].max() == pytest.approx(2.0, rel=0.02)
    mixtures = pd.read_csv(out / "mixture_runs.csv")
    assert (mixtures["n"] == metrics["tokens"]).all() and len(mixtures) == 7 * len(mixtures["seed"].unique())
    assert all(v["method"] == "importance" for v in metrics["score"].values())
    plan = metrics["plan"]
    assert 0.5 < plan["predicted"] < 9 and plan["interval"][0] <= plan["predicted"] <= plan["interval"][1]


def test_duplicates_are_removed_before_pools_and_counted(done):
    out, metrics = done
    noisy = metrics["dedup"]["web_noisy"]
    assert noisy["exact_removed"] > 0 and noisy["kept"] == noisy["rows"] - noisy["exact_removed"] - noisy["near_removed"]
    assert metrics["units"]["web_noisy"]["rows"] == noisy["kept"]
    texts = [t for f in (out / "curated").rglob("*.parquet") for t in pd.read_parquet(f)["text"]]
    unique = {" ".join(t.split()) for t in texts}
    manifest = json.loads((out / "curated" / "manifest.json").read_text())
    assert len(unique) == manifest["total_unique"]  # no exact duplicate survives into the curated data
    report = (out / "report.md").read_text()
    assert "duplicates removed" in report and "bits per byte" in report


def test_plan_is_checked_against_every_baseline_with_ties(done):
    _, metrics = done
    check, ver = metrics["check"], metrics["verified"]
    assert {"uniform", "natural", "unfiltered", "best single source"} <= set(check)
    for label, c in check.items():
        assert c["outcome"] in ("better", "worse", "tie", "same mixture")
        if label != "best single source":
            assert c["difference"] == pytest.approx(ver["plan"]["measured"] - ver[label]["measured"])
            # lower bits per byte is better
            if c["outcome"] == "better":
                assert ver["plan"]["measured"] < ver[label]["measured"]
    best = min((k for k in ver if k.startswith("only ")), key=lambda k: ver[k]["measured"])
    assert check["best single source"]["source"] == best.removeprefix("only ")


def test_frontier_is_measured_at_its_ends(done):
    """6b: the frontier's decision trained at its smallest budget against keeping everything and at
    its largest against keeping only the best pool, with the outcome judged on two seed sds."""
    out, metrics = done
    fc = metrics["frontier_check"]
    front = pd.read_csv(out / "frontier.csv")
    assert fc["smallest"]["budget"] == pytest.approx(front["budget"].min())
    assert fc["largest"]["budget"] == pytest.approx(front["budget"].max())
    assert fc["smallest"]["against"] == "keep everything"
    everything = fc["smallest"]["keep everything"]
    assert all(q == 1.0 for q in everything["keep_fractions"].values())
    units = {k: v["tokens"] for k, v in metrics["units"].items()}
    for name, r in everything["ratios"].items():  # natural proportions
        assert r == pytest.approx(units[name] / sum(units.values()))
    pool = fc["largest"]["against"].removeprefix("only ")
    source = pool.split(".")[0]
    best = fc["largest"][fc["largest"]["against"]]
    assert best["ratios"][source] == 1.0 and best["keep_fractions"][source] < 1.0  # the source's top pool alone
    for v in fc.values():
        plan, other = v["plan"], v[v["against"]]
        assert len(plan["measured_runs"]) == 2 and plan["seen"] == pytest.approx(v["budget"], rel=0.05)
        assert v["difference"] == pytest.approx(plan["measured"] - other["measured"])
        expected = "tie" if abs(v["difference"]) <= 2 * v["sd"] else "better" if v["difference"] < 0 else "worse"
        assert v["outcome"] == expected
    assert json.loads((out / "frontier_check.json").read_text())["value"] == fc


def test_data_sufficiency_warns_past_four_epochs_and_the_measured_horizon(done):
    out, metrics = done
    assert metrics["data_sufficiency"]["per_source"]
    with pytest.raises(ValueError, match="holds a run of another config \\(differs in curate.tokens\\)"):
        curate.run(config(tokens=12 * metrics["tokens"]), RunDir(out), progress=False, until="optimize")
    big = curate.run(config(tokens=12 * metrics["tokens"]), RunDir(out), progress=False, until="optimize",
                     restart=True)
    # starting over keeps the measured pool runs; only the mixture runs at the new budget train
    assert big["runs"]["trained"] == big["runs"]["mixtures"] == 7
    assert not (out / "report.html").exists()  # and removes the other config's results
    warnings = " ".join(big["data_sufficiency"]["warnings"])
    assert "past ~4 epochs" in warnings and "beyond the 2.0 epochs the pool runs measured" in warnings


@pytest.mark.parametrize("options, match", [
    ({"trainer": {**TINY_LM, "tokenizer": "no/such/tokenizer.json"}}, "curate.trainer: .*tokenizer.json"),
    ({"trainer": {**TINY_LM, "context": 100_000}}, "target set smaller than one context"),
    ({"score": {"method": "el2n"}}, "needs labels"),
    ({"trainer": {"model": "logistic"}}, "has no labels"),
    ({"passes": [0.001, 1.0]}, "below one batch"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        curate.run(config(**options), RunDir(tmp_path / "run"), progress=False)
    assert not any(Path(tmp_path).rglob("*.json"))
