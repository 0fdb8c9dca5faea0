"""Training-dynamics difficulty scores from proxy runs: EL2N, GraNd, forgetting, margin (AUM).

Each function takes the :class:`~datamix.proxy.TrainingDynamics` of one proxy run (or the
:class:`~datamix.proxy.ProxyResult` holding it), or a list of runs over different seeds (scores
are averaged over runs), and returns one score per training sample, higher = harder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from datamix.index._checks import check_int
from datamix.proxy.trainer import ProxyResult, TrainingDynamics, train_proxy

__all__ = ["dynamics_scores", "el2n", "forgetting", "grand", "margin", "record_dynamics"]

logger = logging.getLogger(__name__)

Dynamics = TrainingDynamics | ProxyResult | Sequence[TrainingDynamics | ProxyResult]


def record_dynamics(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    seeds: Sequence[int] = (0,),
    **train_kwargs,
) -> list[TrainingDynamics]:
    """Train one proxy per seed on ``(X, y)`` and return the training dynamics of each run.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    seeds : sequence of int, default=(0,)
        One run per seed (Paul et al. 2021 average EL2N/GraNd over about ten).
    **train_kwargs
        Passed to :func:`datamix.proxy.train_proxy` (``model``, ``epochs``, ``lr``, ...).

    Returns
    -------
    runs : list of TrainingDynamics
    """
    if len(seeds) == 0:
        raise ValueError("seeds must name at least one seed")
    return [train_proxy(X, y, seed=s, dynamics=True, **train_kwargs).dynamics for s in seeds]


def dynamics_scores(dynamics: Dynamics, *, epoch: int | None = None) -> dict[str, np.ndarray]:
    """All four scores at once: ``{"el2n", "grand", "forgetting", "margin"}`` -> (n_samples,)."""
    return {
        "el2n": el2n(dynamics, epoch=epoch),
        "grand": grand(dynamics, epoch=epoch),
        "forgetting": forgetting(dynamics),
        "margin": margin(dynamics),
    }


def el2n(dynamics: Dynamics, *, epoch: int | None = None) -> np.ndarray:
    """EL2N: L2 norm of the error vector early in training (Paul et al. 2021).

    .. math::
        \\mathrm{EL2N}(x, y) = \\mathbb{E}_{\\text{runs}} \\big\\| \\operatorname{softmax}(f_t(x)) - e_y \\big\\|_2

    Parameters
    ----------
    dynamics : TrainingDynamics or sequence of TrainingDynamics
        One or several proxy runs on the same training set.
    epoch : int, optional
        Snapshot ``t`` (0 = initialisation). Default: 10% of training, at least epoch 1 (the
        paper scores at epoch 20 of 200).

    Returns
    -------
    scores : ndarray of shape (n_samples,), dtype float64
        In [0, sqrt(2)]; higher = harder.

    References
    ----------
    Paul, Ganguli, Dziugaite. Deep learning on a data diet: finding important examples early in
    training. NeurIPS 2021.
    """
    def one_run(run):
        error = _softmax(run.logits[:, _early_epoch(run, epoch)].astype(np.float64))
        error[np.arange(error.shape[0]), run.labels] -= 1.0
        return np.linalg.norm(error, axis=1)

    return _mean_over_runs(dynamics, one_run)


def grand(dynamics: Dynamics, *, epoch: int | None = None) -> np.ndarray:
    """GraNd: norm of the per-sample loss gradient w.r.t. all parameters (Paul et al. 2021).

    .. math::
        \\mathrm{GraNd}(x, y) = \\mathbb{E}_{\\text{runs}} \\big\\| \\nabla_\\theta \\ell(f_t(x), y) \\big\\|_2

    Parameters
    ----------
    dynamics : TrainingDynamics or sequence of TrainingDynamics
    epoch : int, optional
        Snapshot ``t``; 0 is GraNd at initialisation. Default as in :func:`el2n`.

    Returns
    -------
    scores : ndarray of shape (n_samples,), dtype float64
        Higher = harder.
    """
    return _mean_over_runs(dynamics, lambda run: run.grad_norms[:, _early_epoch(run, epoch)])


def forgetting(dynamics: Dynamics) -> np.ndarray:
    """Forgetting counts: transitions from correct to wrong between epochs (Toneva et al. 2019).

    A sample never classified correctly after any epoch counts as ``n_epochs`` forgettings,
    more than any learned sample can reach (at most ``n_epochs // 2``), so it ranks hardest,
    as in the paper. Averaged over runs.

    Parameters
    ----------
    dynamics : TrainingDynamics or sequence of TrainingDynamics

    Returns
    -------
    scores : ndarray of shape (n_samples,), dtype float64
        Higher = harder.

    References
    ----------
    Toneva, Sordoni, des Combes, Trischler, Bengio, Gordon. An empirical study of example
    forgetting during deep neural network learning. ICLR 2019.
    """
    def one_run(run):
        correct = run.logits[:, 1:].argmax(axis=2) == run.labels[:, None]  # (n, n_epochs)
        counts = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)
        counts[~correct.any(axis=1)] = run.n_epochs
        return counts

    return _mean_over_runs(dynamics, one_run)


def margin(dynamics: Dynamics) -> np.ndarray:
    """Negative area under the margin (AUM, Pleiss et al. 2020), so that higher = harder.

    .. math::
        -\\mathrm{AUM}(x, y) = -\\frac{1}{T} \\sum_{t=1}^{T} \\Big( f_t(x)_y - \\max_{c \\ne y} f_t(x)_c \\Big)

    over the logits after every epoch, averaged over runs. Mislabelled and ambiguous samples
    have a negative AUM, hence the highest scores.

    Parameters
    ----------
    dynamics : TrainingDynamics or sequence of TrainingDynamics

    Returns
    -------
    scores : ndarray of shape (n_samples,), dtype float64
        Higher = harder.

    References
    ----------
    Pleiss, Zhang, Elenberg, Weinberger. Identifying mislabeled data using the area under the
    margin ranking. NeurIPS 2020.
    """
    def one_run(run):
        z = run.logits[:, 1:].astype(np.float64)  # (n, T, C)
        rows = np.arange(z.shape[0])
        assigned = z[rows, :, run.labels]  # (n, T)
        z[rows, :, run.labels] = -np.inf
        return -(assigned - z.max(axis=2)).mean(axis=1)

    return _mean_over_runs(dynamics, one_run)


def _mean_over_runs(dynamics: Dynamics, score_run) -> np.ndarray:
    """Validate the runs, score each with ``score_run(run) -> (n_samples,)``, average."""
    runs = _check_runs(dynamics)
    return np.mean([np.asarray(score_run(run), dtype=np.float64) for run in runs], axis=0)


def _check_runs(dynamics: Dynamics) -> list[TrainingDynamics]:
    single = isinstance(dynamics, (TrainingDynamics, ProxyResult))
    runs = [r.dynamics if isinstance(r, ProxyResult) else r
            for r in ([dynamics] if single else list(dynamics))]
    if not runs or not all(isinstance(r, TrainingDynamics) for r in runs):
        raise ValueError("dynamics must be a TrainingDynamics or a non-empty sequence of them "
                         "(from train_proxy(..., dynamics=True) or record_dynamics)")
    first = runs[0]
    for r in runs[1:]:
        if r.logits.shape[0] != first.logits.shape[0] or not np.array_equal(r.labels, first.labels):
            raise ValueError("all runs must be on the same training samples with the same labels")
    if first.logits.shape[2] < 2:
        raise ValueError("training dynamics need at least two classes")
    return runs


def _early_epoch(run: TrainingDynamics, epoch: int | None) -> int:
    """The snapshot index for EL2N / GraNd: given, or 10% of training (at least epoch 1)."""
    if epoch is None:
        return max(1, round(0.1 * run.n_epochs))
    return check_int(epoch, "epoch (0 = initialisation)", low=0, high=run.n_epochs)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
