"""Squared 2-Wasserstein distances between the classes of two labelled point clouds (OTDD's W).

W(y, y') is the OT cost between class y of A and class y' of B as point clouds with uniform weights
and squared-Euclidean cost (no 1/2: see :mod:`datamix.ot.distance` for the convention), or, for large
classes, the Bures distance between Gaussians fitted to them:

.. math::

    W_{\\mathcal N}(y, y') = \\lVert m - m' \\rVert^2
        + \\operatorname{tr}\\big(S + S' - 2 (S^{1/2} S' S^{1/2})^{1/2}\\big),

with the square roots of symmetric PSD matrices taken by eigendecomposition with negative
eigenvalues (round-off of a singular covariance: constant features, fewer points than features)
clipped to 0, so the distance is finite wherever the covariances are.

Tables are cached by content (a few hundred bytes each), so repeated calls on the same data —
the debiased divergence's self-terms, a predictor's mixtures — compute each table once.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

import numpy as np
import ot

logger = logging.getLogger(__name__)

LABEL_METHODS = ("auto", "exact", "gaussian")
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 32


def sqrtm_psd(S: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix, negative eigenvalues (round-off) clipped to 0."""
    w, V = np.linalg.eigh((S + S.T) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def gaussian_w2(Xa: np.ndarray, Xb: np.ndarray) -> float:
    """Squared 2-Wasserstein (Bures) distance between Gaussians fitted to two point clouds, (n, d) each."""
    d = Xa.shape[1]
    Sa = np.atleast_2d(np.cov(Xa, rowvar=False)) if len(Xa) > 1 else np.zeros((d, d))
    Sb = np.atleast_2d(np.cov(Xb, rowvar=False)) if len(Xb) > 1 else np.zeros((d, d))
    ra = sqrtm_psd(Sa)
    cross = np.clip(np.linalg.eigvalsh(ra @ Sb @ ra), 0, None)
    bures = np.trace(Sa) + np.trace(Sb) - 2 * np.sqrt(cross).sum()
    return float(((Xa.mean(0) - Xb.mean(0)) ** 2).sum() + max(bures, 0.0))


def _digest(*arrays) -> str:
    h = hashlib.sha1()
    for x in arrays:
        x = np.ascontiguousarray(x)
        h.update(str((x.dtype, x.shape)).encode())
        h.update(x.tobytes())
    return h.hexdigest()


def _members(index: np.ndarray, side: str) -> list[np.ndarray]:
    k = int(index.max()) + 1
    members = [np.flatnonzero(index == c) for c in range(k)]
    empty = [c for c, m in enumerate(members) if len(m) == 0]
    if empty:
        raise ValueError(f"class index {empty} of {side} has no points: class indices must be 0..k-1, each used "
                         "(np.unique(labels, return_inverse=True) gives them)")
    return members


def class_distances(Xa, ia, Xb, ib, *, method: str = "auto", max_class_size: int = 2000, nx=None,
                    classes=None) -> np.ndarray:
    """Squared 2-Wasserstein distances between every class of A and every class of B.

    Parameters
    ----------
    Xa, Xb : arrays, shapes (n_a, d), (n_b, d)
    ia, ib : ndarray of int, shapes (n_a,), (n_b,)
        Class index (0..k-1, each used) of each point.
    method : {"auto", "exact", "gaussian"}, default="auto"
        "exact": OT with squared-Euclidean cost between the classes' points; "gaussian": the Bures
        distance between Gaussians fitted to them (PSD square roots by clipped eigendecomposition);
        "auto": exact unless a class holds more than ``max_class_size`` points.
    max_class_size : int, default=2000
    classes : (array of shape (k_a,), array of shape (k_b,)), optional
        The class values behind the indices, for error messages.

    Returns
    -------
    ndarray of shape (k_a, k_b)
        In the units of the squared features. A dataset against itself (the same arrays) gives a
        symmetric table with a zero diagonal, each pair solved once.

    Raises
    ------
    ValueError
        An unknown method, a class index without points, or a distance that is not finite (the
        message names the classes).
    """
    if method not in LABEL_METHODS:
        raise ValueError(f"label method={method!r}; choose one of {LABEL_METHODS}")
    nx = nx or ot.backend.get_backend(Xa, Xb)
    ia, ib = np.asarray(ia), np.asarray(ib)
    members_a, members_b = _members(ia, "A"), _members(ib, "B")
    largest = max(max(map(len, members_a)), max(map(len, members_b)))
    if method == "auto":
        method = "exact" if largest <= max_class_size else "gaussian"
        if method == "gaussian":
            logger.info("a class holds %d points (> max_class_size=%d): Gaussian label distances",
                        largest, max_class_size)
    self_term = Xa is Xb and np.array_equal(ia, ib)
    Xa_np = nx.to_numpy(Xa)
    Xb_np = Xa_np if self_term else nx.to_numpy(Xb)
    key = (_digest(Xa_np, ia, Xb_np, ib), method)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key].copy()
    W = np.zeros((len(members_a), len(members_b)))
    for i, mi in enumerate(members_a):
        for j, mj in enumerate(members_b):
            if self_term and j <= i:
                W[i, j] = W[j, i] if j < i else 0.0
            elif method == "gaussian":
                W[i, j] = gaussian_w2(Xa_np[mi].astype(np.float64), Xb_np[mj].astype(np.float64))
            else:
                M = ot.dist(Xa[mi], Xb[mj])
                ua = nx.ones(len(mi), type_as=M) / len(mi)
                ub = nx.ones(len(mj), type_as=M) / len(mj)
                W[i, j] = float(ot.emd2(ua, ub, M))
    bad = np.argwhere(~np.isfinite(W))
    if len(bad):
        ca, cb = classes if classes is not None else (range(len(members_a)), range(len(members_b)))
        pairs = ", ".join(f"(A class {str(ca[i])!r}, B class {str(cb[j])!r})" for i, j in bad[:5])
        raise ValueError(f"label distance W is not finite for {len(bad)} class pair(s): {pairs}; "
                         "check these classes' features for NaN or inf")
    _CACHE[key] = W
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return W.copy()
