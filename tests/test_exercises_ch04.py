"""Tests for the chapter 4 exercise checkers: right answers pass, stubs and each known slip are named."""

import math

import pytest

import ddpm_nb as nb
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


# ---------------------------------------------------------------- 4.4 build: DPM-Solver++(2M)

def make_dpm_step(first_order=False, r_inv=False, one_over_r=False, alpha_t=False, sigma_inv=False,
                  h_sign=1.0, lam_scale=1.0):
    def dpm_step(x, x0_hat, x0_prev, h_prev, a_t, s_t, a_s, s_s):
        h = h_sign * lam_scale * (math.log(a_s / s_s) - math.log(a_t / s_t))
        if x0_prev is None or first_order:
            d = x0_hat
        else:
            r = h / h_prev if r_inv else h_prev / h
            k = 1 / r if one_over_r else 1 / (2 * r)
            d = (1 + k) * x0_hat - k * x0_prev
        return (s_t / s_s if sigma_inv else s_s / s_t) * x - (a_t if alpha_t else a_s) * math.expm1(-h) * d
    return dpm_step


def make_loop(step=None, pass_prev=True, final=True, same_h=False, ddim=False):
    step = step or make_dpm_step()

    def sample_dpm_loop(model, x, ts):
        x0_prev, h_prev = None, None
        for t, s in zip(ts, ts[1:], strict=False):
            a_t, s_t = (float(v) for v in nb.sde.alpha_sigma(model, t))
            a_s, s_s = (float(v) for v in nb.sde.alpha_sigma(model, s))
            x0_hat, eps = nb.samplers.denoise_at(model, x, t)
            h = math.log(a_s / s_s) - math.log(a_t / s_t)
            if ddim:  # chapter 3's update on the same times
                x = a_s * x0_hat + s_s * eps
            else:
                prev = x0_prev if pass_prev else None
                x = step(x, x0_hat, prev, h if same_h else h_prev, a_t, s_t, a_s, s_s)
            x0_prev, h_prev = x0_hat, h
        return nb.samplers.denoise_at(model, x, ts[-1])[0] if final else x
    return sample_dpm_loop


def test_the_right_dpm_build_passes_and_reports_its_order(capsys):
    ch04.check_dpm_solver_build(make_dpm_step(), make_loop())
    out = capsys.readouterr().out
    assert out.startswith("✓ Exercise 4.4 passed") and "fitted order 1.9" in out
    with pytest.raises(ExerciseNotDone, match="4.4"):
        ch04.check_dpm_solver_build(stub, make_loop())
    with pytest.raises(ExerciseNotDone, match="4.4"):
        ch04.check_dpm_solver_build(make_dpm_step(), stub)


@pytest.mark.parametrize("slip, match", [
    ({"first_order": True}, "That is the first-order step \\(DDIM\\)"),
    ({"r_inv": True}, "r = h_prev / h, the previous step over this one"),
    ({"one_over_r": True}, "weight is 1/\\(2r\\), not 1/r"),
    ({"alpha_t": True}, "first step\\) The linear part is α_s"),
    ({"sigma_inv": True}, "σ_s/σ_t \\(the new σ over the old\\)"),
    ({"h_sign": -1.0}, "λ = log\\(α/σ\\) grows towards the data"),
    ({"lam_scale": 2.0}, "half the log-SNR"),
])
def test_wrong_dpm_steps_are_named(slip, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch04.check_dpm_solver_build(make_dpm_step(**slip), make_loop())


@pytest.mark.parametrize("loop, match", [
    # the right step, but the loop never hands it the previous x̂_0: first order, caught by the exact solution
    (make_loop(pass_prev=False), "error falls as h\\^0.9\\d \\(about 1: a first-order method, like DDIM\\)"),
    (make_loop(ddim=True), "a first-order method, like DDIM"),
    (make_loop(final=False), "return x̂_0 at the last time"),
    (make_loop(same_h=True), "needs the previous step's h"),
    # a wrong extrapolation weight in the loop's own step: its order drops
    (make_loop(step=make_dpm_step(one_over_r=True)), "error falls as h\\^1.3"),
    # right to second order, but not draw for draw (computed in float32): the hint
    (lambda model, x, ts: make_loop()(model, x.float(), ts), "Hint: for each \\(t, s\\)"),
])
def test_wrong_dpm_loops_are_named(loop, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch04.check_dpm_solver_build(make_dpm_step(), loop)


def test_the_package_solver_is_rejected():
    def loop(model, x, ts):
        return nb.samplers.sample_dpm_solver(model, x, ts)

    with pytest.raises(ExerciseWrong, match="sample_dpm_solver"):
        ch04.check_dpm_solver_build(make_dpm_step(), loop)
