"""The predictor as a torch objective: autograd where the predictor is written in torch, otherwise a
``torch.autograd.Function`` around ``predict``/``gradient`` with finite differences for ``q``."""

from __future__ import annotations

import numpy as np
import torch

from datamix.optimize.constraints import MixtureProblem
from datamix.predict.laws import accepts_q

_DT = torch.float64
_FD_STEP = 1e-6


class _Bridge:
    """Values and gradients of a NumPy predictor at a (p, q) point."""

    def __init__(self, predictor, N: float, q_aware: bool):
        self.predictor, self.N, self.q_aware = predictor, N, q_aware
        self.grad_q_accepts = q_aware and accepts_q(predictor.gradient)
        self.has_gradient_q = q_aware and hasattr(predictor, "gradient_q")

    def value(self, p: np.ndarray, q: np.ndarray) -> float:
        if self.q_aware:
            return float(self.predictor.predict(p, self.N, q=q))
        return float(self.predictor.predict(p, self.N))

    def grads(self, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pred = self.predictor
        if not self.q_aware:
            return np.asarray(pred.gradient(p, self.N), dtype=np.float64), np.zeros_like(q)
        if self.grad_q_accepts:
            gp = np.asarray(pred.gradient(p, self.N, q=q), dtype=np.float64)
        elif np.all(q == 1.0):
            gp = np.asarray(pred.gradient(p, self.N), dtype=np.float64)
        else:  # along the simplex: d/dh f(p + h (e_i - p)) = g_i - g.p
            f0 = self.value(p, q)
            gp = np.array([(self.value(p + _FD_STEP * (np.eye(len(p))[i] - p), q) - f0) / _FD_STEP
                           for i in range(len(p))])
        if self.has_gradient_q:
            gq = np.asarray(pred.gradient_q(p, self.N, q=q), dtype=np.float64)
        else:
            f0 = self.value(p, q)
            gq = np.empty_like(q)
            for i in range(len(q)):
                h = _FD_STEP if q[i] + _FD_STEP <= 1 else -_FD_STEP
                qh = q.copy()
                qh[i] += h
                gq[i] = (self.value(p, qh) - f0) / h
        return gp, gq


class _PredictorFunction(torch.autograd.Function):
    """A NumPy predictor as a torch op: forward ``predict``, backward ``gradient`` (+ d/dq)."""

    @staticmethod
    def forward(ctx, p, q, bridge):
        ctx.bridge = bridge
        ctx.save_for_backward(p, q)
        return torch.tensor(bridge.value(p.detach().numpy(), q.detach().numpy()), dtype=p.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        p, q = ctx.saved_tensors
        gp, gq = ctx.bridge.grads(p.detach().numpy().copy(), q.detach().numpy().copy())
        return grad_out * torch.as_tensor(gp, dtype=p.dtype), grad_out * torch.as_tensor(gq, dtype=q.dtype), None


class _Objective:
    """``sign * metric(p, q)`` as a torch scalar (maximised)."""

    def __init__(self, predictor, N: float):
        self.predictor, self.N = predictor, float(N)
        self.sign = 1.0 if predictor.greater_is_better else -1.0
        self.q_aware = accepts_q(predictor.predict)
        self.torch = hasattr(predictor, "predict_torch")
        if self.torch:
            self.methods = {"p": "autograd", "q": "autograd" if self.q_aware else "none (predictor ignores q)"}
        else:
            self.bridge = _Bridge(predictor, self.N, self.q_aware)
            p_how = "predictor.gradient"
            if self.q_aware and not self.bridge.grad_q_accepts:
                p_how = "predictor.gradient at q=1, else finite differences along the simplex"
            q_how = ("none (predictor ignores q)" if not self.q_aware
                     else "predictor.gradient_q" if self.bridge.has_gradient_q else "finite differences")
            self.methods = {"p": p_how, "q": q_how}

    def __call__(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        if self.torch:
            out = (self.predictor.predict_torch(p, self.N, q) if self.q_aware
                   else self.predictor.predict_torch(p, self.N))
        else:
            out = _PredictorFunction.apply(p, q, self.bridge)
        return self.sign * out

    def value(self, problem: MixtureProblem, p: np.ndarray, q: np.ndarray) -> float:
        with torch.no_grad():
            return float(self(torch.as_tensor(p, dtype=_DT), torch.as_tensor(q, dtype=_DT)))

    def value_grad(self, problem: MixtureProblem, p: np.ndarray, q: np.ndarray):
        pt = torch.tensor(p, dtype=_DT, requires_grad=True)
        qt = torch.tensor(q, dtype=_DT, requires_grad=True)
        v = self(pt, qt)
        v.backward()
        gp = pt.grad.numpy().copy() if pt.grad is not None else np.zeros_like(p)
        gq = qt.grad.numpy().copy() if qt.grad is not None else np.zeros_like(q)
        return float(v.detach()), gp, np.where(problem.free, gq, 0.0)
