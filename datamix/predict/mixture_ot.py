"""OT distance between a mixture of sources and a fixed target set, and its gradient in the ratios.

The mixture of ratios ``p`` puts mass ``p_i`` on source ``i``, spread uniformly over its points
(``mode="weighted"``: the limit of averaging over infinitely many draws), or over the points of
``n_draws`` draws of :func:`~datamix.data.sample_mixture` at size ``N`` (``mode="sample"``, as in
Projektor). Three OT terms are available, all between the mixture and the target:

``"feature"``
    plain OT with the squared-Euclidean cost :math:`\\lVert x - x' \\rVert^2`;
``"label"``
    OT with the label cost only, :math:`W(g, y')`, where :math:`g` is the *group* of a mixture
    point — its (source, label) pair — and :math:`W` the squared 2-Wasserstein distance between
    the group's points and the target's class :math:`y'` (OTDD's label distance, computed once
    by :func:`datamix.ot.class_distances`);
``"joint"``
    the OTDD cost :math:`\\lVert x - x' \\rVert^2 + \\lambda W(g, y')`.

Groups are (source, label) pairs rather than labels because the class-conditional distribution
of a mixture depends on the ratios: label ``3`` of a source with 40% wrong labels is far from the
target's ``3`` even when label ``3`` of a clean source is close. With groups, the cost matrix does
not depend on ``p``, so it is computed once, and the potentials give the exact (sub)gradient.

Exact OT (``reg=None``) is solved here with POT's network simplex on the precomputed costs (the
same cost as :func:`datamix.ot.label_ot` builds, checked in the tests), and the potential of a
point of zero mass is set by the c-transform :math:`f_i = \\min_j (C_{ij} - g_j)`, the one-sided
derivative of the cost in that point's mass — POT's own estimate for such points is only
feasible, not tight, which biases gradients at the edges of the simplex. With ``reg > 0`` the
feature and joint terms are the debiased Sinkhorn divergence of :func:`datamix.ot.label_ot` (value;
the non-debiased potentials give the gradient), solved with :func:`datamix.ot.entropic_ot` on costs
built once: the cost matrices, the label distances between groups, and the target's self-term,
which does not depend on the mixture, are cached (``label_ot`` recomputes them on every call:
``benchmarks/ot_speed.py`` measures both). Every mixture's problems are warm-started from the
potentials of the uniform mixture (solved once, cold), so results do not depend on the order in
which mixtures are evaluated. A Sinkhorn problem that stops above its tolerance warns and is
counted in ``n_unconverged_`` (out of ``n_solves_``), or raises with ``strict=True``. The label
term stays exact (a small problem between groups and classes).

The gradient returned is the gradient along the simplex of the ratios (see :meth:`MixtureOT.evaluate`),
obtained from :func:`datamix.ot.mixture_gradient` with each point's source kept explicit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import ot

from datamix.ot import class_distances, entropic_ot, mixture_gradient

__all__ = ["MixtureOT", "OTTerm", "TERMS", "make_embedding"]

logger = logging.getLogger(__name__)

TERMS = ("feature", "label", "joint")
MODES = ("weighted", "sample")
_EMD_MAX_ITER = 10_000_000


@dataclass(frozen=True)
class OTTerm:
    """Value and gradient of one OT term at one mixture.

    Attributes
    ----------
    value : float
    gradient : ndarray of shape (n_sources,)
        Gradient along the simplex: :math:`\\sum_i d_i g_i` is the derivative in any direction
        :math:`d` with :math:`\\sum_i d_i = 0`; normalised so that :math:`\\sum_i p_i g_i = 0`.
    """

    value: float
    gradient: np.ndarray


def make_embedding(embedding, X_target: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The map applied to every point before OT costs are computed.

    Parameters
    ----------
    embedding : None, "identity", "standardize", "pca", int or callable
        ``None``/``"identity"``: the features as given; ``"standardize"``: z-scores with the
        target's mean and standard deviation; ``"pca"`` or an int ``k``: projection on the top
        ``k`` principal axes of the target (``"pca"``: ``k = min(16, n_features)``), centred, not
        whitened; a callable maps an array (n, d) to (n, d').
    X_target : ndarray of shape (n_target, n_features)
    """
    if embedding is None or embedding == "identity":
        return lambda X: X
    if callable(embedding):
        return embedding
    mean = X_target.mean(axis=0)
    if embedding == "standardize":
        std = X_target.std(axis=0)
        std[std == 0] = 1.0
        return lambda X: (X - mean) / std
    if embedding == "pca" or (isinstance(embedding, (int, np.integer)) and not isinstance(embedding, bool)):
        k = min(16, X_target.shape[1]) if embedding == "pca" else int(embedding)
        if not 1 <= k <= min(X_target.shape):
            raise ValueError(f"embedding={embedding!r}: PCA needs 1 <= k <= min(n_target, n_features) "
                             f"= {min(X_target.shape)}")
        _, _, Vt = np.linalg.svd(X_target - mean, full_matrices=False)
        axes = Vt[:k].T
        return lambda X: (X - mean) @ axes
    raise ValueError(f"embedding={embedding!r}; use None, 'identity', 'standardize', 'pca', an int "
                     "(PCA components) or a callable")


def _exact(a: np.ndarray, b: np.ndarray, C: np.ndarray) -> tuple[float, np.ndarray]:
    """Exact OT cost and the source potential of every point (tight c-transform on zero-mass points)."""
    keep = a > 0
    a_k = a[keep] / a[keep].sum()
    Ck = np.ascontiguousarray(C[keep])
    _, log = ot.emd(a_k, b, Ck, log=True, numItermax=_EMD_MAX_ITER)
    if log["result_code"] != 1:
        logger.warning("exact OT did not converge: %s", log.get("warning"))
    g = np.asarray(log["v"], dtype=np.float64)
    f = np.min(C - g[None, :], axis=1)  # c-transform: exact on the support, tight off it
    return float(log["cost"]), f


class MixtureOT:
    """OT terms between mixtures of fixed sources and a fixed target, cached per mixture.

    Parameters
    ----------
    sources : sequence of (X, y)
        Points (n_i, n_features) and labels (n_i,) of every source, in ratio order.
    target : (X, y)
        The target (validation) set, held fixed: X (n_target, n_features), y (n_target,).
    names : sequence of str
        Source names (for messages and for the draws of ``mode="sample"``).
    reg : float or None, default=None
        None: exact OT; > 0: the debiased Sinkhorn divergence (the mixture's self-cost matrix,
        (n_points, n_points), is kept for it).
    label_weight : float, default=1.0
        λ of the ``"joint"`` term.
    embedding : see :func:`make_embedding`, default=None
    mode : {"weighted", "sample"}, default="weighted"
    n_draws : int, default=1
        Draws averaged per (mixture, size) in ``mode="sample"``.
    seed : int, default=0
        Seed of the draws (draw ``d`` uses ``seed + d``) and of subsampling.
    max_points : int, default=3000
        Sources with more points are subsampled (seeded) to this many; the target likewise. Keeps
        the cost matrices at most ``n_sources * max_points * max_points`` floats.
    max_iter : int or None, default=None
        Sinkhorn iteration cap per problem (None: :func:`datamix.ot.entropic_ot`'s default).
    strict : bool, default=False
        Raise :class:`datamix.ot.NotConvergedError` when a Sinkhorn problem stops above its
        tolerance, instead of warning and counting it.

    Attributes
    ----------
    n_solves_ : int
        Sinkhorn problems solved so far (``reg`` given).
    n_unconverged_ : int
        Of those, the ones that stopped above the tolerance (each warned).

    Raises
    ------
    ValueError
        A source or the target without labels, mismatched dimensions, or an empty source.
    """

    def __init__(self, sources: Sequence, target, *, names: Sequence[str], reg: float | None = None,
                 label_weight: float = 1.0, embedding=None, mode: str = "weighted", n_draws: int = 1,
                 seed: int = 0, max_points: int = 3000, max_iter: int | None = None,
                 strict: bool = False):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; choose one of {MODES}")
        if reg is not None and not reg > 0:
            raise ValueError(f"reg={reg!r} must be > 0, or None for exact OT")
        if not (np.isfinite(label_weight) and label_weight >= 0):
            raise ValueError(f"label_weight={label_weight!r} must be a finite number >= 0")
        if int(n_draws) < 1:
            raise ValueError(f"n_draws={n_draws!r} must be >= 1")
        self.names = list(names)
        self.reg, self.label_weight, self.mode = reg, float(label_weight), mode
        self.n_draws, self.seed, self.max_iter, self.strict = int(n_draws), int(seed), max_iter, bool(strict)
        self.n_solves_ = self.n_unconverged_ = 0
        rng = np.random.default_rng(seed)
        Xt, yt = target
        Xt, yt = np.asarray(Xt, dtype=np.float64), np.asarray(yt)
        if yt is None or yt.shape != (Xt.shape[0],):
            raise ValueError("the target needs one label per point for label-aware OT")
        if len(Xt) > max_points:
            keep = np.sort(rng.choice(len(Xt), max_points, replace=False))
            Xt, yt = Xt[keep], yt[keep]
        embed = make_embedding(embedding, Xt)
        self._Xt = np.ascontiguousarray(embed(Xt), dtype=np.float64)
        self.target_classes_, self._it = np.unique(yt, return_inverse=True)
        self._b = np.full(len(self._Xt), 1.0 / len(self._Xt))

        X_parts, src_parts, y_parts, self._rows = [], [], [], []
        for j, (name, (X, y)) in enumerate(zip(self.names, sources)):
            X, y = np.asarray(X, dtype=np.float64), None if y is None else np.asarray(y)
            if y is None:
                raise ValueError(f"source {name!r} has no labels; label-aware OT needs them")
            if X.ndim != 2 or len(X) == 0 or y.shape != (len(X),):
                raise ValueError(f"source {name!r}: X {X.shape} and y {y.shape}; expected (n >= 1, d) and (n,)")
            if X.shape[1] != Xt.shape[1]:
                raise ValueError(f"source {name!r} has {X.shape[1]} features, the target {Xt.shape[1]}")
            rows = np.arange(len(X))
            if len(X) > max_points:
                rows = np.sort(rng.choice(len(X), max_points, replace=False))
            self._rows.append(rows)
            X_parts.append(embed(X[rows]))
            y_parts.append(y[rows])
            src_parts.append(np.full(len(rows), j))
        self._X = np.ascontiguousarray(np.concatenate(X_parts), dtype=np.float64)
        self.source_of_point_ = np.concatenate(src_parts)
        self._y = np.concatenate(y_parts)
        self.n_points_ = np.bincount(self.source_of_point_, minlength=len(self.names))
        offsets = np.concatenate([[0], np.cumsum(self.n_points_)])
        self._offsets = offsets
        # groups: (source, label) pairs
        label_classes, label_idx = np.unique(self._y.astype(str) if self._y.dtype == object else self._y,
                                             return_inverse=True)
        group_key = self.source_of_point_ * len(label_classes) + label_idx
        self._group_keys, self.group_of_point_ = np.unique(group_key, return_inverse=True)
        self.groups_ = [(self.names[k // len(label_classes)], label_classes[k % len(label_classes)])
                        for k in self._group_keys]
        self._M = ot.dist(self._X, self._Xt)
        self.group_distances_ = class_distances(self._X, self.group_of_point_, self._Xt, self._it)
        self._costs: dict = {}  # costs and the target's self-term, built on first use
        self._cache: dict = {}

    # -- weights of the union points -------------------------------------------------------------
    def _weights(self, p: np.ndarray, N: int | None, draw: int) -> tuple[np.ndarray, np.ndarray]:
        """Mass of every union point (sums to 1) and its multiplicity (points drawn; 1 when weighted)."""
        if self.mode == "weighted":
            return p[self.source_of_point_] / self.n_points_[self.source_of_point_], np.ones(len(self._X), int)
        from datamix.data.sources import sample_mixture

        sized = [_Sized(n, c) for n, c in zip(self.names, self.n_points_)]
        mix = sample_mixture(sized, p, int(N), seed=self.seed + draw)
        counts = np.bincount(self._offsets[mix.source] + mix.index, minlength=len(self._X))
        return counts / counts.sum(), counts

    def _tangent(self, f: np.ndarray, a: np.ndarray, counts: np.ndarray, p: np.ndarray) -> np.ndarray:
        r"""Gradient along the simplex from point potentials, via the calibrated mixture gradient.

        Each point with mass enters :func:`mixture_gradient` as often as it was drawn, so a
        source's mean potential is mass-weighted; a source without mass enters with all its
        points once (their c-transform potentials: the one-sided derivative). The calibrated
        gradient :math:`(\bar f_i - F)/(1 - p_i)`, :math:`F = \sum_j p_j \bar f_j`, times
        :math:`1 - p_i` is the gradient along the simplex, :math:`\bar f_i - F`.
        """
        src = self.source_of_point_
        empty = np.bincount(src, weights=a, minlength=len(p)) <= 0
        reps = np.where(a > 0, counts, np.where(empty[src], 1, 0))
        g_cal = mixture_gradient(np.repeat(f, reps), np.repeat(src, reps), p)
        return (1.0 - p) * g_cal

    def _solve(self, term: str, a: np.ndarray) -> tuple[float, np.ndarray]:
        if term == "label":
            return self._label_ot(a)
        if self.reg is None:
            return _exact(a, self._b, self._cost(term))
        warm = self._reference(term)
        r = self._entropic(a, self._b, self._cost(term), warmstart=warm[0])
        self_a = self._entropic(a, a, self._self_cost(term), symmetric=True, warmstart=warm[1]).value
        return r.value - 0.5 * (self_a + self._target_self(term)), np.asarray(r.potentials[0], dtype=np.float64)

    def _entropic(self, a, b, M, **options):
        """:func:`entropic_ot` at ``reg``, counted in ``n_solves_`` / ``n_unconverged_``."""
        r = entropic_ot(a, b, M, reg=self.reg, max_iter=self.max_iter, strict=self.strict, **options)
        self.n_solves_ += 1
        self.n_unconverged_ += int(not r.converged)
        return r

    def _reference(self, term: str) -> tuple:
        """Potentials ((f, g), f_self) of the uniform mixture, solved cold once: every mixture's warm start."""
        key = ("warm", term)
        if key not in self._costs:
            a = 1.0 / (len(self.names) * self.n_points_[self.source_of_point_])
            cross = self._entropic(a, self._b, self._cost(term))
            self_a = self._entropic(a, a, self._self_cost(term), symmetric=True)
            self._costs[key] = (cross.potentials, self_a.potentials[0])
        return self._costs[key]

    def _cost(self, term: str) -> np.ndarray:
        """Mixture-to-target ground cost of ``term`` ("feature" or "joint"), (n_points, n_target)."""
        if term == "feature":
            return self._M
        if "joint" not in self._costs:
            L = self.group_distances_[np.ix_(self.group_of_point_, self._it)]
            self._costs["joint"] = self._M + self.label_weight * L
        return self._costs["joint"]

    def _self_cost(self, term: str) -> np.ndarray:
        """The mixture's points to themselves, (n_points, n_points): the self-term of the divergence."""
        key = ("self", term)
        if key not in self._costs:
            self._costs[key] = self._cloud_cost(self._X, self.group_of_point_, term)
        return self._costs[key]

    def _target_self(self, term: str) -> float:
        """OT_ε(target, target) under ``term``'s cost: fixed, solved once."""
        key = ("target", term)
        if key not in self._costs:
            C = self._cloud_cost(self._Xt, self._it, term)
            self._costs[key] = self._entropic(self._b, self._b, C, symmetric=True).value
        return self._costs[key]

    def _cloud_cost(self, X: np.ndarray, groups: np.ndarray, term: str) -> np.ndarray:
        """Cost of a point cloud to itself under ``term`` (labels by ``groups`` for "joint"), (n, n)."""
        C = ot.dist(X, X)
        if term == "joint":
            C += self.label_weight * class_distances(X, groups, X, groups)[np.ix_(groups, groups)]
        return C

    def _label_ot(self, a: np.ndarray) -> tuple[float, np.ndarray]:
        """Label-only OT, solved between groups and target classes, potentials spread to points."""
        mass = np.bincount(self.group_of_point_, weights=a, minlength=len(self._group_keys))
        freq = np.bincount(self._it, minlength=len(self.target_classes_)) / len(self._it)
        value, f_group = _exact(mass, freq, self.group_distances_)
        return value, f_group[self.group_of_point_]

    # -- public ------------------------------------------------------------------------------------
    def evaluate(self, p: np.ndarray, N: int | None = None, terms: Sequence[str] = ("feature", "label")
                 ) -> dict[str, OTTerm]:
        """Value and gradient of each OT term at ratios ``p`` (and size ``N`` in ``mode="sample"``).

        Parameters
        ----------
        p : ndarray of shape (n_sources,)
            Ratios on the simplex (validated by the caller).
        N : int, optional
            Mixture size; used (and required) only by ``mode="sample"``.
        terms : sequence of {"feature", "label", "joint"}

        Returns
        -------
        dict of str to OTTerm
        """
        p = np.asarray(p, dtype=np.float64)
        if self.mode == "sample" and N is None:
            raise ValueError("mode='sample' draws mixtures of a size: pass N")
        key_p = tuple(np.round(p, 12))
        key_n = int(N) if self.mode == "sample" else None
        out = {}
        for term in terms:
            if term not in TERMS:
                raise ValueError(f"OT term {term!r}; choose from {TERMS}")
            key = (term, key_p, key_n)
            if key not in self._cache:
                values, grads = [], []
                for d in range(self.n_draws if self.mode == "sample" else 1):
                    a, counts = self._weights(p, N, d)
                    value, f = self._solve(term, a)
                    values.append(value)
                    grads.append(self._tangent(f, a, counts, p))
                self._cache[key] = OTTerm(float(np.mean(values)), np.mean(grads, axis=0))
            out[term] = self._cache[key]
        return out

    def values(self, P: np.ndarray, N: int | None = None, terms: Sequence[str] = ("feature", "label")
               ) -> np.ndarray:
        """Values of ``terms`` at every row of ``P``, shape (n_mixtures, len(terms))."""
        return np.array([[t.value for t in self.evaluate(p, N, terms).values()] for p in np.atleast_2d(P)])


@dataclass(frozen=True)
class _Sized:
    """What :func:`sample_mixture` needs of a source: a name and a length."""

    name: str
    n: int

    def __len__(self) -> int:
        return int(self.n)
