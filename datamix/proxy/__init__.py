"""Proxy trainers: small seeded torch models on embeddings (linear probe, MLP)."""

from datamix.proxy.trainer import ProxyResult, TrainingDynamics, train_proxy

__all__ = ["ProxyResult", "TrainingDynamics", "train_proxy"]
