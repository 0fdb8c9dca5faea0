"""Entropic OT solver: stabilised kernel Sinkhorn with ε-scaling, on POT's backend.

Potentials follow :math:`P_{ij} = a_i b_j \\exp((f_i + g_j - M_{ij}) / \\varepsilon)`. The iterations
are the standard (non-log) kernel ones, two matrix-vector products each, as in POT's
``sinkhorn_knopp``, on the kernel :math:`E_{ij} = \\exp((f^0_i + g^0_j - M_{ij}) / \\varepsilon)` of
the cost shifted by the current potentials :math:`(f^0, g^0)`: the scalings stay near 1, so the
iterations are stable at any ε. Where they would leave :math:`[e^{-\\tau}, e^{\\tau}]` the scalings are
absorbed into the potentials and the kernel is rebuilt with one log-domain step (a soft
c-transform), the only log-domain work. ε-scaling solves a sequence of problems from ε = the cost's
spread down to the requested ε, each warm-started from the last; a warm start can also be passed
in. Plain Sinkhorn's slow final convergence (a rate close to 1 when ε is small against the costs) is
accelerated by over-relaxation, its factor set from the measured rate and dropped if the error grows.

All functions here are ``_impl``-style: they assume clean input (weights > 0 that sum to 1, a
finite cost of matching shape); :func:`datamix.ot.entropic_ot` validates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CHECK_EVERY = 10  # iterations between two marginal-error checks (POT's choice)
MAX_OMEGA = 1.99  # over-relaxation cap; < 2 keeps the iteration locally convergent
RATE_CHECKS = 5  # checks over which the convergence rate is measured
SCALING_FACTOR = 0.5  # ε shrinks by this factor per ε-scaling stage
SCALING_START = 16.0  # "auto": ε-scaling when the cost's spread exceeds this many ε
STAGE_TOL = 1e-5  # marginal error at which an intermediate ε-scaling stage stops
STAGE_MAX_ITER = 300  # iteration cap of an intermediate stage


@dataclass(frozen=True)
class SinkhornState:
    """Potentials (f, g) of a solve, its iterations, marginal error (L2, as POT) and convergence."""

    f: object
    g: object
    n_iter: int
    error: float
    converged: bool


def default_max_iter(M, reg: float, nx) -> int:
    """Iteration cap when none is given: grows with the cost's spread over ε, as Sinkhorn's iteration
    count does: 20 iterations per unit of spread / ε, between 10,000 and 100,000."""
    return int(min(100_000, max(10_000, 20 * spread(M, nx) / reg)))


def spread(M, nx) -> float:
    return float(nx.max(M) - nx.min(M))


def log_threshold(M, nx) -> float:
    """τ: scalings beyond e^±τ are absorbed into the potentials (a tenth of the dtype's exponent range)."""
    return 0.1 * math.log(np.finfo(nx.to_numpy(M[:1, :1]).dtype).max)


def schedule(M, reg: float, nx, method: str, warm: bool) -> list[float]:
    """The ε of every stage, ending at ``reg``: ε-scaling from the cost's spread, or ``reg`` alone."""
    s = spread(M, nx)
    if method == "sinkhorn" or warm or (method == "auto" and s <= SCALING_START * reg):
        return [reg]
    regs = [reg]
    while regs[-1] < s:
        regs.append(regs[-1] / SCALING_FACTOR)
    return regs[::-1]


def solve(a, b, M, reg: float, nx, *, max_iter: int, tol: float, method: str = "auto", warmstart=None
          ) -> SinkhornState:
    """Entropic OT potentials of (a, b, M) at ``reg``; ``max_iter`` and ``tol`` bind the last stage."""
    f, g = warmstart if warmstart is not None else (nx.zeros(a.shape[0], type_as=M), nx.zeros(b.shape[0], type_as=M))
    regs = schedule(M, reg, nx, method, warmstart is not None)
    total = 0
    for k, eps in enumerate(regs):
        last = k == len(regs) - 1
        f, g, n, err = _stage(a, b, M, eps, nx, f, g, max_iter if last else STAGE_MAX_ITER,
                              tol if last else max(tol, STAGE_TOL))
        total += n
    return SinkhornState(f, g, total, err, err <= tol)


def solve_symmetric(a, M, reg: float, nx, *, max_iter: int, tol: float, method: str = "auto", warmstart=None
                    ) -> SinkhornState:
    """OT_ε(a, a) by the symmetric fixed point f ← (f + T_a f) / 2 (Feydy et al. 2019); g = f."""
    f = warmstart if warmstart is not None else nx.zeros(a.shape[0], type_as=M)
    # the averaged update converges in tens of iterations at any ε: ε-scaling only when asked
    regs = schedule(M, reg, nx, "sinkhorn" if method == "auto" else method, warmstart is not None)
    total = 0
    for k, eps in enumerate(regs):
        last = k == len(regs) - 1
        f, _, n, err = _stage(a, None, M, eps, nx, f, None, max_iter if last else STAGE_MAX_ITER,
                              tol if last else max(tol, STAGE_TOL))
        total += n
    return SinkhornState(f, f, total, err, err <= tol)


def _relaxation(ratio: float, n: int, omega: float) -> float:
    """Over-relaxation factor from the error ratio over the last ``n`` iterations run at ``omega``.

    Sinkhorn is a block Gauss-Seidel iteration; with factor ω its rate λ relates to the plain rate
    θ by Young's relation (λ + ω - 1)² = λ ω² θ, and the best factor is 2 / (1 + sqrt(1 - θ)). The
    ratio is taken over several checks: under over-relaxation the error oscillates between checks.
    """
    if ratio >= 1.0:
        return omega
    lam = ratio ** (1.0 / n)
    theta = min((lam + omega - 1.0) ** 2 / (lam * omega**2), 1.0)
    return min(MAX_OMEGA, max(omega, 2.0 / (1.0 + math.sqrt(1.0 - theta)))) if theta > 0.5 else omega


def c_transform(g, b, M, reg: float, nx):
    """Soft c-transform f_i = -ε log Σ_j b_j exp((g_j - M_ij) / ε), shape (n_a,): the log-domain step."""
    return -reg * nx.logsumexp((g[None, :] - M) / reg + nx.log(b)[None, :], axis=1)


def _kernel(f, g, b, M, reg, nx):
    """Rebuild: f ← T_b g (exact row marginals), and the shifted kernel E = exp((f ⊕ g - M) / ε)."""
    Z = (g[None, :] - M) / reg + nx.log(b)[None, :]
    lse = nx.logsumexp(Z, axis=1)
    return -reg * lse, nx.exp(Z - lse[:, None] - nx.log(b)[None, :])


def _stage(a, b, M, reg, nx, f, g, max_iter, tol):
    """Kernel iterations at one ε until the marginal error (L2) is <= tol or ``max_iter`` is spent.

    ``b is None`` is the symmetric problem (b = a, g = f, M symmetric): the scaling u is updated by
    u ← sqrt(u / (E(a u))), the kernel form of f ← (f + T_a f) / 2. Returns (f, g, n_iter, error).
    """
    symmetric = b is None
    tau = log_threshold(M, nx)
    n_iter, err = 0, math.inf
    while True:
        if symmetric:
            f = 0.5 * (f + c_transform(f, a, M, reg, nx))
            E = nx.exp((f[:, None] + f[None, :] - M) / reg)
        else:
            f, E = _kernel(f, g, b, M, reg, nx)
        u = nx.ones(a.shape[0], type_as=M)
        v = None if symmetric else nx.ones(b.shape[0], type_as=M)
        omega, history = 1.0, []
        absorb = False
        while n_iter < max_iter:
            if symmetric:
                u = nx.sqrt(u / nx.dot(E, a * u))
            else:
                v_new = 1.0 / nx.dot(E.T, a * u)
                v = v_new if omega == 1.0 else v ** (1 - omega) * v_new ** omega
                u_new = 1.0 / nx.dot(E, b * v)
                u = u_new if omega == 1.0 else u ** (1 - omega) * u_new ** omega
            n_iter += 1
            if n_iter % CHECK_EVERY:
                continue
            if symmetric:
                err = float(nx.norm(a * u * nx.dot(E, a * u) - a))
            else:
                err = float(nx.norm(b * v * nx.dot(E.T, a * u) - b))
            if not math.isfinite(err):
                break  # overflow: restart from the last absorbed potentials with a fresh kernel
            if err <= tol:
                break
            history.append(err)
            if not symmetric and err > 10 * min(history):
                omega, history = 1.0, [err]  # over-relaxation diverges here: plain iterations again
            elif not symmetric and len(history) > RATE_CHECKS:
                omega = _relaxation(err / history[-1 - RATE_CHECKS], RATE_CHECKS * CHECK_EVERY, omega)
            lu = nx.abs(nx.log(u))
            if float(nx.max(lu)) > tau or (not symmetric and float(nx.max(nx.abs(nx.log(v)))) > tau):
                absorb = True
                break
        if math.isfinite(err):
            f = f + reg * nx.log(u)
            if not symmetric:
                g = g + reg * nx.log(v)
        if not absorb or n_iter >= max_iter:
            if not math.isfinite(err) and n_iter < max_iter:
                continue
            return f, (f if symmetric else g), n_iter, err

