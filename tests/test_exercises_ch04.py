"""Tests for the chapter 4 exercise checkers: right answers pass, stubs and each known slip are named."""

import pytest

from ddpm_nb.exercises import ExerciseNotDone, ExerciseWrong, ch04


def em_step(x, score, b, h, z):
    return x + h * (0.5 * b * x + b * score) + (b * h) ** 0.5 * z


def heun_step(f, x, t, s):
    d = f(x, t)
    guess = x - (t - s) * d
    return x - (t - s) * 0.5 * (d + f(guess, s))


def ddim_ode_step(x, eps_hat, a_t, s_t, a_s, s_s):
    return a_s * (x / a_t + (s_s / a_s - s_t / a_t) * eps_hat)


def stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check, solution, number", [
    (ch04.check_em_step, em_step, "4.1"), (ch04.check_heun_step, heun_step, "4.2"),
    (ch04.check_ddim_ode_step, ddim_ode_step, "4.3")])
def test_solutions_pass_and_stubs_are_not_done(capsys, check, solution, number):
    check(solution)
    assert capsys.readouterr().out.startswith(f"✓ Exercise {number} passed")
    with pytest.raises(ExerciseNotDone, match=number):
        check(stub)


@pytest.mark.parametrize("wrong, match", [
    (lambda x, sc, b, h, z: x + h * (0.5 * b * x + 0.5 * b * sc), "probability-flow ODE"),
    (lambda x, sc, b, h, z: x + h * (0.5 * b * x + b * sc) + h**0.5 * z, "sqrt\\(b h\\) z: its variance"),
    (lambda x, sc, b, h, z: x + h * (-0.5 * b * x + b * sc) + (b * h) ** 0.5 * z, "flips the sign"),
    (lambda x, sc, b, h, z: x + h * (0.5 * b * x - b * sc) + (b * h) ** 0.5 * z, "pulls towards the data"),
])
def test_em_step_known_slips(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch04.check_em_step(wrong)


@pytest.mark.parametrize("wrong, match", [
    (lambda f, x, t, s: x - (t - s) * f(x, t), "plain Euler step"),
    (lambda f, x, t, s: x - (t - s) * 0.5 * (f(x, t) + f(x - (t - s) * f(x, t), t)), "taken at time s"),
    (lambda f, x, t, s: x - (t - s) * (f(x, t) + f(x - (t - s) * f(x, t), s)), "Average the two slopes"),
])
def test_heun_step_known_slips(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch04.check_heun_step(wrong)


@pytest.mark.parametrize("wrong, match", [
    (lambda x, e, a_t, s_t, a_s, s_s: x / a_t + (s_s / a_s - s_t / a_t) * e, "multiply back by α_s"),
    (lambda x, e, a_t, s_t, a_s, s_s: a_s * (x + (s_s / a_s - s_t / a_t) * e), "Divide x_t by α_t"),
    (lambda x, e, a_t, s_t, a_s, s_s: x, "Hint"),
])
def test_ddim_ode_step_known_slips(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch04.check_ddim_ode_step(wrong)
