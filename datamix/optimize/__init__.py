"""Mixture optimisation and the Plan it outputs."""

from datamix.optimize.plan import Plan, fingerprint

__all__ = ["Plan", "fingerprint"]
