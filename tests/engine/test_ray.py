"""engine: ray gives what engine: local gives, and a worker killed mid-stage loses no sample.

One local Ray instance with 2 CPUs serves the whole module (conftest.ray_cluster).
"""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from datamix.apply import apply_plan  # noqa: E402
from datamix.config import parse_config  # noqa: E402
from datamix.data import EmbeddingStore, Source  # noqa: E402
from datamix.data.bundled import load_scenario  # noqa: E402
from datamix.data.store import MANIFEST  # noqa: E402
from datamix.embed import embed  # noqa: E402
from datamix.engine import get_engine  # noqa: E402
from datamix.engine.ray import RayEngine  # noqa: E402
from datamix.optimize import Plan  # noqa: E402
from datamix.run import RunDir, embed_stage, load_sources, score_stage  # noqa: E402

pytestmark = pytest.mark.ray

# classes defined here travel to the Ray workers by value (the workers cannot import this file)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def manifest_shards(path):
    return {r["index"]: r for r in json.loads((path / MANIFEST).read_text())["shards"]}


def test_text_embeddings_are_bitwise_those_of_the_local_engine(ray_cluster, minilm, tmp_path):
    """The bundled pydocs texts (a slice, to keep the test short) embedded by MiniLM on two actors."""
    full = load_scenario("pydocs", seed=0).sources[0]
    src = Source(name=full.name, dataset=full.dataset.select(range(80)), field=full.field,
                 label_field=full.label_field, origin=full.origin)
    local = embed(src, minilm, store=tmp_path / "local", shard_size=32, progress=False)
    on_ray = embed(src, "minilm", store=tmp_path / "ray", shard_size=32, progress=False, device="cpu",
                   engine=RayEngine(max_retries=1))
    assert on_ray.model == local.model == "sentence-transformers/all-MiniLM-L6-v2"
    np.testing.assert_array_equal(on_ray.load(), local.load())  # bitwise
    np.testing.assert_array_equal(on_ray.ids, src.ids)
    assert ({k: r["sha256"] for k, r in manifest_shards(tmp_path / "ray").items()}
            == {k: r["sha256"] for k, r in manifest_shards(tmp_path / "local").items()})


def stage_config(engine):
    return parse_config({"engine": engine, "data": {"bundled": "digits"}, "embed": {"shard_size": 400},
                         "score": {"metrics": ["prototypes", "density"]}})


def test_embed_score_and_apply_stages_match_the_local_engine(ray_cluster, tmp_path):
    """The run stages on the bundled digits with engine: ray, then the same with engine: local."""
    runs = {}
    for name, engine in (("local", "local"), ("ray", {"name": "ray", "resources": {"score": {"concurrency": 2}}})):
        cfg = stage_config(engine)
        assert cfg.engine.name == name
        run = RunDir(tmp_path / name)
        sources, _ = load_sources(cfg, run)
        summary = embed_stage(cfg, run, sources, progress=False)
        assert {s["engine"] for s in summary.values()} == {name}
        score_stage(cfg, run, sources)
        scores = {s.name: pd.read_parquet(run.path("scores", f"{s.name}.parquet")) for s in sources}
        quality = {n: -t["prototypes"].to_numpy() for n, t in scores.items()}
        keep = {"clean": 0.7, "noisy_labels": 0.4, "near_dup": 0.5}
        epochs = {"clean": 1.5, "noisy_labels": 1.0, "near_dup": 2.0}
        units = {s.name: epochs[s.name] * keep[s.name] * len(s) for s in sources if s.name in epochs}  # implied ratios
        plan = Plan(ratios={n: u / sum(units.values()) for n, u in units.items()}, keep_fractions=keep,
                    epochs=epochs)
        manifest = apply_plan(plan, sources, quality, run.path("curated"), shard_size=150, engine=cfg.engine)
        runs[name] = (run, sources, scores, manifest)

    (run_l, sources, scores_l, manifest_l), (run_r, _, scores_r, manifest_r) = runs["local"], runs["ray"]
    for s in sources:  # same embeddings, shard for shard
        assert manifest_shards(run_r.embeddings(s.name)) == manifest_shards(run_l.embeddings(s.name))
        pd.testing.assert_frame_equal(scores_r[s.name], scores_l[s.name], check_exact=True)
    assert manifest_r == manifest_l  # same selected ids, repetitions and shard checksums
    curated = pd.concat([pd.read_parquet(run_r.path("curated", *sh["file"].split("/")))
                         for src in manifest_r["sources"].values() for sh in src["shards"]])
    assert curated["datamix_id"].is_unique and len(curated) == manifest_r["total_unique"]


class DiesOnce:
    """The identity encoder, except that its worker process dies (os._exit, like a kill -9 or the
    OOM killer) the first time it meets the row ``trigger``; a marker file makes it once."""

    name = "identity"

    def __init__(self, trigger, marker):
        self.trigger, self.marker = np.asarray(trigger, dtype=np.float32), str(marker)

    def encode(self, X):
        X = np.asarray(X, dtype=np.float32)
        if (X == self.trigger).all(axis=1).any() and not os.path.exists(self.marker):
            with open(self.marker, "w") as fh:
                fh.write(str(os.getpid()))
            os._exit(1)
        return X


def digits_clean():
    return load_scenario("digits", seed=0).source("clean")  # 1000 x 64 vectors


def test_worker_killed_mid_stage_is_restarted_without_losing_or_doubling_samples(ray_cluster, tmp_path):
    src = digits_clean()
    local = embed(src, store=tmp_path / "local", shard_size=100, progress=False)
    dies = DiesOnce(src.vectors(450, 451)[0], tmp_path / "died")  # in shard 4 of 10
    store = embed(src, dies, store=tmp_path / "ray", shard_size=100, progress=False, engine=RayEngine(max_retries=2))
    assert (tmp_path / "died").exists()  # a worker did die mid-stage
    assert int((tmp_path / "died").read_text()) != os.getpid()
    ids = store.ids
    assert len(ids) == len(src) and len(np.unique(ids)) == len(src)  # every id exactly once
    np.testing.assert_array_equal(ids, src.ids)
    np.testing.assert_array_equal(store.load(), local.load())
    store.verify()
    assert not list((tmp_path / "ray").glob(".*.tmp"))


def test_stage_failed_by_a_kill_resumes_at_shard_level_when_run_again(ray_cluster, tmp_path):
    src = digits_clean()
    dies = DiesOnce(src.vectors(650, 651)[0], tmp_path / "died")  # in shard 6 of 10
    with pytest.raises(Exception, match="(?i)died|exit|actor|worker|crash"):
        embed(src, dies, store=tmp_path / "s", shard_size=100, progress=False, engine=RayEngine(max_retries=0))
    assert (tmp_path / "died").exists()
    partial = EmbeddingStore(tmp_path / "s", allow_partial=True)
    done = {r.index for r in partial.shards}
    assert 6 not in done and len(partial) < len(src)
    assert len(np.unique(partial.ids)) == len(partial.ids)
    mtimes = {k: (tmp_path / "s" / f"shard-{k:06d}.npy").stat().st_mtime_ns for k in done}
    store = embed(src, dies, store=tmp_path / "s", shard_size=100, progress=False, engine=get_engine("ray"))
    np.testing.assert_array_equal(store.ids, src.ids)  # every id exactly once, in order
    np.testing.assert_array_equal(store.load(), src.vectors())
    assert {k: (tmp_path / "s" / f"shard-{k:06d}.npy").stat().st_mtime_ns for k in done} == mtimes  # kept


def test_a_bad_row_fails_the_stage_with_the_error_the_local_engine_gives(ray_cluster, tmp_path):
    X = np.ones((30, 4), dtype=np.float32)
    X[17, 2] = np.nan
    src = Source.from_arrays("v", X)
    with pytest.raises(ValueError, match=r"source 'v' \(arrays\): rows \[17\] hold NaN or inf"):
        embed(src, store=tmp_path / "local", shard_size=10, progress=False)
    with pytest.raises(ValueError, match=r"source 'v' \(arrays\): rows \[17\] hold NaN or inf"):
        embed(src, store=tmp_path / "ray", shard_size=10, progress=False, engine=get_engine("ray"))
    if (tmp_path / "ray" / MANIFEST).exists():  # shards done before the failure may be listed, never shard 1
        assert 1 not in {r.index for r in EmbeddingStore(tmp_path / "ray", allow_partial=True).shards}


def test_actor_resources_per_stage(ray_cluster, monkeypatch):
    engine = RayEngine(resources={"score": {"num_cpus": 1, "num_gpus": None, "concurrency": 5}})
    assert engine.stage_options("embed", 10) == {"num_cpus": 1.0, "num_gpus": 0.0, "size": 2}  # 2 CPUs, no GPU
    assert engine.stage_options("embed", 1)["size"] == 1  # never more actors than shards
    assert engine.stage_options("score", 10)["size"] == 5
    with pytest.raises(ValueError, match=r"engine.resources.embed.num_gpus=1 but the Ray cluster has 0 GPUs"):
        RayEngine(resources={"embed": {"num_gpus": 1}}).stage_options("embed", 4)
    with pytest.raises(ValueError, match=r"resources for unknown stage 'train'"):
        RayEngine(resources={"train": {}})
    # on a cluster with GPUs, each embedding actor takes one by default; the other stages none
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 2.0})
    assert engine.stage_options("embed", 10) == {"num_cpus": 1.0, "num_gpus": 1.0, "size": 2}
    assert engine.stage_options("apply", 40) == {"num_cpus": 1.0, "num_gpus": 0.0, "size": 16}
    # a proxy training takes one too, unless its trainer runs on the CPU
    assert engine.stage_options("measure", 40) == {"num_cpus": 1.0, "num_gpus": 1.0, "size": 2}
    assert engine.stage_options("measure", 40, use_gpu=False) == {"num_cpus": 1.0, "num_gpus": 0.0, "size": 16}
