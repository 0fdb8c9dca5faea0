"""Mixture predictors: OTPredictor (Projektor), OT-free baselines, and choosing mixtures and purchases."""

from datamix.predict._simplex import check_ratios, project_simplex, simplex_grid
from datamix.predict.baselines import RatioPolynomial
from datamix.predict.laws import MixingLawPredictor, QualityPredictor
from datamix.predict.base import TwoStagePredictor, runs_frame
from datamix.predict.mixture_ot import MixtureOT, OTTerm, make_embedding
from datamix.predict.projektor import FORMS, OTPredictor
from datamix.predict.runs import (
    CANDIDATES,
    MixtureSelection,
    RankEnsemble,
    pick_mixture,
    select_mixture_predictor,
)
from datamix.predict.select import MixtureChoice, PurchaseChoice, max_affordable, plan_purchase, select_mixture

__all__ = [
    "MixingLawPredictor",
    "QualityPredictor",
    "OTPredictor",
    "CANDIDATES",
    "MixtureSelection",
    "RankEnsemble",
    "pick_mixture",
    "select_mixture_predictor",
    "RatioPolynomial",
    "TwoStagePredictor",
    "MixtureOT",
    "OTTerm",
    "FORMS",
    "make_embedding",
    "runs_frame",
    "check_ratios",
    "project_simplex",
    "simplex_grid",
    "select_mixture",
    "plan_purchase",
    "max_affordable",
    "MixtureChoice",
    "PurchaseChoice",
]
