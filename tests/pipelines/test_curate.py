"""The curate pipeline on the bundled digits: end to end, rerun, kill and resume, bad input."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pipelines.curate as curate
from datamix.config import load_config
from datamix.optimize import Plan
from datamix.proxy.runs import ProxyTrainer
from datamix.run import RunDir

ROOT = Path(__file__).resolve().parents[2]
# small settings: 2 nested pools per source, 3 sizes, 1 seed -> 30 proxy runs
FAST = {"buckets": 2, "passes": [0.5, 1.0, 2.0], "seeds": [0], "frontier": [0.5, 1.0, 2.0], "verify_seeds": [0],
        "n_bootstrap": 4, "n_starts": 3, "tokens": 4000}


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "configs" / "quickstart.yaml")


@pytest.fixture(scope="module")
def done(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("curate")
    metrics = curate.run(cfg, RunDir(out), progress=False, options=FAST)
    return out, metrics


def test_every_stage_writes_its_outputs(done):
    out, metrics = done
    for name in ("config.yaml", "runs.csv", "pool_runs.csv", "mixture_runs.csv", "law.json", "plan.yaml", "plan.json",
                 "frontier.csv",
                 "report.html", "report.md", "metrics.json", "curated/manifest.json"):
        assert (out / name).exists(), name
    assert metrics["stages_done"] == list(curate.STAGES)
    assert metrics["runs"]["total"] == 5 * 2 * 3 + 11 and metrics["runs"]["mixtures"] == 11  # 10 pairs, uniform
    saved, plan = json.loads((out / "metrics.json").read_text())["plan"], json.loads((out / "plan.json").read_text())
    for key in ("ratios", "keep_fractions", "epochs", "buy", "predicted", "interval"):
        assert saved[key] == plan[key]  # (metrics.json writes NaN thresholds as null)


def test_mixture_runs_fit_the_interaction_term(done):
    """Every 50/50 pair and the uniform mixture, unfiltered at the budget; the fitted term lowers the
    prediction's error on them, and the report names it."""
    out, metrics = done
    mix = pd.read_csv(out / "mixture_runs.csv")
    P = mix.filter(like="p_").to_numpy()
    assert P.shape == (11, 5) and (mix["n"] == 4000).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert sorted(map(tuple, P.round(6))) == sorted(map(tuple, curate.interaction_design(5).round(6)))
    law = json.loads((out / "law.json").read_text())
    names = list(metrics["sources"])
    assert set(law["interactions"]) == {f"{a}*{b}" for i, a in enumerate(names) for b in names[i + 1:]}
    assert 0 < law["mixture_loo_error"] < 0.5
    assert "mixture interactions" in (out / "report.md").read_text()


def test_interaction_design_identifies_every_pair():
    for k in (2, 3, 5):
        P = curate.interaction_design(k)
        np.testing.assert_allclose(P.sum(axis=1), 1.0)
        i, j = np.triu_indices(k, 1)
        F = P[:, i] * P[:, j]
        assert np.linalg.matrix_rank(F) == k * (k - 1) // 2


def test_the_plan_holds_its_constraints_and_is_applied(done):
    out, metrics = done
    plan = Plan.from_yaml(out / "plan.yaml")
    assert sum(plan.ratios.values()) == pytest.approx(1, abs=1e-12)
    manifest = json.loads((out / "curated" / "manifest.json").read_text())
    for name, info in manifest["sources"].items():
        kept = plan.provenance["kept"][name]
        assert info["samples"] == round(plan.epochs[name] * kept)
        assert info["unique"] == min(kept, info["samples"])  # under one epoch: a share of the kept samples
        assert info["threshold"] == plan.thresholds[name]
    assert manifest["total_samples"] == pytest.approx(4000, abs=len(manifest["sources"]))
    # no source repeated past the 2 passes the pool runs measured (the default epoch cap)
    assert plan.provenance["max_epochs"] == 2.0 and max(plan.epochs.values()) <= 2 + 1e-9


def test_the_real_check_is_measured_and_reported(done):
    out, metrics = done
    ver = metrics["verified"]
    singles = {f"only {n}" for n in metrics["sources"]}
    assert set(ver) == {"plan", "uniform", "unfiltered", "natural"} | singles
    for v in ver.values():
        assert 0 < v["measured"] <= 1 and 0 < v["predicted"] <= 1
        assert v["seen"] == pytest.approx(4000, abs=5) and v["unique"] <= v["seen"]
        assert isinstance(v["interval_calibrated"], bool) and v["interval"][0] <= v["predicted"] <= v["interval"][1]
    # the plan repeats no source past the passes its pool runs measured: its interval is calibrated
    assert ver["plan"]["interval_calibrated"] is True and metrics["plan"]["provenance"]["interval_calibrated"] is True
    report = (out / "report.md").read_text()
    assert ("not calibrated" in report) == (not all(v["interval_calibrated"] for v in ver.values()))
    assert ver["uniform"]["keep_fractions"] == dict.fromkeys(ver["uniform"]["keep_fractions"], 1.0)
    assert ver["unfiltered"]["ratios"] == pytest.approx(ver["plan"]["ratios"])
    check = metrics["check"]
    assert set(check) == set(ver) - {"plan"} | {"best single source"}
    diff = ver["plan"]["measured"] - ver["uniform"]["measured"]
    assert check["uniform"]["difference"] == pytest.approx(diff)
    assert check["uniform"]["outcome"] == ("tie" if abs(diff) <= 2 * check["uniform"]["se"] else
                                           "better" if diff > 0 else "worse")
    best = max(singles, key=lambda k: ver[k]["measured"])
    assert check["best single source"]["source"] == best.removeprefix("only ")


def test_report_shows_the_plan(done):
    out, metrics = done
    plan = Plan.from_yaml(out / "plan.yaml")
    page = (out / "report.html").read_text()
    table = page[page.index("<table>"):page.index("</table>")]
    ratios = [float(v) for v in re.findall(r'data-col="ratio" data-value="([^"]+)"', table)]
    assert ratios == list(plan.ratios.values())
    for fig in ("law_fit", "predicted_vs_measured", "threshold_curve", "mixture"):
        assert (out / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"figures/{fig}.png" in page


def test_rerun_reuses_runs_and_gives_the_same_plan_bytes(cfg, done):
    out, metrics = done
    before = (out / "plan.yaml").read_bytes()
    again = curate.run(cfg, RunDir(out), progress=False, options=FAST)
    assert again["runs"]["trained"] == 0 and again["runs"]["reused"] == 41
    assert (out / "plan.yaml").read_bytes() == before
    assert all(v["reused"] for v in again["score"].values())


def test_a_killed_run_completes_on_rerun(cfg, done, tmp_path, monkeypatch):
    out, _ = done
    calls = {"n": 0}
    train = ProxyTrainer.train

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 26:  # dies in the 26th training: the 25 runs before it are in runs.csv
            raise KeyboardInterrupt
        return train(self, *args, **kwargs)

    monkeypatch.setattr(ProxyTrainer, "train", dying)
    with pytest.raises(KeyboardInterrupt):
        curate.run(cfg, RunDir(tmp_path), progress=False, options=FAST)
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "plan.yaml").exists()
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no partial files
    monkeypatch.setattr(ProxyTrainer, "train", train)
    metrics = curate.run(cfg, RunDir(tmp_path), progress=False, options=FAST)
    assert metrics["runs"]["reused"] == 25 and metrics["runs"]["trained"] == 5 + 11  # + the mixture runs
    assert (tmp_path / "plan.yaml").read_bytes() == (out / "plan.yaml").read_bytes()


def test_lost_outputs_are_rewritten(cfg, done, tmp_path):
    out, _ = done
    shutil.copytree(out, tmp_path / "run")
    for name in ("plan.yaml", "report.html", "metrics.json"):
        (tmp_path / "run" / name).unlink()
    shutil.rmtree(tmp_path / "run" / "curated")
    curate.run(cfg, RunDir(tmp_path / "run"), progress=False, options=FAST)
    assert (tmp_path / "run" / "plan.yaml").read_bytes() == (out / "plan.yaml").read_bytes()
    assert (tmp_path / "run" / "curated" / "manifest.json").exists()
    # an altered shard: the cached manifest no longer matches the files, so apply writes them again
    manifest = json.loads((out / "curated" / "manifest.json").read_text())
    shard = next(iter(manifest["sources"].values()))["shards"][0]
    (tmp_path / "run" / "curated" / shard["file"]).write_bytes(b"not a shard")
    curate.run(cfg, RunDir(tmp_path / "run"), progress=False, options=FAST, until="apply")
    for name in ("manifest.json", shard["file"]):
        assert (tmp_path / "run" / "curated" / name).read_bytes() == (out / "curated" / name).read_bytes()


@pytest.mark.parametrize("options,match", [
    ({"sources": ["clean", "magazines"]}, r"unknown source\(s\) \['magazines'\]"),
    ({"min_ratio": 0.3}, "min_ratio sums to 1.5 > 1"),
    ({"max_epochs": 0.1}, "max_epochs=0.1 lets the sources supply at most"),
    ({"tokens": 0.5}, "below one sample"),
    ({"budget": 0.05}, "below the price of one sample"),
    ({"score": {"method": "column", "column": "quality"}}, r"scores missing for source\(s\) \['clean'"),
    ({"max_ratio": {"news": 0.5}}, r"curate.max_ratio names unknown source\(s\) \['news'\]"),
    ({"bucket": 3}, "curate options: unknown key 'bucket'; allowed keys here: .*buckets"),
])
def test_bad_input_fails_before_writing_anything(cfg, tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        curate.run(cfg, RunDir(tmp_path / "run"), progress=False, options={**FAST, **options})
    assert not (tmp_path / "run").exists()  # not even the folder it would have made


def test_default_options_and_config_section(cfg):
    assert curate.curate_config(cfg) == curate.CurateConfig()
    assert curate.curate_config(cfg, {"buckets": 3}).buckets == 3
    assert curate.bucket_rows(np.array([0.1, 0.9, 0.5, 0.7]), 2)[0].tolist() == [1, 3]


def test_stages_run_alone_reuse_the_run_directory_and_give_the_same_plan(done, tmp_path, monkeypatch):
    out, metrics = done
    again = tmp_path / "again"
    shutil.copytree(out, again)
    for name in ("law.json", "predictions.csv", "plan.yaml", "plan.json", "frontier.csv", "report.html"):
        (again / name).unlink()
    shutil.rmtree(again / "curated")
    cfg = load_config(ROOT / "configs" / "quickstart.yaml")

    fit = curate.run(cfg, RunDir(again), progress=False, options=FAST, until="fit")
    assert fit["stages_done"] == list(curate.STAGES[:curate.STAGES.index("fit") + 1])
    assert fit["runs"]["trained"] == 0 and fit["runs"]["total"] == metrics["runs"]["total"]
    assert (again / "law.json").exists() and not (again / "plan.yaml").exists()
    assert json.loads((again / "metrics.json").read_text())["stages_done"] == fit["stages_done"]

    curate.run(cfg, RunDir(again), progress=False, options=FAST, until="predict")
    table = pd.read_csv(again / "predictions.csv").set_index("mixture")
    assert {"uniform", "natural"} | {f"only {n}" for n in metrics["sources"]} == set(table.index)
    assert (table["lo"] <= table["predicted"]).all() and (table["predicted"] <= table["hi"]).all()
    for label in ("uniform", "natural"):  # the same mixture and law as the verify stage's prediction
        assert table.loc[label, "predicted"] == pytest.approx(metrics["verified"][label]["predicted"], abs=1e-9)
    assert not (again / "plan.yaml").exists()

    curate.run(cfg, RunDir(again), progress=False, options=FAST, until="apply")
    assert (again / "plan.yaml").read_bytes() == (out / "plan.yaml").read_bytes()
    assert (again / "curated" / "manifest.json").read_bytes() == (out / "curated" / "manifest.json").read_bytes()
    assert not (again / "report.html").exists()

    def no_training(*args, **kwargs):
        raise AssertionError("the verify stage retrained although its plan, seeds and data are unchanged")

    def no_writing(*args, **kwargs):
        raise AssertionError("the apply stage rewrote shards although its plan, data and files are unchanged")

    monkeypatch.setattr(curate, "verify_stage", no_training)
    monkeypatch.setattr("datamix.apply.apply_plan", no_writing)
    report = curate.run(cfg, RunDir(again), progress=False, options=FAST, until="report")
    assert report["verified"] == json.loads((out / "verify.json").read_text())["value"]
    assert report["verified"]["plan"]["measured"] == pytest.approx(metrics["verified"]["plan"]["measured"])
    assert (again / "report.html").exists()
    with pytest.raises(ValueError, match="no stage 'bogus'.*embed, score"):
        curate.run(cfg, RunDir(again), progress=False, options=FAST, until="bogus")


def test_pool_runs_below_a_batch_are_refused_naming_the_source():
    """Checked before anything runs and again once dedup has shrunk the sources (pydocs: its
    boilerplate source keeps 93 of 300 documents)."""
    from datamix.config import CurateConfig
    from datamix.proxy.trainers import ProxyTrainer

    ccfg, trainer = CurateConfig(buckets=4, passes=[0.5, 1.0]), ProxyTrainer(model="mlp", batch_size=16, compute_bound=True)
    curate.check_pool_runs(ccfg, trainer, {"a": 400, "b": 128})  # 128 / 4 x 0.5 = 16: one batch
    with pytest.raises(ValueError, match=r"source 'b''s 93 samples left after dedup x min\(curate.passes\)\) is "
                                         r"below one batch of the proxy \(16 samples\)"):
        curate.check_pool_runs(ccfg, trainer, {"a": 400, "b": 93}, after=" left after dedup")


def test_compare_plan_calls_ties_within_two_standard_errors_and_spots_the_same_mixture():
    def mix(measured, runs, ratios, keeps):
        return {"measured": measured, "measured_std": float(np.std(runs, ddof=1)), "measured_runs": runs,
                "ratios": ratios, "keep_fractions": keeps}

    plan = mix(0.90, [0.89, 0.91], {"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 0.3})
    verified = {"plan": plan,
                "unfiltered": mix(0.90, [0.89, 0.91], {"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 1.0}),  # b unused
                "uniform": mix(0.80, [0.79, 0.81], {"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 1.0}),
                "only b": mix(0.895, [0.885, 0.905], {"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 1.0})}
    check = curate.compare_plan(verified, greater_is_better=True)
    assert check["unfiltered"]["outcome"] == "same mixture"
    assert check["uniform"]["outcome"] == "better" and check["uniform"]["difference"] == pytest.approx(0.1)
    assert check["only b"]["outcome"] == "tie"  # 0.005 apart, two s.e. = 2 * sqrt((1e-4 + 1e-4) / 2) = 0.02
    assert check["best single source"]["source"] == "b"


def test_the_epoch_cap_is_the_measured_horizon_unless_the_budget_needs_more(caplog):
    from datamix.config import CurateConfig

    available = {"a": 1000, "b": 3000}
    free = {"min_ratio": 0.0, "max_ratio": None, "thresholds": True}
    ccfg = CurateConfig(passes=[0.5, 1, 4])
    # 4 passes measured; 32k seen over 4k unique needs 8 passes of everything
    assert curate.epoch_caps(ccfg, [1000, 16_000, 32_000], available, free) == [4, 4, 8]
    assert curate.epoch_caps(CurateConfig(passes=[1, 4], max_epochs=2.5), [1000, 32_000], available, free) == [2.5, 2.5]
    # min_ratio asks 0.5 of 'a' at 16k seen: 8 passes of it
    assert curate.epoch_caps(ccfg, [16_000], available, {**free, "min_ratio": {"a": 0.5}}) == [8]
    # a money budget that buys too little of 'b' (1 per sample, 500 bought): no cap, said
    money = {**free, "budget": 500.0, "prices": {"b": 1.0}}
    assert curate.epoch_caps(ccfg, [16_000], available, money) == [None]
    assert "the plan extrapolates the repetition law" in caplog.text
