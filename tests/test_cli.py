import json
from pathlib import Path

import numpy as np

from datamix.cli import main
from datamix.data import EmbeddingStore
from datamix.data.bundled import load_scenario
from pipelines import curate

ROOT = Path(__file__).resolve().parents[1]


def test_run_quickstart_writes_embeddings_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(ROOT / "configs" / "quickstart.yaml"), "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "plan:" in printed and "report.html" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stages_done"] == list(curate.STAGES)
    for name in ("plan.yaml", "report.html", "runs.csv"):
        assert (out / name).exists(), name
    sc = load_scenario("digits", seed=0)
    for s in sc.sources + [sc.target]:
        store = EmbeddingStore(out / "embeddings" / s.name)
        np.testing.assert_array_equal(store.ids, s.ids)
        np.testing.assert_array_equal(store.load(), s.vectors())
        assert metrics["embed"][s.name]["n"] == len(s)
    assert (out / "config.yaml").exists()
    assert main(["info", str(out)]) == 0
    assert "checksums ok" in capsys.readouterr().out


def test_embed_command_on_local_files(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text('{"v": [1.0, 2.0]}\n{"v": [3.0, 4.0]}\n')
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("name: local\ndata:\n  sources:\n    - {name: a, path: a.jsonl, field: v, kind: vector}\n")
    assert main(["embed", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 0
    np.testing.assert_array_equal(EmbeddingStore(tmp_path / "run" / "embeddings" / "a").load(), [[1, 2], [3, 4]])


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("data:\n  sources:\n    - {name: a, path: missing.jsonl}\n")
    assert main(["embed", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nowhere")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["-v", "embed", str(cfg), "--out", str(tmp_path / "run")]) == 2  # -v: the traceback too
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("datamix: error:") and "missing.jsonl" in err.splitlines()[-1]


def test_info_describes_the_install(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "datamix 0.1.0" in out and "bundled scenario 'digits'" in out


def test_stage_commands_stop_after_their_stage_and_refuse_stages_a_pipeline_lacks(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(ROOT / "configs" / "quickstart.yaml"), "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "stages done: embed, score, measure, fit\n" in printed and "law: mean abs. relative error" in printed
    assert (out / "law.json").exists() and not (out / "plan.yaml").exists()
    assert main(["apply", str(ROOT / "configs" / "prune_eval.yaml"), "--out", str(tmp_path / "pe")]) == 2
    err = capsys.readouterr().err
    assert "prune_eval pipeline" in err and "no stage 'apply'" in err
