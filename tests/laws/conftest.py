"""Fixtures for the scaling-law tests: a seeded generator and the published reference data."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def chinchilla_data():
    """240 Chinchilla points (5 highest losses dropped, as the replication does), D = FLOP / (6 N)."""
    d = pd.read_csv(DATA / "chinchilla_svg.csv").sort_values("loss").iloc[:-5]
    return pd.DataFrame({"N": d["N"], "D": d["flop"] / (6 * d["N"])}), d["loss"].to_numpy()


@pytest.fixture(scope="session")
def datablations_182():
    d = pd.read_csv(DATA / "datablations_182.csv")
    X = pd.DataFrame({"N": d.params_B * 1e9, "D": d.tokens_B * 1e9, "U": d.unique_tokens_B * 1e9})
    return X, d.val_loss.to_numpy()


@pytest.fixture(scope="session")
def datablations_finals():
    """Final loss of each repetition run: columns data, epochs, N, D, U, loss."""
    d = pd.read_csv(DATA / "datablations_finals.csv")
    return pd.DataFrame({
        "data": d.data, "epochs": d.epochs,
        "N": d.num_params.str.rstrip("B").astype(float) * 1e9,
        "D": d.token_num.astype(float), "U": d.tokens_per_epoch, "loss": d.loss,
    })


@pytest.fixture(scope="session")
def regmix():
    """(X_train, y_train, X_test, y_test): 17 domain proportions and the Pile-CC loss, 1M models."""
    out = []
    for split in ("train", "test"):
        d = pd.read_csv(DATA / f"regmix_{split}_1m.csv")
        out += [d.drop(columns=["index", "pile_cc_loss"]), d.pile_cc_loss.to_numpy()]
    return tuple(out)


@pytest.fixture(scope="session")
def qqt_published():
    """The published T-MARS utility fit: params for the four 10% quality buckets, best first."""
    record = [json.loads(line) for line in open(DATA / "qqt_parameter_values.jsonl")][1]
    names = record["names"][:4]
    params = {"a": record["best_a"], "d": record["d_value"]}
    params.update({f"b[{q}]": b for q, b in zip(names, record["b_values"])})
    params.update({f"tau[{q}]": c for q, c in zip(names, record["c_values"])})
    return names, params
