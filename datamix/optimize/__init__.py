"""Mixture optimisation, the compute-aware threshold curve, and the Plan they output."""

from datamix.optimize.constraints import MixtureProblem, check_constraints
from datamix.optimize.frontier import Frontier, threshold_curve
from datamix.optimize.mixture import MixtureOptimizer, optimize_mixture, score_thresholds
from datamix.optimize.plan import Plan, fingerprint

__all__ = [
    "Frontier",
    "MixtureOptimizer",
    "MixtureProblem",
    "Plan",
    "check_constraints",
    "fingerprint",
    "optimize_mixture",
    "score_thresholds",
    "threshold_curve",
]
