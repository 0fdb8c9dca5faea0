"""Proxy trainers behind :class:`~datamix.proxy.runs.MixtureRunner`: classifiers on embeddings and
a small causal language model on text.

A trainer is what one run of the runs table trains. Every trainer offers the same small protocol,
so the runner, the stages and the runs table do not care which one they are given:

``signature``
    ``model(key=value,...)`` of the settings that change a run's outcome (runs with another
    signature are never reused).
``unit``, ``metric_name``, ``greater_is_better``
    What a budget counts (``"samples"`` or ``"tokens"``) and what a run measures.
``prepare(item, name) -> tuple of arrays``
    A source (or ready arrays) turned into the trainer's data, read once per runner.
``size_of(data) -> int``, ``rows_of(data) -> int``
    Unique units (samples or tokens) and rows (samples or documents) of prepared data.
``check_data(data, target)``
    Refuse data the trainer cannot use, before any training.
``subset(data, rows)``
    The prepared data of some rows (a quality pool, the rows a plan keeps).
``train_mixture(data, names, counts, target, *, seed) -> dict``
    Train on ``counts[j]`` units of source ``j`` (a compute budget split by the mixture ratios);
    returns ``metric``, ``loss``, ``n_train``, ``seen`` and ``unique``.

:class:`ProxyTrainer` trains classifiers (``linear``, ``mlp``: torch; ``logistic``: scikit-learn,
to convergence). With ``compute_bound=True`` the torch models spend the run's budget as
pretraining does: samples streamed from the drawn pool, repeated as needed, one schedule ending at
the budget, so repeated data costs what it costs. :class:`LMTrainer` trains a byte-level (or
local ``tokenizer.json``) causal transformer (:func:`datamix.proxy.lm.train_lm`) and measures the
target's loss in bits per byte.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from datamix.data.sources import Source, draw_rows
from datamix.proxy.stream import repeated_scale

__all__ = ["ProxyTrainer", "LMTrainer", "TokenDocs", "make_trainer"]

_MODELS = ("linear", "mlp", "logistic")


def _check_options(cls, options: Mapping | None) -> dict:
    options = dict(options or {})
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown trainer option(s) {unknown}; allowed: {allowed}")
    return options


def _check_positive_ints(obj, names) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{type(obj).__name__} {name}={value!r} must be an integer >= 1")


def _check_positive(obj, names) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{type(obj).__name__} {name}={value!r} must be a finite number > 0")


def _check_fraction(obj, name) -> None:
    value = getattr(obj, name)
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{type(obj).__name__} {name}={value!r} must be in [0, 1)")


@dataclass(frozen=True)
class ProxyTrainer:
    """A classifier on embeddings, trained on every mixture, and its settings.

    ``"linear"`` and ``"mlp"`` are :func:`datamix.proxy.train_proxy` (torch); ``"logistic"`` is
    scikit-learn's ``LogisticRegression`` (L-BFGS, one thread) on standardised features, trained to
    convergence: the proxy of the Projektor paper, for which repetition is free.

    Parameters
    ----------
    model : {"linear", "mlp", "logistic"}, default="linear"
    compute_bound : bool, default=False
        Torch models: train on exactly the run's budget of samples seen, streamed from the drawn
        pool (each source repeated as its share of the budget needs, sources interleaved), under
        one warm-up + cosine schedule ending at the budget. False: ``epochs`` passes over the drawn
        rows at a constant learning rate.
    epochs : int, default=30
        Passes over the training set (torch models, ``compute_bound=False``).
    lr : float, default=1e-2
        Adam learning rate (peak learning rate when compute-bound).
    weight_decay : float, default=1e-4
    batch_size : int, default=128
    hidden : int, default=128
        Hidden width of the MLP.
    warmup : float, default=0.05
        Share of the steps warming up (compute-bound).
    C : float, default=1.0
        Inverse L2 strength of ``"logistic"``.
    max_iter : int, default=1000
        L-BFGS iterations of ``"logistic"``.
    device : str, default="cpu"
        Torch device; not part of the signature (results agree up to float noise across devices).
    """

    model: str = "linear"
    compute_bound: bool = False
    epochs: int = 30
    lr: float = 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 128
    hidden: int = 128
    warmup: float = 0.05
    C: float = 1.0
    max_iter: int = 1000
    device: str = "cpu"

    unit = "samples"
    metric_name = "accuracy"
    greater_is_better = True

    def __post_init__(self) -> None:
        if self.model not in _MODELS:
            raise ValueError(f"ProxyTrainer model={self.model!r}; choose one of {_MODELS} (or 'lm' for text)")
        if not isinstance(self.compute_bound, bool):
            raise ValueError(f"ProxyTrainer compute_bound={self.compute_bound!r} must be true or false")
        if self.compute_bound and self.model == "logistic":
            raise ValueError("ProxyTrainer model='logistic' trains to convergence; compute_bound needs "
                             "model 'linear' or 'mlp'")
        _check_positive_ints(self, ("epochs", "batch_size", "hidden", "max_iter"))
        _check_positive(self, ("lr", "C"))
        _check_fraction(self, "warmup")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"ProxyTrainer weight_decay={self.weight_decay!r} must be >= 0")

    @property
    def signature(self) -> str:
        """``model(key=value,...)`` of the settings that change the outcome of a training."""
        torch_keys = ("lr", "weight_decay", "batch_size") + (("hidden",) if self.model == "mlp" else ())
        keys = {"logistic": ("C", "max_iter")}.get(
            self.model, ("compute_bound", "warmup") + torch_keys if self.compute_bound else ("epochs",) + torch_keys)
        return f"{self.model}(" + ",".join(f"{k}={getattr(self, k)!r}" for k in keys) + ")"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, options: Mapping | None) -> "ProxyTrainer":
        """Build from a mapping; an unknown key raises ValueError listing the allowed ones."""
        return cls(**_check_options(cls, options))

    def prepare(self, item, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Features (n, d) float32 and labels (n,) of a labelled :class:`Source` or a pair (X, y)."""
        if isinstance(item, Source):
            if item.labels is None:
                raise ValueError(f"{name} has no labels; a classifier proxy needs a label field "
                                 "(for unlabelled text use trainer model 'lm')")
            return item.vectors(), np.asarray(item.labels)
        try:
            X, y = item
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a Source or a pair (X, y), got {type(item).__name__}") from None
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"{name}: X has shape {X.shape} and y {y.shape}; expected (n, d) and (n,)")
        if not np.isfinite(X).all():
            raise ValueError(f"{name}: X holds NaN or inf")
        return X, y

    @staticmethod
    def size_of(data) -> int:
        return int(len(data[0]))

    rows_of = size_of

    @staticmethod
    def subset(data, rows):
        """The prepared data of ``rows`` only."""
        return data[0][rows], data[1][rows]

    @staticmethod
    def check_data(data: Sequence, target) -> None:
        """Sources and target must share one feature dimension."""
        dims = {X.shape[1] for X, _ in data} | {target[0].shape[1]}
        if len(dims) != 1:
            raise ValueError(f"sources and target must have one feature dimension, got {sorted(dims)}")

    def train_mixture(self, data: Sequence, names: Sequence[str], counts, target, *, seed: int) -> dict:
        """Draw ``counts[j]`` rows of source ``j`` (:func:`~datamix.data.sources.draw_rows`) and train.

        Compute-bound: the distinct rows drawn form the pool and ``counts`` the budget per source.
        Otherwise the drawn rows, repeats included, are the training set, never copied: ``logistic``
        trains on the distinct rows weighted by their repeats (the same objective), the epoch-based
        torch models on the distinct rows indexed by their positions (the same run).
        """
        classes = np.unique(np.concatenate([y for _, y in data] + [target[1]]))
        Xs, ys, groups, seen, weights, positions = [], [], [], [], [], []
        offset = 0
        for j, ((X, y), name, c) in enumerate(zip(data, names, counts)):
            if c == 0:
                continue
            c = int(c)
            rows = draw_rows(name, len(X), min(c, len(X)), seed)  # the distinct rows of the c draws
            Xs.append(X[rows])
            ys.append(y[rows])
            groups.append(np.full(len(rows), len(seen)))
            seen.append(c)
            # the c draws repeat whole passes over these rows, then a prefix: weights or positions, never copies
            if self.model == "logistic":
                weights.append(c // len(rows) + (np.arange(len(rows)) < c % len(rows)))
            elif not self.compute_bound:
                positions.append(offset + np.tile(np.arange(len(rows)), -(-c // len(rows)))[:c])
            offset += len(rows)
        X, y = np.concatenate(Xs), np.concatenate(ys)
        if self.compute_bound:
            budget = {"seen": np.array(seen), "groups": np.concatenate(groups)}
        elif self.model == "logistic":
            budget = {"sample_weight": np.concatenate(weights).astype(np.float64)}
        else:
            budget = {"rows": np.concatenate(positions)}
        metric, loss = self.train(X, y, *target, classes=classes, seed=seed, **budget)
        unique = int(sum(min(int(c), len(d[0])) for d, c in zip(data, counts)))
        return {"metric": metric, "loss": loss, "n_train": int(sum(seen)), "seen": int(sum(seen)),
                "unique": unique}

    def train(self, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *,
              classes: np.ndarray, seed: int, seen=None, groups=None, sample_weight=None,
              rows=None) -> tuple[float, float]:
        """Train on ``(X_train, y_train)``; return (accuracy, cross-entropy) on the test set.

        Parameters
        ----------
        X_train : ndarray of shape (n_samples, n_features)
        y_train : ndarray of shape (n_samples,)
        X_test : ndarray of shape (n_test, n_features)
        y_test : ndarray of shape (n_test,)
        classes : ndarray of shape (n_classes,)
            Every label value, fixing the output layer.
        seed : int
        seen : int or ndarray of shape (n_groups,), optional
            Compute-bound: samples to stream (per group); default ``len(X_train)`` (one pass).
        groups : ndarray of shape (n_samples,), optional
            Group of every row (compute-bound), numbered from 0.
        sample_weight : ndarray of shape (n_samples,), optional
            Times each row counts (``logistic`` only): the same fit as the rows repeated.
        rows : ndarray of int, optional
            Epoch-based torch models: train on ``X_train[rows]`` without copying it.
        """
        if self.model == "logistic":
            return _train_logistic(X_train, y_train, X_test, y_test, classes, C=self.C, max_iter=self.max_iter,
                                   sample_weight=sample_weight)
        if sample_weight is not None:
            raise ValueError(f"sample_weight is for model 'logistic', not {self.model!r}")
        from datamix.proxy.trainer import train_proxy

        budget = {}
        if self.compute_bound:
            budget = {"seen": len(X_train) if seen is None else seen, "groups": groups, "warmup": self.warmup}
        res = train_proxy(X_train, y_train, X_test, y_test, model=self.model, epochs=self.epochs,
                          lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size,
                          hidden=self.hidden, classes=classes, seed=seed, device=self.device, rows=rows, **budget)
        return res.accuracy, res.loss


def _train_logistic(X_train, y_train, X_test, y_test, classes, *, C, max_iter, sample_weight=None):
    """Multinomial logistic regression on standardised features (one BLAS/OpenMP thread); rows
    weighted by ``sample_weight`` (repeats) fit and standardise as if repeated."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    present = np.unique(y_train)
    full = np.full((len(X_test), len(classes)), 1e-12)
    if present.size < 2:  # a one-class training set predicts that class for everything
        full[:, np.searchsorted(classes, present[0])] = 1.0
    else:
        mean, std = repeated_scale(X_train, sample_weight)
        with threadpool_limits(1), warnings.catch_warnings():
            # A small, noisy training set may need more iterations; the measurement is still usable.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(C=C, max_iter=max_iter).fit((X_train - mean) / std, y_train,
                                                                     sample_weight=sample_weight)
            proba = model.predict_proba((X_test - mean) / std)
        full[:, np.searchsorted(classes, model.classes_)] = np.maximum(proba, 1e-12)
    full /= full.sum(1, keepdims=True)
    pred = classes[full.argmax(1)]
    loss = float(-np.mean(np.log(full[np.arange(len(X_test)), np.searchsorted(classes, y_test)])))
    return float(np.mean(pred == y_test)), loss


class TokenDocs(NamedTuple):
    """Tokenized documents: ``tokens`` (all documents concatenated, int32), ``lengths`` (tokens of
    each document, int64, shape (n_docs,)) and ``n_bytes`` (UTF-8 bytes of each document)."""

    tokens: np.ndarray
    lengths: np.ndarray
    n_bytes: np.ndarray

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer, *, name: str = "texts") -> "TokenDocs":
        """Tokenize ``texts``; an empty or non-string document raises ValueError naming its row."""
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"{name}: {len(bad)} empty or non-text document(s), first at row(s) {bad[:5]}; "
                             "remove them or fix the text field")
        if not texts:
            raise ValueError(f"{name} holds no documents")
        encoded = tokenizer.encode_batch(texts)
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            raise ValueError(f"{name}: document(s) at row(s) {empty[:5].tolist()} have no tokens")
        n_bytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)
        return cls(np.concatenate(encoded).astype(np.int32), lengths, n_bytes)

    def docs(self) -> list[np.ndarray]:
        """One int32 array per document."""
        return np.split(self.tokens, np.cumsum(self.lengths)[:-1])

    def select(self, rows) -> "TokenDocs":
        """The documents at ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        docs = self.docs()
        picked = [docs[i] for i in rows]
        tokens = np.concatenate(picked) if picked else np.zeros(0, np.int32)
        return TokenDocs(tokens.astype(np.int32), self.lengths[rows], self.n_bytes[rows])


@functools.lru_cache(maxsize=8)
def _tokenizer(spec: str | None):
    from datamix.proxy.tokenizer import load_tokenizer

    return load_tokenizer(spec)


@dataclass(frozen=True)
class LMTrainer:
    """A small causal transformer trained compute-bound on text; metric: target bits per byte.

    Every run streams its budget of tokens from the sources' documents (each source repeated as
    its share needs, sources interleaved; :func:`datamix.proxy.lm.train_lm`) under one warm-up +
    cosine schedule, then measures the target corpus's loss in bits per UTF-8 byte (lower is better,
    comparable across tokenizers).

    Parameters
    ----------
    model : "lm"
    tokenizer : str or None, default=None
        None (or ``"bytes"``): UTF-8 bytes, nothing downloaded. Else the path of a local Hugging
        Face ``tokenizers`` ``tokenizer.json``; budgets and token counts are then in its tokens.
    width, depth, heads, context : int, default=64, 2, 4, 64
        Model width, transformer blocks, attention heads, tokens of context.
    batch_size : int, default=8
        Sequences of ``context`` tokens per step (8 x 64 tokens: at the small budgets of proxy
        runs, more steps beat larger batches — 3.89 vs 3.99-4.37 bits per byte after 300k bytes of
        docstrings with batch 16 or a larger learning rate).
    lr : float, default=3e-3
        Peak AdamW learning rate.
    weight_decay : float, default=0.0
    warmup : float, default=0.05
        Share of the steps warming up.
    device : str, default="auto"
        ``"auto"`` uses CUDA (bf16 autocast) when torch sees a GPU; not part of the signature.
    """

    model: str = "lm"
    tokenizer: str | None = None
    width: int = 64
    depth: int = 2
    heads: int = 4
    context: int = 64
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup: float = 0.05
    device: str = "auto"

    unit = "tokens"
    metric_name = "bits_per_byte"
    greater_is_better = False

    def __post_init__(self) -> None:
        if self.model != "lm":
            raise ValueError(f"LMTrainer model={self.model!r} must be 'lm'")
        _check_positive_ints(self, ("width", "depth", "heads", "context", "batch_size"))
        _check_positive(self, ("lr",))
        _check_fraction(self, "warmup")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"LMTrainer weight_decay={self.weight_decay!r} must be >= 0")
        if self.width % self.heads:
            raise ValueError(f"LMTrainer width={self.width} must be a multiple of heads={self.heads}")

    @property
    def tokenizer_(self):
        """The loaded tokenizer (cached per spec)."""
        return _tokenizer(self.tokenizer)

    @property
    def signature(self) -> str:
        keys = ("width", "depth", "heads", "context", "batch_size", "lr", "weight_decay", "warmup")
        return (f"lm(tokenizer={self.tokenizer_.signature!r},"
                + ",".join(f"{k}={getattr(self, k)!r}" for k in keys) + ")")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, options: Mapping | None) -> "LMTrainer":
        """Build from a mapping; an unknown key raises ValueError listing the allowed ones."""
        return cls(**_check_options(cls, options))

    def prepare(self, item, name: str) -> TokenDocs:
        """Tokenized documents of a text :class:`Source`, a list of strings or ready :class:`TokenDocs`."""
        if isinstance(item, TokenDocs):
            return item
        if isinstance(item, Source):
            if item.kind != "text":
                raise ValueError(f"{name} holds {item.kind} samples; the 'lm' proxy trains on text")
            return TokenDocs.from_texts(item.samples(), self.tokenizer_, name=f"{name}, field {item.field!r}")
        if isinstance(item, (list, tuple)) and all(isinstance(t, str) for t in item):
            return TokenDocs.from_texts(item, self.tokenizer_, name=name)
        raise TypeError(f"{name} must be a text Source, a list of strings or TokenDocs, got {type(item).__name__}")

    @staticmethod
    def size_of(data: TokenDocs) -> int:
        return int(data.lengths.sum())

    @staticmethod
    def rows_of(data: TokenDocs) -> int:
        return int(len(data.lengths))

    @staticmethod
    def subset(data: TokenDocs, rows) -> TokenDocs:
        """The documents at ``rows`` only."""
        return data.select(rows)

    def check_data(self, data: Sequence[TokenDocs], target: TokenDocs) -> None:
        """The target must fill one context; every source one training sequence."""
        if target.lengths.sum() + len(target.lengths) < self.context + 1:
            raise ValueError(f"target set smaller than one context: {int(target.lengths.sum())} tokens, "
                             f"trainer context={self.context}")

    def train_mixture(self, data: Sequence[TokenDocs], names: Sequence[str], counts, target: TokenDocs, *,
                      seed: int) -> dict:
        """Train on ``counts[j]`` tokens of source ``j``; bits per byte of the target."""
        from datamix.proxy.lm import train_lm

        used = [j for j, c in enumerate(counts) if c > 0]
        res = train_lm([data[j].docs() for j in used], [int(counts[j]) for j in used], target.docs(),
                       vocab_size=self.tokenizer_.vocab_size, target_bytes=int(target.n_bytes.sum()),
                       width=self.width, depth=self.depth, heads=self.heads, context=self.context,
                       batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                       warmup=self.warmup, seed=seed, device=self.device)
        return {"metric": float(res.bits_per_byte), "loss": float(res.loss), "n_train": int(res.seen),
                "seen": int(res.seen), "unique": int(res.unique)}


def make_trainer(options: Mapping | None):
    """The trainer an options mapping names: ``{"model": "lm", ...}`` → :class:`LMTrainer`, else
    :class:`ProxyTrainer`."""
    options = dict(options or {})
    return (LMTrainer if options.get("model") == "lm" else ProxyTrainer).from_dict(options)
