import json

import numpy as np
import pytest

from datamix.apply import apply_plan, manifest_intact, select_rows
from datamix.data import Source
from datamix.data.store import file_sha256
from datamix.optimize import Plan


def test_select_rows_known_answer():
    sel = select_rows(np.array([0.1, 0.9, 0.5, 0.7]), 0.5, 1.5, name="s")
    np.testing.assert_array_equal(sel.rows, [1, 3])
    assert sorted(sel.repeats.tolist()) == [1, 2] and sel.threshold == 0.7


def test_select_rows_counts_and_ties():
    scores = np.zeros(10)  # all tied: row order decides
    sel = select_rows(scores, 0.3, 2.0)
    np.testing.assert_array_equal(sel.rows, [0, 1, 2])
    np.testing.assert_array_equal(sel.repeats, [2, 2, 2])
    sel = select_rows(np.arange(10.0), 1.0, 0.25, seed=3)  # fewer samples than rows
    assert sel.repeats.sum() == 2 and len(sel.rows) == 2


def test_select_rows_by_units_keeps_the_units_seen():
    # ten documents of 100 units, best last; keep 0.25 of 1000 units = 250: three whole documents (300)
    sizes, scores = np.full(10, 100.0), np.arange(10.0)
    sel = select_rows(scores, 0.25, 2.0, sizes=sizes)
    np.testing.assert_array_equal(sel.rows, [7, 8, 9])
    # 2 epochs of the 250 planned units: 500 seen, 5 documents' worth (not 2 passes over 300 = 600)
    assert (sel.repeats * sizes[sel.rows]).sum() == 500
    assert sorted(sel.repeats.tolist()) == [1, 2, 2]


@pytest.mark.parametrize("args,match", [((np.ones(3), 0.0, 1.0), "keep_fraction=0.0"),
                                        ((np.ones(3), 0.5, -1.0), "epochs=-1.0"),
                                        ((np.array([1.0, np.nan]), 0.5, 1.0), "finite")])
def test_select_rows_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        select_rows(*args)


def sources():
    a = Source.from_arrays("a", [f"text a{i}" for i in range(20)], labels=np.arange(20) % 2)
    b = Source.from_arrays("b", np.arange(30, dtype=np.float32).reshape(10, 3))
    return [a, b]


def plan():
    # 32 samples: 12 of a (10 kept, 1.2 epochs), 20 of b (all 10 kept, 2 epochs)
    return Plan(ratios={"a": 0.375, "b": 0.625}, keep_fractions={"a": 0.5, "b": 1.0}, epochs={"a": 1.2, "b": 2.0})


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_apply_plan_writes_what_the_plan_says(tmp_path, fmt):
    import datasets

    scores = {"a": np.arange(20.0)}  # rows 10..19 are best
    manifest = apply_plan(plan(), sources(), scores, tmp_path / "out", format=fmt, shard_size=4)
    assert manifest["sources"]["a"]["unique"] == 10 and manifest["sources"]["a"]["samples"] == 12
    assert manifest["sources"]["b"]["samples"] == 20 and manifest["total_samples"] == 32
    assert manifest["sources"]["a"]["threshold"] == 10.0
    files = [tmp_path / "out" / s["file"] for src in manifest["sources"].values() for s in src["shards"]]
    for f, rec in zip(files, [s for src in manifest["sources"].values() for s in src["shards"]]):
        assert file_sha256(f) == rec["sha256"]
    reader = datasets.Dataset.from_parquet if fmt == "parquet" else datasets.Dataset.from_json
    a = datasets.concatenate_datasets([reader(str(f)) for f in files if "/a/" in str(f)])
    assert sorted(a["datamix_id"]) == sorted(f"a:{i}" for i in range(10, 20))
    assert sum(a["datamix_repeats"]) == 12 and set(a["datamix_source"]) == {"a"}
    assert a.filter(lambda r: r["datamix_id"] == "a:13")["sample"] == ["text a13"]
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest


def test_rerun_gives_identical_outputs(tmp_path):
    scores = {"a": np.arange(20.0)}
    apply_plan(plan(), sources(), scores, tmp_path / "out")
    first = (tmp_path / "out" / "manifest.json").read_bytes()
    apply_plan(plan(), sources(), scores, tmp_path / "out")
    assert (tmp_path / "out" / "manifest.json").read_bytes() == first


def test_manifest_intact_detects_missing_altered_and_other_outputs(tmp_path):
    out = tmp_path / "out"
    manifest = apply_plan(plan(), sources(), {"a": np.arange(20.0)}, out, shard_size=4)
    assert manifest_intact(out, manifest)
    other = apply_plan(plan(), sources(), {"a": -np.arange(20.0)}, tmp_path / "other", shard_size=4)
    assert not manifest_intact(out, other)  # another selection: a different manifest on disk
    shard = out / manifest["sources"]["b"]["shards"][1]["file"]
    shard.write_bytes(shard.read_bytes()[:-1])
    assert not manifest_intact(out, manifest)
    shard.unlink()
    assert not manifest_intact(out, manifest)
    assert not manifest_intact(tmp_path / "nowhere", manifest)


def test_apply_plan_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"sources \['b'\] that were not given"):
        apply_plan(plan(), sources()[:1], {"a": np.zeros(20)}, tmp_path)
    with pytest.raises(ValueError, match="source 'a' is filtered \\(keep_fraction 0.5\\) but has no scores"):
        apply_plan(plan(), sources(), {}, tmp_path)
    with pytest.raises(ValueError, match="scores of source 'a' have 3 values for 20 rows"):
        apply_plan(plan(), sources(), {"a": np.zeros(3)}, tmp_path)
    assert not (tmp_path / "manifest.json").exists()
