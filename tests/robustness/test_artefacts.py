"""Artefacts a later stage reuses are checked against what they were made from: a damaged one is
reported by name and recomputed, never used; plans are checked, an edited plan.yaml is used as it
is; a rerun removes what an earlier plan or a killed write left; outputs respect the umask."""

import json
import logging
import os
import re
import stat

import numpy as np
import pandas as pd
import pytest
import yaml

import pipelines.curate as curate
from datamix.apply import apply_plan
from datamix.cli import main
from datamix.config import load_config
from datamix.data import EmbeddingStore, Source, StoreError
from datamix.embed import embed
from datamix.optimize import Plan
from datamix.optimize.plan import check_plan
from datamix.proxy.runs import RunsTable
from datamix.proxy.trainers import ProxyTrainer, _train_logistic
from datamix.run import RunDir



def _flip_last_byte(path):
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))


def test_an_altered_shard_or_ids_file_is_refused_by_name_on_read_and_recomputed(tmp_path):
    X = np.random.default_rng(0).normal(size=(25, 4)).astype(np.float32)
    src = Source.from_arrays("vec", X)
    embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    _flip_last_byte(tmp_path / "s" / "shard-000001.npy")
    store = EmbeddingStore(tmp_path / "s")  # opening reads no data
    with pytest.raises(StoreError, match=r"shard-000001.npy: checksum mismatch"):
        store.load()
    with pytest.raises(StoreError, match=r"shard-000001.npy: checksum mismatch"):
        list(store.iter_batches())
    embed(src, store=tmp_path / "s", shard_size=10, progress=False)  # the resumed stage rewrites it
    np.testing.assert_array_equal(EmbeddingStore(tmp_path / "s").load(), X)
    ids = tmp_path / "s" / "shard-000002.ids.npy"
    np.save(ids, np.array(["vec:0"] * 5))  # a valid .npy, other ids
    with pytest.raises(StoreError, match=r"shard-000002.ids.npy: checksum mismatch"):
        EmbeddingStore(tmp_path / "s").ids
    assert main(["info", str(tmp_path / "s")]) == 2
    store = embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    np.testing.assert_array_equal(store.ids, src.ids)


def test_an_altered_runs_table_row_is_not_reused(tmp_path, caplog):
    table = RunsTable(tmp_path / "runs.csv")
    row = {"run_id": "r1", "data_key": "k", "trainer": "t", "size": 10, "seed": 0, "p_a": 1.0, "metric": 0.5,
           "metric_name": "accuracy", "loss": 1.0, "n_train": 10, "wall_s": 0.1, "created": "x"}
    table.append([row, {**row, "run_id": "r2", "metric": 0.6}])
    assert table.read()["run_id"].tolist() == ["r1", "r2"]
    text = (tmp_path / "runs.csv").read_text().replace(",0.6,", ",0.9,")  # someone "improves" a result
    (tmp_path / "runs.csv").write_text(text)
    with caplog.at_level(logging.WARNING):
        assert RunsTable(tmp_path / "runs.csv").read()["run_id"].tolist() == ["r1"]
    assert "do not match their check" in caplog.text and "r2" in caplog.text


def _plan(**changes):
    base = dict(ratios={"a": 0.375, "b": 0.625}, keep_fractions={"a": 0.5, "b": 1.0}, epochs={"a": 1.2, "b": 2.0})
    return Plan(**{**base, **changes})


@pytest.mark.parametrize("changes, match", [
    ({"ratios": {"a": -0.5, "b": 1.5}}, r"ratios.a = -0.5 is outside \[0, 1\]"),
    ({"keep_fractions": {"a": 0.0, "b": 1.0}}, r"keep_fractions.a = 0.0 is outside \(0, 1\]"),
    ({"keep_fractions": {"a": 1.5, "b": 1.0}}, r"keep_fractions.a = 1.5 is outside"),
    ({"epochs": {"a": 1e9, "b": 2.0}}, r"epochs.a = 1000000000.0 is outside \[0, 1000\]"),
    ({"epochs": {"a": float("nan"), "b": 2.0}}, r"epochs.a = nan is outside"),
    ({"epochs": {"a": 1.2, "b": 5.0}}, r"epochs do not agree with the ratios .*a: 32, b: 80"),
    ({"epochs": {"a": 0.0, "b": 2.0}}, r"epochs.a = 0.0 with ratios.a = 0.375: a source is trained on"),
    ({"ratios": {"a": 0.375, "c": 0.625}, "keep_fractions": {}, "epochs": {}}, r"the plan uses sources \['c'\] that were not given"),
])
def test_a_plan_is_checked_before_it_is_applied(tmp_path, changes, match):
    sources = [Source.from_arrays("a", [f"text a{i}" for i in range(20)]),
               Source.from_arrays("b", np.arange(30, dtype=np.float32).reshape(10, 3))]
    with pytest.raises(ValueError, match=match):
        apply_plan(_plan(**changes), sources, {"a": np.arange(20.0)}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_plan_without_epochs_gets_them_from_its_ratios():
    plan = check_plan(Plan(ratios={"a": 0.25, "b": 0.75}, provenance={"tokens": 40}), {"a": 20, "b": 10})
    assert plan.epochs == {"a": 0.5, "b": 3.0}  # 10 of a's 20, 30 of b's 10
    plan = check_plan(Plan(ratios={"a": 0.5, "b": 0.5}), {"a": 20, "b": 10})  # no tokens: one pass on average
    assert plan.epochs == {"a": 0.75, "b": 1.5}


def test_a_source_held_at_the_plans_epoch_cap_may_imply_fewer_tokens_but_no_more():
    # b, held at the cap of 2 epochs, supplies 20 of the 40 tokens its ratio would ask: accepted
    capped = {"ratios": {"a": 0.5, "b": 0.5}, "provenance": {"max_epochs": 2.0}}
    assert check_plan(Plan(**capped, epochs={"a": 1.0, "b": 2.0}), {"a": 20, "b": 10}).epochs["b"] == 2.0
    with pytest.raises(ValueError, match=r"epochs do not agree .*a: 40, b: 60"):  # b past its cap, implying more
        check_plan(Plan(**capped, epochs={"a": 1.0, "b": 3.0}), {"a": 20, "b": 10})
    with pytest.raises(ValueError, match=r"epochs do not agree .*a: 40, b: 60"):  # at the cap, still more
        check_plan(Plan(ratios={"a": 0.5, "b": 0.5}, provenance={"max_epochs": 3.0}, epochs={"a": 1.0, "b": 3.0}),
                   {"a": 20, "b": 10})


def test_logistic_repeats_are_weights_not_copies():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), np.arange(30) % 2
    X[:, 0] += 2 * y
    Xt, yt = rng.normal(size=(50, 3)), np.arange(50) % 2
    trainer = ProxyTrainer(model="logistic")
    out = trainer.train_mixture([(X, y)], ["a"], np.array([95]), (Xt, yt), seed=0)  # 3 passes and 5 rows
    from datamix.data.sources import draw_rows

    rows = draw_rows("a", 30, 95, 0)
    expected = _train_logistic(X[rows], y[rows], Xt, yt, np.array([0, 1]), C=trainer.C, max_iter=trainer.max_iter)
    assert out["seen"] == 95 and out["unique"] == 30
    np.testing.assert_allclose([out["metric"], out["loss"]], expected, rtol=1e-6)
    huge = trainer.train_mixture([(X, y)], ["a"], np.array([10**12]), (Xt, yt), seed=0)  # would be 24 TB copied
    assert huge["seen"] == 10**12


def test_epoch_based_torch_repeats_are_positions_not_copies():
    from datamix.data.sources import draw_rows
    from datamix.proxy.trainer import train_proxy

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(30, 3)).astype(np.float32), np.arange(30) % 3
    X[:, 0] += y
    Xt, yt = rng.normal(size=(40, 3)).astype(np.float32), np.arange(40) % 3
    trainer = ProxyTrainer(model="mlp", epochs=3, batch_size=8, hidden=8)
    out = trainer.train_mixture([(X, y)], ["a"], np.array([75]), (Xt, yt), seed=0)  # 2.5 passes
    rows = draw_rows("a", 30, 75, 0)
    copied = train_proxy(X[rows], y[rows], Xt, yt, model="mlp", epochs=3, batch_size=8, hidden=8, lr=trainer.lr,
                         weight_decay=trainer.weight_decay, classes=np.arange(3), seed=0, device="cpu")
    np.testing.assert_allclose([out["metric"], out["loss"]], [copied.accuracy, copied.loss], rtol=1e-5)
    assert out["seen"] == 75 and out["unique"] == 30
    with pytest.raises(ValueError, match=r"rows must be a non-empty 1-D array of row numbers in \[0, 30\)"):
        train_proxy(X, y, rows=np.array([0, 30]))


@pytest.fixture
def done(tmp_path, files, make_vector_config, capsys):
    cfg = tmp_path / "cfg.yaml"
    config = make_vector_config(files)
    config["curate"].update(passes=[0.25, 0.5, 1.0, 2.0], seeds=[0, 1])  # enough pool runs for a QQT fit
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  plan: ratios"))
    ratios, keep = map(yaml.safe_load, re.search(r"ratios (\{.*?\}), keep (\{.*?\})", line).groups())
    assert set(keep) == set(ratios)  # the summary shows what the plan uses, unused sources nowhere
    return cfg, out


def test_damaged_scores_runs_and_shards_are_named_and_recomputed_to_the_same_plan(done, caplog, capsys):
    cfg, out = done
    plan = (out / "plan.yaml").read_bytes()
    _flip_last_byte(out / "scores" / "web.npy")
    _flip_last_byte(out / "embeddings" / "books" / "shard-000000.npy")
    runs = pd.read_csv(out / "runs.csv")
    runs.loc[0, "metric"] = 0.999
    runs.to_csv(out / "runs.csv", index=False)
    with caplog.at_level(logging.WARNING):
        assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    assert "web.npy does not match its checksum" in caplog.text
    assert "books: shard 0 is damaged" in caplog.text or "shard-000000.npy: checksum mismatch" in caplog.text
    assert "1 row(s) do not match their check" in caplog.text
    assert (out / "plan.yaml").read_bytes() == plan
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runs"]["trained"] == 1


def test_an_edited_plan_is_used_as_it_is_and_a_bad_edit_refused_by_name(done, capsys):
    cfg, out = done
    plan = yaml.safe_load((out / "plan.yaml").read_text())
    kept = {n: plan["provenance"]["kept"][n] for n in plan["ratios"]}
    plan["ratios"] = {"web": 0.25, "books": 0.75}
    plan["keep_fractions"] = {"web": 0.5, "books": 1.0}
    available = plan["provenance"]["available"]
    tokens = 40
    plan["epochs"] = {n: plan["ratios"][n] * tokens / (plan["keep_fractions"][n] * available[n]) for n in kept}
    edited = yaml.safe_dump(plan)
    (out / "plan.yaml").write_text(edited)
    capsys.readouterr()
    assert main(["apply", str(cfg), "--out", str(out), "-q"]) == 0
    assert "plan.yaml was edited by hand: used as it is" in capsys.readouterr().out
    assert (out / "plan.yaml").read_text() == edited  # not overwritten
    manifest = json.loads((out / "curated" / "manifest.json").read_text())
    assert manifest["sources"]["web"]["unique"] == 10 and manifest["sources"]["web"]["samples"] == 10
    assert manifest["sources"]["books"]["samples"] == 30
    plan["epochs"]["web"] = 7.0  # no longer what the ratios say
    (out / "plan.yaml").write_text(yaml.safe_dump(plan))
    assert main(["apply", str(cfg), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "plan.yaml: epochs do not agree with the ratios" in err and "Traceback" not in err
    assert json.loads((out / "curated" / "manifest.json").read_text()) == manifest  # left as it was
    (out / "plan.yaml").unlink()  # deleted: datamix plans again
    assert main(["apply", str(cfg), "--out", str(out), "-q"]) == 0
    assert "edited by hand" not in capsys.readouterr().out


def test_another_config_is_refused_and_restart_removes_the_old_results(done, capsys):
    cfg, out = done
    other = yaml.safe_load(cfg.read_text())
    other["curate"]["sources"] = ["web"]
    path = cfg.parent / "other.yaml"
    path.write_text(yaml.safe_dump(other))
    assert main(["run", str(path), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "holds a run of another config (differs in curate.sources)" in err and "--restart" in err
    assert (out / "curated" / "books").is_dir()
    assert main(["run", str(path), "--out", str(out), "-q", "--restart"]) == 0
    assert not (out / "curated" / "books").exists()  # no shard of the excluded source is left
    assert sorted(p.name for p in (out / "curated").iterdir()) == ["manifest.json", "web"]
    assert load_config(out / "config.yaml").curate.sources == ["web"]


def test_orphan_temporary_files_are_removed_and_outputs_follow_the_umask(done):
    cfg, out = done
    orphans = [out / ".plan.yaml.abc123.tmp", out / "curated" / "books" / ".shard-00000.parquet.x.tmp"]
    for p in orphans:
        p.write_text("left by a killed write")
    (out / "plan.yaml").unlink()
    old = os.umask(0o027)
    try:
        assert main(["optimize", str(cfg), "--out", str(out), "-q"]) == 0
    finally:
        os.umask(old)
    assert not any(p.exists() for p in orphans)
    assert stat.S_IMODE((out / "plan.yaml").stat().st_mode) == 0o640
