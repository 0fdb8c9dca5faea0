"""Input checks shared by the laws: tables with named columns, finite values, hyper-parameters."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.exceptions import DataConversionWarning


def as_columns(X, columns: tuple[str, ...], *, owner: str, domain: str = "positive") -> np.ndarray:
    """Return the named columns of ``X`` as a float array of shape (n_samples, len(columns)).

    Parameters
    ----------
    X : DataFrame, dict of columns, or array-like of shape (n_samples, n_columns)
        A DataFrame (or dict) must hold every name in ``columns`` (others are ignored); an array must
        have exactly ``len(columns)`` columns in that order (a 1-D array is one column).
    columns : tuple of str
    owner : str
        Class name, for messages.
    domain : {"positive", "nonnegative", "any"}, default="positive"

    Raises
    ------
    ValueError
        On missing columns, a wrong column count, NaN/inf, or values outside ``domain``.
    """
    if sp.issparse(X):  # before the Mapping test: a DOK matrix is a dict
        raise TypeError(f"{owner} does not accept sparse input; pass a dense array or a DataFrame.")
    if isinstance(X, Mapping):
        X = pd.DataFrame(X)
    if isinstance(X, pd.DataFrame):
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise ValueError(
                f"X is missing column(s) {missing}; {owner} needs columns {list(columns)} "
                f"(got {list(map(str, X.columns))})."
            )
        try:
            A = X.loc[:, list(columns)].to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X columns {list(columns)} must be numeric for {owner}: {exc}") from None
    else:
        A = np.asarray(X)
        if A.dtype.kind == "c":
            raise ValueError("Complex data not supported: X must be real.")
        try:
            A = A.astype(float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X must be numeric for {owner}: {exc}") from None
        if A.ndim == 1 and len(columns) == 1:
            A = A.reshape(-1, 1)
        if A.ndim != 2 or A.shape[1] != len(columns):
            got = f"{A.shape[1]} features" if A.ndim == 2 else f"shape {A.shape} (Reshape your data to 2-D)"
            raise ValueError(
                f"X has {got}, but {owner} is expecting {len(columns)} features as input: columns "
                f"{list(columns)}, in that order (pass a DataFrame with these names to be explicit)."
            )
    if A.shape[0] == 0:
        raise ValueError(f"X is empty: {owner} needs at least one row.")
    for j, name in enumerate(columns):
        col = A[:, j]
        bad = ~np.isfinite(col)
        if bad.any():
            raise ValueError(f"X column {name!r} contains NaN or infinity ({bad.sum()} of {col.size} values).")
        if domain == "positive" and np.any(col <= 0):
            raise ValueError(f"Negative values in data: X column {name!r} must be positive; got min {col.min():.6g}.")
        if domain == "nonnegative" and np.any(col < 0):
            raise ValueError(
                f"Negative values in data: X column {name!r} must be non-negative; got min {col.min():.6g}."
            )
    return A


def as_target(y, n_samples: int, *, log_target: bool, name: str = "y") -> np.ndarray:
    """Validate a 1-D target of length ``n_samples``: finite, and positive under a log loss."""
    if y is None:
        raise ValueError(f"this law requires y to be passed, but the target {name} is None.")
    y = np.asarray(y)
    if y.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} must be real.")
    y = y.astype(float)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            f"A column-vector {name} was passed when a 1d array was expected; it is ravelled.",
            DataConversionWarning, stacklevel=3,
        )
        y = y[:, 0]
    if y.ndim != 1 or y.size != n_samples:
        raise ValueError(f"{name} must have shape ({n_samples},) to match X; got {y.shape}.")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or infinity ({(~np.isfinite(y)).sum()} values).")
    if log_target and np.any(y <= 0):
        raise ValueError(
            f"{name} must be positive when log_target=True (the loss is on log {name}); got min "
            f"{y.min():.6g}. Use log_target=False for targets that can be zero or negative."
        )
    return y


def as_weights(sample_weight, n_samples: int) -> np.ndarray:
    """Validate optional per-sample weights (non-negative, finite, not all zero)."""
    if sample_weight is None:
        return np.ones(n_samples)
    w = np.asarray(sample_weight, dtype=float)
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},); got {w.shape}.")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero.")
    return w


def check_number(value, name: str, *, low=None, high=None, integer: bool = False, low_open: bool = False):
    """Raise ``ValueError`` unless ``value`` is a real (or integer) number inside the given range."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}; got {value!r}.")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value!r}.")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}; got {value!r}.")


def check_level(level) -> None:
    """Raise ``ValueError`` unless ``0 < level < 1`` (coverage of an interval)."""
    check_number(level, "level", low=0, low_open=True)
    if level >= 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}.")
