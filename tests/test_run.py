import json

import numpy as np

from datamix.run import RunDir


def test_cached_result_is_reused_while_its_key_holds(tmp_path):
    run_dir = RunDir(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"mean": np.float64(0.5), "interval": (0.25, 0.75), "missing": float("nan")}

    key = {"plan": {"ratios": {"a": 0.5, "b": 0.5}}, "seeds": (0, 1)}
    first = run_dir.cached("verify.json", key, compute)
    assert first == {"mean": 0.5, "interval": [0.25, 0.75], "missing": None}  # the JSON round trip, both times
    assert run_dir.cached("verify.json", {"plan": {"ratios": {"a": 0.5, "b": 0.5}}, "seeds": [0, 1]},
                          compute) == first
    assert len(calls) == 1
    run_dir.cached("verify.json", {**key, "seeds": (0, 2)}, compute)  # another key: computed again
    assert len(calls) == 2
    assert json.loads((tmp_path / "verify.json").read_text())["key"]["seeds"] == [0, 2]
    (tmp_path / "verify.json").write_text('{"key": ')  # a damaged file (killed mid-write elsewhere) is recomputed
    assert run_dir.cached("verify.json", key, compute) == first and len(calls) == 3


def test_cached_result_is_recomputed_when_its_check_fails(tmp_path):
    run_dir = RunDir(tmp_path)
    produced = tmp_path / "out.txt"

    def compute():
        produced.write_text("data")
        return {"file": produced.name}

    def check(value):
        return (tmp_path / value["file"]).exists()

    run_dir.cached("made.json", {"v": 1}, compute, check=check)
    produced.unlink()  # the result lists a file that is gone: made again
    assert run_dir.cached("made.json", {"v": 1}, compute, check=check) == {"file": "out.txt"}
    assert produced.read_text() == "data"
