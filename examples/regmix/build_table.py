"""Rebuild ``runs.csv`` from RegMix's published files (sail-sg/regmix, ``data/``; MIT licence).

One row per training: ``N`` (model parameters), ``split`` (RegMix's train/test), ``index`` (the
row's index in RegMix's files), the 17 Pile mixture weights (``train_the_pile_<domain>``) and the
13 validation losses (``metric/the_pile_<domain>_val_loss``), joined on ``index``. Kept: the 512
training runs of 1M-parameter models, and the test runs of 60M (256) and 1B (64) models.

    python examples/regmix/build_table.py [REGMIX_DATA_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

PARTS = (("train", "1m", 1e6), ("test", "60m", 6e7), ("test", "1B", 1e9))


def build(data: Path) -> pd.DataFrame:
    frames = []
    for split, size, n in PARTS:
        mixture = pd.read_csv(data / f"{split}_mixture_{size}.csv")
        loss = pd.read_csv(data / f"{split}_pile_loss_{size}.csv")
        frames.append(mixture.merge(loss, on="index").assign(N=n, split=split))
    out = pd.concat(frames, ignore_index=True)
    return out[["N", "split", "index"] + [c for c in out.columns if c not in ("N", "split", "index")]]


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    default = here.parents[2] / "shared" / "data" / "reference" / "regmix"
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else default).to_csv(here / "runs.csv", index=False)
