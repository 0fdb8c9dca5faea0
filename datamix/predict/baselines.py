"""OT-free baselines: the metric as a polynomial of the mixture ratios, fitted on the same runs."""

from __future__ import annotations

import numpy as np

from datamix.predict.base import TwoStagePredictor

__all__ = ["RatioPolynomial"]


class RatioPolynomial(TwoStagePredictor):
    """Stage 1 linear (``degree=1``) or quadratic (``degree=2``) in the ratios, stage 2 as in OTPredictor.

    .. math::  m(p) = c_0 + \\sum_i c_i p_i \\quad\\text{or}\\quad c_0 + \\sum_{i \\le j} C_{ij} p_i p_j

    (on the simplex the quadratic also spans every linear term). Parameters redundant on the
    simplex are resolved by the minimum-norm solution.

    Parameters
    ----------
    degree : {1, 2}, default=1
    sizes, alpha, extrapolation, metric, metric_range, n_bootstrap, seed
        As in :class:`~datamix.predict.OTPredictor`; ``alpha`` defaults to 0 (plain least squares).

    Attributes
    ----------
    sources_, sizes_, stage1_, extrapolation_, extrapolation_scores_, n_runs_
        As in :class:`~datamix.predict.OTPredictor`.
    """

    def __init__(self, *, degree=1, sizes=None, alpha=0.0, extrapolation="two_point", metric="metric",
                 metric_range=(0.0, 1.0), n_bootstrap=100, seed=0):
        self.degree = degree
        self.sizes = sizes
        self.alpha = alpha
        self.extrapolation = extrapolation
        self.metric = metric
        self.metric_range = metric_range
        self.n_bootstrap = n_bootstrap
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        if self.degree not in (1, 2):
            raise ValueError(f"degree={self.degree!r} must be 1 or 2")

    def _design(self, P: np.ndarray, N: int) -> np.ndarray:
        if self.degree == 1:
            return P
        k = P.shape[1]
        return np.column_stack([P[:, i] * P[:, j] for i in range(k) for j in range(i, k)])

    def _design_grad(self, p: np.ndarray, N: int) -> np.ndarray:
        k = len(p)
        eye = np.eye(k)
        if self.degree == 1:
            return eye
        return np.array([p[j] * eye[i] + p[i] * eye[j] for i in range(k) for j in range(i, k)])
