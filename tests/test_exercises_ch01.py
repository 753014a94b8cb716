"""Tests for the chapter 1 exercise checkers: right answers pass, stubs and each known slip are named."""

import numpy as np
import pytest
import torch

from ddpm_nb.exercises import ExerciseNotDone, ExerciseWrong, _core, ch01

# ---------------------------------------------------------------- 1.1 forward step


def forward_step(x_prev, beta_t, eps):
    return (1 - beta_t) ** 0.5 * x_prev + beta_t**0.5 * eps


def forward_step_stub(x_prev, beta_t, eps):
    raise NotImplementedError


def test_forward_step_correct_passes(capsys):
    ch01.check_forward_step(forward_step)
    assert capsys.readouterr().out.startswith("✓ Exercise 1.1 passed")


def test_forward_step_stub_not_done():
    with pytest.raises(ExerciseNotDone, match="1.1: `forward_step_stub` still raises NotImplementedError"):
        ch01.check_forward_step(forward_step_stub)


@pytest.mark.parametrize("wrong, match", [
    (lambda x, b, e: (1 - b) ** 0.5 * x + b * e, "The noise is scaled by β_t; it should be sqrt\\(β_t\\)"),
    (lambda x, b, e: (1 - b) * x + b**0.5 * e, "The signal is scaled by \\(1 - β_t\\)"),
    (lambda x, b, e: (1 - b) * x + b * e, "Both scales lack their square roots"),
    (lambda x, b, e: x + b**0.5 * e, "Hint: x_t = sqrt\\(1 - β_t\\)"),
])
def test_forward_step_known_slips(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch01.check_forward_step(wrong)


def test_forward_step_wrong_shape_and_type():
    with pytest.raises(ExerciseWrong, match="should have shape \\(500, 2\\), got \\(500,\\)"):
        ch01.check_forward_step(lambda x, b, e: forward_step(x, b, e)[:, 0])
    with pytest.raises(ExerciseWrong, match="return a torch.Tensor, not ndarray"):
        ch01.check_forward_step(lambda x, b, e: forward_step(x, b, e).numpy())


def test_forward_step_missing_return_and_crash():
    def no_return(x, b, e):
        forward_step(x, b, e)

    with pytest.raises(ExerciseWrong, match="`no_return` returned None. Did you forget `return`"):
        ch01.check_forward_step(no_return)

    def crashes(x, b, e):
        return x @ e  # (500, 2) @ (500, 2): a shape error inside the student's code

    with pytest.raises(ExerciseWrong, match="`crashes` raised RuntimeError") as info:
        ch01.check_forward_step(crashes)
    assert isinstance(info.value.__cause__, RuntimeError)


# ---------------------------------------------------------------- 1.2 alpha_bar


def alpha_bar_from_beta(beta):
    return torch.cumprod(1 - beta, 0)


def alpha_bar_stub(beta):
    raise NotImplementedError("fill me in")


def test_alpha_bar_correct_passes(capsys):
    ch01.check_alpha_bar(alpha_bar_from_beta)
    assert capsys.readouterr().out.startswith("✓ Exercise 1.2 passed")


def test_alpha_bar_loop_answer_passes():
    def by_loop(beta):
        out, prod = [], 1.0
        for b in beta.tolist():
            prod *= 1 - b
            out.append(prod)
        return torch.tensor(out, dtype=torch.float32)  # float32 is fine to 1e-6

    ch01.check_alpha_bar(by_loop)


def test_alpha_bar_stub_not_done():
    with pytest.raises(ExerciseNotDone, match="NotImplementedError"):
        ch01.check_alpha_bar(alpha_bar_stub)


@pytest.mark.parametrize("wrong, match", [
    (lambda beta: 1 - torch.cumsum(beta, 0), "You summed the β's"),
    (lambda beta: torch.cumprod(beta, 0), "You multiplied the β's themselves"),
    (lambda beta: torch.cat([torch.ones(1, dtype=beta.dtype), torch.cumprod(1 - beta, 0)[:-1]]),
     "Off by one"),
    (lambda beta: torch.exp(-torch.cumsum(beta, 0)), "Hint: use torch.cumprod"),
])
def test_alpha_bar_known_slips(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch01.check_alpha_bar(wrong)


def test_alpha_bar_wrong_length():
    with pytest.raises(ExerciseWrong, match="should have shape \\(51,\\), got \\(50,\\)"):
        ch01.check_alpha_bar(lambda beta: torch.cumprod(1 - beta[1:], 0))


def test_alpha_bar_checker_gives_a_copy():
    def in_place(beta):
        beta.mul_(-1).add_(1)  # 1 - β, in place
        return torch.cumprod(beta, 0)

    ch01.check_alpha_bar(in_place)  # the in-place edit must not spoil the reference answer


# ---------------------------------------------------------------- 1.3 stationary law


def stationary_eig(P):
    w, v = torch.linalg.eig(P.T)
    pi = v[:, torch.argmin((w - 1).abs())].real
    return pi / pi.sum()


def stationary_power(P):
    return torch.linalg.matrix_power(P, 500)[0]


def stationary_stub(P):
    raise NotImplementedError


@pytest.mark.parametrize("answer", [stationary_eig, stationary_power])
def test_stationary_correct_passes(answer, capsys):
    ch01.check_stationary(answer)
    assert "✓ Exercise 1.3 passed" in capsys.readouterr().out


def test_stationary_stub_not_done():
    with pytest.raises(ExerciseNotDone, match="`stationary_stub` still raises NotImplementedError"):
        ch01.check_stationary(stationary_stub)


def right_eigenvector(P):
    w, v = torch.linalg.eig(P)
    return v[:, torch.argmin((w - 1).abs())].real


def right_eigenvector_normalised(P):
    r = right_eigenvector(P)
    return r / r.sum()


@pytest.mark.parametrize("wrong", [right_eigenvector, right_eigenvector_normalised])
def test_stationary_right_eigenvector_slip(wrong):
    with pytest.raises(ExerciseWrong, match="right eigenvector of P"):
        ch01.check_stationary(wrong)


def test_stationary_unnormalised_slip():
    with pytest.raises(ExerciseWrong, match="must sum to 1: divide by its sum"):
        ch01.check_stationary(lambda P: 3 * stationary_eig(P))


def test_stationary_negative_sign_slip():
    def with_negative(P):
        pi = stationary_eig(P).clone()
        pi[0], pi[1] = -pi[0], pi[1] + 2 * pi[0]  # still sums to 1, but has a negative entry
        return pi

    with pytest.raises(ExerciseWrong, match="negative entries"):
        ch01.check_stationary(with_negative)


def test_stationary_not_invariant_slip():
    def row_mean(P):
        return P.mean(0)  # sums to 1 and is positive, but is not π P = π

    with pytest.raises(ExerciseWrong, match="π P differs from π by .* for a 2-state chain"):
        ch01.check_stationary(row_mean)


def test_stationary_wrong_shape():
    with pytest.raises(ExerciseWrong, match="should have shape \\(2,\\), got \\(1, 2\\)"):
        ch01.check_stationary(lambda P: stationary_eig(P).unsqueeze(0))


# ---------------------------------------------------------------- _core


def test_diagnose_passes_and_names_first_matching_slip():
    want = torch.tensor([1.0, 2.0])
    _core.diagnose("9.9", want + 1e-8, want, {}, hint="h")
    slips = {"first slip": torch.tensor([0.0, 0.0]), "second slip": torch.tensor([0.0, 0.0])}
    with pytest.raises(ExerciseWrong, match="^Exercise 9.9: not yet. first slip$"):
        _core.diagnose("9.9", torch.zeros(2), want, slips, hint="h")
    with pytest.raises(ExerciseWrong, match="not yet \\(largest error 3\\). Hint: h$"):
        _core.diagnose("9.9", torch.tensor([1.0, 5.0]), want, slips, hint="h")


def test_diagnose_ignores_slips_of_other_shape():
    with pytest.raises(ExerciseWrong, match="Hint: h"):
        _core.diagnose("9.9", torch.zeros(2), torch.ones(2), {"scalar": torch.tensor(0.0)}, hint="h")


def test_attempt_returns_output_and_names_lambda():
    assert _core.attempt("9.9", lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ExerciseWrong, match="`<lambda>` raised ZeroDivisionError"):
        _core.attempt("9.9", lambda: 1 / 0)


def test_exercise_errors_are_assertion_errors():
    assert issubclass(ExerciseNotDone, AssertionError) and issubclass(ExerciseWrong, AssertionError)


def test_expect_tensor():
    t = torch.zeros(2, 3)
    assert _core.expect_tensor("9.9", t, (2, 3)) is t
    with pytest.raises(ExerciseWrong, match="return a torch.Tensor, not list"):
        _core.expect_tensor("9.9", [0.0], (1,))
    with pytest.raises(ExerciseWrong, match="not ndarray"):
        _core.expect_tensor("9.9", np.zeros(1), (1,))


# ---------------------------------------------------------------- 1.5 (build) the chain and its closed form


def make_chain(noise=lambda b: b.sqrt(), signal=lambda b: (1 - b).sqrt(), shift=0, row=lambda t: t,
               with_x0=True):
    def forward_chain(x0, beta, eps):
        path = [x0]
        for t in range(1, beta.shape[0]):
            b = beta[t - shift]
            path.append(signal(b) * path[-1] + noise(b) * eps[row(t)])
        return torch.stack(path if with_x0 else path[1:])
    return forward_chain


def jump(x0, t, alpha_bar, eps_bar):
    return alpha_bar[t].sqrt() * x0 + (1 - alpha_bar[t]).sqrt() * eps_bar


def make_combined(shrink=True, normalise=True):
    def combined_noise(eps, beta):
        ab = torch.cumprod(1 - beta, 0)
        bar = [torch.zeros_like(eps[0])]
        for t in range(1, beta.shape[0]):
            keep = (1 - beta[t]) * (1 - ab[t - 1]) if shrink else 1 - ab[t - 1]
            bar.append((keep.sqrt() * bar[-1] + beta[t].sqrt() * eps[t]) / (1 - ab[t]).sqrt())
        bar = torch.stack(bar)
        return bar if normalise else (1 - ab).sqrt().reshape(-1, 1, 1) * bar
    return combined_noise


def combined_from_chain(eps, beta):
    """Another right answer: run the chain from x_0 = 0 and rescale."""
    ab = torch.cumprod(1 - beta, 0)
    path = make_chain()(torch.zeros_like(eps[0]), beta, eps)
    out = torch.zeros_like(path)
    out[1:] = path[1:] / (1 - ab[1:]).sqrt().reshape(-1, 1, 1)
    return out


@pytest.mark.parametrize("combined", [make_combined(), combined_from_chain])
def test_forward_chain_right_build_passes(combined, capsys):
    ch01.check_forward_chain(make_chain(), jump, combined)
    assert capsys.readouterr().out.startswith("✓ Exercise 1.5 passed")


def test_forward_chain_stub_not_done():
    with pytest.raises(ExerciseNotDone, match="1.5: `combined_noise_stub` still raises"):
        def combined_noise_stub(eps, beta):
            raise NotImplementedError
        ch01.check_forward_chain(make_chain(), jump, combined_noise_stub)


@pytest.mark.parametrize("chain, match", [
    (make_chain(noise=lambda b: b), "`forward_chain`: the noise is scaled by β_t"),
    (make_chain(signal=lambda b: 1 - b), "`forward_chain`: the signal is scaled by \\(1 - β_t\\)"),
    (make_chain(shift=1), "step t used β_\\{t-1\\}"),
    (make_chain(row=lambda t: t - 1), "step t used eps\\[t - 1\\]"),
    (make_chain(row=lambda t: 1), "every step used the same noise"),
    (make_chain(with_x0=False), "has 30 rows; it needs T \\+ 1 = 31"),
    (make_chain(noise=lambda b: (b / 2).sqrt()), "largest error .* Hint: path\\[0\\] = x0"),
])
def test_forward_chain_wrong_chains(chain, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch01.check_forward_chain(chain, jump, make_combined())


@pytest.mark.parametrize("wrong, match", [
    (lambda x0, t, ab, e: ab[t] * x0 + (1 - ab[t]) * e, "`jump`: the square roots are missing"),
    (lambda x0, t, ab, e: jump(x0, t - 1, ab, e), "`jump`: you used ᾱ_\\{t-1\\}"),
    (lambda x0, t, ab, e: ab[t].sqrt() * (x0 + e), "`jump`: the noise is scaled by sqrt\\(ᾱ_t\\)"),
])
def test_forward_chain_wrong_jumps(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch01.check_forward_chain(make_chain(), wrong, make_combined())


def plain_average(eps, beta):
    steps = torch.arange(1, beta.shape[0], dtype=eps.dtype).reshape(-1, 1, 1)
    return torch.cat([torch.zeros_like(eps[:1]), torch.cumsum(eps[1:], 0) / steps.sqrt()])


@pytest.mark.parametrize("wrong, match", [
    (make_combined(normalise=False), "returned the noise part of x_t"),
    (plain_average, "not the plain average"),
    (make_combined(shrink=False), "also shrinks the earlier noise by sqrt\\(α_t\\)"),
    (lambda eps, beta: eps.clone(), "returned the step noises themselves"),
    (lambda eps, beta: make_combined()(eps, beta)[1:], "ε̄ from `combined_noise` has 30 rows"),
])
def test_forward_chain_wrong_combined_noise(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch01.check_forward_chain(make_chain(), jump, wrong)


def test_forward_chain_that_calls_the_package_is_rejected():
    import ddpm_nb as nb

    def by_q_step(x0, beta, eps):
        path = [x0]
        for t in range(1, beta.shape[0]):
            path.append(nb.q_step(path[-1], beta[t], eps[t]))
        return torch.stack(path)

    with pytest.raises(ExerciseWrong, match="the package's own answer .*q_step"):
        ch01.check_forward_chain(by_q_step, jump, make_combined())
    with pytest.raises(ExerciseWrong, match="the package's own answer"):
        ch01.check_forward_chain(make_chain(), lambda x0, t, ab, e: nb.q_sample(x0, t, ab, e),
                                 make_combined())


def test_forward_chain_checker_inputs_are_copies():
    def in_place(x0, beta, eps):
        out = make_chain()(x0, beta, eps)
        eps.mul_(0), beta.mul_(0)
        return out

    ch01.check_forward_chain(in_place, jump, make_combined())
