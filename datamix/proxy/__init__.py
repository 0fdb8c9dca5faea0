"""Proxy trainers (classifiers on embeddings, a small causal LM on text), compute-bound streams and
the runs table of mixture measurements."""

from datamix.proxy.lm import CausalLM, LMResult, doc_bits, train_lm
from datamix.proxy.runs import MixtureRun, MixtureRunner, RunsTable
from datamix.proxy.stream import Budget, lr_schedule, mixture_stream
from datamix.proxy.trainer import ProxyResult, TrainingDynamics, train_proxy
from datamix.proxy.tokenizer import Tokenizer, load_tokenizer
from datamix.proxy.trainers import LMTrainer, ProxyTrainer, TokenDocs, make_trainer

__all__ = ["ProxyResult", "TrainingDynamics", "train_proxy", "ProxyTrainer", "LMTrainer", "TokenDocs", "make_trainer",
           "RunsTable", "MixtureRunner", "MixtureRun", "Budget", "mixture_stream", "lr_schedule", "CausalLM",
           "LMResult", "train_lm", "doc_bits", "Tokenizer", "load_tokenizer"]
