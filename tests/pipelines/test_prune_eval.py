import json

import pandas as pd

from datamix.cli import main

CONFIG = """
pipeline: prune_eval
name: pe
data: {bundled: digits}
score: {metrics: [prototypes, el2n], n_clusters: 10, dynamics_epochs: 5, dynamics_seeds: [0]}
prune_eval: {fractions: [0.2, 1.0], seeds: [0, 1], keeps: [easy, hard], epochs: 5}
"""


def test_prune_eval_pipeline_end_to_end(tmp_path, capsys):
    cfg = tmp_path / "pe.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    table = pd.read_csv(out / "prune_eval" / "table.csv")
    # 2 metrics x 2 directions x 2 fractions x 2 seeds, plus random at 2 fractions x 2 seeds
    assert len(table) == 2 * 2 * 2 * 2 + 2 * 2
    assert set(table["metric"]) == {"prototypes", "el2n", "random"}
    full = table[table["fraction"] == 1.0].groupby("seed")["score"]
    assert (full.max() - full.min()).max() < 1e-9  # keeping everything: one training per seed, whatever the metric
    best = pd.read_csv(out / "prune_eval" / "best_per_size.csv")
    assert list(best["fraction"]) == [0.2, 1.0]
    assert (out / "prune_eval" / "metrics.png").stat().st_size > 10_000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainings"] == len(table)
    scores = pd.read_parquet(out / "scores" / "clean.parquet")
    assert list(scores.columns) == ["id", "prototypes", "el2n"] and len(scores) == 1000


def test_score_command(tmp_path, capsys):
    cfg = tmp_path / "pe.yaml"
    cfg.write_text(CONFIG)
    assert main(["score", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert "near_dup" in capsys.readouterr().out
    assert (tmp_path / "run" / "scores" / "near_dup.parquet").exists()
