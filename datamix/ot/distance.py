"""Label-aware optimal-transport distance between labelled point clouds (OTDD-style).

The ground cost between (x, y) of dataset A and (x', y') of dataset B is

.. math::

    c((x, y), (x', y')) = \\lVert x - x' \\rVert^2 + \\lambda\\, W(y, y'),

where :math:`W(y, y')` is the squared 2-Wasserstein distance between class y of A and class y' of B
as point clouds (uniform weights inside a class, the same squared-Euclidean cost), computed once per
pair of classes, not per pair of points (:func:`datamix.ot.class_distances`). The distance is the
optimal transport cost itself (no square root), in the units of the squared features: exact (POT
``emd``) when ``reg`` is None, else the debiased Sinkhorn divergence
:math:`S_\\varepsilon(a, b) = OT_\\varepsilon(a, b) - \\tfrac12 OT_\\varepsilon(a, a) - \\tfrac12 OT_\\varepsilon(b, b)`.

Convention against the literature: OTDD (Alvarez-Melis & Fusi 2020, ``microsoft/otdd``) and Projektor
(Kang et al. 2023) use geomloss's p = 2 convention, the cost
:math:`\\tfrac12 \\lVert x - x' \\rVert^2 + \\tfrac12 W(y, y')`: every datamix value is **twice** theirs
on the same data (exact OT; with entropy, datamix at ``reg = ε`` is twice theirs at ε / 2).

Every solve either converges or says so: an entropic problem that stops above ``tol``, or a network
simplex that stops early, warns with a :class:`~sklearn.exceptions.ConvergenceWarning` naming the
problem, ``reg``, the iterations and the marginal error, or raises :class:`NotConvergedError` with
``strict=True``. A NaN or infinite feature, or a cost that is not finite, is an error, never a
distance of 0.

Arrays may be numpy arrays or torch tensors (on GPU too): all arithmetic goes through POT's backend.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import ot
from sklearn.exceptions import ConvergenceWarning

from datamix.ot import sinkhorn
from datamix.ot.classes import class_distances

METHODS = ("auto", "sinkhorn", "epsilon_scaling")


class NotConvergedError(RuntimeError):
    """An OT solver stopped before its tolerance and ``strict=True`` was asked."""


@dataclass(frozen=True)
class OTResult:
    """Result of :func:`label_ot` and :func:`entropic_ot`.

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
        Sinkhorn iterations of the A-to-B problem (all ε-scaling stages), or 0 (exact).
    converged : bool
        Every problem solved (with ``reg``: the A-to-B problem and both self-terms) reached ``tol``.
    marginal_error : float
        Largest final marginal error (L2 norm, as POT's) of the problems solved; 0 for exact OT.
    """

    value: float
    plan: object
    potentials: tuple
    label_distances: np.ndarray | None
    classes_a: np.ndarray | None
    classes_b: np.ndarray | None
    n_iter: int
    converged: bool
    marginal_error: float = 0.0


def check_converged(result: OTResult, problem: str, *, reg, tol, strict: bool, stacklevel: int = 3) -> None:
    """Warn (or raise under ``strict``) when ``result`` did not converge; ``problem`` names it."""
    if result.converged:
        return
    if reg is None:
        msg = (f"exact OT ({problem}) stopped before optimality (network simplex iteration cap): the value is "
               "an upper bound; the problem may be too large for the exact solver, try reg > 0")
    else:
        msg = (f"Sinkhorn ({problem}) did not converge: marginal error {result.marginal_error:.3g} > tol={tol:g} "
               f"after {result.n_iter} iterations at reg={reg:g}; the value is biased. Raise max_iter, raise reg, "
               "or use reg=None (exact OT)")
    if strict:
        raise NotConvergedError(msg)
    warnings.warn(msg, ConvergenceWarning, stacklevel=stacklevel)


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
    bad = np.flatnonzero(~np.isfinite(ot.backend.get_backend(X).to_numpy(X)).all(axis=1))
    if len(bad):
        raise ValueError(f"{name} holds NaN or inf in {len(bad)} row(s) (first: {bad[:5].tolist()}); "
                         "drop or impute them before OT")
    return X


def _class_index(y, n: int, name: str):
    y = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
    if y.shape != (n,):
        raise ValueError(f"{name} has shape {y.shape}, expected ({n},): one label per point")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(f"{name} holds NaN labels (first at rows {np.flatnonzero(np.isnan(y))[:5].tolist()}); "
                         "every point needs a class")
    classes, index = np.unique(y, return_inverse=True)
    return classes, index


def _check_cost(M, nx, name: str, labels=None) -> None:
    """A cost that is not finite is an error naming the first bad entry (and its classes)."""
    if not (bool(nx.any(nx.isnan(M))) or bool(nx.any(nx.isinf(M)))):  # on the array's device
        return
    bad = ~np.isfinite(nx.to_numpy(M))
    i, j = np.argwhere(bad)[0]
    where = f"entry ({i}, {j})"
    if labels is not None:
        (ia, ca), (ib, cb) = labels
        where += f", between class {str(ca[ia[i]])!r} of A and class {str(cb[ib[j]])!r} of B"
    raise ValueError(f"the cost {name} is not finite at {bad.sum()} entries (first: {where}); "
                     "check those classes' features and label distances")


def _support(w, nx):
    """Mask of points with mass, or None when every point has some (no copy of the cost needed)."""
    keep = nx.to_numpy(w) > 0
    return None if keep.all() else keep


def _entropic(a, b, M, reg, nx, *, max_iter=None, tol=1e-9, method="auto", warmstart=None) -> OTResult:
    """Entropic OT (not debiased) on clean input; ``_impl`` of :func:`entropic_ot`.

    The value is the dual objective <a, f> + <b, g>, with f the c-transform of g (the plan's rows
    are exact). Points of zero mass are left out of the solve and get their potential from the soft
    c-transform (both potentials are then c-transforms, as is the plan).
    """
    keep_a, keep_b = _support(a, nx), _support(b, nx)
    ak = a if keep_a is None else a[keep_a]
    bk = b if keep_b is None else b[keep_b]
    Mb = M if keep_b is None else M[:, keep_b]
    Mk = Mb if keep_a is None else Mb[keep_a]
    warm = None
    if warmstart is not None:
        f0, g0 = warmstart
        warm = (f0 if keep_a is None else f0[keep_a], g0 if keep_b is None else g0[keep_b])
    state = sinkhorn.solve(ak, bk, Mk, reg, nx, max_iter=max_iter or sinkhorn.default_max_iter(Mk, reg, nx), tol=tol,
                           method=method, warmstart=warm)
    f, g, plan = state.f, state.g, state.plan
    if keep_a is not None or keep_b is not None:
        f = sinkhorn.c_transform(g, bk, Mb, reg, nx)
        g = sinkhorn.c_transform(f if keep_a is None else f[keep_a], ak, (M if keep_a is None else M[keep_a]).T,
                                 reg, nx)
        plan = a[:, None] * b[None, :] * nx.exp((f[:, None] + g[None, :] - M) / reg)
    value = float(nx.sum(a * f) + nx.sum(b * g))
    return OTResult(value, plan, (f, g), None, None, None, state.n_iter, state.converged, state.error)


def _entropic_self(a, M, reg, nx, *, max_iter=None, tol=1e-9, method="auto", warmstart=None) -> OTResult:
    """OT_ε(a, a) by the symmetric fixed point f ← (f + T_a f) / 2 (Feydy et al. 2019), clean input.

    At the fixed point f = g and the value is 2<a, f>; alternating Sinkhorn updates on a self-term
    can stall (the plan is nearly diagonal when ``reg`` is small against the cost), the averaged
    update converges in tens of iterations. The value is the dual objective
    2<a, f> - ε (Σ P - 1), exact at convergence.
    """
    keep = _support(a, nx)
    ak = a if keep is None else a[keep]
    Ma = M if keep is None else M[:, keep]
    Mk = Ma if keep is None else Ma[keep]
    warm = None if warmstart is None else (warmstart if keep is None else warmstart[keep])
    state = sinkhorn.solve_symmetric(ak, Mk, reg, nx, max_iter=max_iter or sinkhorn.default_max_iter(Mk, reg, nx),
                                     tol=tol, method=method, warmstart=warm)
    value = float(2 * nx.sum(ak * state.f) - reg * (nx.sum(state.plan) - 1))
    f, plan = state.f, state.plan
    if keep is not None:
        f = sinkhorn.c_transform(state.f, ak, Ma, reg, nx)
        plan = a[:, None] * a[None, :] * nx.exp((f[:, None] + f[None, :] - M) / reg)
    return OTResult(value, plan, (f, f), None, None, None, state.n_iter, state.converged, state.error)


def entropic_ot(a, b, M, *, reg: float, symmetric: bool = False, max_iter: int | None = None, tol: float = 1e-9,
                method: str = "auto", warmstart=None, strict: bool = False) -> OTResult:
    """Entropic OT between weights ``a`` and ``b`` under cost ``M`` (Sinkhorn, not debiased).

    .. math::

        OT_\\varepsilon(a, b) = \\min_{P \\in U(a, b)} \\langle P, M \\rangle + \\varepsilon\\, KL(P \\,|\\, a b^\\top)
                              = \\langle a, f \\rangle + \\langle b, g \\rangle

    The building block of :func:`label_ot` with ``reg``, for callers that keep their own costs (e.g.
    a fixed target's self-term, solved once): the debiased divergence is
    ``entropic_ot(a, b, M_ab) - (entropic_ot(a, a, M_aa) + entropic_ot(b, b, M_bb)) / 2``.
    Solved by kernel (non-log) Sinkhorn iterations on the cost shifted by the current potentials,
    log-domain steps only where the scalings would overflow (see :mod:`datamix.ot.sinkhorn`).

    Parameters
    ----------
    a : array of shape (n_a,)
        Weights (>= 0, summing to 1); points of zero mass are left out of the solve and get their
        potential by the soft c-transform.
    b : array of shape (n_b,)
    M : array of shape (n_a, n_b)
        Finite costs.
    reg : float
        ε > 0, in the units of the cost.
    symmetric : bool, default=False
        A self-term: ``b`` equals ``a`` and ``M`` is symmetric. Solved by the symmetric fixed point
        :math:`f \\leftarrow (f + T_a f)/2` (Feydy et al. 2019), which converges where alternating
        updates stall; the potentials are (f, f).
    max_iter : int or None, default=None
        Iteration cap of the last ε stage; None: grows with the cost's spread over ``reg``
        (``20 * (max M - min M) / reg`` within [10,000, 100,000]), as Sinkhorn's iteration count does.
    tol : float, default=1e-9
        Stopping threshold on the marginal error (L2 norm, as POT's ``stopThr``).
    method : {"auto", "sinkhorn", "epsilon_scaling"}, default="auto"
        "sinkhorn": iterate at ``reg`` from the start; "epsilon_scaling": anneal ε from the cost's
        spread down to ``reg`` by halves, each stage warm-started from the last; "auto":
        ε-scaling when the spread exceeds 16 ``reg`` and no warm start is given.
    warmstart : tuple (f, g) of arrays of shapes (n_a,), (n_b,), or array f (symmetric), optional
        Potentials to start from (e.g. the previous solution of a nearby problem).
    strict : bool, default=False
        Raise :class:`NotConvergedError` instead of warning when ``tol`` is not reached.

    Returns
    -------
    OTResult
        ``value``, ``plan``, ``potentials`` (f, g), ``n_iter``, ``converged``, ``marginal_error``;
        no label distances.

    Raises
    ------
    ValueError
        Mismatched shapes, weights that are negative or do not sum to 1, reg <= 0, a cost that is not
        finite, or an unknown method.

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
    if method not in METHODS:
        raise ValueError(f"method={method!r}; choose one of {METHODS}")
    for name, w in (("a", a), ("b", b)):
        w_np = np.asarray(nx.to_numpy(w), dtype=np.float64)
        if (w_np < 0).any() or abs(w_np.sum() - 1) > 1e-6:
            raise ValueError(f"{name} must be >= 0 and sum to 1 (sums to {w_np.sum():.6g})")
    _check_cost(M, nx, "M")
    options = dict(max_iter=max_iter, tol=tol, method=method, warmstart=warmstart)
    if symmetric:
        if shape[0] != shape[1] or not np.array_equal(nx.to_numpy(a), nx.to_numpy(b)):
            raise ValueError("symmetric=True is for a self-term: pass b equal to a and a square M")
        result = _entropic_self(a, M, reg, nx, **options)
    else:
        result = _entropic(a, b, M, reg, nx, **options)
    check_converged(result, "self-term" if symmetric else f"{shape[0]} x {shape[1]}", reg=reg, tol=tol, strict=strict)
    return result


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
    W = class_distances(Xa, ia, Xb, ib, nx=nx, **label_options)  # raises on a non-finite W, naming classes
    return M + label_weight * nx.from_numpy(W[np.ix_(ia, ib)], type_as=M), W


def label_ot(Xa, ya, Xb, yb, *, reg: float | None = None, label_weight: float = 1.0, wa=None, wb=None,
             label_method: str = "auto", max_class_size: int = 2000, max_iter: int | None = None,
             tol: float = 1e-9, method: str = "auto", strict: bool = False) -> OTResult:
    """Label-aware OT between (Xa, ya) and (Xb, yb), with plan, potentials and label distances.

    The cost is :math:`\\lVert x - x' \\rVert^2 + \\lambda W(y, y')`, twice OTDD's and Projektor's
    :math:`\\tfrac12 \\lVert x - x' \\rVert^2 + \\tfrac12 W` (see the module notes).

    Parameters
    ----------
    Xa : array of shape (n_a, n_features)
        Finite features (NaN or inf rows are refused).
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
    max_iter : int or None, default=None
        Sinkhorn iteration cap per problem (last ε stage); None grows with the cost's spread over
        ``reg``, see :func:`entropic_ot`. The exact solver's cap grows with n_a · n_b.
    tol : float, default=1e-9
        Sinkhorn stopping threshold on the marginal error (L2 norm).
    method : {"auto", "sinkhorn", "epsilon_scaling"}, default="auto"
        Sinkhorn schedule, see :func:`entropic_ot`.
    strict : bool, default=False
        Raise :class:`NotConvergedError` instead of warning when a solver stops unconverged.

    Returns
    -------
    OTResult

    Raises
    ------
    ValueError
        Mismatched shapes or dimensions, NaN/inf features, NaN labels, bad weights, reg <= 0, or a
        cost that is not finite (the message names the classes).

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
    if method not in METHODS:
        raise ValueError(f"method={method!r}; choose one of {METHODS}")
    nx = ot.backend.get_backend(Xa, Xb)
    a = _weights(wa, Xa.shape[0], "wa", nx, Xa)
    b = _weights(wb, Xb.shape[0], "wb", nx, Xb)
    classes_a = classes_b = ia = ib = labels = None
    if ya is not None:
        classes_a, ia = _class_index(ya, Xa.shape[0], "ya")
        classes_b, ib = _class_index(yb, Xb.shape[0], "yb")
        labels = ((ia, classes_a), (ib, classes_b))
    opts = dict(label_weight=label_weight, nx=nx, method=label_method, max_class_size=max_class_size)
    M, W = _joint_cost(Xa, ia, Xb, ib, classes=(classes_a, classes_b), **opts)
    _check_cost(M, nx, "between A and B", labels)

    if reg is None:
        plan, log = ot.emd(a, b, M, numItermax=max(100_000, 50 * M.shape[0] * M.shape[1]), log=True)
        f, g = _tight_potentials(log["u"], log["v"], a, b, M, nx)
        result = OTResult(float(log["cost"]), plan, (f, g), W, classes_a, classes_b, 0, log["result_code"] == 1)
        check_converged(result, "A to B", reg=None, tol=tol, strict=strict)
        return result

    solver = dict(max_iter=max_iter, tol=tol, method=method)
    cross = _entropic(a, b, M, reg, nx, **solver)
    check_converged(cross, "A to B", reg=reg, tol=tol, strict=strict)
    selves = []
    for name, X, i, c, w in (("A to itself", Xa, ia, classes_a, a), ("B to itself", Xb, ib, classes_b, b)):
        M_self = _joint_cost(X, i, X, i, classes=(c, c), **opts)[0]
        selves.append(_entropic_self(w, M_self, reg, nx, **solver))
        check_converged(selves[-1], name, reg=reg, tol=tol, strict=strict)
    value = cross.value - 0.5 * (selves[0].value + selves[1].value)
    return OTResult(value, cross.plan, cross.potentials, W, classes_a, classes_b, cross.n_iter,
                    cross.converged and all(s.converged for s in selves),
                    max(cross.marginal_error, *(s.marginal_error for s in selves)))


def label_ot_distance(Xa, ya, Xb, yb, *, reg: float | None = None, label_weight: float = 1.0, wa=None,
                      wb=None, **options) -> float:
    """The value of :func:`label_ot`: the label-aware OT cost (exact) or Sinkhorn divergence.

    Twice OTDD's and Projektor's value on the same data (cost ``||x - x'||² + W``, theirs
    ``½||x - x'||² + ½W``). An unconverged solver warns (``ConvergenceWarning``), or raises
    :class:`NotConvergedError` with ``strict=True``; ``options`` are those of :func:`label_ot`.
    """
    return label_ot(Xa, ya, Xb, yb, reg=reg, label_weight=label_weight, wa=wa, wb=wb, **options).value
