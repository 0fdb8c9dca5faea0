"""Distinct samples in an offer that holds duplicates, estimated from its revealed sample.

A seller's offer of ``M`` samples may hold only ``D < M`` distinct ones (copies, near-copies);
buying more of it then buys repeats. From the revealed sample alone:

- :func:`duplicate_groups`: how often each distinct sample appears in the reveal (SemDeDup groups:
  cosine similarity above ``1 - eps``);
- :func:`distinct_in_offer`: ``D`` by the Chao1 lower bound for sampling without replacement
  (Chao & Lin 2012), from the reveal's singletons ``f1`` and doubletons ``f2`` and its share
  ``q = n / M`` of the offer:
  :math:`\\hat D = d + f_1^2 / \\big(\\tfrac{n}{n-1} 2 f_2 + \\tfrac{q}{1-q} f_1\\big)`
  (``d`` groups seen; ``M`` when every revealed sample is distinct);
- :func:`expected_distinct`: distinct samples in ``x`` bought from the offer, each distinct sample
  held ``c = M / D`` times: :math:`u = D\\,(1 - (1 - x/M)^{c})`;
- :class:`DistinctSamples`: a fitted predictor evaluated at the distinct samples a purchase
  buys (mixture and size of the ``u``), as the predictor protocol (``predict``, ``gradient``,
  ``size_derivative``, ``predict_interval``).

References
----------
Chao, A. and Lin, C.-W. Nonparametric lower bounds for species richness and shared species
richness under sampling without replacement. Biometrics 68 (2012).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator


def duplicate_groups(X: npt.ArrayLike, eps: float, *, seed: int = 0) -> np.ndarray:
    """Size of every group of near-duplicates among the rows of ``X``.

    SemDeDup (:func:`~datamix.prune.semdedup.semdedup`, ``sqrt(n)`` clusters) keeps one row per
    group; every other row joins the kept row it is most similar to.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Embeddings of the revealed samples.
    eps : float
        Rows with cosine similarity above ``1 - eps`` are duplicates.
    seed : int

    Returns
    -------
    ndarray of shape (n_groups,), dtype int
        Rows in each group (sums to ``n_samples``).
    """
    from datamix.index.kmeans import assign
    from datamix.prune.semdedup import semdedup

    X = np.asarray(X, dtype=np.float32)
    if len(X) < 2:
        return np.ones(len(X), dtype=np.int64)
    k = max(1, int(round(np.sqrt(len(X)))))
    keep = semdedup(X, eps, n_clusters=k, seed=seed, device="cpu", progress=False)
    if keep.all():
        return np.ones(len(X), dtype=np.int64)
    joined = assign(X[~keep], X[keep], device="cpu")[1]
    return np.bincount(joined, minlength=int(keep.sum())) + 1


def distinct_in_offer(groups: npt.ArrayLike, offer: float) -> float:
    """Distinct samples in an offer of ``offer`` samples whose revealed sample has the duplicate
    ``groups`` (:func:`duplicate_groups`): the Chao1 bound for sampling without replacement
    (Chao & Lin 2012), in ``[groups seen, groups seen + unrevealed samples]``.

    Raises
    ------
    ValueError
        An empty reveal, or one larger than the offer.
    """
    g = np.asarray(groups, dtype=np.int64)
    n, d = int(g.sum()), int(g.size)
    if n < 1 or offer < n:
        raise ValueError(f"a reveal of {n} samples from an offer of {offer:g}: need 1 <= revealed <= offer")
    if n == offer:
        return float(d)
    f1, f2 = int((g == 1).sum()), int((g == 2).sum())
    q = n / offer
    extra = f1 ** 2 / (n / max(n - 1, 1) * 2 * f2 + q / (1 - q) * f1) if f1 else 0.0
    return float(min(d + extra, d + offer - n))


def expected_distinct(x: npt.ArrayLike, offer: npt.ArrayLike, distinct: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Distinct samples among ``x`` bought from offers of ``offer`` samples holding ``distinct``
    distinct ones, each ``offer / distinct`` times (drawn without regard to duplicates), and
    their derivative in ``x``; arrays of shape (n_sources,)."""
    x, M, D = (np.asarray(v, dtype=float) for v in (x, offer, distinct))
    c = M / D
    left = np.clip(1.0 - x / M, 0.0, 1.0)
    return D * (1.0 - left ** c), left ** (c - 1.0)


class DistinctSamples(BaseEstimator):
    """A fitted predictor of samples seen, evaluated at the distinct samples a purchase buys.

    ``predict(p, N)`` buys ``x = p N`` and predicts ``predictor.predict(u / sum(u), sum(u))``
    with ``u`` = :func:`expected_distinct` of ``x``; gradients by the chain rule. Where every
    offer is distinct (``distinct == offers``) it is the predictor itself.

    Parameters
    ----------
    predictor : fitted predictor
        With ``predict``, ``gradient``, ``size_derivative``, ``predict_interval``, ``sources_`` and
        ``greater_is_better`` (e.g. :class:`~datamix.predict.OTPredictor`).
    offers : dict of str to float
        Samples each source offers.
    distinct : dict of str to float
        Distinct samples among them (:func:`distinct_in_offer`), ``<= offers``.
    """

    def __init__(self, predictor, *, offers, distinct):
        self.predictor = predictor
        self.offers = offers
        self.distinct = distinct

    @property
    def sources_(self) -> list:
        return list(self.predictor.sources_)

    @property
    def greater_is_better(self) -> bool:
        return self.predictor.greater_is_better

    def _arrays(self):
        names = self.sources_
        M = np.array([float(self.offers[n]) for n in names])
        D = np.array([float(self.distinct[n]) for n in names])
        if not ((D > 0) & (D <= M * (1 + 1e-9))).all():
            raise ValueError(f"distinct must be in (0, offers] for every source, got {dict(zip(names, D))} "
                             f"for offers {dict(zip(names, M))}")
        return M, np.minimum(D, M)

    def _distinct(self, p, N):
        """:func:`expected_distinct` of the ``p N`` samples bought, and its derivative."""
        return expected_distinct(np.asarray(p, dtype=float) * float(N), *self._arrays())

    def predict(self, p, N) -> float:
        """Predicted metric of ``N`` samples bought in ratios ``p`` (shape (n_sources,))."""
        u, _ = self._distinct(p, N)
        return self.predictor.predict(u / u.sum(), u.sum())

    def predict_interval(self, p, N, level: float = 0.9) -> tuple[float, float]:
        """The predictor's interval at the distinct samples bought."""
        u, _ = self._distinct(p, N)
        return self.predictor.predict_interval(u / u.sum(), u.sum(), level=level)

    def calibrated(self, p, N) -> bool:
        """The predictor's ``calibrated`` at the distinct samples bought."""
        u, _ = self._distinct(p, N)
        return self.predictor.calibrated(u / u.sum(), u.sum())

    def _dx(self, p, N) -> np.ndarray:
        """d predict / d x_i, x = p N the samples bought, shape (n_sources,)."""
        u, du = self._distinct(p, N)
        U = u.sum()
        dG = self.predictor.gradient(u / U, U) / U + self.predictor.size_derivative(u / U, U)
        return dG * du

    def gradient(self, p, N) -> np.ndarray:
        """Gradient along the simplex (normalised by ``sum_i p_i g_i = 0``), shape (n_sources,)."""
        v = self._dx(p, N)
        return float(N) * (v - np.asarray(p, dtype=float) @ v)

    def size_derivative(self, p, N) -> float:
        """d predict(p, N) / d N at fixed ``p``."""
        return float(np.asarray(p, dtype=float) @ self._dx(p, N))
