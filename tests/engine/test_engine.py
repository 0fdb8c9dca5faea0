"""The local engine, engine selection, and the clear error when Ray is missing (no Ray needed)."""

import sys

import numpy as np
import pytest

from datamix.config import ConfigError, EngineConfig, parse_config
from datamix.engine import LocalEngine, get_engine
from datamix.engine.local import result_rows, task_batch


class Doubler:
    """A shard step: counts how often it is built, returns 2 * x and a per-task array."""

    built = 0

    def __init__(self, factor):
        type(self).built += 1
        self.factor = factor

    def __call__(self, batch):
        x = int(batch["x"][0])
        return {"x": batch["x"], "y": batch["x"] * self.factor, "vec": np.arange(x + 1)[None, :]}


def test_local_engine_builds_the_step_once_and_keeps_task_order():
    Doubler.built = 0
    rows = list(LocalEngine().map_shards(Doubler, [{"x": 3}, {"x": 1}, {"x": 2}], fn_kwargs={"factor": 2},
                                         stage="score"))
    assert Doubler.built == 1
    assert [(r["x"], r["y"]) for r in rows] == [(3, 6), (1, 2), (2, 4)]
    assert isinstance(rows[0]["x"], int)  # numpy scalars come back as Python scalars
    np.testing.assert_array_equal(rows[0]["vec"], [0, 1, 2, 3])
    assert list(LocalEngine().map_shards(Doubler, [], fn_kwargs={"factor": 2}, stage="score")) == []


def scaled(item, *, factor):
    return item * factor


def test_local_engine_maps_tasks_in_order():
    assert list(LocalEngine().map_tasks(scaled, [3, 1, 2], shared={"factor": 2}, stage="measure")) == [
        (0, 6), (1, 2), (2, 4)]
    assert list(LocalEngine().map_tasks(scaled, [], shared={"factor": 2}, stage="measure")) == []


def test_task_batches_and_result_rows():
    assert {k: v.tolist() for k, v in task_batch({"a": 1, "b": "s"}).items()} == {"a": [1], "b": ["s"]}
    with pytest.raises(ValueError, match="different lengths"):
        result_rows({"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(TypeError, match="dict of arrays"):
        result_rows([1, 2])


def test_get_engine_choices():
    assert get_engine(None).name == "local"
    assert get_engine("local").name == "local"
    assert get_engine(EngineConfig()).name == "local"
    assert get_engine(parse_config({"data": {"bundled": "digits"}})).name == "local"
    engine = LocalEngine()
    assert get_engine(engine) is engine
    with pytest.raises(ValueError, match=r"engine='spark'; choose one of \('local', 'ray'\)"):
        get_engine("spark")


def test_engine_config_short_and_long_forms():
    cfg = parse_config({"engine": "local", "data": {"bundled": "digits"}})
    assert cfg.engine.name == "local" and cfg.engine.max_retries == 3
    with pytest.raises(ConfigError, match=r"engine.name: Input should be 'local' or 'ray' \(got 'spark'\)"):
        parse_config({"engine": "spark", "data": {"bundled": "digits"}})
    with pytest.raises(ConfigError,
                       match="unknown key 'engine.resources.train'; allowed keys here: apply, embed, measure, score"):
        parse_config({"engine": {"name": "local", "resources": {"train": {}}}, "data": {"bundled": "digits"}})
    with pytest.raises(ConfigError, match="'address' and 'num_cpus' apply to engine 'ray' only"):
        parse_config({"engine": {"address": "auto"}, "data": {"bundled": "digits"}})
    with pytest.raises(ConfigError, match=r"engine.resources.embed.num_gpus: .*greater than or equal to 0"):
        parse_config({"engine": {"resources": {"embed": {"num_gpus": -1}}}, "data": {"bundled": "digits"}})


@pytest.fixture
def no_ray(monkeypatch):
    """Make ``import ray`` fail as it does where Ray is not installed."""
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)


def test_engine_ray_without_ray_says_how_to_install(no_ray):
    with pytest.raises(ConfigError, match=r"engine: engine 'ray' needs Ray Data, which is not installed .*"
                                          r"pip install 'datamix\[ray\]'"):
        parse_config({"engine": "ray", "data": {"bundled": "digits"}})
    with pytest.raises(ImportError, match=r"pip install 'datamix\[ray\]'"):
        get_engine("ray")
    with pytest.raises(ImportError, match=r"pip install 'datamix\[ray\]'"):
        from datamix.engine.ray import RayEngine

        RayEngine()
