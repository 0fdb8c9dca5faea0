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


#: the most passes over a source's kept data a plan may ask for: far past any repetition law's horizon
#: (repeated data is worth nothing after ~16 epochs, Muennighoff et al. 2023)
MAX_PLAN_EPOCHS = 1000.0


def check_plan(plan: "Plan", available: dict, *, where: str = "plan", rtol: float = 0.01) -> "Plan":
    """Check that ``plan`` describes data that exists and is self-consistent; return it, with the
    epochs of every used source derived (ratio · tokens / kept) when the plan gives none (tokens:
    ``provenance.tokens``, else the used sources' kept units, one pass on average).

    Checked: every used source (ratio > 0) is in ``available``; ratios are in [0, 1] and sum to 1;
    keep-fractions in (0, 1]; epochs finite, in [0, :data:`MAX_PLAN_EPOCHS`], > 0 exactly for the
    used sources; and the epochs agree with the ratios: the tokens each used source implies,
    ``epochs_i · keep_i · available_i / ratio_i``, are the same for all of them within ``rtol``
    (a source held at ``provenance.max_epochs`` may imply fewer).

    Parameters
    ----------
    plan : Plan
    available : dict of str to float
        Units (samples, or tokens) each source holds before filtering.
    where : str
        How errors name the plan (e.g. its file).
    rtol : float
        Relative tolerance of the epochs' agreement (rounding of kept sizes).

    Raises
    ------
    ValueError
        Naming ``where``, the field and the source.
    """
    used = [n for n, r in plan.ratios.items() if r > 0]
    unknown = [n for n in used if n not in available]
    if unknown:
        raise ValueError(f"{where}: ratios name source(s) {unknown} that this run does not have; its sources: "
                         f"{sorted(available)}")
    for key, lo, hi, lo_open in (("ratios", 0.0, 1.0, False), ("keep_fractions", 0.0, 1.0, True),
                                 ("epochs", 0.0, MAX_PLAN_EPOCHS, False)):
        for n, v in getattr(plan, key).items():
            if not (math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi):
                interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
                raise ValueError(f"{where}: {key}.{n} = {v!r} is outside {interval}")
    if not plan.epochs:
        tokens = plan.provenance.get("tokens") or sum(_kept(plan, available, n) for n in used)
        epochs = {n: (plan.ratios[n] * float(tokens) / _kept(plan, available, n) if n in used else 0.0)
                  for n in plan.ratios}
        return Plan(**{**plan.__dict__, "epochs": epochs})
    for n in plan.ratios:
        e = plan.epochs.get(n, 0.0)
        if (e > 0) != (n in used):
            raise ValueError(f"{where}: epochs.{n} = {e!r} with ratios.{n} = {plan.ratios[n]!r}: a source is "
                             "trained on (epochs > 0) exactly when its ratio is > 0")
    cap = plan.provenance.get("max_epochs")
    implied = {n: plan.epochs[n] * _kept(plan, available, n) / plan.ratios[n] for n in used}
    capped = {n for n in used if cap is not None and abs(plan.epochs[n] - float(cap)) <= rtol * float(cap)}
    if len(capped) < len(implied):
        top = max(t for n, t in implied.items() if n not in capped)
        off = {n: t for n, t in implied.items()
               if t > top * (1 + rtol) or (n not in capped and t < top * (1 - rtol))}
        if off:
            shown = ", ".join(f"{n}: {t:.6g}" for n, t in implied.items())
            raise ValueError(f"{where}: epochs do not agree with the ratios and keep_fractions: the tokens they "
                             f"imply (epochs x kept / ratio) differ ({shown}); correct epochs, or remove the "
                             "epochs field to have them derived from provenance.tokens")
    return plan


def _kept(plan: "Plan", available: dict, name: str) -> float:
    return max(1.0, plan.keep_fractions.get(name, 1.0) * float(available[name]))


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
        from datamix.config import safe_load

        return cls.from_dict(safe_load(text))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The plan as JSON; written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls.from_dict(json.loads(text))
