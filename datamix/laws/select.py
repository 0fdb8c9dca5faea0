"""Choose a law by its error when extrapolating from small to large scale."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from ._validation import check_number

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LawSelection:
    """Outcome of :func:`select_law`.

    Attributes
    ----------
    best : str
        Name of the candidate with the lowest held-out error.
    law : estimator
        That candidate, refitted on all points (or on the training part when ``refit=False``).
    errors : dict of str to float
        Held-out mean absolute relative error per candidate (``inf`` where the fit failed).
    messages : dict of str to str
        Why a candidate failed, by name.
    train_mask : ndarray of bool, shape (n_samples,)
        Points used for the held-out fits (the small-scale part).
    """

    best: str
    law: object
    errors: dict
    messages: dict
    train_mask: np.ndarray


def extrapolation_split(scale: np.ndarray, *, train_fraction: float = 0.7) -> np.ndarray:
    """Mask of the smallest ``train_fraction`` of points by ``scale`` (ties stay on the training side).

    Parameters
    ----------
    scale : array-like of shape (n_samples,)
        Size of each point (data, parameters, compute...).
    train_fraction : float, default=0.7

    Returns
    -------
    ndarray of bool, shape (n_samples,)

    Raises
    ------
    ValueError
        When the split leaves no point on one side.
    """
    check_number(train_fraction, "train_fraction", low=0, high=1, low_open=True)
    scale = np.asarray(scale, dtype=float).reshape(-1)
    if not np.all(np.isfinite(scale)):
        raise ValueError("scale contains NaN or infinity.")
    k = max(1, int(round(train_fraction * scale.size)))
    threshold = np.sort(scale)[k - 1]
    mask = scale <= threshold
    if mask.all() or not mask.any():
        raise ValueError(
            f"scale has too few distinct values to hold out the largest {1 - train_fraction:.0%} "
            f"({np.unique(scale).size} distinct of {scale.size})."
        )
    return mask


def select_law(
    candidates: Mapping[str, object] | Sequence[object],
    X,
    y,
    *,
    scale,
    train_fraction: float = 0.7,
    sample_weight=None,
    refit: bool = True,
) -> LawSelection:
    """Pick the law that extrapolates best: fit on the small-scale points, score on the large ones.

    Parameters
    ----------
    candidates : mapping of str to estimator, or sequence of estimators
        Unfitted laws (cloned before fitting); names default to the class names.
    X : DataFrame or array-like of shape (n_samples, n_columns)
        Input accepted by every candidate (a DataFrame with all their columns, typically).
    y : array-like of shape (n_samples,)
    scale : str or array-like of shape (n_samples,)
        Column of ``X`` or values that order the points from small to large.
    train_fraction : float, default=0.7
        Share of the points, smallest first, used to fit.
    sample_weight : array-like of shape (n_samples,), default=None
    refit : bool, default=True
        Refit the winner on all points.

    Returns
    -------
    LawSelection

    Raises
    ------
    ValueError
        If no candidate can be fitted, or on bad ``scale``.
    """
    if not isinstance(candidates, Mapping):
        named = {}
        for est in candidates:
            name, i = type(est).__name__, 2
            while name in named:
                name, i = f"{type(est).__name__}_{i}", i + 1
            named[name] = est
        candidates = named
    if not candidates:
        raise ValueError("candidates is empty; give at least one law.")
    if isinstance(scale, str):
        if not isinstance(X, pd.DataFrame) or scale not in X.columns:
            raise ValueError(f"scale={scale!r} must name a column of the DataFrame X.")
        scale = X[scale].to_numpy()
    y = np.asarray(y, dtype=float)
    if np.shape(scale) != (y.size,):
        raise ValueError(f"scale must have shape ({y.size},); got {np.shape(scale)}.")
    train = extrapolation_split(scale, train_fraction=train_fraction)
    X_tr, X_te = _rows(X, train), _rows(X, ~train)
    w_tr = None if sample_weight is None else np.asarray(sample_weight)[train]
    errors, messages, fitted = {}, {}, {}
    for name, est in candidates.items():
        try:
            fitted[name] = clone(est).fit(X_tr, y[train], w_tr)
            errors[name] = -float(fitted[name].score(X_te, y[~train]))
        except ValueError as exc:
            errors[name], messages[name] = np.inf, str(exc)
            logger.warning("select_law: %s failed: %s", name, exc)
    best = min(errors, key=errors.get)
    if not np.isfinite(errors[best]):
        raise ValueError(f"no candidate could be fitted: {messages}")
    law = clone(candidates[best]).fit(X, y, sample_weight) if refit else fitted[best]
    logger.info("select_law: %s wins with held-out error %.4g", best, errors[best])
    return LawSelection(best, law, errors, messages, train)


def _rows(X, mask):
    return X.loc[mask] if isinstance(X, pd.DataFrame) else np.asarray(X)[mask]
