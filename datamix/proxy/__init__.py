"""Proxy trainers (small seeded models on embeddings) and the runs table of mixture measurements."""

from datamix.proxy.runs import MixtureRun, MixtureRunner, ProxyTrainer, RunsTable
from datamix.proxy.trainer import ProxyResult, TrainingDynamics, train_proxy

__all__ = ["ProxyResult", "TrainingDynamics", "train_proxy", "ProxyTrainer", "RunsTable", "MixtureRunner",
           "MixtureRun"]
