"""Build runs.csv from parametric_fit_182.csv (params, tokens and unique tokens in billions) in
plain counts, as the data-constrained law takes them. Run from this folder: ``python build_table.py``."""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
d = pd.read_csv(HERE / "parametric_fit_182.csv")
pd.DataFrame({"name": d["name"], "N": (d["params_B"] * 1e9).round().astype("int64"),
              "D": (d["tokens_B"] * 1e9).round().astype("int64"), "U": (d["unique_tokens_B"] * 1e9).round().astype("int64"),
              "val_loss": d["val_loss"]}).to_csv(HERE / "runs.csv", index=False)
