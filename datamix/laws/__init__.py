"""Scaling laws: fit, predict, extrapolate and choose among them.

Every law is a scikit-learn regressor sharing one fitting machinery (:class:`Law`): robust Huber loss
on log y, positive parameters in log space, bounds, L-BFGS-B from a data-driven grid of starts,
bootstrap ``predict_interval`` and ``score`` = mean absolute relative error.

Laws: :class:`PowerLaw`, :class:`Chinchilla`, :class:`DataConstrained` (Muennighoff et al.),
:class:`RepetitionPenalty` (repetition-aware: the loss can rise with epochs), :class:`QualityQuantity`
(QQT, Goyal et al.; :func:`best_pool_combination` gives the compute-aware filtering threshold),
:class:`MixingLaw` (Ye et al.) and :class:`MultiDomainMixingLaw`. :func:`select_law` picks one by
held-out extrapolation error.
"""

from .base import Law, calibrated_interval, fit_residuals, relative_error
from .filtering import PoolChoice, best_pool_combination
from .forms import (
    Chinchilla,
    DataConstrained,
    PowerLaw,
    RepetitionPenalty,
    chinchilla_loss,
    compute_optimal_params,
    data_constrained_loss,
    effective_data,
    effective_params,
    power_law,
)
from .mixing import MixingLaw, MultiDomainMixingLaw, mixing_law
from .qqt import QualityQuantity, qqt_error, qqt_mixture_error
from .select import LawSelection, extrapolation_split, select_law

__all__ = [
    "Chinchilla",
    "DataConstrained",
    "Law",
    "LawSelection",
    "MixingLaw",
    "MultiDomainMixingLaw",
    "PoolChoice",
    "PowerLaw",
    "QualityQuantity",
    "RepetitionPenalty",
    "best_pool_combination",
    "calibrated_interval",
    "chinchilla_loss",
    "compute_optimal_params",
    "data_constrained_loss",
    "effective_data",
    "effective_params",
    "extrapolation_split",
    "fit_residuals",
    "mixing_law",
    "power_law",
    "qqt_error",
    "qqt_mixture_error",
    "relative_error",
    "select_law",
]
