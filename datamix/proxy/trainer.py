"""A small, seeded torch classifier on embeddings: the proxy model of datamix.

One call trains a linear probe or a one-hidden-layer MLP on ``(X_train, y_train)``, reports the
test accuracy and loss, and, when asked, records per-epoch per-sample training dynamics (logits
and per-sample gradient norms) from which :mod:`datamix.prune.dynamics` computes EL2N, GraNd,
forgetting counts and AUM.

Two ways to spend compute: ``epochs`` passes over the training set at a constant learning rate
(the classic probe), or, with ``seen=``, a compute-bound run as in pretraining: a budget of samples
streamed from the pool (repeated as needed, :func:`datamix.proxy.stream.mixture_stream`) under one
warm-up + cosine schedule that ends at the budget (:func:`datamix.proxy.stream.lr_schedule`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from datamix.index._checks import check_embeddings, check_int, check_seed, format_rows
from datamix.proxy.stream import lr_schedule, mixture_stream, repeated_scale

__all__ = ["ProxyResult", "TrainingDynamics", "train_proxy"]

logger = logging.getLogger(__name__)

_MODELS = ("linear", "mlp")
_EVAL_BATCH = 4096


@dataclass(frozen=True)
class TrainingDynamics:
    """Per-sample training record of one proxy run.

    Snapshot ``s`` is taken at initialisation (``s = 0``) and after epoch ``s`` (``s >= 1``),
    with a full forward pass over the training set in evaluation mode.

    Attributes
    ----------
    logits : ndarray of shape (n_samples, n_epochs + 1, n_classes), dtype float32
        Logits of every training sample at every snapshot.
    grad_norms : ndarray of shape (n_samples, n_epochs + 1), dtype float32
        L2 norm of the gradient of the sample's cross-entropy loss w.r.t. all parameters.
    labels : ndarray of shape (n_samples,), dtype int64
        Class index of every sample, in ``[0, n_classes)``.
    """

    logits: np.ndarray
    grad_norms: np.ndarray
    labels: np.ndarray

    @property
    def n_epochs(self) -> int:
        """Number of training epochs recorded (snapshots minus the one at initialisation)."""
        return self.logits.shape[1] - 1


@dataclass(frozen=True)
class ProxyResult:
    """Outcome of :func:`train_proxy`.

    Attributes
    ----------
    accuracy : float
        Test accuracy in [0, 1] (NaN when no test set was given).
    loss : float
        Mean test cross-entropy (NaN when no test set was given).
    n_train : int
        Training samples used.
    n_epochs : int
        Epochs actually run (``epochs``, raised to reach ``min_steps``; compute-bound: passes
        started, ``ceil(seen / unique)``).
    classes : ndarray of shape (n_classes,)
        Original label values; column ``j`` of the logits is ``classes[j]``.
    loss_curve : ndarray of shape (n_epochs,)
        Mean training loss of every epoch (compute-bound: of every ``ceil(unique / batch_size)``
        steps).
    dynamics : TrainingDynamics or None
        Present when ``dynamics=True`` was passed.
    seen : int
        Samples streamed through the model (``epochs * n_train`` in epoch mode).
    unique : int
        Distinct training samples among them.
    """

    accuracy: float
    loss: float
    n_train: int
    n_epochs: int
    classes: np.ndarray
    loss_curve: np.ndarray
    dynamics: TrainingDynamics | None = None
    seen: int = 0
    unique: int = 0

    @property
    def epochs(self) -> float:
        """Passes over the unique training samples: ``seen / unique``."""
        return self.seen / self.unique if self.unique else float("nan")


def train_proxy(
    X_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    X_test: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    *,
    model: str = "linear",
    epochs: int = 30,
    min_steps: int = 0,
    batch_size: int = 128,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    hidden: int = 128,
    standardize: bool = True,
    classes: npt.ArrayLike | None = None,
    dynamics: bool = False,
    seed: int | np.random.Generator | None = 0,
    device: str = "auto",
    n_threads: int | None = 1,
    seen: int | npt.ArrayLike | None = None,
    groups: npt.ArrayLike | None = None,
    warmup: float = 0.05,
    rows: npt.ArrayLike | None = None,
) -> ProxyResult:
    """Train a seeded linear or MLP classifier on embeddings and measure it on a test set.

    Minimises the mean cross-entropy with Adam over shuffled mini-batches:

    .. math::
        \\min_\\theta \\frac{1}{n} \\sum_{i=1}^n -\\log \\operatorname{softmax}(f_\\theta(x_i))_{y_i}
        + \\frac{\\lambda}{2} \\|\\theta\\|^2

    Parameters
    ----------
    X_train : array-like of shape (n_samples, n_features)
        Training embeddings.
    y_train : array-like of shape (n_samples,)
        Training labels (any sortable values).
    X_test : array-like of shape (n_test, n_features), optional
        Test embeddings; without them ``accuracy`` and ``loss`` are NaN.
    y_test : array-like of shape (n_test,), optional
        Test labels.
    model : {"linear", "mlp"}, default="linear"
        Linear probe, or one hidden ReLU layer of width ``hidden``.
    epochs : int, default=30
        Passes over the training set.
    min_steps : int, default=0
        Fewest optimiser steps: ``epochs`` is raised so that a small (pruned) training set still
        gets this many updates.
    batch_size : int, default=128
    lr : float, default=1e-2
        Adam learning rate.
    weight_decay : float, default=1e-4
    hidden : int, default=128
        Hidden width of the MLP.
    standardize : bool, default=True
        Scale features to zero mean and unit variance with the training set's statistics.
    classes : array-like, optional
        All label values, fixing the output layer. Default: the labels seen in train and test.
    dynamics : bool, default=False
        Record :class:`TrainingDynamics` (logits and per-sample gradient norms of every training
        sample at initialisation and after every epoch).
    seed : int or numpy Generator, default=0
        Seeds initialisation and shuffling; the global torch RNG is left untouched.
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``"auto"`` uses CUDA when torch sees a GPU.
    n_threads : int or None, default=1
        CPU threads torch may use during the call (the previous setting is restored after);
        ``None`` leaves torch's setting alone. The proxy models are small: on a busy 2-core
        machine one thread trained the digits probe 20x faster than two (0.2 s vs 4 s), as
        OpenMP workers stop spinning against other processes.
    seen : int or array-like of int of shape (n_groups,), optional
        Compute-bound training: samples to stream (per group of ``groups``), each group repeated
        as needed and the groups interleaved evenly; one learning-rate schedule (warm-up, cosine
        to 0.1 ``lr``) ends at the last step. ``epochs`` and ``min_steps`` are then unused.
    groups : array-like of int of shape (n_samples,), optional
        Group (source) of every training row, numbered from 0; default: one group.
    warmup : float, default=0.05
        Share of the steps warming up (compute-bound runs).
    rows : array-like of int of shape (n_rows,), optional
        Epoch-based training on ``X_train[rows]`` (rows may repeat): the same run as on the copy,
        without making it (memory of the distinct rows plus 8 bytes per row of the training set).

    Returns
    -------
    ProxyResult

    Raises
    ------
    ValueError
        For mismatched shapes, non-finite rows, fewer than two classes, unknown test labels or
        bad hyper-parameters.

    Examples
    --------
    >>> X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> res = train_proxy(X, [0, 0, 1, 1], X, [0, 0, 1, 1], epochs=50, batch_size=4, lr=0.1)
    >>> res.accuracy
    1.0
    """
    X_train = check_embeddings(X_train, name="X_train")
    y_idx, classes = _encode_labels(y_train, y_test, X_train.shape[0], classes)
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    test = None
    if X_test is not None:
        X_test = check_embeddings(X_test, name="X_test")
        if X_test.shape[1] != X_train.shape[1]:
            raise ValueError(f"X_test has {X_test.shape[1]} features but X_train has "
                             f"{X_train.shape[1]}")
        y_test_idx = _labels_to_index(y_test, classes, X_test.shape[0], name="y_test")
        test = (X_test, y_test_idx)
    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("hidden", hidden)):
        check_int(value, name)
    check_int(min_steps, "min_steps", low=0)
    check_int(n_threads, "n_threads", allow_none=True)
    if not lr > 0 or not weight_decay >= 0:
        raise ValueError(f"need lr > 0 and weight_decay >= 0, got lr={lr!r}, "
                         f"weight_decay={weight_decay!r}")
    stream = None
    if seen is not None:
        if dynamics:
            raise ValueError("dynamics are recorded per epoch: use epochs, not seen=")
        if rows is not None:
            raise ValueError("rows= is for epoch-based training; a compute-bound run (seen=) repeats by itself")
        stream = _budget_stream(seen, groups, X_train.shape[0], int(batch_size))
    if rows is not None:
        rows = np.asarray(rows)
        if rows.ndim != 1 or not rows.size or not np.issubdtype(rows.dtype, np.integer) or \
                rows.min() < 0 or rows.max() >= X_train.shape[0]:
            raise ValueError(f"rows must be a non-empty 1-D array of row numbers in [0, {X_train.shape[0]})")
        if dynamics:
            raise ValueError("dynamics are recorded per training row: pass X_train[rows], not rows=")
    torch_seed = int(check_seed(seed).integers(2**31 - 1))
    previous_threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    try:
        return _train_proxy_impl(
            X_train, y_idx, test, classes, model=model, epochs=int(epochs),
            min_steps=int(min_steps), batch_size=int(batch_size), lr=float(lr),
            weight_decay=float(weight_decay), hidden=int(hidden), standardize=standardize,
            dynamics=dynamics, torch_seed=torch_seed, device=_torch_device(device), stream=stream,
            warmup=float(warmup), rows=rows,
        )
    finally:
        torch.set_num_threads(previous_threads)


def _budget_stream(seen, groups, n, batch_size):
    """(rows in group order, units per group, samples to stream per group) of a compute-bound run."""
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    if groups.shape != (n,) or not np.issubdtype(groups.dtype, np.integer) or (groups < 0).any():
        raise ValueError(f"groups must hold one integer >= 0 per training row ({n}), got shape {groups.shape}")
    sizes = np.bincount(groups)
    seen = np.atleast_1d(np.asarray(seen))
    if seen.shape != sizes.shape or not np.issubdtype(seen.dtype, np.integer) or (seen < 0).any():
        raise ValueError(f"seen must be one integer >= 0 per group ({sizes.size} groups), got {seen.tolist()}")
    if seen.sum() < batch_size:
        raise ValueError(f"budget seen={int(seen.sum())} samples is smaller than one batch "
                         f"(batch_size={batch_size})")
    return np.argsort(groups, kind="stable"), sizes, seen.astype(np.int64)


def _encode_labels(y_train, y_test, n, classes):
    """Class values (sorted) and the training labels as indices into them."""
    y_train = np.asarray(y_train)
    if y_train.ndim != 1 or y_train.shape[0] != n:
        raise ValueError(f"y_train must be 1-D with one label per row of X_train ({n}), "
                         f"got shape {y_train.shape}")
    if classes is None:
        seen = [y_train] if y_test is None else [y_train, np.asarray(y_test).ravel()]
        classes = np.unique(np.concatenate(seen))
    else:
        classes = np.unique(np.asarray(classes))
    if classes.size < 2:
        raise ValueError(f"need at least two classes to train a classifier, got {classes.tolist()}")
    return _labels_to_index(y_train, classes, n, name="y_train"), classes


def _labels_to_index(y, classes, n, *, name):
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with {n} labels, got shape {y.shape}")
    idx = np.searchsorted(classes, y).clip(0, classes.size - 1)
    unknown = np.flatnonzero(classes[idx] != y)
    if unknown.size:
        raise ValueError(f"{name} has labels outside classes {classes.tolist()} in "
                         f"{format_rows(unknown)}")
    return idx.astype(np.int64)


def _torch_device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no GPU; pass device='auto' or 'cpu'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _build_model(model, n_features, n_classes, hidden):
    if model == "linear":
        return nn.Linear(n_features, n_classes)
    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def _train_proxy_impl(X_train, y_idx, test, classes, *, model, epochs, min_steps, batch_size, lr,
                      weight_decay, hidden, standardize, dynamics, torch_seed, device, stream=None, warmup=0.05,
                      rows=None):
    """Training loop on clean input: float32 features, int64 class indices, valid options;
    ``stream`` is None (epochs) or the checked (rows, sizes, seen) of a compute-bound run;
    ``rows`` None or the checked rows of ``X_train`` forming the (epoch-based) training set."""
    d = X_train.shape[1]
    n = X_train.shape[0] if rows is None else rows.size  # rows of the training set, repeats included
    if standardize and rows is None:
        mean = X_train.mean(axis=0, dtype=np.float64)
        std = X_train.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
    elif standardize:  # the statistics of X_train[rows], from the distinct rows weighted by their count
        mean, std = repeated_scale(X_train, np.bincount(rows, minlength=X_train.shape[0]))
    else:
        mean, std = np.zeros(d), np.ones(d)

    def to_tensor(X):
        return torch.as_tensor(((X - mean) / std).astype(np.float32), device=device)

    Xt, yt = to_tensor(X_train), torch.as_tensor(y_idx, device=device)
    rows_t = None if rows is None else torch.as_tensor(rows, device=device)
    steps_per_epoch = math.ceil(n / batch_size)
    n_epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(torch_seed)
        net = _build_model(model, d, classes.size, hidden)
    net = net.to(device)
    gen = torch.Generator().manual_seed(torch_seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()

    if stream is not None:
        rows, sizes, seen = stream
        order = rows[mixture_stream(sizes, seen, seed=torch_seed + 2)]
        losses = _train_stream(net, opt, loss_fn, Xt, yt, order, batch_size, device, warmup)
        unique = int(np.unique(order).size)
        per_pass = max(1, math.ceil(unique / batch_size))
        loss_curve = np.array([losses[i:i + per_pass].mean() for i in range(0, len(losses), per_pass)])
        accuracy, loss = _evaluate(net, test, to_tensor, device)
        logger.debug("proxy %s: %d seen, %d unique, test accuracy %.4f", model, order.size, unique, accuracy)
        return ProxyResult(accuracy, loss, n, math.ceil(order.size / unique), classes, loss_curve, None,
                           seen=int(order.size), unique=unique)

    snapshots = [_snapshot(net, Xt, yt)] if dynamics else []
    loss_curve = np.empty(n_epochs)
    for epoch in range(n_epochs):
        net.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            batch = perm[start:start + batch_size]
            if rows_t is not None:
                batch = rows_t[batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[batch]), yt[batch])
            loss.backward()
            opt.step()
            total += loss.item() * batch.numel()
        loss_curve[epoch] = total / n
        if dynamics:
            snapshots.append(_snapshot(net, Xt, yt))

    accuracy, loss = _evaluate(net, test, to_tensor, device)
    logger.debug("proxy %s: n=%d, %d epochs, final train loss %.4f, test accuracy %.4f",
                 model, n, n_epochs, loss_curve[-1], accuracy)
    record = None
    if dynamics:
        record = TrainingDynamics(
            logits=np.stack([s[0] for s in snapshots], axis=1),
            grad_norms=np.stack([s[1] for s in snapshots], axis=1),
            labels=y_idx,
        )
    unique = n if rows is None else int(np.unique(rows).size)
    return ProxyResult(accuracy, loss, n, n_epochs, classes, loss_curve, record, seen=n * n_epochs, unique=unique)


def _train_stream(net, opt, loss_fn, Xt, yt, order, batch_size, device, warmup):
    """One pass over ``order`` (row indices, repeats included) in batches, one schedule; step losses."""
    n_steps = math.ceil(order.size / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(n_steps, warmup=warmup))
    order_t = torch.as_tensor(order, device=device)
    losses = np.empty(n_steps)
    net.train()
    for step in range(n_steps):
        batch = order_t[step * batch_size:(step + 1) * batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(Xt[batch]), yt[batch])
        loss.backward()
        opt.step()
        sched.step()
        losses[step] = loss.item()
    return losses


def _evaluate(net, test, to_tensor, device):
    """(accuracy, mean cross-entropy) on the test set; NaNs without one."""
    if test is None:
        return float("nan"), float("nan")
    logits = _predict(net, to_tensor(test[0]))
    y_te = torch.as_tensor(test[1], device=device)
    return float((logits.argmax(dim=1) == y_te).float().mean()), float(nn.functional.cross_entropy(logits, y_te))


@torch.no_grad()
def _predict(net, X):
    net.eval()
    return torch.cat([net(X[s:s + _EVAL_BATCH]) for s in range(0, X.shape[0], _EVAL_BATCH)])


def _snapshot(net, X, y):
    """Logits and per-sample gradient norms of all training samples, as numpy arrays.

    Both models are stacks of ``nn.Linear`` layers with element-wise activations, so the
    gradient of a sample's loss w.r.t. a layer's weight is the outer product
    :math:`\\delta a^T` of the loss gradient at the layer output and the layer input, and its
    squared norm is :math:`\\|\\delta\\|^2 (\\|a\\|^2 + 1)` with the bias. One batched backward
    pass thus gives exact per-sample norms (checked against per-sample autograd in the tests).
    """
    logits_all, norms_all = [], []
    layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
    net.eval()
    for s in range(0, X.shape[0], _EVAL_BATCH):
        captured = []
        hooks = [layer.register_forward_hook(lambda _m, inp, out: captured.append((inp[0], out)))
                 for layer in layers]
        try:
            logits = net(X[s:s + _EVAL_BATCH])
        finally:
            for h in hooks:
                h.remove()
        # The summed loss separates over samples, so d(sum)/d(out_i) is sample i's own gradient.
        loss = nn.functional.cross_entropy(logits, y[s:s + _EVAL_BATCH], reduction="sum")
        deltas = torch.autograd.grad(loss, [out for _, out in captured])
        sq = sum(d.pow(2).sum(dim=1) * (a.pow(2).sum(dim=1) + 1.0)
                 for (a, _), d in zip(captured, deltas))
        logits_all.append(logits.detach())
        norms_all.append(sq.detach().sqrt())
    return torch.cat(logits_all).cpu().numpy(), torch.cat(norms_all).cpu().numpy()
