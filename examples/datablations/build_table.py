"""Build runs.csv from parametric_fit_182.csv (params, tokens and unique tokens in billions) in
plain counts, as the data-constrained law takes them. Run from this folder: ``python build_table.py``."""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
d = pd.read_csv(HERE / "parametric_fit_182.csv")
counts = {col: (d[f"{name}_B"] * 1e9).round().astype("int64")
          for col, name in (("N", "params"), ("D", "tokens"), ("U", "unique_tokens"))}
pd.DataFrame({"name": d["name"], **counts, "val_loss": d["val_loss"]}).to_csv(HERE / "runs.csv", index=False)
