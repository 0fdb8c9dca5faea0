"""Label-aware optimal transport between datasets, and its gradient with respect to mixture weights."""

from datamix.ot.classes import class_distances
from datamix.ot.distance import NotConvergedError, OTResult, entropic_ot, label_ot, label_ot_distance
from datamix.ot.gradient import mixture_gradient

__all__ = ["NotConvergedError", "OTResult", "class_distances", "entropic_ot", "label_ot", "label_ot_distance",
           "mixture_gradient"]
