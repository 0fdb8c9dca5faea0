"""One writer per run directory: a second run on the same --out is refused before it writes."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pipelines.curate as curate
import pipelines.purchase as purchase
from datamix.cli import main
from datamix.config import load_config
from datamix.run import LOCK_FILE, RunDir, RunDirBusy

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
fcntl = pytest.importorskip("fcntl")


def test_a_second_writer_in_this_process_is_refused_before_writing(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    with run_dir.lock():
        holder = (run_dir.root / LOCK_FILE).read_text()
        assert f"pid {os.getpid()} on host" in holder
        for pipeline in (curate, purchase):
            with pytest.raises(RunDirBusy, match=rf"run directory .*run is in use by another datamix run \(pid "
                                                 rf"{os.getpid()} on host .*\); wait for it to finish"):
                pipeline.run(load_config(QUICKSTART), RunDir(run_dir.root), progress=False)
        assert sorted(p.name for p in run_dir.root.iterdir()) == [LOCK_FILE]  # nothing written
    with run_dir.lock():  # released at the end of the block
        pass
    assert not (run_dir.root / LOCK_FILE).exists()  # and removed: a finished run leaves no trace


def test_the_cli_refuses_a_directory_another_process_writes_and_takes_it_once_that_process_dies(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from datamix.run import RunDir\n"
         f"with RunDir({str(out)!r}).lock():\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        for command in ("run", "embed", "score"):
            assert main([command, str(QUICKSTART), "--out", str(out), "-q"]) == 2
            err = capsys.readouterr().err
            assert f"is in use by another datamix run (pid {holder.pid} on host" in err and "Traceback" not in err
        assert not (out / "config.yaml").exists() and not (out / "embeddings").exists()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the OS drops a dead process's lock
        try:
            with RunDir(out).lock():
                break
        except RunDirBusy:
            assert time.monotonic() < deadline
            time.sleep(0.1)
