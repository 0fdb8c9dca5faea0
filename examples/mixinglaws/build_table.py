"""Rebuild ``runs.csv`` from the data-mixing-law runs (yegcjs/mixinglaws, ``data/``; no licence stated).

The 5-domain Pile mixtures ("5Mix") trained at 70M, 160M, 305M, 410M and 1B parameters: one row per
(mixture, model size) with ``N`` (parameters), ``step`` (the training step the losses are read at:
the largest step every mixture of that size reached), ``mixture`` (the source's id), the five
training proportions ``w_domain1`` .. ``w_domain5`` (in the order of the source's
``proportions.txt``, which is not published with the data, hence the neutral names) and the
validation loss on each of the 22 Pile domains (``loss_<domain>``).

    python examples/mixinglaws/build_table.py [MIXINGLAWS_DATA_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

SIZES = {"70M": 7e7, "160M": 1.6e8, "305M": 3.05e8, "410M": 4.1e8, "1B": 1e9}


def build(data: Path) -> pd.DataFrame:
    frames = []
    for size, n in SIZES.items():
        runs = pd.read_csv(data / f"5Mix_{size}.csv")
        step = runs.groupby("proportions")["step"].max().min()  # a step every mixture reached
        runs = runs[runs["step"] == step]
        table = runs.pivot_table(index="proportions", columns="valid_domain", values="loss").add_prefix("loss_")
        parts = table.index.to_series().str.split("-", expand=True).astype(float)
        weights = parts.iloc[:, 1:].set_axis([f"w_domain{i + 1}" for i in range(parts.shape[1] - 1)], axis=1)
        frames.append(pd.concat([weights, table], axis=1).assign(N=n, step=int(step), mixture=parts[0].astype(int))
                      .reset_index(drop=True))
    out = pd.concat(frames, ignore_index=True)
    first = ["N", "step", "mixture"] + [c for c in out.columns if c.startswith("w_")]
    return out[first + [c for c in out.columns if c not in first]].sort_values(["N", "mixture"], kind="stable")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    default = here.parents[2] / "shared" / "data" / "reference" / "mixinglaws"
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else default).to_csv(here / "runs.csv", index=False)
