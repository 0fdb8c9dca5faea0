"""Plan: the decision datamix outputs — mixture ratios, filtering thresholds, epochs, purchases.

A plan round-trips through YAML and JSON; the same plan always serialises to the same bytes
(fixed key order, floats written with ``repr``), so a rerun with the same seed is byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from datamix.io import write_text

PLAN_FIELDS = ("ratios", "keep_fractions", "thresholds", "epochs", "buy", "predicted", "interval", "provenance")


def fingerprint(*arrays) -> str:
    """sha256 over arrays' dtypes, shapes and bytes (or strings): an input hash for provenance."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes() if a.dtype.kind != "O" else "\0".join(map(str, a.ravel())).encode())
    return h.hexdigest()


def _plain(value):
    """numpy scalars/arrays and tuples into plain Python, for YAML/JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _names_match(plan: "Plan") -> None:
    names = list(plan.ratios)
    for key in ("keep_fractions", "thresholds", "epochs", "buy"):
        extra = set(getattr(plan, key)) - set(names)
        if extra:
            raise ValueError(f"plan.{key} names sources {sorted(extra)} that have no ratio")


@dataclass
class Plan:
    """A mixture decision for a compute (and money) budget.

    Attributes
    ----------
    ratios : dict of str to float
        Share of the training samples drawn from each source (sums to 1).
    keep_fractions : dict of str to float
        Share of each source, ranked by its quality score, that survives filtering, in (0, 1].
    thresholds : dict of str to float
        The score cut-off that keeps that share (NaN where no scores were given).
    epochs : dict of str to float
        Passes over each source's kept samples implied by the budget.
    buy : dict of str to int
        Samples to buy from each offered source (empty when nothing is for sale).
    predicted : float
        The predictor's metric for this plan.
    interval : tuple of float
        (lo, hi) prediction interval of ``predicted``.
    provenance : dict
        Inputs' hashes, law parameters, seed and datamix version.
    """

    ratios: dict
    keep_fractions: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    epochs: dict = field(default_factory=dict)
    buy: dict = field(default_factory=dict)
    predicted: float = math.nan
    interval: tuple = (math.nan, math.nan)
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ratios = {str(k): float(v) for k, v in self.ratios.items()}
        for key in ("keep_fractions", "thresholds", "epochs"):
            setattr(self, key, {str(k): float(v) for k, v in getattr(self, key).items()})
        self.buy = {str(k): int(v) for k, v in self.buy.items()}
        self.predicted = float(self.predicted)
        self.interval = tuple(float(v) for v in self.interval)
        if len(self.interval) != 2:
            raise ValueError(f"plan.interval must be (lo, hi), got {self.interval}")
        total = sum(self.ratios.values())
        if self.ratios and abs(total - 1) > 1e-9:
            raise ValueError(f"plan.ratios sum to {total!r}, not 1")
        _names_match(self)

    def to_dict(self) -> dict:
        d = _plain(asdict(self))
        d["interval"] = list(self.interval)
        return {k: d[k] for k in PLAN_FIELDS}

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        if not isinstance(d, dict):
            raise ValueError(f"a plan is a mapping of {PLAN_FIELDS}, got {type(d).__name__}")
        unknown = set(d) - set(PLAN_FIELDS)
        if unknown:
            raise ValueError(f"unknown plan keys {sorted(unknown)}; allowed: {', '.join(PLAN_FIELDS)}")
        if "ratios" not in d:
            raise ValueError("a plan needs 'ratios'")
        return cls(**{k: (tuple(v) if k == "interval" else v) for k, v in d.items()})

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """The plan as YAML; written atomically to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_yaml(cls, text_or_path: str | os.PathLike) -> "Plan":
        """Read a plan from YAML text or a .yaml/.yml file."""
        p = Path(text_or_path) if not isinstance(text_or_path, str) or text_or_path.endswith((".yaml", ".yml")) else None
        text = p.read_text(encoding="utf-8") if p is not None else text_or_path
        return cls.from_dict(yaml.safe_load(text))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The plan as JSON; written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls.from_dict(json.loads(text))
