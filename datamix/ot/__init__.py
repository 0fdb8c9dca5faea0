"""Label-aware optimal transport between datasets, and its gradient with respect to mixture weights."""

from datamix.ot.distance import OTResult, class_distances, entropic_ot, label_ot, label_ot_distance
from datamix.ot.gradient import mixture_gradient

__all__ = ["OTResult", "class_distances", "entropic_ot", "label_ot", "label_ot_distance", "mixture_gradient"]
