"""Entropic OT solver: stabilised kernel Sinkhorn with ε-scaling, on POT's backend.

Potentials follow :math:`P_{ij} = a_i b_j \\exp((f_i + g_j - M_{ij}) / \\varepsilon)`. The iterations
are the standard (non-log) kernel ones, two matrix-vector products each, as in POT's
``sinkhorn_knopp``, on the kernel :math:`E_{ij} = \\exp((f^0_i + g^0_j - M_{ij}) / \\varepsilon)` of
the cost shifted by the potentials :math:`(f^0, g^0)` reached so far, so the scalings u, v
(:math:`f = f^0 + \\varepsilon \\log u`) stay near 1 and the iterations are stable at any ε. Where they
would leave :math:`[e^{-\\tau}, e^{\\tau}]` they are absorbed into the potentials and the kernel is
rebuilt; only where the rebuilt kernel under- or overflows (a first stage at small ε, a cold start)
is it rebuilt in the log domain, after a soft c-transform. ε-scaling solves a sequence of problems
from ε = the cost's spread down to the requested ε by halves, each warm-started from the last; a
warm start can also be passed in. Plain Sinkhorn's slow final convergence (a rate close to 1 when ε
is small against the costs) is accelerated by over-relaxation, its factor set from the measured rate.

All functions here are ``_impl``-style: they assume clean input (weights > 0 that sum to 1, a
finite cost of matching shape); :func:`datamix.ot.entropic_ot` validates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CHECK_EVERY = 10  # iterations between two marginal-error checks (POT's choice)
MAX_OMEGA = 1.99  # over-relaxation cap; < 2 keeps the iteration locally convergent
RATE_CHECKS = 8  # checks over which the convergence rate is measured
SCALING_FACTOR = 0.5  # ε shrinks by this factor per ε-scaling stage
SCALING_START = 16.0  # "auto": ε-scaling when the cost's spread exceeds this many ε
STAGE_TOL = 1e-3  # marginal error at which an intermediate ε-scaling stage stops
STAGE_MAX_ITER = 100  # iteration cap of an intermediate stage


@dataclass(frozen=True)
class SinkhornState:
    """A solve: potentials f (n_a,), g (n_b,) (g = f for a self-term), plan (n_a, n_b), iterations,
    final marginal error (L2 norm, as POT's) and whether it is <= tol."""

    f: object
    g: object
    plan: object
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
    """Entropic OT between a and b under M at ``reg``; ``max_iter`` and ``tol`` bind the last stage."""
    regs = schedule(M, reg, nx, method, warmstart is not None)
    if warmstart is None:
        warmstart = (nx.zeros(a.shape[0], type_as=M), nx.zeros(b.shape[0], type_as=M))
    return _anneal(a, b, M, reg, nx, warmstart, max_iter, tol, regs)


def solve_symmetric(a, M, reg: float, nx, *, max_iter: int, tol: float, method: str = "auto", warmstart=None
                    ) -> SinkhornState:
    """OT_ε(a, a) by the symmetric fixed point f ← (f + T_a f) / 2 (Feydy et al. 2019); g = f.

    The averaged update converges in tens of iterations at any ε: ε-scaling only when asked.
    """
    f = warmstart if warmstart is not None else nx.zeros(a.shape[0], type_as=M)
    regs = schedule(M, reg, nx, "sinkhorn" if method == "auto" else method, warmstart is not None)
    return _anneal(a, None, M, reg, nx, (f, None), max_iter, tol, regs)


def c_transform(g, b, M, reg: float, nx):
    """Soft c-transform f_i = -ε log Σ_j b_j exp((g_j - M_ij) / ε), shape (n_a,): the log-domain step."""
    return -reg * nx.logsumexp((g[None, :] - M) / reg + nx.log(b)[None, :], axis=1)


def _anneal(a, b, M, reg, nx, potentials, max_iter, tol, regs) -> SinkhornState:
    f, g = potentials
    total = 0
    for k, eps in enumerate(regs):
        last = k == len(regs) - 1
        f, g, plan, n, err = _stage(a, b, M, eps, nx, f, g, max_iter if last else STAGE_MAX_ITER,
                                    tol if last else max(tol, STAGE_TOL))
        total += n
    return SinkhornState(f, g, plan, total, err, err <= tol)


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


class _Scalings:
    """The kernel E of the shifted cost and the scalings u (and v) on it, for one ε.

    ``b is None``: the symmetric problem, E_ij = exp((f_i + f_j - M_ij) / ε), plan (a u) E (a u),
    update u ← sqrt(u / E(a u)) (the kernel form of f ← (f + T_a f) / 2). Otherwise plan
    (a u) E (b v), updates v ← 1 / Eᵀ(a u), u ← 1 / E(b v), over-relaxed by ω.
    """

    def __init__(self, a, b, M, reg, nx, f, g):
        self.a, self.b, self.M, self.reg, self.nx = a, b, M, reg, nx
        self.symmetric = b is None
        self.f, self.g = f, g
        self.E = nx.exp(((f[:, None] + (f if self.symmetric else g)[None, :]) - M) / reg)
        self.u = nx.ones(a.shape[0], type_as=M)
        self.v = None if self.symmetric else nx.ones(b.shape[0], type_as=M)
        self.update(1.0)
        if not self.finite():  # the plain kernel under- or overflows: rebuild in the log domain
            self._log_domain_kernel()
            self.update(1.0)

    def _log_domain_kernel(self):
        nx, reg = self.nx, self.reg
        if self.symmetric:
            self.f = 0.5 * (self.f + c_transform(self.f, self.a, self.M, reg, nx))
            self.E = nx.exp((self.f[:, None] + self.f[None, :] - self.M) / reg)
        else:  # f ← T_b g makes every row of E (b·) sum to 1, whatever the cost's range
            Z = (self.g[None, :] - self.M) / reg + nx.log(self.b)[None, :]
            lse = nx.logsumexp(Z, axis=1)
            self.f = -reg * lse
            self.E = nx.exp(Z - lse[:, None] - nx.log(self.b)[None, :])
        self.u = nx.ones(self.a.shape[0], type_as=self.M)

    def update(self, omega: float) -> None:
        """One iteration (no check: :meth:`finite` is called at the checks, not to sync a GPU every time)."""
        nx, a = self.nx, self.a
        if self.symmetric:
            self.u = nx.sqrt(self.u / nx.dot(self.E, a * self.u))
        else:
            v = 1.0 / nx.dot(self.E.T, a * self.u)
            self.v = v if omega == 1.0 else self.v ** (1 - omega) * v**omega
            u = 1.0 / nx.dot(self.E, self.b * self.v)
            self.u = u if omega == 1.0 else self.u ** (1 - omega) * u**omega

    def finite(self) -> bool:
        """Whether every scaling is finite and > 0 (False: one left the floating-point range)."""
        scalings = (self.u,) if self.symmetric else (self.u, self.v)
        return not any(bool(self.nx.any(~(self.nx.isfinite(s) & (s > 0)))) for s in scalings)

    def error(self) -> float:
        """Marginal error (L2): the rows for a self-term, the columns (after a u update) otherwise."""
        nx, a = self.nx, self.a
        if self.symmetric:
            return float(nx.norm(a * self.u * nx.dot(self.E, a * self.u) - a))
        return float(nx.norm(self.b * self.v * nx.dot(self.E.T, a * self.u) - self.b))

    def extreme(self, tau: float) -> bool:
        scalings = (self.u,) if self.symmetric else (self.u, self.v)
        return any(float(self.nx.max(self.nx.abs(self.nx.log(s)))) > tau for s in scalings)

    def potentials(self):
        f = self.f + self.reg * self.nx.log(self.u)
        return (f, f) if self.symmetric else (f, self.g + self.reg * self.nx.log(self.v))

    def plan(self):
        left = self.a * self.u
        right = left if self.symmetric else self.b * self.v
        return left[:, None] * self.E * right[None, :]


def _stage(a, b, M, reg, nx, f, g, max_iter, tol):
    """Kernel iterations at one ε until the marginal error is <= tol or ``max_iter`` is spent.

    Returns (f, g, plan, n_iter, error); for a non-symmetric problem the last update is a plain
    u update, so the plan's rows are exact and f is the c-transform of g.
    """
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # overflow is detected and handled
        return _iterate(a, b, M, reg, nx, f, g, max_iter, tol)


def _iterate(a, b, M, reg, nx, f, g, max_iter, tol):
    tau = log_threshold(M, nx)
    n_iter = 0
    while True:
        s = _Scalings(a, b, M, reg, nx, f, g)
        n_iter += 1
        omega, history, restart = 1.0, [], None
        while n_iter < max_iter:
            s.update(omega)
            n_iter += 1
            if n_iter % CHECK_EVERY:
                continue
            if not s.finite():
                restart = "overflow"
                break
            history.append(s.error())
            if history[-1] <= tol:
                break
            if not s.symmetric and history[-1] > 10 * min(history):
                omega, history = 1.0, [history[-1]]  # over-relaxation diverges here: plain iterations again
            elif not s.symmetric and len(history) > RATE_CHECKS:  # a window run at one ω: its rate, a new ω
                omega = _relaxation(history[-1] / history[0], (len(history) - 1) * CHECK_EVERY, omega)
                history = [history[-1]]
            if s.extreme(tau):
                restart = "absorb"
                break
        if restart == "overflow":  # back to the last absorbed potentials, kernel rebuilt (in the log domain if need be)
            f, g = s.f, s.g
            continue
        if restart == "absorb":
            f, g = s.potentials()
            continue
        if not s.finite():  # out of iterations just after an overflow: the last absorbed potentials
            s = _Scalings(a, b, M, reg, nx, s.f, s.g)
        elif omega != 1.0 and not s.symmetric:
            s.update(1.0)
        f, g = s.potentials()
        return f, g, s.plan(), n_iter, s.error()
