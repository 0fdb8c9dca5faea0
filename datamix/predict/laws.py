"""Law-based mixture predictors: QQT over filtered sources, and the data mixing law.

Both follow the predictor protocol of DESIGN §3 (``predict(p, N)``, ``gradient(p, N)``,
``greater_is_better``, ``sources_``) and are written in torch, so the optimizer differentiates them
by autograd (``predict_torch``), keep-fractions ``q`` included.

:class:`QualityPredictor` — quality-quantity trade-off (Goyal et al. 2024) for mixtures of filtered
sources. Every source is split into quality buckets (QQT pools, best first). Keeping the top share
:math:`q_i` of source :math:`i` keeps its best buckets (the last one partly): :math:`K_i = q_i U_i`
unique samples whose within-source weights are the kept shares of the buckets. Training on
:math:`N` samples drawn with ratios :math:`p`, source :math:`i` is passed over every
:math:`S_i = K_i / p_i` samples seen, so filtering raises the utility but repetition starts sooner.
The error follows the QQT recursion with the pass-:math:`k` utility of source :math:`i`

.. math:: \\beta_i(k) = p_i \\sum_j \\frac{\\kappa_{ij}}{K_i}\\, b_{ij}\\, 2^{-k/(M\\tau_{ij})},
          \\qquad \\log e(N) = \\log a + \\sum_i \\sum_{k \\ge 0} \\beta_i(k)\\, T_k(N, S_i),

:math:`T_0 = \\log\\min(N, S_i)`, :math:`T_k = \\max(0, \\log(\\min(N, (k+1)S_i)/(kS_i)))`, error
:math:`d + e(N)` (``form="datamix"``; ``"reference"`` adds the floor after the first pass as the
reference code does). Half-lives are stretched by the effective number of pools in use,
:math:`M = 1/\\sum_{ij} w_{ij}^2` with :math:`w_{ij} = p_i \\kappa_{ij}/K_i` the share of samples drawn
from bucket :math:`j` of source :math:`i`. With whole, equal-size buckets sampled in proportion to
their sizes this is exactly :func:`datamix.laws.qqt.qqt_mixture_error` (M is then the number of pools);
unlike a count, it is continuous in :math:`p` and :math:`q`, so a vanishing share does not stretch
every half-life.

The rule only averages the sources' utilities: it cannot tell that a target is learnt best from two
domains together. Fitted on proxy runs of mixtures (``fit(mixtures=...)``), a pairwise interaction
term corrects it — Scheffé's quadratic mixture model on the log error,

.. math:: \\log e'(p, q, N) = \\log e(p, q, N) + \\sum_{i<j} \\gamma_{ij}\\, p_i p_j,

zero for a source alone, so the pool runs still fit the law; the :math:`\\gamma_{ij}` are a ridge
regression (penalty chosen by leave-one-out, scikit-learn's ``RidgeCV``) of
:math:`\\log(e_{\\text{measured}} / e)` on the products :math:`p_i p_j`, held constant in :math:`N`
and :math:`q` (the mixture runs are unfiltered, at one budget).

:class:`MixingLawPredictor` — one :class:`~datamix.laws.mixing.MixingLaw` per measured size,
interpolated (and extrapolated with the two nearest sizes) linearly in :math:`\\log N`.
"""

from __future__ import annotations

import inspect
import logging
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

__all__ = ["QualityPredictor", "MixingLawPredictor", "qqt_mixture_torch", "pair_products", "fit_interactions"]

logger = logging.getLogger(__name__)

OUTPUTS = ("error", "accuracy")
_EXACT_PASSES = 64          # passes summed one by one; beyond, geometric blocks of passes
_BLOCK_GROWTH = 1.1
_DECAY_HORIZON = 60.0       # utilities decay as 2^(-k/(M tau)); past k = 60 M tau they are < 1e-18
_REFERENCE_NORMALIZER = 1e5
_TIE = 1e-11                # log-units within which a pass boundary counts as reached exactly
_DT = torch.float64


# ------------------------------------------------------------------------------------------------ core
def _pass_blocks(j_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repeat-pass terms: start pass, end pass (exclusive) and the pass index whose utility stands
    for the block: passes 1..64 one by one, then blocks growing by 10%. The blocks are exact where
    the utility is constant across them; against the pass-by-pass sum their relative error was
    below 4e-5 at 80-4000 passes with the published QQT parameters (tests)."""
    starts, ends = [], []
    k = 1
    while k <= j_max:
        e = k + 1 if k <= _EXACT_PASSES else max(k + 1, int(np.ceil(k * _BLOCK_GROWTH)))
        starts.append(k)
        ends.append(min(e, j_max + 1))
        k = e
    s, e = np.array(starts, dtype=np.float64), np.array(ends, dtype=np.float64)
    return s, e, (s + e - 1) / 2


def _relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0) with the one-sided slopes of the law's corners.

    The slope at 0 is that of 0, and anything below ``_TIE`` counts as 0, so that at a pass
    boundary (whole epochs, e.g. a source held at ``max_epochs``) or a bucket edge every derivative
    is the one-sided derivative towards fewer passes and smaller keep-fractions — the side that
    stays feasible — even when rounding puts the point a hair past the boundary.
    """
    return torch.where(x > _TIE, x, torch.zeros_like(x))


def _min_const(x: torch.Tensor, c: float) -> torch.Tensor:
    """min(x, c) = c - max(c - x, 0) (with the conventions of :func:`_relu`)."""
    return c - _relu(c - x)


def qqt_mixture_torch(p: torch.Tensor, q: torch.Tensor, n: float, *, sizes: torch.Tensor, shares: torch.Tensor,
                      b: torch.Tensor, tau: torch.Tensor, a, d, form: str = "datamix") -> torch.Tensor:
    """QQT error of mixtures of filtered sources (see the module notes), differentiable in ``p`` and ``q``.

    Parameters
    ----------
    p : Tensor of shape (n_batch, n_sources)
        Ratios (rows on the simplex).
    q : Tensor of shape (n_batch, n_sources)
        Keep-fractions in (0, 1]: the top share of each source, ranked by quality, that is used.
    n : float
        Samples seen.
    sizes : Tensor of shape (n_sources,)
        Unique samples of each source.
    shares : Tensor of shape (n_sources, n_buckets)
        Share of each quality bucket in its source, best first (rows sum to 1; padding 0).
    b, tau : Tensor of shape (n_sources, n_buckets) or (n_batch, n_sources, n_buckets)
        Utility (< 0) and half-life (> 0) of every bucket (padding: b = 0, tau = 1).
    a, d : float or 0-d Tensor
        Scale and floor.
    form : {"datamix", "reference"}

    Returns
    -------
    Tensor of shape (n_batch,)
    """
    cum = torch.cumsum(shares, dim=-1) - shares                       # start of every bucket
    x = q[..., None] - cum
    # the kept share of each bucket, clip(x, 0, share), with the one-sided slopes of a smaller q at
    # the bucket edges (partly kept at its upper edge, not begun at its lower edge)
    inc = torch.where(x < shares + _TIE, _relu(x), shares)
    w_src = inc / q[..., None]                                        # within-source weights
    w = p[..., None] * w_src                                          # share of samples from each bucket
    M = 1.0 / (w * w).sum(dim=(-1, -2))                               # effective number of pools
    K = q * sizes                                                     # kept unique samples
    S = K / torch.clamp(p, min=1e-12)                                 # samples seen per pass over source i
    util = (w_src * b).sum(-1)                                        # first-pass utility per source
    beta0 = p * util
    log_n = float(np.log(n))
    logS = torch.log(S)
    T0 = _min_const(logS, log_n)                                      # log min(n, S)
    log_rep = (beta0 * T0).sum(-1)
    with torch.no_grad():
        reached = float(torch.ceil(n / S).max()) - 1
        horizon = float(np.ceil(_DECAY_HORIZON * float(tau.max()) * float(M.max())))
        j_max = int(max(0.0, min(reached, horizon)))
    if j_max > 0:
        ks, ke, kr = (torch.as_tensor(v, dtype=p.dtype) for v in _pass_blocks(j_max))
        # T[b, i, l] = max(0, log(min(n, ke S) / (ks S)))
        lS = logS[..., None]
        T = _relu(_min_const(torch.log(ke) + lS, log_n) - torch.log(ks) - lS)
        b3 = b if b.dim() == 3 else b[None]
        tau3 = tau if tau.dim() == 3 else tau[None]
        decay = torch.exp2(-kr / (M[:, None, None, None] * tau3[..., None]))          # (B, k, m, L)
        beta = p[..., None] * (w_src[..., None] * b3[..., None] * decay).sum(-2)     # (B, k, L)
        log_rep = log_rep + (beta * T).sum(dim=(-1, -2))
    if form == "datamix":
        return d + a * torch.exp(log_rep)
    # reference: (d + (a n1 / 1e5)^beta0) * prod_k (...)^beta_k, n1 = the first pass of the mixture
    log_n1 = _min_const(logS.amin(-1), log_n)  # amin: min(dim) with indices is slow on CPU
    b0 = beta0.sum(-1)
    first = torch.exp(b0 * (float(np.log(a)) + log_n1 - float(np.log(_REFERENCE_NORMALIZER))))
    return (d + first) * torch.exp(log_rep - b0 * log_n1)


def _as_ratios(p, names: list[str], what: str = "p") -> np.ndarray:
    """Ratios as float64 of shape (n_sources,) or (n_batch, n_sources), checked: finite, >= 0, sum 1."""
    if isinstance(p, Mapping):
        unknown = sorted(set(p) - set(names))
        if unknown:
            raise ValueError(f"{what} names unknown source(s) {unknown}; sources are {names}")
        p = [p.get(n, 0.0) for n in names]
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] != len(names):
        raise ValueError(f"{what} has shape {arr.shape}; expected ({len(names)},) or (n, {len(names)}), "
                         f"one value per source {names}")
    if not np.isfinite(arr).all() or (arr < -1e-9).any():
        raise ValueError(f"{what} must be finite and >= 0, got {arr.tolist()}")
    if what == "p" and np.any(np.abs(arr.sum(-1) - 1) > 1e-6):
        raise ValueError(f"ratios p must sum to 1, got sum(s) {np.round(arr.sum(-1), 8).tolist()}")
    return np.clip(arr, 0.0, None)


def _check_size(N) -> float:
    if not (np.isscalar(N) and np.isfinite(N) and N >= 1):
        raise ValueError(f"N={N!r} must be a number >= 1 (samples seen)")
    return float(N)


def pair_products(p: torch.Tensor) -> torch.Tensor:
    """Products :math:`p_i p_j` of every pair of sources, ``i < j`` in row-major order: shape
    (..., n_sources (n_sources - 1) / 2) for ``p`` of shape (..., n_sources)."""
    i, j = torch.triu_indices(p.shape[-1], p.shape[-1], offset=1)
    return p[..., i] * p[..., j]


_RIDGE_ALPHAS = np.logspace(-5, 0, 11)  # penalties tried; the products are <= 1/4


def fit_interactions(F: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge fit (no intercept) of log-error ratios ``z`` (n_runs,) on pair products ``F`` (n_runs,
    n_pairs), the penalty chosen by leave-one-out; returns the coefficients (n_pairs,) and the
    leave-one-out residuals (n_runs,) at that penalty (their signs lost: ``RidgeCV`` keeps squares)."""
    from sklearn.linear_model import RidgeCV

    ridge = RidgeCV(alphas=_RIDGE_ALPHAS, fit_intercept=False, store_cv_results=True).fit(F, z)
    best = int(np.flatnonzero(np.isclose(_RIDGE_ALPHAS, ridge.alpha_))[0])
    return ridge.coef_.astype(np.float64), np.sqrt(ridge.cv_results_[:, best])


# ------------------------------------------------------------------------------------------------ QQT
class QualityPredictor(BaseEstimator):
    """QQT predictor of mixtures of quality-filtered sources (see the module notes).

    Parameters
    ----------
    law : QualityQuantity
        A fitted law (or one to fit in :meth:`fit` when pool runs are given); its ``form`` is used.
    pools : dict of str to (list of str, or dict of str to float)
        For every source, its pools — pool names of the law — ranked best first, or a mapping pool
        name → unique samples. With names only, sizes come from the law's ``pool_sizes_``.
    nested : bool, default=False
        ``False``: the pools are disjoint quality buckets that partition the source; keeping the
        top share combines the buckets it covers with the QQT mixture rule (Goyal et al.'s pool
        combination). ``True``: the pools are the source's nested top-share sets (growing sizes,
        the last one the whole source), each measured as one pool; utility and half-life at a
        keep-fraction between two of them are interpolated linearly (held below the smallest).
    output : {"error", "accuracy"}, default="error"
        ``"error"`` predicts the QQT error (lower is better); ``"accuracy"`` predicts ``1 - error``.

    Attributes
    ----------
    sources_ : list of str
    sizes_ : dict of str to float
        Unique samples of each source (sum of its buckets; the largest nested pool).
    shares_ : dict of str to ndarray
        Bucket shares of each source, best first (nested: each pool's share of the source).
    law_ : QualityQuantity
    params_ : dict of str to float
        The law's parameters.
    interactions_ : dict of str to float
        :math:`\\gamma_{ij}` of the interaction term by ``"<source i>*<source j>"`` (empty unless
        fitted on mixture runs).
    mixture_residuals_ : ndarray of shape (n_mixtures,)
        Leave-one-out errors (absolute log ratios of the error) of the corrected prediction on the
        mixture runs; they spread the intervals of mixtures (empty without mixture runs).
    mixture_sizes_ : ndarray
        Samples seen (``n``) of the mixture runs; at any other size a mixture's interval adds the
        law's own residuals on its pool runs to these errors (empty without mixture runs).
    greater_is_better : bool

    Examples
    --------
    >>> from datamix.laws.qqt import QualityQuantity
    >>> law = QualityQuantity.from_params({"a": 1.0, "d": 0.0, "b[hi]": -0.4, "b[lo]": -0.2,
    ...                                     "tau[hi]": 2.0, "tau[lo]": 2.0})
    >>> pred = QualityPredictor(law, pools={"web": {"hi": 100.0, "lo": 100.0}}).fit()
    >>> bool(pred.predict([1.0], 50, q=[0.5]) < pred.predict([1.0], 50, q=[1.0]))
    True
    """

    def __init__(self, law=None, *, pools=None, nested=False, output="error"):
        self.law = law
        self.pools = pools
        self.nested = nested
        self.output = output

    @property
    def greater_is_better(self) -> bool:
        return self.output == "accuracy"

    def fit(self, X=None, y=None, sample_weight=None, mixtures=None):
        """Take the law's parameters (fitting it first on pool runs ``X, y`` when given), and fit
        the interaction term on ``mixtures`` when given.

        Parameters
        ----------
        X : DataFrame with columns pool, n, S, optional
            Pool runs to fit the law on (see :class:`~datamix.laws.qqt.QualityQuantity`).
        y : array-like of shape (n_runs,), optional
            Error of every run.
        mixtures : DataFrame, optional
            Unfiltered proxy runs of mixtures: ``p_<source>`` ratios (a missing source is 0), ``n``
            samples seen and ``metric`` in the predictor's output (error or accuracy); repeats of
            one mixture and size are averaged. At least 2 distinct mixtures of 2 or more sources.

        Returns
        -------
        self
        """
        from datamix.laws.qqt import QualityQuantity

        if self.output not in OUTPUTS:
            raise ValueError(f"output={self.output!r}; choose one of {OUTPUTS}")
        law = QualityQuantity() if self.law is None else self.law
        if not isinstance(law, QualityQuantity):
            raise TypeError(f"law must be a QualityQuantity, got {type(law).__name__}")
        if X is not None:
            law = clone(law).fit(X, y, sample_weight)
        check_is_fitted(law)
        if not isinstance(self.pools, Mapping) or not self.pools:
            raise ValueError("pools must map every source name to its quality buckets (pool names, best first)")
        seen, sources, sizes, shares = set(), [], {}, {}
        for src, buckets in self.pools.items():
            names = list(buckets)
            if not names:
                raise ValueError(f"source {src!r} has no pools")
            unknown = [b for b in names if b not in law.pools_]
            if unknown:
                raise ValueError(f"source {src!r}: unknown pool(s) {unknown}; the law knows {law.pools_}")
            twice = [b for b in names if b in seen]
            if twice:
                raise ValueError(f"pool(s) {twice} belong to more than one source")
            seen.update(names)
            if isinstance(buckets, Mapping):
                s = np.array([float(buckets[b]) for b in names])
            else:
                missing = [b for b in names if b not in getattr(law, "pool_sizes_", {})]
                if missing:
                    raise ValueError(f"no size known for pool(s) {missing}; give pools as {{name: unique samples}}")
                s = np.array([law.pool_sizes_[b] for b in names])
            if not (np.isfinite(s).all() and (s > 0).all()):
                raise ValueError(f"source {src!r}: pool sizes must be positive, got {dict(zip(names, s))}")
            sources.append(str(src))
            if self.nested:
                if np.any(np.diff(s) <= 0):
                    raise ValueError(f"source {src!r}: nested pools must grow in size, got {dict(zip(names, s))}")
                sizes[str(src)] = float(s[-1])
                shares[str(src)] = s / s[-1]
            else:
                sizes[str(src)] = float(s.sum())
                shares[str(src)] = s / s.sum()
        m = max(len(v) for v in shares.values())
        P = law.params_
        S = np.zeros((len(sources), m))
        B = np.zeros((len(sources), m))
        Tau = np.ones((len(sources), m))
        for i, src in enumerate(sources):
            names = list(self.pools[src])
            S[i, :len(names)] = shares[src]
            B[i, :len(names)] = [P[f"b[{x}]"] for x in names]
            Tau[i, :len(names)] = [P[f"tau[{x}]"] for x in names]
        self.law_ = law
        self.sources_ = sources
        self.sizes_ = sizes
        self.shares_ = shares
        self.params_ = dict(P)
        self._pool_names = [list(self.pools[s]) for s in sources]
        self._t = {"sizes": torch.tensor([sizes[s] for s in sources], dtype=_DT),
                   "shares": torch.tensor(S, dtype=_DT), "b": torch.tensor(B, dtype=_DT),
                   "tau": torch.tensor(Tau, dtype=_DT)}
        self._gamma = None
        self.interactions_, self.mixture_residuals_, self.mixture_sizes_ = {}, np.zeros(0), np.zeros(0)
        if mixtures is not None:
            self._fit_interactions(mixtures)
        return self

    def _fit_interactions(self, mixtures) -> None:
        from datamix.predict.base import RATIO_PREFIX, ratio_columns

        if not isinstance(mixtures, pd.DataFrame):
            raise TypeError(f"mixtures must be a DataFrame, got {type(mixtures).__name__}")
        missing = [c for c in ("n", "metric") if c not in mixtures.columns]
        if missing:
            raise ValueError(f"mixtures lacks column(s) {missing}; its columns: {list(mixtures.columns)}")
        cols = ratio_columns(self.sources_)
        unknown = [c for c in mixtures.columns if c.startswith(RATIO_PREFIX) and c not in cols]
        if unknown:
            raise ValueError(f"mixtures has ratio column(s) {unknown} of no source; sources are {self.sources_}")
        frame = mixtures.reindex(columns=cols + ["n", "metric"]).fillna({c: 0.0 for c in cols})
        frame = frame.groupby(cols + ["n"], as_index=False)["metric"].mean()
        P = _as_ratios(frame[cols].to_numpy(dtype=np.float64), self.sources_)
        N = frame["n"].to_numpy(dtype=np.float64)
        err = frame["metric"].to_numpy(dtype=np.float64)
        err = 1.0 - err if self.output == "accuracy" else err
        mixed = (P > 0).sum(axis=1) >= 2
        if mixed.sum() < 2:
            raise ValueError(f"the interaction term needs runs of at least 2 distinct mixtures of 2 or more sources, "
                             f"got {int(mixed.sum())}")
        if not (np.isfinite(err).all() and (err > 0).all()):
            raise ValueError(f"mixture runs need finite errors > 0 (clip a perfect accuracy below 1), got {err.tolist()}")
        with torch.no_grad():
            base = np.array([float(self.predict_torch(torch.tensor(p, dtype=_DT), n)) for p, n in zip(P, N)])
        base = 1.0 - base if self.output == "accuracy" else base
        F = pair_products(torch.tensor(P, dtype=_DT)).numpy()
        gamma, loo = fit_interactions(F, np.log(err) - np.log(base))
        i, j = np.triu_indices(len(self.sources_), k=1)
        self.interactions_ = {f"{self.sources_[a]}*{self.sources_[b]}": float(g) for a, b, g in zip(i, j, gamma)}
        self.mixture_residuals_ = loo[mixed]
        self.mixture_sizes_ = np.unique(N[mixed])
        self._gamma = torch.tensor(gamma, dtype=_DT)

    # -- evaluation ---------------------------------------------------------------------------------
    def _tensors_for(self, params: Mapping) -> dict:
        B = self._t["b"].clone()
        Tau = self._t["tau"].clone()
        for i, names in enumerate(self._pool_names):
            B[i, :len(names)] = torch.tensor([params[f"b[{x}]"] for x in names], dtype=_DT)
            Tau[i, :len(names)] = torch.tensor([params[f"tau[{x}]"] for x in names], dtype=_DT)
        return {"sizes": self._t["sizes"], "shares": self._t["shares"], "b": B, "tau": Tau}

    def predict_torch(self, p: torch.Tensor, N: float, q: torch.Tensor | None = None, *, params=None,
                      sizes: torch.Tensor | None = None) -> torch.Tensor:
        """Prediction as a torch tensor, differentiable in ``p`` and ``q`` (shape (n_batch,) for 2-D input).

        No input checks: ``p`` rows on the simplex, ``q`` in (0, 1], ``N >= 1``; ``params`` replaces
        the law's parameters (e.g. a bootstrap refit), ``sizes`` (n_sources,) the unique samples of
        the sources (what if a source were larger).
        """
        check_is_fitted(self)
        squeeze = p.dim() == 1
        p2 = p[None, :] if squeeze else p
        q2 = torch.ones_like(p2) if q is None else (q[None, :] if q.dim() == 1 else q)
        t = self._t if params is None else self._tensors_for(params)
        if sizes is not None:
            t = {**t, "sizes": sizes}
        P = self.params_ if params is None else params
        if self.nested:
            t = _nested_pool(q2, t)
        err = qqt_mixture_torch(p2, q2, float(N), a=P["a"], d=P["d"], form=self.law_.form, **t)
        if self._gamma is not None:
            err = err * torch.exp(pair_products(p2) @ self._gamma)
        out = 1.0 - err if self.output == "accuracy" else err
        return out[0] if squeeze else out

    def _inputs(self, p, N, q):
        check_is_fitted(self)
        P = _as_ratios(p, self.sources_)
        N = _check_size(N)
        Q = np.ones_like(P) if q is None else _as_ratios(q, self.sources_, "q")
        if Q.shape != P.shape:
            Q = np.broadcast_to(Q, P.shape).copy()
        if (Q <= 0).any() or (Q > 1 + 1e-12).any():
            raise ValueError(f"keep-fractions q must be in (0, 1], got {Q.tolist()}")
        return torch.tensor(P, dtype=_DT), N, torch.tensor(np.minimum(Q, 1.0), dtype=_DT)

    def predict(self, p, N, q=None):
        """Predicted error (or accuracy) of mixture ``p`` with keep-fractions ``q`` after ``N`` samples seen.

        Parameters
        ----------
        p : array-like of shape (n_sources,) or (n_batch, n_sources), or dict name -> ratio
        N : float
            Samples seen (>= 1).
        q : array-like of the shape of ``p``, or dict, optional
            Keep-fractions in (0, 1]; default 1 (no filtering).

        Returns
        -------
        float, or ndarray of shape (n_batch,)
        """
        P, N, Q = self._inputs(p, N, q)
        with torch.no_grad():
            out = self.predict_torch(P, N, Q).numpy()
        if self.output == "accuracy":  # 1 - error, and an error past 1 (no class learnt) is no accuracy below 0
            out = np.maximum(out, 0.0)
        return float(out) if out.ndim == 0 else out

    def _grads(self, p, N, q):
        P, N, Q = self._inputs(p, N, q)
        if P.dim() != 1:
            raise ValueError("gradients take one mixture (a 1-D p)")
        P.requires_grad_(True)
        Q.requires_grad_(True)
        self.predict_torch(P, N, Q).backward()
        return P.grad.numpy().copy(), Q.grad.numpy().copy()

    def gradient(self, p, N, q=None) -> np.ndarray:
        """d prediction / d p, shape (n_sources,) (full gradient, by autograd)."""
        return self._grads(p, N, q)[0]

    def gradient_q(self, p, N, q=None) -> np.ndarray:
        """d prediction / d q, shape (n_sources,) (by autograd)."""
        return self._grads(p, N, q)[1]

    def extrapolation(self, p, N, q=None) -> np.ndarray:
        """How far mixture ``p`` (keep-fractions ``q``, ``N`` samples seen) lies past the law's pool
        runs along its scales (samples seen of a source, epochs over its kept data), the largest
        over the sources it uses: see :meth:`~datamix.laws.base.Law.extrapolation`; shape
        (1, n_scales), zeros inside the runs' range."""
        return self._extrapolation(*self._inputs(p, N, q), self._t["sizes"])

    def _extrapolation(self, P: torch.Tensor, N: float, Q: torch.Tensor, sizes: torch.Tensor) -> np.ndarray:
        P, Q, sizes = P.numpy().reshape(-1), Q.numpy().reshape(-1), sizes.numpy()
        used = np.flatnonzero(P > 0)
        frame = pd.DataFrame({"pool": [self._pool_names[i][0] for i in used], "n": P[used] * N,
                              "S": Q[used] * sizes[used]})
        return self.law_.extrapolation(frame).max(axis=0, keepdims=True)

    def calibrated(self, p, N, q=None) -> bool:
        """Whether :meth:`predict_interval` at ``(p, N, q)`` rests on measured errors: no farther past
        the pool runs than the law's held-out-scale calibration was checked
        (:meth:`~datamix.laws.base.Law.calibrated`)."""
        return not self.law_._beyond_reach(self.extrapolation(p, N, q)).any()

    def predict_interval(self, p, N, q=None, level: float = 0.9) -> tuple[float, float]:
        """Prediction interval: the law's bootstrap refits, each spread by the model's own errors
        (:func:`~datamix.laws.base.calibrated_interval`, in the law's error space) — the law's
        residuals on its pool runs for one source, the leave-one-out errors on the mixture runs
        (both signs) for a mixture when the interaction term is fitted, plus the pool runs' residuals
        where ``N`` is not a size the mixtures were run at — so that it covers the model's error and
        not only its parameters', and widened past the runs' range as the law's
        own intervals are (:meth:`extrapolation`); a mixture repeating a source more than the
        law's calibration reached also spans the same training with every repeat fresh (sources
        as large as what is drawn from them) and its first pass alone (each source drawn from at
        most once), as :meth:`~datamix.laws.base.Law.predict_interval` does. Always contains
        :meth:`predict`. Needs a law fitted on data: (nan, nan) for one made with ``from_params``.
        """
        if not 0 < level < 1:
            raise ValueError(f"level={level!r} must be in (0, 1)")
        P, N, Q = self._inputs(p, N, q)
        if P.dim() != 1:
            raise ValueError("predict_interval takes one mixture (a 1-D p)")
        thetas = _bootstrap_params(self.law_)
        if thetas is None:
            return float("nan"), float("nan")
        lo, hi = self._error_interval(P, N, Q, self._t["sizes"], thetas, level)
        if self.output != "accuracy":
            return float(lo), float(hi)
        # an accuracy lies in [0, 1] (the point stays inside even where the law's error passes 1)
        point = self.predict(p, N, q)
        return min(max(1.0 - float(hi), 0.0), point), max(min(1.0 - float(lo), 1.0), point)

    def _error_interval(self, P, N: float, Q, sizes, thetas, level: float, envelope: bool = True) -> tuple[float, float]:
        """:meth:`predict_interval` in the law's error space, for sources of ``sizes`` unique samples
        (with the repetition envelope when ``envelope``)."""
        from datamix.laws.base import calibrated_interval

        with torch.no_grad():
            vals = np.array([float(self.predict_torch(P, N, Q, params=t, sizes=sizes)) for t in thetas])
            point = float(self.predict_torch(P, N, Q, sizes=sizes))
        flip = self.output == "accuracy"  # the law models the error, 1 - accuracy
        point = max(point, 0.0) if flip else point  # as predict(): no accuracy below 0
        r, multiplicative = self.law_._residuals()
        err = np.array([1.0 - point if flip else point])
        if self.mixture_residuals_.size and int((P > 0).sum()) >= 2:
            m = np.concatenate([self.mixture_residuals_, -self.mixture_residuals_])
            m = m if multiplicative else err[0] * np.expm1(m)
            measured = np.isclose(float(N), self.mixture_sizes_, rtol=0.01).any()
            # the interaction term is measured at the mixture runs' sizes only: elsewhere the law's
            # own error on its pool runs adds to the mixture's (every pair of the two residuals)
            r = m if measured else (m[:, None] + r[None, :]).reshape(-1)
        lo, hi = calibrated_interval((1.0 - vals if flip else vals)[:, None], err, r, level,
                                     multiplicative=multiplicative)
        rho = self._extrapolation(P, N, Q, sizes)
        lo, hi = self.law_._widened(err, lo, hi, rho, level)
        lo, hi = float(lo[0]), float(hi[0])
        k = self.law_._epochs_scale
        if envelope and k is not None and self.law_._beyond_reach(rho)[0, k]:
            drawn = P * N                                    # samples drawn from each source
            fresh = torch.maximum(sizes, drawn / Q)          # every source as large as what is drawn
            lo = min(lo, self._error_interval(P, N, Q, fresh, thetas, level, envelope=False)[0])
            once = torch.minimum(drawn, Q * sizes)           # each source drawn from at most once
            hi = max(hi, self._error_interval(once / once.sum(), float(once.sum()), Q, sizes, thetas, level,
                                              envelope=False)[1])
        return lo, hi


def _nested_pool(q: torch.Tensor, t: dict) -> dict:
    """Utility and half-life of the kept pool at keep-fractions ``q`` (B, k), interpolated linearly
    between the nested pools' shares; one pool per source for :func:`qqt_mixture_torch`."""
    knots, b, tau = t["shares"], t["b"], t["tau"]            # (k, m): shares are the knots (last = 1)
    valid = knots > 0
    b_q = b[:, 0].expand_as(q).clone()
    tau_q = tau[:, 0].expand_as(q).clone()
    for j in range(1, knots.shape[1]):
        ok = valid[:, j]
        width = torch.where(ok, knots[:, j] - knots[:, j - 1], torch.ones_like(knots[:, j]))
        x = (q - knots[:, j - 1]) / width
        frac = torch.where(ok, _relu(x) - _relu(x - 1.0), torch.zeros_like(x))  # clip(x, 0, 1), smaller-q slopes
        b_q = b_q + frac * (b[:, j] - b[:, j - 1])
        tau_q = tau_q + frac * (tau[:, j] - tau[:, j - 1])
    ones = torch.ones(q.shape[-1], 1, dtype=q.dtype)
    return {"sizes": t["sizes"], "shares": ones, "b": b_q[..., None], "tau": tau_q[..., None]}


def _bootstrap_params(law) -> list[dict] | None:
    """The law's bootstrap refits as parameter dicts, or None for a law made with ``from_params``."""
    if not hasattr(law, "result_"):  # set by fit(), absent from from_params(): nothing to resample
        return None
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # L-BFGS-B on small problems: 2 BLAS threads were 6x slower on 2 busy cores
        return law.bootstrap_params()


# ------------------------------------------------------------------------------------------------ mixing law
def _mixing_torch(R: torch.Tensor, params: Mapping, n_domains: int, n_components: int) -> torch.Tensor:
    """:math:`c + \\sum_i k_i \\exp(\\sum_j t_{ij} r_j)` for ``R`` of shape (n_batch, n_domains)."""
    out = torch.full(R.shape[:-1], params["c"], dtype=R.dtype)
    for i in range(n_components):
        tag = "" if n_components == 1 else f"[{i + 1}]"
        t = torch.tensor([params[f"t_{j + 1}{tag}"] for j in range(n_domains)], dtype=R.dtype)
        out = out + params[f"k{tag}"] * torch.exp(R @ t)
    return out


class MixingLawPredictor(BaseEstimator):
    """Data mixing law (Ye et al. 2024) per measured size behind the predictor protocol.

    At each size :math:`N_k` of the runs a :class:`~datamix.laws.mixing.MixingLaw` is fitted to the
    loss (or to the error ``1 - metric`` of an accuracy); between sizes predictions are
    interpolated linearly in :math:`\\log N`, beyond them extrapolated from the two nearest sizes
    (one size: the same prediction at every N). Keep-fractions are not modelled (no ``q``).

    Parameters
    ----------
    law : MixingLaw, optional
        Template (fit options) cloned for every size; default ``MixingLaw(n_bootstrap=20)``.
    metric : str, default="loss"
        Runs-table column modelled; a column whose name has no "loss" is an accuracy (greater is better).

    Attributes
    ----------
    sources_ : list of str
    sizes_ : ndarray of int
    laws_ : dict of int to MixingLaw
    params_ : dict of str to float
        ``"<size>:<param>"`` for every size's law.
    """

    def __init__(self, law=None, *, metric="loss"):
        self.law = law
        self.metric = metric

    @property
    def greater_is_better(self) -> bool:
        return "loss" not in self.metric

    def fit(self, sources, runs):
        """Fit one law per size.

        Parameters
        ----------
        sources : list of str or of Source
            Names of the mixed sources, in ratio order.
        runs : DataFrame, RunsTable or path
            ``p_<name>`` per source, ``size`` and the ``metric`` column.

        Returns
        -------
        self
        """
        from datamix.laws.mixing import MixingLaw
        from datamix.predict.base import ratio_columns, runs_frame

        names = [getattr(s, "name", s) for s in sources]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"sources must be unique names, got {names}")
        df = runs_frame(runs, names, self.metric)
        template = MixingLaw(n_bootstrap=20) if self.law is None else self.law
        if not isinstance(template, MixingLaw):
            raise TypeError(f"law must be a MixingLaw, got {type(template).__name__}")
        from threadpoolctl import threadpool_limits

        cols = ratio_columns(names)
        self.laws_ = {}
        with threadpool_limits(1):  # small L-BFGS-B problems: extra BLAS threads only spin
            for N, rows in df.groupby("size"):
                y = rows["y"].to_numpy(dtype=np.float64)
                y = 1.0 - y if self.greater_is_better else y
                self.laws_[int(N)] = clone(template).fit(rows[cols].to_numpy(dtype=np.float64), y)
        self.sources_ = names
        self.sizes_ = np.array(sorted(self.laws_))
        self.params_ = {f"{N}:{k}": v for N, law in self.laws_.items() for k, v in law.params_.items()}
        return self

    def _weights(self, N: float) -> list[tuple[int, float]]:
        """Sizes and weights of the log-linear rule at N."""
        s = self.sizes_
        if len(s) == 1:
            return [(int(s[0]), 1.0)]
        j = int(np.clip(np.searchsorted(s, N), 1, len(s) - 1))
        n0, n1 = float(s[j - 1]), float(s[j])
        w1 = np.log(N / n0) / np.log(n1 / n0)
        return [(int(s[j - 1]), 1.0 - w1), (int(s[j]), w1)]

    def predict_torch(self, p: torch.Tensor, N: float) -> torch.Tensor:
        """Prediction as a torch tensor, differentiable in ``p`` (keep-fractions are not modelled)."""
        check_is_fitted(self)
        R = p[None, :] if p.dim() == 1 else p
        k = len(self.sources_)
        out = 0.0
        for size, w in self._weights(float(N)):
            law = self.laws_[size]
            out = out + w * _mixing_torch(R, law.params_, k, law.n_components)
        out = 1.0 - out if self.greater_is_better else out
        return out[0] if p.dim() == 1 else out

    def predict(self, p, N):
        """Predicted metric of mixture ``p`` at size ``N`` (float, or ndarray for 2-D ``p``)."""
        check_is_fitted(self)
        P = torch.tensor(_as_ratios(p, self.sources_), dtype=_DT)
        with torch.no_grad():
            out = self.predict_torch(P, _check_size(N)).numpy()
        return float(out) if out.ndim == 0 else out

    def gradient(self, p, N) -> np.ndarray:
        """d prediction / d p, shape (n_sources,) (by autograd)."""
        check_is_fitted(self)
        P = torch.tensor(_as_ratios(p, self.sources_), dtype=_DT, requires_grad=True)
        if P.dim() != 1:
            raise ValueError("gradient takes one mixture (a 1-D p)")
        self.predict_torch(P, _check_size(N)).backward()
        return P.grad.numpy().copy()

    def predict_interval(self, p, N, level: float = 0.9) -> tuple[float, float]:
        """The size laws' intervals (bootstrap and residuals) combined by the same log-N rule,
        widened to contain :meth:`predict`."""
        from threadpoolctl import threadpool_limits

        check_is_fitted(self)
        P = _as_ratios(p, self.sources_)[None, :]
        lo = hi = 0.0
        for size, w in self._weights(_check_size(N)):
            with threadpool_limits(1):
                a, b = self.laws_[size].predict_interval(P, level=level)
            lo, hi = lo + w * float(a[0]), hi + w * float(b[0])
        lo, hi = sorted((lo, hi))
        lo, hi = (1.0 - hi, 1.0 - lo) if self.greater_is_better else (lo, hi)
        point = float(self.predict(p, N))
        return min(lo, point), max(hi, point)


def accepts_q(fn) -> bool:
    """Whether a predictor method takes keep-fractions ``q``."""
    try:
        return "q" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
