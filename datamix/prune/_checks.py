"""Validation of scores, fractions and labels at the public edge of :mod:`datamix.prune`."""

from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt

from datamix.index._checks import format_rows

__all__ = ["check_fraction", "check_labels", "check_scores", "tqdm_disable"]


def check_scores(scores: npt.ArrayLike, *, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a finite 1-D float64 array with at least one entry."""
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D numeric array, one score per sample: {exc}") from exc
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (one score per sample), "
                         f"got shape {scores.shape}")
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ValueError(f"{name} contains NaN or inf in {format_rows(bad)}; "
                         "fix or drop those samples before selecting")
    return scores


def check_fraction(fraction: float, *, name: str = "fraction") -> float:
    """Check ``0 < fraction <= 1``."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
        raise ValueError(f"{name} must be a number in (0, 1] (the share of samples to keep), "
                         f"got {fraction!r}")
    return float(fraction)


def check_labels(labels: npt.ArrayLike | None, n_samples: int, *, name: str = "labels",
                 against: str = "scores") -> np.ndarray | None:
    """Return ``labels`` as a 1-D array with one entry per sample, or None."""
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_samples:
        raise ValueError(f"{name} has shape {labels.shape} but {against} has {n_samples} samples; "
                         "pass one label per sample")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        bad = np.flatnonzero(~np.isfinite(labels))
        raise ValueError(f"{name} contains NaN or inf in {format_rows(bad)}")
    return labels


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` option: None (auto, only on a terminal) or forced."""
    return None if progress is None else not progress
