"""OTPredictor: mixture performance from the OT distance to the target (Projektor, Kang et al. 2023).

Stage 1, at every revealed size, regresses the measured metric on OT terms between the mixture and
the target set (see :mod:`datamix.predict.mixture_ot`); stage 2 extrapolates in the size (see
:mod:`datamix.predict.base`). Stage-1 forms, with :math:`OT` the label-aware (OTDD) distance,
:math:`OT_x` its feature-only and :math:`OT_y` its label-only version:

``"split"`` (default)
    :math:`m = c_0 + b_x\\, OT_x(p) + b_y\\, OT_y(p)` — three parameters; fitting :math:`b_x, b_y`
    chooses the weight of labels against features from the data instead of fixing λ.
``"affine"``
    :math:`m = c_0 + b\\, OT(p)`. It cannot weigh features and labels with opposite signs: on the
    bundled digits (the corrupted source is far from the target in pixel space yet trains the proxy
    well, label noise hurts it) its best noise-free fit misses by 3.6-4.1 accuracy points for every λ
    in 0-10, ``"split"``'s by 0.9.
``"published"``
    the paper's performance function
    :math:`m = \\sum_i (b_{2i} p_i^2 + b_{1i} p_i + b_0)\\, OT(p) + \\sum_i (c_{2i} p_i^2 + c_{1i} p_i) + c_0`
    (:math:`4k + 2` parameters for :math:`k` sources, redundant on the simplex).
``"complete"``
    the complete quadratic form :math:`m = \\sum_{i \\le j} (B_{ij}\\, OT(p) + C_{ij})\\, p_i p_j`
    (on the simplex, :math:`\\sum_{i\\le j} p_i p_j` terms span every quadratic, linear and
    constant term); plus an intercept.

Stage 1 is plain least squares by default (``alpha=0``); ``alpha="auto"`` fits ridge regression with
the penalty chosen by leave-one-out error, which the published and complete forms need on few
trainings. Measured on the bundled digits (``benchmarks/ot_predictor.py``, 40 repetitions, columns
OT-split and OT-split+ridge): for ``"split"`` the leave-one-out penalty lost to plain least squares
at 10 trainings (MAE +1.2 points in the region split, paired s.e. 0.4; +0.15 in the random split)
and tied at 20 and 40.
"""

from __future__ import annotations

import logging

import numpy as np

from datamix.predict.base import TwoStagePredictor
from datamix.predict.mixture_ot import MixtureOT

__all__ = ["OTPredictor", "FORMS"]

logger = logging.getLogger(__name__)

FORMS = ("split", "affine", "published", "complete")


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(i, k)]


class OTPredictor(TwoStagePredictor):
    """Predict a mixture's metric at any size from OT distances to the target (Projektor).

    Parameters
    ----------
    target : (X_val, y_val)
        The target (validation) set the metric is measured on: X (n_val, n_features), y (n_val,).
        Held fixed across all OT computations.
    sizes : sequence of int, optional
        Revealed sizes to fit stage 1 at; default: every size in the runs.
    reg : float or None, default=None
        None: exact OT; > 0: Sinkhorn (debiased divergence for values, non-debiased potentials
        for gradients), in the units of the cost (squared features; twice Projektor's convention,
        see :mod:`datamix.ot.distance`). A Sinkhorn problem that stops above its tolerance warns and
        is counted in ``ot_.n_unconverged_``.
    form : {"split", "affine", "published", "complete"}, default="split"
        Stage-1 performance function, see the module notes.
    label_weight : float, default=1.0
        λ of the label-aware OT used by the ``"affine"``, ``"published"`` and ``"complete"`` forms.
    embedding : None, "identity", "standardize", "pca", int or callable, default=None
        Map applied to points before OT; see :func:`~datamix.predict.mixture_ot.make_embedding`.
        On the bundled digits pixels the raw features worked best for ``"split"`` (stage-1 MAE at
        40 random trainings, 30 repetitions: raw 1.25 points, PCA 8 1.52, PCA 16 1.91; region split
        at 20 trainings: raw 1.9, PCA 8 2.7; standardised features did worst, 3.8 against 1.9 raw at 40
        trainings that shared one seed).
    ot_mode : {"weighted", "sample"}, default="weighted"
        ``"weighted"``: the mixture is every revealed point with mass ``p_i / n_i`` (the limit of
        averaging OT over draws); ``"sample"``: ``n_draws`` draws of the mixture at each size, as
        in the paper, averaged (bundled digits, 4 draws at N=300: stage-1 MAE 2.4 points at 40
        random trainings against 1.25 weighted; the OT of the very draw a proxy trained on
        explained 2% of that training's seed-to-seed variance).
    n_draws : int, default=1
        Draws per (mixture, size) in ``ot_mode="sample"``.
    alpha : float or "auto", default=0.0
        Ridge penalty (on standardised features); ``"auto"``: chosen by leave-one-out error (use it
        with ``"published"`` and ``"complete"``).
    extrapolation : {"two_point", "logit", "power_law", "auto"}, default="two_point"
        Stage-2 rule (see :mod:`datamix.predict.base`): the paper's two-point rule in log N, the same
        rule on the logit of the metric within ``metric_range`` (bounded by construction), a power law
        per mixture, or ``"auto"``: the best in a held-out check at fit time (extrapolating to the
        largest revealed size from the smaller ones). Measured by ``benchmarks/ot_predictor.py``
        (bundled digits, MAE in accuracy points at N = 1200, 20 / 40 trainings): from sizes up to
        300 (4x) two-point 4.65 / 4.05, logit 4.79 / 4.69, power law 7.97 / 7.38; up to 150 (8x)
        8.30 / 7.77, 6.46 / 5.07, 12.1 / 10.0; up to 75 (16x) 10.4 / 8.5 and 6.4 / 4.8. The default is
        DESIGN's two-point rule, best at 4x; use ``"logit"`` when extrapolating further (the purchase
        config does: its plans train on 5-7x the largest revealed size).
    metric : str, default="metric"
        Runs-table column to model; a name containing ``"loss"`` makes ``greater_is_better`` False.
    metric_range : (float, float) or None, default=(0.0, 1.0)
        Predictions and intervals are clipped into this range (the runs table's ``metric`` is an
        accuracy); None for no clipping (use it for losses).
    n_bootstrap : int, default=100
        Bootstrap refits behind :meth:`predict_interval`.
    max_points : int, default=3000
        Sources (and the target) with more points are subsampled for OT.
    seed : int, default=0
        Seeds the OT draws, subsampling, the bootstrap and the extrapolation check.

    Attributes
    ----------
    sources_ : list of str
        Source names, in the order of the ratios.
    sizes_ : ndarray of int
        Revealed sizes of stage 1.
    stage1_ : dict of int to RidgeFit
        Stage-1 fit per size (``coef``, ``intercept``, ``alpha``, ``loo_residuals``).
    ot_ : MixtureOT
        The OT terms, cached per mixture; its ``n_solves_`` and ``n_unconverged_`` count the
        Sinkhorn problems solved and those that stopped unconverged (diagnostics, ``reg`` given).
    terms_ : tuple of str
        OT terms the form uses.
    extrapolation_ : str
        Stage-2 rule in use.
    extrapolation_scores_ : dict of str to float
        Held-out check error of each rule (NaN where it could not be checked).
    n_runs_ : int
        Runs used.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> src = {"a": (rng.normal(size=(40, 2)), rng.integers(0, 2, 40)),
    ...        "b": (rng.normal(size=(40, 2)) + 3, rng.integers(0, 2, 40))}
    >>> target = (rng.normal(size=(30, 2)), rng.integers(0, 2, 30))
    >>> import pandas as pd
    >>> runs = pd.DataFrame({"p_a": [0, .25, .5, .75, 1], "p_b": [1, .75, .5, .25, 0],
    ...                      "size": 100, "metric": [.5, .6, .7, .8, .9]})
    >>> model = OTPredictor(target=target).fit(src, runs)
    >>> model.predict([1.0, 0.0], 100) > model.predict([0.0, 1.0], 100)
    True
    """

    _needs_data = True

    def __init__(self, *, target, sizes=None, reg=None, form="split", label_weight=1.0, embedding=None,
                 ot_mode="weighted", n_draws=1, alpha=0.0, extrapolation="two_point", metric="metric",
                 metric_range=(0.0, 1.0), n_bootstrap=100, max_points=3000, seed=0):
        self.target = target
        self.sizes = sizes
        self.reg = reg
        self.form = form
        self.label_weight = label_weight
        self.embedding = embedding
        self.ot_mode = ot_mode
        self.n_draws = n_draws
        self.alpha = alpha
        self.extrapolation = extrapolation
        self.metric = metric
        self.metric_range = metric_range
        self.n_bootstrap = n_bootstrap
        self.max_points = max_points
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        if self.form not in FORMS:
            raise ValueError(f"form={self.form!r}; choose one of {FORMS}")
        try:
            X_val, y_val = self.target
        except (TypeError, ValueError):
            raise ValueError("target must be a pair (X_val, y_val)") from None
        if y_val is None:
            raise ValueError("target labels y_val are required: the OT is label-aware")

    def _prepare(self, names, data) -> None:
        self.terms_ = ("feature", "label") if self.form == "split" else ("joint",)
        signature = (tuple(names), self.reg, self.label_weight, repr(self.embedding), self.ot_mode, self.n_draws,
                     self.max_points, self.seed, _arrays_key(data), _arrays_key([self.target]))
        # The OT cache survives refits on other runs of the same sources (e.g. a benchmark's splits).
        if getattr(self, "_ot_signature", None) != signature:
            self.ot_ = MixtureOT(data, self.target, names=names, reg=self.reg, label_weight=self.label_weight,
                                 embedding=self.embedding, mode=self.ot_mode, n_draws=self.n_draws, seed=self.seed,
                                 max_points=self.max_points)
            self._ot_signature = signature

    def ot_terms(self, p, N=None) -> dict:
        """The OT terms (value and gradient along the simplex) of mixture ``p``; see :class:`MixtureOT`."""
        P, _ = self._check_input(p, 1 if N is None else N)
        return self.ot_.evaluate(P, N, self.terms_)

    def _ot(self, P: np.ndarray, N: int) -> np.ndarray:
        N_ot = N if self.ot_mode == "sample" else None
        return self.ot_.values(P, N_ot, self.terms_)

    def _design(self, P: np.ndarray, N: int) -> np.ndarray:
        O = self._ot(P, N)
        if self.form in ("split", "affine"):
            return O
        o = O[:, :1]
        k = P.shape[1]
        if self.form == "published":
            return np.column_stack([P**2 * o, P * o, o, P**2, P])
        quad = np.column_stack([P[:, i] * P[:, j] for i, j in _pairs(k)])
        return np.column_stack([quad * o, quad])

    def _design_grad(self, p: np.ndarray, N: int) -> np.ndarray:
        terms = self.ot_.evaluate(p, N if self.ot_mode == "sample" else None, self.terms_)
        G = np.array([terms[t].gradient for t in self.terms_])  # (n_terms, k)
        if self.form in ("split", "affine"):
            return G
        o, g = terms["joint"].value, G[0]
        k = len(p)
        eye = np.eye(k)
        if self.form == "published":
            rows = [2 * p[i] * eye[i] * o + p[i] ** 2 * g for i in range(k)]
            rows += [eye[i] * o + p[i] * g for i in range(k)]
            rows += [g]
            rows += [2 * p[i] * eye[i] for i in range(k)]
            rows += [eye[i] for i in range(k)]
            return np.array(rows)
        dquad = [p[j] * eye[i] + p[i] * eye[j] for i, j in _pairs(k)]
        quad = [p[i] * p[j] for i, j in _pairs(k)]
        rows = [dq * o + q * g for dq, q in zip(dquad, quad)] + dquad
        return np.array(rows)


def _arrays_key(pairs) -> tuple:
    """A cheap identity of (X, y) arrays: shapes and sums (numbers), or the hash of the values as
    text (labels of any other type: strings, objects)."""
    out = []
    for pair in pairs or []:
        for a in pair:
            a = np.asarray(a)
            numeric = np.issubdtype(a.dtype, np.number) or a.dtype == bool
            out.append((a.shape, float(a.sum(dtype=np.float64)) if numeric else hash(tuple(map(str, a.ravel())))))
    return tuple(out)
