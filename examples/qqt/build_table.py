"""Build runs.csv from the published QQT parameters (only parameters are published, not runs).

Evaluates the reference code's law (``QualityQuantity(form="reference")``) with the T-MARS
ImageNet utility fit (``qqt_parameter_values.jsonl``, record ``tmars_imagenet1k_utility``) for the
four 10% quality buckets of 12.8M samples, at 1/4 to 16 passes over each bucket, and adds 0.3%
seeded multiplicative noise so that the held-out errors are not zero. Run from this folder:
``python build_table.py``.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from datamix.laws import QualityQuantity

HERE = Path(__file__).parent
POOL_SIZE = 12.8e6
PASSES = (0.25, 0.5, 1, 2, 4, 8, 16)
NOISE = 0.001

record = next(r for r in map(json.loads, (HERE / "qqt_parameter_values.jsonl").read_text().splitlines())
              if r["id"] == "tmars_imagenet1k_utility")
pools = record["names"][:4]  # best first: top 0-10%, 10-20%, 20-30%, 30-40%
params = {"a": record["best_a"], "d": record["d_value"],
          **{f"b[{q}]": b for q, b in zip(pools, record["b_values"])},
          **{f"tau[{q}]": t for q, t in zip(pools, record["c_values"])}}
law = QualityQuantity.from_params(params, form="reference")
X = pd.DataFrame([{"pool": q, "n": POOL_SIZE * k, "S": POOL_SIZE} for q in pools for k in PASSES])
error = law.predict(X) * (1 + NOISE * np.random.default_rng(0).standard_normal(len(X)))
table = pd.DataFrame({"pool": X["pool"], "seen": X["n"].astype(int), "unique": X["S"].astype(int),
                      "imagenet_error": error.round(6)})
table.to_csv(HERE / "runs.csv", index=False)
