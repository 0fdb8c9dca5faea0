"""Sorscher et al. (2022)'s teacher-student perceptron: when to keep easy or hard examples.

A teacher :math:`T \\in \\mathbb{R}^d` labels Gaussian inputs :math:`y = \\operatorname{sign}(T
\\cdot x)`. A pool of :math:`P = \\alpha_{tot} d` examples is pruned to a fraction ``f`` by the
margin :math:`|J_p \\cdot x|` of a probe :math:`J_p` (the teacher itself, or the teacher
rotated by ``probe_angle``): keep-hard keeps the smallest margins, keep-easy the largest. A
max-margin student :math:`J` is trained on what is kept, and its test error is exact for
isotropic inputs: :math:`\\varepsilon = \\arccos(\\cos(J, T)) / \\pi`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.svm import SVC

from datamix.index._checks import check_int, check_seed
from datamix.laws import PowerLaw
from datamix.prune._checks import check_fraction
from datamix.prune.select import _select_impl, n_kept

__all__ = ["best_fraction_frontier", "frontier_exponents", "perceptron_error",
           "teacher_student_pruning"]

logger = logging.getLogger(__name__)

#: Soft-margin penalty large enough that the SVM is the hard-margin student on separable data.
_HARD_MARGIN_C = 1e6


def teacher_student_pruning(
    alpha_tot: Sequence[float],
    fractions: Sequence[float],
    *,
    n_features: int = 100,
    keeps: Sequence[str] = ("easy", "hard", "random"),
    n_seeds: int = 5,
    probe_angle: float = 0.0,
    seed: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Test error of the max-margin student for every pool size, kept fraction and rule.

    Parameters
    ----------
    alpha_tot : sequence of float
        Pool sizes in units of the dimension, :math:`P = \\mathrm{round}(\\alpha_{tot} d)`.
    fractions : sequence of float
        Kept fractions in (0, 1].
    n_features : int, default=100
        Dimension ``d``.
    keeps : sequence of {"easy", "hard", "random"}, default=("easy", "hard", "random")
    n_seeds : int, default=5
        Independent teachers and pools per pool size.
    probe_angle : float, default=0.0
        Angle (radians) between the pruning probe and the teacher; 0 is a perfect metric.
    seed : int or numpy Generator, default=0

    Returns
    -------
    table : DataFrame
        One row per (alpha_tot, fraction, keep, seed) with columns ``alpha_tot, fraction, keep,
        seed, n_pool, n_kept, alpha_prune, error``; ``alpha_prune = n_kept / d``.
    """
    d = check_int(n_features, "n_features", low=2)
    check_int(n_seeds, "n_seeds")
    fractions = [check_fraction(f) for f in fractions]
    for keep in keeps:
        if keep not in ("easy", "hard", "random"):
            raise ValueError(f"keeps must be among ('easy', 'hard', 'random'), got {keep!r}")
    rng = check_seed(seed)
    rows = []
    for a in alpha_tot:
        n_pool = max(2, round(float(a) * d))
        for s in range(n_seeds):
            teacher, X, y = _draw_task(rng, d, n_pool)
            probe = _rotate(teacher, probe_angle, rng)
            hardness = -np.abs(X @ probe)  # small margin = hard
            for f in fractions:
                for keep in keeps:
                    idx = _select_impl(hardness, n_kept(n_pool, f), keep=keep, labels=None,
                                       balance="none", beta=0.0, n_strata=1, rng=rng)
                    error = perceptron_error(_max_margin_student(X[idx], y[idx]), teacher)
                    rows.append((float(a), f, keep, s, n_pool, idx.size, idx.size / d, error))
    return pd.DataFrame(rows, columns=["alpha_tot", "fraction", "keep", "seed", "n_pool",
                                       "n_kept", "alpha_prune", "error"])


def best_fraction_frontier(
    alpha_prune: Sequence[float],
    fractions: Sequence[float],
    *,
    keeps: Sequence[str] = ("easy", "hard"),
    **kwargs,
) -> pd.DataFrame:
    """Error at a fixed kept size when the pool is larger and pruned, for each fraction and rule.

    For kept size :math:`\alpha_{prune} d` and fraction ``f`` the pool has
    :math:`\alpha_{prune} d / f` examples. ``f = 1`` (no pruning) is always included: it is
    random pruning at the same kept size, since a random subset of a pool is an i.i.d. sample.

    Parameters
    ----------
    alpha_prune : sequence of float
        Kept sizes in units of the dimension.
    fractions : sequence of float
        Kept fractions in (0, 1).
    keeps : sequence of {"easy", "hard"}, default=("easy", "hard")
    **kwargs
        ``n_features``, ``n_seeds``, ``probe_angle``, ``seed`` of :func:`teacher_student_pruning`.

    Returns
    -------
    frontier : DataFrame
        Columns ``alpha_prune, fraction, keep, error, error_std`` (over seeds); the unpruned
        rows have ``keep == "random"`` and ``fraction == 1``.
    """
    rng = check_seed(kwargs.pop("seed", 0))
    parts = []
    for f in sorted(set(float(f) for f in fractions) | {1.0}):
        part = teacher_student_pruning([a / f for a in alpha_prune], [f],
                                       keeps=("random",) if f == 1.0 else keeps,
                                       seed=rng, **kwargs)
        part["alpha_prune"] = np.repeat(np.asarray(alpha_prune, dtype=np.float64),
                                        len(part) // len(alpha_prune))
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    return (table.groupby(["alpha_prune", "fraction", "keep"], as_index=False)
            .agg(error=("error", "mean"), error_std=("error", "std")))


def frontier_exponents(frontier: pd.DataFrame) -> pd.DataFrame:
    """Best rule per kept size, and power-law exponents of error vs kept size.

    Parameters
    ----------
    frontier : DataFrame
        Output of :func:`best_fraction_frontier`.

    Returns
    -------
    table : DataFrame
        One row per ``alpha_prune``: ``random_error``, ``best_error``, ``best_fraction``,
        ``best_keep``. ``table.attrs["exponents"]`` holds ``{"random": b, "best": b}`` from
        fitting :math:`\varepsilon = c + a \alpha_{prune}^{-b}` to each column.
    """
    random = frontier[frontier["keep"] == "random"].set_index("alpha_prune")["error"]
    best = frontier.loc[frontier.groupby("alpha_prune")["error"].idxmin()].set_index("alpha_prune")
    table = pd.DataFrame({
        "random_error": random,
        "best_error": best["error"],
        "best_fraction": best["fraction"],
        "best_keep": best["keep"],
    })
    alphas = table.index.to_numpy(dtype=np.float64)
    table.attrs["exponents"] = {
        "random": PowerLaw().fit(alphas, table["random_error"].to_numpy()).params_["b"],
        "best": PowerLaw().fit(alphas, table["best_error"].to_numpy()).params_["b"],
    }
    return table


def perceptron_error(student: np.ndarray, teacher: np.ndarray) -> float:
    """Generalisation error :math:`\\arccos(\\cos(J, T)) / \\pi` of a linear student on
    isotropic Gaussian inputs."""
    cos = student @ teacher / (np.linalg.norm(student) * np.linalg.norm(teacher))
    return float(np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi)


def _draw_task(rng, d, n_pool):
    teacher = rng.standard_normal(d)
    teacher /= np.linalg.norm(teacher)
    X = rng.standard_normal((n_pool, d))
    return teacher, X, np.where(X @ teacher >= 0, 1.0, -1.0)


def _rotate(teacher, angle, rng):
    """Unit vector at ``angle`` radians from ``teacher``, in a random direction."""
    if angle == 0:
        return teacher
    other = rng.standard_normal(teacher.size)
    other -= (other @ teacher) * teacher
    other /= np.linalg.norm(other)
    return np.cos(angle) * teacher + np.sin(angle) * other


def _max_margin_student(X, y):
    """Hard-margin SVM weights (no bias); the Hebbian rule when only one class is present."""
    if np.unique(y).size < 2:
        return (y[:, None] * X).sum(axis=0)
    return SVC(kernel="linear", C=_HARD_MARGIN_C).fit(X, y).coef_.ravel()
