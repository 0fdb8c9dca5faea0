"""Label-aware optimal-transport distance between labelled point clouds (OTDD-style).

The ground cost between (x, y) of dataset A and (x', y') of dataset B is

.. math::

    c((x, y), (x', y')) = \\lVert x - x' \\rVert^2 + \\lambda\\, W(y, y'),

where :math:`W(y, y')` is the squared 2-Wasserstein distance between class y of A and class y' of B
as point clouds (uniform weights inside a class), computed once per pair of classes, not per pair of
points. The distance is the optimal transport cost itself (no square root): exact (POT ``emd``) when
``reg`` is None, else the debiased Sinkhorn divergence
:math:`S_\\varepsilon(a, b) = OT_\\varepsilon(a, b) - \\tfrac12 OT_\\varepsilon(a, a) - \\tfrac12 OT_\\varepsilon(b, b)`.

Arrays may be numpy arrays or torch tensors (on GPU too): all arithmetic goes through POT's backend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import ot

logger = logging.getLogger(__name__)

LABEL_METHODS = ("auto", "exact", "gaussian")


@dataclass(frozen=True)
class OTResult:
    """Result of :func:`label_ot`.

    Attributes
    ----------
    value : float
        The OT cost (exact), or the debiased Sinkhorn divergence (``reg`` given).
    plan : array, shape (n_a, n_b)
        Transport plan of the A-to-B problem (not debiased).
    potentials : tuple of arrays, shapes (n_a,) and (n_b,)
        Dual potentials (f, g) of the A-to-B problem (not debiased): the gradient of the cost with
        respect to the weights of A's points is f, up to an additive constant.
    label_distances : array of shape (n_classes_a, n_classes_b), or None
        W between A's and B's classes; None without labels.
    classes_a, classes_b : ndarray or None
        The class values, in the order of the rows and columns of ``label_distances``.
    n_iter : int
        Solver iterations (Sinkhorn), or 0 (exact).
    converged : bool
    """

    value: float
    plan: object
    potentials: tuple
    label_distances: np.ndarray | None
    classes_a: np.ndarray | None
    classes_b: np.ndarray | None
    n_iter: int
    converged: bool


def _weights(w, n: int, name: str, nx, type_as):
    if w is None:
        return nx.ones(n, type_as=type_as) / n
    w_np = np.asarray(nx.to_numpy(w) if not isinstance(w, np.ndarray) else w, dtype=np.float64)
    if w_np.shape != (n,):
        raise ValueError(f"{name} has shape {w_np.shape}, expected ({n},): one weight per point")
    if not np.isfinite(w_np).all() or (w_np < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    if abs(w_np.sum() - 1) > 1e-6:
        raise ValueError(f"{name} sums to {w_np.sum():.6g}; weights must sum to 1 (normalise them first)")
    return nx.from_numpy(w_np, type_as=type_as)


def _points(X, name: str):
    if isinstance(X, np.ndarray) or not hasattr(X, "shape"):
        X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} has shape {tuple(X.shape)}, expected (n_samples, n_features) with n >= 1")
    return X


def _class_index(y, n: int, name: str):
    y = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
    if y.shape != (n,):
        raise ValueError(f"{name} has shape {y.shape}, expected ({n},): one label per point")
    classes, index = np.unique(y, return_inverse=True)
    return classes, index


def _gaussian_w2(Xa, Xb) -> float:
    """Squared 2-Wasserstein distance between Gaussians fitted to two point clouds (Bures)."""
    ma, mb = Xa.mean(0), Xb.mean(0)
    Ca = np.atleast_2d(np.cov(Xa, rowvar=False)) if len(Xa) > 1 else np.zeros((Xa.shape[1],) * 2)
    Cb = np.atleast_2d(np.cov(Xb, rowvar=False)) if len(Xb) > 1 else np.zeros((Xb.shape[1],) * 2)
    return float(ot.gaussian.bures_wasserstein_distance(ma, mb, Ca, Cb)) ** 2


def class_distances(Xa, ia, Xb, ib, *, method: str = "auto", max_class_size: int = 2000, nx=None) -> np.ndarray:
    """Squared 2-Wasserstein distances between every class of A and every class of B.

    Parameters
    ----------
    Xa, Xb : arrays, shapes (n_a, d), (n_b, d)
    ia, ib : ndarray of int, shapes (n_a,), (n_b,)
        Class index (0..k-1) of each point.
    method : {"auto", "exact", "gaussian"}
        "exact": OT with squared-Euclidean cost between the classes' points; "gaussian": the Bures
        distance between Gaussians fitted to them; "auto": exact unless a class holds more than
        ``max_class_size`` points.

    Returns
    -------
    ndarray of shape (k_a, k_b)
    """
    if method not in LABEL_METHODS:
        raise ValueError(f"label method={method!r}; choose one of {LABEL_METHODS}")
    nx = nx or ot.backend.get_backend(Xa, Xb)
    ka, kb = int(ia.max()) + 1, int(ib.max()) + 1
    members_a = [np.flatnonzero(ia == c) for c in range(ka)]
    members_b = [np.flatnonzero(ib == c) for c in range(kb)]
    largest = max(max(map(len, members_a)), max(map(len, members_b)))
    if method == "auto":
        method = "exact" if largest <= max_class_size else "gaussian"
        if method == "gaussian":
            logger.info("a class holds %d points (> max_class_size=%d): Gaussian label distances",
                        largest, max_class_size)
    W = np.zeros((ka, kb))
    if method == "gaussian":
        Xa_np, Xb_np = nx.to_numpy(Xa).astype(np.float64), nx.to_numpy(Xb).astype(np.float64)
        for i, mi in enumerate(members_a):
            for j, mj in enumerate(members_b):
                W[i, j] = _gaussian_w2(Xa_np[mi], Xb_np[mj])
        return W
    for i, mi in enumerate(members_a):
        for j, mj in enumerate(members_b):
            M = ot.dist(Xa[mi], Xb[mj])
            ua = nx.ones(len(mi), type_as=M) / len(mi)
            ub = nx.ones(len(mj), type_as=M) / len(mj)
            W[i, j] = float(ot.emd2(ua, ub, M))
    return W


def _soft_c_transform(g, b, M, reg, nx):
    """f_i = -reg · log Σ_j b_j exp((g_j - M_ij) / reg): the potential on every point of A."""
    return -reg * nx.logsumexp((g[None, :] - M) / reg + nx.log(b)[None, :], axis=1)


def _entropic(a, b, M, reg, nx, max_iter, tol):
    """Entropic OT (log-domain Sinkhorn): (value, plan, f, g, n_iter, converged).

    Potentials follow P_ij = a_i b_j exp((f_i + g_j - M_ij) / reg), so that the value is
    <a, f> + <b, g> and f is the gradient of the value with respect to a. Points of zero mass are
    left out of the solve and get their potential from the soft c-transform.
    """
    keep_a, keep_b = nx.to_numpy(a) > 0, nx.to_numpy(b) > 0
    Mk = M[keep_a][:, keep_b]
    with np.errstate(over="ignore"):  # POT also returns exp(log_u), unused here, which may overflow
        _, log = ot.sinkhorn(a[keep_a], b[keep_b], Mk, reg, method="sinkhorn_log", numItermax=max_iter,
                             stopThr=tol, log=True, warn=False)
    g = reg * (log["log_v"] - nx.log(b[keep_b]))
    f = _soft_c_transform(g, b[keep_b], M[:, keep_b], reg, nx)
    g = _soft_c_transform(f[keep_a], a[keep_a], M[keep_a].T, reg, nx)
    plan = a[:, None] * b[None, :] * nx.exp((f[:, None] + g[None, :] - M) / reg)
    value = float(nx.sum(a * f) + nx.sum(b * g))
    n_iter = int(log["niter"])
    converged = bool(len(log["err"]) and float(log["err"][-1]) <= tol)
    return value, plan, f, g, n_iter, converged


def entropic_ot(a, b, M, *, reg: float, symmetric: bool = False, max_iter: int = 1000, tol: float = 1e-9) -> OTResult:
    """Entropic OT between weights ``a`` and ``b`` under cost ``M`` (log-domain Sinkhorn, not debiased).

    .. math::

        OT_\\varepsilon(a, b) = \\min_{P \\in U(a, b)} \\langle P, M \\rangle + \\varepsilon\\, KL(P \\,|\\, a b^\\top)
                              = \\langle a, f \\rangle + \\langle b, g \\rangle

    The building block of :func:`label_ot` with ``reg``, for callers that keep their own costs (e.g.
    a fixed target's self-term, solved once): the debiased divergence is
    ``entropic_ot(a, b, M_ab) - (entropic_ot(a, a, M_aa) + entropic_ot(b, b, M_bb)) / 2``.

    Parameters
    ----------
    a : array of shape (n_a,)
        Weights (>= 0, summing to 1); points of zero mass are left out of the solve and get their
        potential by the soft c-transform.
    b : array of shape (n_b,)
    M : array of shape (n_a, n_b)
    reg : float
        ε > 0, in the units of the cost.
    symmetric : bool, default=False
        A self-term: ``b`` equals ``a`` and ``M`` is symmetric. Solved by the symmetric fixed point
        :math:`f \\leftarrow (f + T_a f)/2` (Feydy et al. 2019), which converges where alternating
        updates stall; the potentials are (f, f).
    max_iter : int, default=1000
    tol : float, default=1e-9
        Stopping threshold on the marginal error.

    Returns
    -------
    OTResult
        ``value``, ``plan``, ``potentials`` (f, g), ``n_iter``, ``converged``; no label distances.

    Examples
    --------
    >>> M = np.full((2, 2), 3.0)  # a constant cost: the independent plan a b^T, no entropy cost
    >>> round(entropic_ot(np.array([0.5, 0.5]), np.array([0.25, 0.75]), M, reg=0.1).value, 9)
    3.0
    """
    nx = ot.backend.get_backend(a, b, M)
    shape = tuple(M.shape)
    if len(shape) != 2 or tuple(a.shape) != (shape[0],) or tuple(b.shape) != (shape[1],):
        raise ValueError(f"a {tuple(a.shape)}, b {tuple(b.shape)} and M {shape} do not match: "
                         "expected (n_a,), (n_b,) and (n_a, n_b)")
    if not reg > 0:
        raise ValueError(f"reg={reg!r} must be > 0")
    for name, w in (("a", a), ("b", b)):
        w_np = np.asarray(nx.to_numpy(w), dtype=np.float64)
        if (w_np < 0).any() or abs(w_np.sum() - 1) > 1e-6:
            raise ValueError(f"{name} must be >= 0 and sum to 1 (sums to {w_np.sum():.6g})")
    if symmetric:
        if shape[0] != shape[1] or not np.array_equal(nx.to_numpy(a), nx.to_numpy(b)):
            raise ValueError("symmetric=True is for a self-term: pass b equal to a and a square M")
        value, plan, f, n_iter, converged = _entropic_self(a, M, reg, nx, max_iter, tol)
        return OTResult(value, plan, (f, f), None, None, None, n_iter, converged)
    value, plan, f, g, n_iter, converged = _entropic(a, b, M, reg, nx, max_iter, tol)
    return OTResult(value, plan, (f, g), None, None, None, n_iter, converged)


def _entropic_self(a, M, reg, nx, max_iter, tol):
    """OT_ε(a, a) by the symmetric fixed point f ← (f + T_a f) / 2 (Feydy et al. 2019).

    T_a is the soft c-transform; at its fixed point f = g and the value is 2<a, f>. Alternating
    Sinkhorn updates on a self-term can stall (the plan is nearly diagonal when ``reg`` is small
    against the cost: 1000 iterations without converging on the bundled digits at reg=1), the
    averaged update converges in tens of iterations. Returns (value, plan, f, n_iter, converged);
    the value is the dual objective, exact at convergence.
    """
    keep = nx.to_numpy(a) > 0
    a_k, M_k = a[keep], M[keep][:, keep]
    log_a = nx.log(a_k)
    f = nx.zeros(a_k.shape[0], type_as=M)
    converged, n_iter = False, 0
    for n_iter in range(1, max_iter + 1):
        Tf = -reg * nx.logsumexp((f[None, :] - M_k) / reg + log_a[None, :], axis=1)
        row = a_k * nx.exp((f - Tf) / reg)  # row sums of the current plan
        if float(nx.norm(row - a_k)) <= tol:
            converged = True
            break
        f = 0.5 * (f + Tf)
    value = float(2 * nx.sum(a_k * f) - reg * (nx.sum(row) - 1))
    f_all = _soft_c_transform(f, a_k, M[:, keep], reg, nx)
    plan = a[:, None] * a[None, :] * nx.exp((f_all[:, None] + f_all[None, :] - M) / reg)
    return value, plan, f_all, n_iter, converged


def _tight_potentials(f, g, a, b, M, nx):
    """Exact-OT duals with the potential of every zero-mass point set by the c-transform.

    The network simplex only makes those potentials feasible, not tight; the c-transform
    f_i = min_j (M_ij - g_j) over the supported points gives the value whose difference is the
    derivative of the cost when mass moves to that point.
    """
    zero_a, zero_b = nx.to_numpy(a) == 0, nx.to_numpy(b) == 0
    if zero_a.any() and not zero_b.all():
        f = nx.where(nx.from_numpy(zero_a, type_as=f),
                     nx.min(M[:, ~zero_b] - g[~zero_b][None, :], axis=1), f)
    if zero_b.any() and not zero_a.all():
        g = nx.where(nx.from_numpy(zero_b, type_as=g),
                     nx.min(M[~zero_a].T - f[~zero_a][None, :], axis=1), g)
    return f, g


def _joint_cost(Xa, ia, Xb, ib, label_weight, nx, **label_options):
    """Ground cost ||x - x'||² + λ W(y, y'), shape (n_a, n_b), and W (None without labels)."""
    M = ot.dist(Xa, Xb)
    if ia is None:
        return M, None
    W = class_distances(Xa, ia, Xb, ib, nx=nx, **label_options)
    return M + label_weight * nx.from_numpy(W[np.ix_(ia, ib)], type_as=M), W


def label_ot(Xa, ya, Xb, yb, *, reg: float | None = None, label_weight: float = 1.0, wa=None, wb=None,
             label_method: str = "auto", max_class_size: int = 2000, max_iter: int = 1000,
             tol: float = 1e-9) -> OTResult:
    """Label-aware OT between (Xa, ya) and (Xb, yb), with plan, potentials and label distances.

    Parameters
    ----------
    Xa : array of shape (n_a, n_features)
    ya : array of shape (n_a,) or None
        Labels of A; give both ``ya`` and ``yb``, or neither (plain OT, squared-Euclidean cost).
        Label values need not overlap between A and B: W is computed between every pair of classes.
    Xb : array of shape (n_b, n_features)
    yb : array of shape (n_b,) or None
    reg : float or None, default=None
        None: exact OT (POT ``emd``). > 0: entropic regularisation, in the units of the cost; the
        value is then the debiased Sinkhorn divergence.
    label_weight : float, default=1.0
        λ, the weight of the label term in the ground cost.
    wa, wb : array of shape (n_a,) / (n_b,), optional
        Point weights (>= 0, summing to 1); uniform when omitted.
    label_method : {"auto", "exact", "gaussian"}, default="auto"
        How W is computed, see :func:`class_distances`.
    max_class_size : int, default=2000
    max_iter : int, default=1000
        Sinkhorn iterations.
    tol : float, default=1e-9
        Sinkhorn stopping threshold on the marginal error.

    Returns
    -------
    OTResult

    Examples
    --------
    >>> X = np.array([[0.0], [1.0]])
    >>> round(label_ot(X, None, X + 2, None).value, 6)  # every point moves by 2
    4.0
    """
    Xa, Xb = _points(Xa, "Xa"), _points(Xb, "Xb")
    if Xa.shape[1] != Xb.shape[1]:
        raise ValueError(f"Xa has {Xa.shape[1]} features and Xb {Xb.shape[1]}; they must match")
    if (ya is None) != (yb is None):
        raise ValueError("give labels for both datasets (ya and yb) or for neither")
    if reg is not None and not reg > 0:
        raise ValueError(f"reg={reg!r} must be > 0, or None for exact OT")
    if not (np.isfinite(label_weight) and label_weight >= 0):
        raise ValueError(f"label_weight={label_weight!r} must be a finite number >= 0")
    nx = ot.backend.get_backend(Xa, Xb)
    a = _weights(wa, Xa.shape[0], "wa", nx, Xa)
    b = _weights(wb, Xb.shape[0], "wb", nx, Xb)
    classes_a = classes_b = ia = ib = None
    if ya is not None:
        classes_a, ia = _class_index(ya, Xa.shape[0], "ya")
        classes_b, ib = _class_index(yb, Xb.shape[0], "yb")
    opts = dict(label_weight=label_weight, nx=nx, method=label_method, max_class_size=max_class_size)
    M, W = _joint_cost(Xa, ia, Xb, ib, **opts)

    if reg is None:
        plan, log = ot.emd(a, b, M, numItermax=max(100_000, 50 * M.shape[0] * M.shape[1]), log=True)
        converged = log["result_code"] == 1
        if not converged:
            logger.warning("exact OT did not converge: %s", log["warning"])
        f, g = _tight_potentials(log["u"], log["v"], a, b, M, nx)
        return OTResult(float(log["cost"]), plan, (f, g), W, classes_a, classes_b, 0, converged)

    value, plan, f, g, n_iter, converged = _entropic(a, b, M, reg, nx, max_iter, tol)
    self_a = _entropic_self(a, _joint_cost(Xa, ia, Xa, ia, **opts)[0], reg, nx, max_iter, tol)[0]
    self_b = _entropic_self(b, _joint_cost(Xb, ib, Xb, ib, **opts)[0], reg, nx, max_iter, tol)[0]
    return OTResult(value - 0.5 * (self_a + self_b), plan, (f, g), W, classes_a, classes_b, n_iter, converged)


def label_ot_distance(Xa, ya, Xb, yb, *, reg: float | None = None, label_weight: float = 1.0, wa=None,
                      wb=None, **options) -> float:
    """The value of :func:`label_ot`: the label-aware OT cost (exact) or Sinkhorn divergence."""
    return label_ot(Xa, ya, Xb, yb, reg=reg, label_weight=label_weight, wa=wa, wb=wb, **options).value
