import math

import numpy as np
import pytest

from datamix.optimize import Plan, fingerprint


def plan():
    return Plan(ratios={"web": np.float64(0.7), "books": 0.3}, keep_fractions={"web": 0.5, "books": 1.0},
                thresholds={"web": 0.31, "books": math.nan}, epochs={"web": 1.4, "books": 2.0},
                buy={"books": np.int64(1200)}, predicted=0.8123456789, interval=(0.8, 0.82),
                provenance={"seed": 0, "laws": {"a": np.float32(1.5)}, "inputs": {"web": fingerprint(np.arange(3))}})


def test_yaml_and_json_round_trip(tmp_path):
    p = plan()
    back = Plan.from_yaml(p.to_yaml())
    assert back.ratios == p.ratios and back.buy == {"books": 1200} and back.interval == (0.8, 0.82)
    assert math.isnan(back.thresholds["books"]) and back.predicted == p.predicted
    assert Plan.from_yaml(back.to_yaml()).to_yaml() == p.to_yaml()
    path = tmp_path / "plan.yaml"
    p.to_yaml(path)
    assert Plan.from_yaml(path).to_yaml() == path.read_text()
    assert Plan.from_json(p.to_json()).to_json() == p.to_json()


def test_same_plan_same_bytes():
    assert plan().to_yaml() == plan().to_yaml()


def test_fingerprint_tells_inputs_apart():
    assert fingerprint(np.arange(3)) == fingerprint(np.arange(3))
    assert fingerprint(np.arange(3)) != fingerprint(np.arange(3.0))
    assert fingerprint(np.array(["a", "b"], dtype=object)) != fingerprint(np.array(["a", "c"], dtype=object))


@pytest.mark.parametrize("kwargs,match", [
    (dict(ratios={"a": 0.5, "b": 0.4}), "sum to 0.9"),
    (dict(ratios={"a": 1.0}, buy={"b": 3}), r"plan.buy names sources \['b'\]"),
    (dict(ratios={"a": 1.0}, interval=(1.0,)), "must be \\(lo, hi\\)"),
])
def test_invalid_plans(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Plan(**kwargs)


def test_unknown_keys_in_a_plan_file():
    with pytest.raises(ValueError, match="unknown plan keys \\['ratio'\\]"):
        Plan.from_yaml("ratio: {a: 1.0}\n")
