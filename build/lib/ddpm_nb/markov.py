"""Markov chains: finite chains, a second-order (non-Markov) chain, Gaussian AR(1) chains.

A process is Markov when P(X_{t+1} | X_t, X_{t-1}, ..., X_0) = P(X_{t+1} | X_t): the present
screens off the past. The DDPM forward process is a Gaussian Markov chain (Ho et al. 2020, eq. 2).
"""

from __future__ import annotations

import torch

from .checks import check_shape
from .errors import UserError

__all__ = [
    "check_transition_matrix",
    "sample_chain",
    "sample_order2_chain",
    "stationary_distribution",
    "estimate_transitions",
    "estimate_order2_transitions",
    "gaussian_chain",
]

Tensor = torch.Tensor


def _check_rows(P: Tensor, name: str) -> None:
    """Every row of P (..., S) must be a probability law."""
    if torch.any(P < 0):
        raise UserError(f"{name} has negative entries: transition probabilities must be >= 0.")
    rows = P.sum(-1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-6):
        raise UserError(f"Each row of {name} must sum to 1 (a row is the law of the next state).")


def check_transition_matrix(P: Tensor, name: str = "P") -> int:
    """Raise a `ValueError` unless P is a square (S, S) row-stochastic matrix; return S."""
    check_shape(name, P, (None, None))
    S = P.shape[0]
    if P.shape[1] != S:
        raise UserError(f"{name} must be square (S, S), got {tuple(P.shape)}.")
    _check_rows(P, name)
    return S


def _initial_states(init, S: int, n_paths: int, generator) -> Tensor:
    if isinstance(init, int):
        if not 0 <= init < S:
            raise UserError(f"The initial state must be in 0..{S - 1}, got {init}.")
        return torch.full((n_paths,), init, dtype=torch.long)
    init = torch.as_tensor(init, dtype=torch.float64)
    check_shape("init (a distribution over states)", init, (S,))
    return torch.multinomial(init, n_paths, replacement=True, generator=generator)


def sample_chain(P: Tensor, init, n_steps: int, n_paths: int, *,
                 generator: torch.Generator | None = None) -> Tensor:
    """Simulate a finite Markov chain. P: (S, S); init: a state or an (S,) law.

    Returns the paths, shape (n_paths, n_steps + 1), dtype long.
    """
    S = check_transition_matrix(P)
    if n_steps < 1 or n_paths < 1:
        raise UserError("n_steps and n_paths must be positive.")
    x = torch.empty(n_paths, n_steps + 1, dtype=torch.long)
    x[:, 0] = _initial_states(init, S, n_paths, generator)
    P = P.double()
    for t in range(n_steps):
        x[:, t + 1] = torch.multinomial(P[x[:, t]], 1, generator=generator).squeeze(1)
    return x


def sample_order2_chain(P2: Tensor, init_pair: tuple[int, int], n_steps: int, n_paths: int, *,
                        generator: torch.Generator | None = None) -> Tensor:
    """Simulate a second-order chain, P2[k, i, j] = P(X_t+1 = j | X_t-1 = k, X_t = i).

    It is not Markov in X_t alone (it is Markov in the pair (X_t-1, X_t)). Returns (n_paths, n_steps + 1).
    """
    check_shape("P2", P2, (None, None, None))
    S = P2.shape[0]
    if P2.shape != (S, S, S):
        raise UserError(f"P2 must have shape (S, S, S), got {tuple(P2.shape)}.")
    _check_rows(P2, "P2")
    if n_steps < 1 or n_paths < 1:
        raise UserError("n_steps and n_paths must be positive.")
    if len(init_pair) != 2 or not all(0 <= s < S for s in init_pair):
        raise UserError(f"init_pair must be two states in 0..{S - 1}, got {init_pair!r}.")
    x = torch.empty(n_paths, n_steps + 1, dtype=torch.long)
    x[:, 0], x[:, 1] = init_pair
    P2 = P2.double()
    for t in range(1, n_steps):
        x[:, t + 1] = torch.multinomial(P2[x[:, t - 1], x[:, t]], 1, generator=generator).squeeze(1)
    return x


def stationary_distribution(P: Tensor) -> Tensor:
    """The law π with π P = π and Σ π = 1, shape (S,): solves the linear system by least squares."""
    S = check_transition_matrix(P)
    P = P.double()
    P = P / P.sum(-1, keepdim=True)  # exact rows, also for float32 input
    M = P.T - torch.eye(S, dtype=P.dtype)
    if S > 1 and torch.linalg.svdvals(M)[-2] < 1e-10:
        raise UserError("This chain has no unique stationary law: it is reducible (some states "
                        "cannot reach others), so the long-run law depends on the start.")
    A = torch.cat([M, torch.ones(1, S, dtype=P.dtype)])
    b = torch.zeros(S + 1, dtype=P.dtype)
    b[-1] = 1
    pi = torch.linalg.lstsq(A, b.unsqueeze(1)).solution.squeeze(1)
    return pi.clamp(min=0) / pi.clamp(min=0).sum()


def _check_paths(paths: Tensor, S: int, min_len: int) -> None:
    check_shape("paths", paths, (None, None))
    if paths.dtype != torch.long or paths.shape[1] < min_len:
        raise UserError(f"paths must be integer states (N, L) with L >= {min_len}.")
    if paths.numel() and (paths.min() < 0 or paths.max() >= S):
        raise UserError(f"paths hold states outside 0..{S - 1}: is S = {S} right?")


def estimate_transitions(paths: Tensor, S: int) -> tuple[Tensor, Tensor]:
    """Count transitions in paths (N, L): returns (P̂ (S, S), counts (S,) of visits that had a successor)."""
    _check_paths(paths, S, 2)
    counts = torch.zeros(S, S, dtype=torch.float64)
    idx = (paths[:, :-1] * S + paths[:, 1:]).reshape(-1)
    counts.view(-1).index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))
    n = counts.sum(-1)
    return counts / n.clamp(min=1).unsqueeze(-1), n


def estimate_order2_transitions(paths: Tensor, S: int) -> tuple[Tensor, Tensor]:
    """P̂[k, i, j] = P̂(X_t+1 = j | X_t-1 = k, X_t = i) from paths (N, L); also the counts (S, S)."""
    _check_paths(paths, S, 3)
    counts = torch.zeros(S, S, S, dtype=torch.float64)
    idx = (paths[:, :-2] * S * S + paths[:, 1:-1] * S + paths[:, 2:]).reshape(-1)
    counts.view(-1).index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))
    n = counts.sum(-1)
    return counts / n.clamp(min=1).unsqueeze(-1), n


def gaussian_chain(x0: Tensor, a: Tensor, s: Tensor, *,
                   generator: torch.Generator | None = None) -> Tensor:
    """Simulate x_t = a_t x_t-1 + s_t ε_t, ε_t ~ N(0, I), for t = 1..T.

    x0: (N, D) starting points; a, s: (T,) coefficients. Returns the path, shape (T + 1, N, D).
    """
    check_shape("x0", x0, (None, None))
    check_shape("a", a, (None,))
    check_shape("s", s, (a.shape[0],))
    path = torch.empty(a.shape[0] + 1, *x0.shape, dtype=x0.dtype)
    path[0] = x0
    for t in range(a.shape[0]):
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        path[t + 1] = a[t] * path[t] + s[t] * eps
    return path
