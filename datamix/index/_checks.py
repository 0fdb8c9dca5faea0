"""Input validation shared by the index and prune layers.

Every public function of :mod:`datamix.index` and :mod:`datamix.prune` converts and checks its
arrays here, once, and passes clean ``float32`` C-contiguous arrays to its private ``_impl``.
"""

from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt

__all__ = [
    "check_embeddings",
    "check_int",
    "check_n_clusters",
    "check_seed",
    "format_rows",
    "l2_normalize",
]


def format_rows(rows: np.ndarray, limit: int = 5) -> str:
    """Format row indices for an error message: ``"3 rows, first: [4, 9, 12]"``."""
    rows = np.asarray(rows)
    head = ", ".join(str(int(r)) for r in rows[:limit])
    more = ", ..." if rows.size > limit else ""
    noun = "row" if rows.size == 1 else "rows"
    return f"{rows.size} {noun}, first: [{head}{more}]"


def check_embeddings(X: npt.ArrayLike, *, name: str = "emb", min_samples: int = 1,
                     normalize: bool = False) -> np.ndarray:
    """Convert ``X`` to a C-contiguous float32 matrix, reject non-finite rows, maybe normalise.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Embeddings.
    name : str, default="emb"
        Argument name used in error messages.
    min_samples : int, default=1
        Fewest rows accepted.
    normalize : bool, default=False
        Return the rows scaled to unit L2 norm (a new array; ``X`` is not modified).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float32
        Without ``normalize``, the input itself when it already is C-contiguous float32.

    Raises
    ------
    ValueError
        If ``X`` is not 2-D, has fewer than ``min_samples`` rows, no columns, or contains NaN or
        inf (the message names the first offending rows); with ``normalize``, if a row is the
        zero vector (it has no direction, so no cosine similarity).
    """
    try:
        X = np.ascontiguousarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a numeric array of shape (n_samples, n_features): {exc}"
        ) from exc
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features), got shape {X.shape}; "
            "reshape a single vector with X.reshape(1, -1)"
        )
    if X.shape[0] < min_samples or X.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least {min_samples} row(s) and one column, got shape {X.shape}"
        )
    if normalize:
        return _normalized(X, name)
    # A row sum is non-finite whenever the row holds a NaN or an inf; it may also overflow for a
    # finite row, so the exact element-wise check runs only when this cheap one fires.
    with np.errstate(over="ignore", invalid="ignore"):
        row_sums = X.sum(axis=1)
    if not np.isfinite(row_sums).all():
        _raise_non_finite(X, name)
    return X


def _raise_non_finite(X: np.ndarray, name: str) -> None:
    """Raise naming the rows with NaN or inf; return if there are none (an overflow)."""
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} contains NaN or inf in {format_rows(bad)}; "
                         "drop or impute those rows before scoring")


def _normalized(X: np.ndarray, name: str) -> np.ndarray:
    """Unit-norm copy of a float32 matrix; the squared norms double as the finiteness check."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sq = np.einsum("ij,ij->i", X, X)
    if not np.isfinite(sq).all() or not sq.all():
        if not np.isfinite(sq).all():
            _raise_non_finite(X, name)
        # Finite rows whose squares overflow or underflow float32: redo the norms in float64.
        sq = np.einsum("ij,ij->i", X, X, dtype=np.float64)
        zero = np.flatnonzero(sq == 0)
        if zero.size:
            raise ValueError(
                f"{name} contains zero vectors in {format_rows(zero)}; cosine similarity is "
                "undefined for them, so drop those rows (or replace them) before scoring"
            )
        return np.ascontiguousarray(X / np.sqrt(sq)[:, None], dtype=np.float32)
    return X * (1.0 / np.sqrt(sq))[:, None]


def l2_normalize(X: npt.ArrayLike, *, name: str = "emb") -> np.ndarray:
    """Validate ``X`` and return its rows scaled to unit L2 norm, as float32.

    Shorthand for ``check_embeddings(X, name=name, normalize=True)``.

    Examples
    --------
    >>> l2_normalize([[3.0, 4.0]]).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    return check_embeddings(X, name=name, normalize=True)


def check_int(value, name: str, *, low: int = 1, high: float = np.inf,
              allow_none: bool = False) -> int | None:
    """Check that ``value`` is an int (not a bool) in ``[low, high]`` and return it as an int."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        upper = "" if high == np.inf else f", <= {int(high)}"
        none = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an int >= {low}{upper}{none}, got {value!r}")
    return int(value)


def check_n_clusters(n_clusters: int, n_samples: int, *, name: str = "n_clusters") -> int:
    """Check that ``1 <= n_clusters <= n_samples`` and return it as an int."""
    check_int(n_clusters, name)
    if n_clusters > n_samples:
        raise ValueError(
            f"{name}={n_clusters} is larger than the number of samples ({n_samples}); "
            f"pass {name} <= {n_samples}"
        )
    return int(n_clusters)


def check_seed(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Normalise ``seed`` (int, Generator or None meaning 0) into a Generator, once."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))
