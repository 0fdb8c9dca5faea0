"""A run killed (SIGKILL) at the first write of each stage, then run again, ends with the same
results, byte for byte, as a run never interrupted; no temporary file is left behind."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datamix.cli import main

# Runs the CLI; the write numbered argv[1] (every file is written by atomic_write's os.replace)
# kills the process before its rename, as a power cut or an OOM kill would. Each write's target
# is logged to argv[2] first.
DRIVER = """
import os, signal, sys
kill_at, log = int(sys.argv[1]), sys.argv[2]
real, count = os.replace, [0]
def replace(src, dst, **kw):
    with open(log, "a") as fh:
        fh.write(os.fspath(dst) + "\\n")
    if count[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    count[0] += 1
    return real(src, dst, **kw)
os.replace = replace
from datamix.cli import main
sys.exit(main(sys.argv[3:]))
"""

# results that do not hold wall times or paths: they must not depend on where a run was killed
RESULTS = ("law.json", "plan.yaml", "plan.json", "frontier.csv", "predictions.csv", "curated")


def _results(out: Path) -> dict:
    files = {}
    for name in RESULTS:
        p = out / name
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                files[str(f.relative_to(out))] = f.read_bytes()
    return files


def _stage(path: str, out: Path) -> str:
    rel = Path(path).relative_to(out)
    return rel.parts[0] if len(rel.parts) > 1 else rel.name


@pytest.fixture(scope="module")
def setup(tmp_path_factory, files, make_vector_config):
    d = tmp_path_factory.mktemp("kills")
    config = make_vector_config(files)
    config["curate"].update(passes=[0.25, 0.5, 1.0, 2.0], seeds=[0, 1])
    cfg = d / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = d / "reference"
    log = d / "reference.log"
    proc = subprocess.run([sys.executable, "-c", DRIVER, "-1", str(log), "run", str(cfg), "--out", str(out), "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    writes = [w for w in log.read_text().splitlines() if Path(w).is_relative_to(out)]
    firsts = {}
    for i, w in enumerate(writes):
        firsts.setdefault(_stage(w, out), i)
    runs = [i for i, w in enumerate(writes) if _stage(w, out) == "runs.csv"]
    firsts["runs.csv, halfway"] = runs[len(runs) // 2]  # some proxy runs recorded, others not yet
    return cfg, out, firsts


def test_the_reference_run_writes_every_stage(setup):
    _, out, firsts = setup
    assert {"config.yaml", "embeddings", "scores", "runs.csv", "plan.yaml", "curated", "metrics.json"} <= set(firsts)
    assert set(_results(out)) >= {"law.json", "plan.yaml", "curated/manifest.json"}


@pytest.mark.parametrize("stage", ["config.yaml", "embeddings", "scores", "runs.csv", "runs.csv, halfway", "law.json",
                                   "plan.yaml", "curated", "report.html", "metrics.json"])
def test_a_kill_at_each_stage_resumes_to_the_same_results(setup, tmp_path, stage):
    cfg, reference, firsts = setup
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(firsts[stage]), str(tmp_path / "log"), "run", str(cfg),
                           "--out", str(out), "-q"], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert list(out.rglob(".*.tmp")), "the kill left no temporary file: it did not hit a write"
    assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    assert not list(out.rglob(".*.tmp"))
    assert _results(out) == _results(reference)
