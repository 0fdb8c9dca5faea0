"""Loaders of the published reference data used by the ``benchmarks/laws_*.py`` scripts.

The data live in ``../shared/data/reference/`` relative to the repository root (see its README);
every script takes ``--reference DIR`` to point elsewhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference"
PILE_CC = "metric/the_pile_pile_cc_val_loss"


def parse_args(doc: str, extra=None) -> argparse.Namespace:
    """Command line with ``--reference DIR`` (and the options ``extra(parser)`` adds)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE,
                    help=f"folder of the published data (default: {DEFAULT_REFERENCE})")
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    if not (args.reference / "README.md").exists():
        ap.error(f"--reference {args.reference} does not look like shared/data/reference (no README.md)")
    return args


def chinchilla(ref: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The 245 Chinchilla points less the 5 highest losses; D = FLOP / (6 N)."""
    d = pd.read_csv(ref / "chinchilla" / "svg_extracted_data.csv").sort_values("loss").iloc[:-5]
    N = d["Model Size"].to_numpy()
    return pd.DataFrame({"N": N, "D": d["Training FLOP"].to_numpy() / (6 * N)}), d["loss"].to_numpy()


def datablations_182(ref: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Final losses of the 182 data-constrained runs (parameters, tokens, unique tokens)."""
    d = pd.read_csv(ref / "datablations" / "parametric_fit_182.csv")
    X = pd.DataFrame({"N": d.params_B * 1e9, "D": d.tokens_B * 1e9, "U": d.unique_tokens_B * 1e9})
    return X, d.val_loss.to_numpy()


def datablations_curves(ref: Path) -> pd.DataFrame:
    """Loss curves of the repetition runs: data, N, epochs (of the run), D (tokens seen so far), U, loss.

    ``frac`` is the share of the run's tokens seen at the checkpoint, ``seen`` the epochs seen so far.
    """
    d = pd.read_csv(ref / "datablations" / "datablations_losses.csv")
    out = pd.DataFrame({
        "data": d.data, "epochs": d.epochs, "N": d.num_params.str.rstrip("B").astype(float) * 1e9,
        "D": d.token_num.astype(float), "U": d.tokens_per_epoch.astype(float), "loss": d.loss,
    })
    out["seen"] = out.D / out.U
    out["frac"] = out.seen / out.epochs
    return out


def regmix(ref: Path, split: str, size: str, target: str = PILE_CC) -> tuple[pd.DataFrame, np.ndarray]:
    """Mixture weights (17 Pile domains) and one target loss, joined on ``index``."""
    m = pd.read_csv(ref / "regmix" / f"{split}_mixture_{size}.csv")
    loss = pd.read_csv(ref / "regmix" / f"{split}_pile_loss_{size}.csv")
    d = m.merge(loss[["index", target]], on="index")
    X = d[m.columns[1:]]
    X.columns = [c.replace("train_the_pile_", "") for c in X.columns]
    return X, d[target].to_numpy()


def qqt_published(ref: Path, key: str = "tmars_imagenet1k_utility") -> tuple[list[str], dict]:
    """Published QQT parameters of the four T-MARS 10% buckets (best first), as ``params_``."""
    for line in open(ref / "qqt_parameter_values.jsonl"):
        record = json.loads(line)
        if record["id"] == key:
            break
    else:
        raise ValueError(f"no record {key!r} in qqt_parameter_values.jsonl")
    names = record["names"][:4]
    params = {"a": record["best_a"], "d": record["d_value"]}
    params.update({f"b[{q}]": b for q, b in zip(names, record["b_values"])})
    params.update({f"tau[{q}]": c for q, c in zip(names, record["c_values"])})
    return names, params


def table(rows: list[list], headers: list[str], title: str | None = None) -> str:
    """Plain-text table; floats to 4 significant digits."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v)
    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return ("\n" + title + "\n" if title else "") + "\n".join(lines)
