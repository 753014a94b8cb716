"""Tests for ddpm_nb.markov: finite chains, stationary laws, transition counts, Gaussian AR(1) chains."""

import math

import pytest
import torch

from ddpm_nb import markov

P2x2 = torch.tensor([[0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- check_transition_matrix

def test_check_transition_matrix_returns_number_of_states():
    assert markov.check_transition_matrix(P2x2) == 2
    assert markov.check_transition_matrix(torch.full((5, 5), 0.2)) == 5


@pytest.mark.parametrize("P, match", [
    (torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]), "must be square"),
    (torch.tensor([[1.2, -0.2], [0.5, 0.5]]), "negative entries"),
    (torch.tensor([[0.5, 0.6], [0.5, 0.5]]), "must sum to 1"),
    (torch.tensor([[0.5, 0.4], [0.5, 0.5]]), "must sum to 1"),
    (torch.tensor([0.5, 0.5]), "must have shape"),
])
def test_check_transition_matrix_rejects(P, match):
    with pytest.raises(ValueError, match=match):
        markov.check_transition_matrix(P)


# ---------------------------------------------------------------- sample_chain

def test_sample_chain_shape_dtype_and_start():
    paths = markov.sample_chain(P2x2, 1, 7, 4, generator=gen())
    assert paths.shape == (4, 8)
    assert paths.dtype == torch.long
    assert torch.all(paths[:, 0] == 1)
    assert set(paths.unique().tolist()) <= {0, 1}


def test_sample_chain_pinned_paths():
    paths = markov.sample_chain(P2x2, 0, 10, 3, generator=gen(0))
    assert paths.tolist() == [
        [0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0],
    ]
    again = markov.sample_chain(P2x2, 0, 10, 3, generator=gen(0))
    assert torch.equal(paths, again)


def test_sample_chain_absorbing_state_never_left():
    P = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.3, 0.4], [0.0, 0.5, 0.5]])
    paths = markov.sample_chain(P, 0, 20, 50, generator=gen(3))
    assert torch.all(paths == 0)


def test_sample_chain_transition_frequencies_match_P():
    P = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]], dtype=torch.float64)
    paths = markov.sample_chain(P, 0, 50, 1000, generator=gen(7))
    P_hat, n = markov.estimate_transitions(paths, 3)
    assert n.sum().item() == 50 * 1000
    se = torch.sqrt(P * (1 - P) / n.unsqueeze(1))  # binomial standard error per entry
    assert torch.all((P_hat - P).abs() < 5 * se + 1e-12)


def test_sample_chain_initial_law():
    init = torch.tensor([0.2, 0.5, 0.3])
    P = torch.full((3, 3), 1 / 3)
    N = 20000
    paths = markov.sample_chain(P, init, 1, N, generator=gen(2))
    freq = torch.bincount(paths[:, 0], minlength=3).double() / N
    se = torch.sqrt(init.double() * (1 - init.double()) / N)
    assert torch.all((freq - init.double()).abs() < 5 * se)


def test_sample_chain_is_markov_second_order_counts_equal_first_order():
    # for a Markov chain, P(X_t+1 | X_t-1 = k, X_t = i) does not depend on k
    paths = markov.sample_chain(P2x2, 0, 60, 500, generator=gen(5))
    P2_hat, n2 = markov.estimate_order2_transitions(paths, 2)
    for k in range(2):
        for i in range(2):
            se = torch.sqrt(P2x2[i] * (1 - P2x2[i]) / n2[k, i])
            assert torch.all((P2_hat[k, i] - P2x2[i]).abs() < 5 * se)


@pytest.mark.parametrize("kwargs, match", [
    ({"P": torch.tensor([[0.5, 0.6], [0.5, 0.5]])}, "must sum to 1"),
    ({"P": torch.tensor([[0.9, 0.1], [-0.1, 1.1]])}, "negative entries"),
    ({"init": 2}, "initial state must be in 0..1"),
    ({"init": -1}, "initial state must be in 0..1"),
    ({"init": torch.tensor([0.2, 0.3, 0.5])}, "init \\(a distribution over states\\) must have shape"),
    ({"n_steps": 0}, "n_steps and n_paths must be positive"),
    ({"n_paths": 0}, "n_steps and n_paths must be positive"),
])
def test_sample_chain_rejects(kwargs, match):
    args = {"P": P2x2, "init": 0, "n_steps": 3, "n_paths": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        markov.sample_chain(args["P"], args["init"], args["n_steps"], args["n_paths"], generator=gen())


# ---------------------------------------------------------------- second-order chain

P2_ORDER2 = torch.tensor([[[0.9, 0.1], [0.2, 0.8]],
                          [[0.5, 0.5], [0.3, 0.7]]], dtype=torch.float64)


def test_sample_order2_chain_follows_P2():
    paths = markov.sample_order2_chain(P2_ORDER2, (0, 1), 40, 500, generator=gen(4))
    assert paths.shape == (500, 41)
    assert torch.all(paths[:, 0] == 0) and torch.all(paths[:, 1] == 1)
    P2_hat, n2 = markov.estimate_order2_transitions(paths, 2)
    se = torch.sqrt(P2_ORDER2 * (1 - P2_ORDER2) / n2.unsqueeze(-1))
    assert torch.all((P2_hat - P2_ORDER2).abs() < 5 * se)
    # not Markov in X_t alone: after X_t = 0 the next state depends on X_t-1 (0.1 versus 0.5 for a 1)
    assert P2_hat[0, 0, 1].item() < 0.2 < 0.4 < P2_hat[1, 0, 1].item()


@pytest.mark.parametrize("P2, match", [
    (torch.full((2, 2, 3), 1 / 3), "P2 must have shape \\(S, S, S\\)"),
    (torch.full((2, 2), 0.5), "P2 must have shape"),
    (torch.full((2, 2, 2), 0.6), "Each row of P2 must sum to 1"),
    (torch.tensor([[[1.5, -0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]]), "P2 has negative entries"),
])
def test_sample_order2_chain_rejects_bad_shape(P2, match):
    with pytest.raises(ValueError, match=match):
        markov.sample_order2_chain(P2, (0, 1), 3, 2)


# ---------------------------------------------------------------- stationary_distribution

@pytest.mark.parametrize("a, b", [(0.3, 0.1), (0.5, 0.5), (0.01, 0.9), (1.0, 0.25)])
def test_stationary_two_state_closed_form(a, b):
    P = torch.tensor([[1 - a, a], [b, 1 - b]], dtype=torch.float64)
    pi = markov.stationary_distribution(P)
    torch.testing.assert_close(pi, torch.tensor([b, a], dtype=torch.float64) / (a + b), rtol=0, atol=1e-12)


def test_stationary_three_state_by_hand():
    # π P = π reads π_0 = π_1/2, π_2 = π_1/2, and π_0 + π_1 + π_2 = 1 gives π = (1/4, 1/2, 1/4)
    P = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(markov.stationary_distribution(P),
                               torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64), rtol=0, atol=1e-12)


def test_stationary_of_periodic_cycle_is_uniform():
    P = torch.roll(torch.eye(4, dtype=torch.float64), 1, dims=1)
    torch.testing.assert_close(markov.stationary_distribution(P),
                               torch.full((4,), 0.25, dtype=torch.float64), rtol=0, atol=1e-12)


def test_stationary_of_random_chains_is_invariant():
    g = gen(9)
    for S in (3, 5, 8):
        P = torch.rand(S, S, generator=g, dtype=torch.float64) ** 2 + 0.01
        P = P / P.sum(1, keepdim=True)
        pi = markov.stationary_distribution(P)
        assert pi.shape == (S,)
        assert pi.sum().item() == pytest.approx(1.0, abs=1e-12)
        assert torch.all(pi >= 0)
        torch.testing.assert_close(pi @ P, pi, rtol=0, atol=1e-12)
        # and it is the limit of P^n
        torch.testing.assert_close(torch.linalg.matrix_power(P, 200)[0], pi, rtol=0, atol=1e-10)


def test_stationary_accepts_default_float32_matrix():
    a, b = 0.3, 0.1
    P = torch.tensor([[1 - a, a], [b, 1 - b]])  # float32, torch's default dtype
    torch.testing.assert_close(markov.stationary_distribution(P),
                               torch.tensor([b, a], dtype=torch.float64) / (a + b), rtol=0, atol=1e-6)


def test_stationary_of_reducible_identity_chain_raises():
    with pytest.raises(ValueError, match="no unique stationary law"):
        markov.stationary_distribution(torch.eye(2, dtype=torch.float64))


def test_stationary_rejects_non_stochastic_matrix():
    with pytest.raises(ValueError, match="must sum to 1"):
        markov.stationary_distribution(torch.tensor([[0.5, 0.6], [0.5, 0.5]]))


# ---------------------------------------------------------------- transition counts

def test_estimate_transitions_counts_by_hand():
    paths = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    P_hat, n = markov.estimate_transitions(paths, 4)
    # transitions: 0→1, 1→1, 1→1, 2→0, 0→0, 0→1; state 3 is never visited
    want = torch.tensor([[1 / 3, 2 / 3, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(P_hat, want, rtol=0, atol=1e-15)
    assert n.tolist() == [3.0, 2.0, 1.0, 0.0]


def test_estimate_order2_transitions_counts_by_hand():
    paths = torch.tensor([[0, 1, 1, 0, 1]])
    P2_hat, n2 = markov.estimate_order2_transitions(paths, 2)
    # triples: (0,1,1), (1,1,0), (1,0,1)
    assert n2.tolist() == [[0.0, 1.0], [1.0, 1.0]]
    assert P2_hat[0, 1].tolist() == [0.0, 1.0]
    assert P2_hat[1, 1].tolist() == [1.0, 0.0]
    assert P2_hat[1, 0].tolist() == [0.0, 1.0]
    assert P2_hat[0, 0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("fn", [markov.estimate_transitions, markov.estimate_order2_transitions])
def test_estimates_reject_1d_paths(fn):
    with pytest.raises(ValueError, match="paths must have shape"):
        fn(torch.tensor([0, 1, 1]), 2)


# ---------------------------------------------------------------- gaussian_chain

A3 = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
S3 = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)


def test_gaussian_chain_pinned_and_reproduced_by_hand():
    x0 = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    path = markov.gaussian_chain(x0, A3, S3, generator=gen(0))
    want = torch.tensor([[[1.0, -1.0]],
                         [[1.0540996108, -0.9293428906]],
                         [[0.4075218122, -0.6297880570]],
                         [[-0.0400914342, -0.8604302585]]], dtype=torch.float64)
    torch.testing.assert_close(path, want, rtol=0, atol=1e-9)
    # the same path from the recursion x_t = a_t x_t-1 + s_t ε_t, drawing ε in the same order
    g, x = gen(0), x0.clone()
    for t in range(3):
        x = A3[t] * x + S3[t] * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        torch.testing.assert_close(path[t + 1], x, rtol=0, atol=1e-15)


def test_gaussian_chain_moments_match_closed_form():
    N = 20000
    x0 = torch.tensor([[2.0, -1.0]], dtype=torch.float64).expand(N, 2).contiguous()
    path = markov.gaussian_chain(x0, A3, S3, generator=gen(1))
    assert path.shape == (4, N, 2)
    mean_t, var_t = x0[0].clone(), torch.zeros(2, dtype=torch.float64)
    for t in range(3):
        mean_t, var_t = A3[t] * mean_t, A3[t] ** 2 * var_t + S3[t] ** 2
        emp_mean, emp_var = path[t + 1].mean(0), path[t + 1].var(0)
        assert torch.all((emp_mean - mean_t).abs() < 5 * torch.sqrt(var_t / N))
        assert torch.all((emp_var - var_t).abs() < 5 * var_t * math.sqrt(2 / (N - 1)))


def test_gaussian_chain_keeps_dtype():
    path = markov.gaussian_chain(torch.zeros(3, 2), A3.float(), S3.float(), generator=gen())
    assert path.dtype == torch.float32 and path.shape == (4, 3, 2)


@pytest.mark.parametrize("x0, a, s, match", [
    (torch.zeros(3, 2), A3, S3[:2], "s must have shape \\(3\\)"),
    (torch.zeros(3, 2), A3[:2], S3, "s must have shape \\(2\\)"),
    (torch.zeros(3), A3, S3, "x0 must have shape"),
    (torch.zeros(3, 2), A3.reshape(3, 1), S3, "a must have shape"),
])
def test_gaussian_chain_rejects_bad_shapes(x0, a, s, match):
    with pytest.raises(ValueError, match=match):
        markov.gaussian_chain(x0, a, s, generator=gen())


def test_estimators_reject_states_outside_the_state_space():
    paths = torch.tensor([[0, 1, 3]])
    with pytest.raises(ValueError, match="outside 0..2"):
        markov.estimate_transitions(paths, 3)
    with pytest.raises(ValueError, match="outside 0..2"):
        markov.estimate_order2_transitions(paths, 3)


def test_order2_chain_rejects_bad_start_and_sizes():
    P2 = torch.full((2, 2, 2), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="init_pair"):
        markov.sample_order2_chain(P2, (0, 2), 5, 3)
    with pytest.raises(ValueError, match="positive"):
        markov.sample_order2_chain(P2, (0, 1), 0, 3)
