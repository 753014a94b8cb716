"""Tests for the chapter 3 build exercise (3.4): the right build passes, and realistic wrong builds of the
training step and of the sampler each fail with the message that names their slip."""

import pytest
import torch

import ddpm_nb as nb
from ddpm_nb.exercises import ExerciseNotDone, ExerciseWrong, ch03


def make_train_step(low=1, eps_first=False, sqrt=True, target="eps", reduce="mean", zero=True, step=True):
    def train_step(model, opt, x0, alpha_bar, generator):
        T = alpha_bar.shape[0] - 1
        if eps_first:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        t = torch.randint(low, T + low, (x0.shape[0],), generator=generator)
        if not eps_first:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        ab = alpha_bar[t][:, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps if sqrt else ab * x0 + (1 - ab) * eps
        err = (model(xt, t) - (eps if target == "eps" else x0)) ** 2
        loss = err.sum() if reduce == "sum" else err.mean()
        if zero:
            opt.zero_grad()
        loss.backward()
        if step:
            opt.step()
        return loss.item()  # a float is a fine answer too
    return train_step


def make_sampler(last_noise=False, sigma2="beta", z_dtype=None, stop=1, eps_scale=1.0):
    @torch.no_grad()
    def sample_ddpm_loop(model, x_T, beta, generator):
        ab = torch.cumprod(1 - beta, 0)
        var = nb.diffusion.reverse_variance(beta, sigma2)
        x = x_T
        for t in range(beta.shape[0] - 1, stop - 1, -1):
            eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
            x = (x - eps_scale * beta[t] / (1 - ab[t]).sqrt() * eps) / (1 - beta[t]).sqrt()
            if t > 1 or last_noise:
                z = torch.randn(x.shape, generator=generator, dtype=z_dtype or x.dtype).to(x)
                x = x + var[t].sqrt() * z
        return x
    return sample_ddpm_loop


def stub(*args):
    raise NotImplementedError


def test_the_right_build_passes_and_stubs_are_not_done(capsys):
    ch03.check_ddpm_build(make_train_step(), make_sampler())
    assert capsys.readouterr().out.startswith("✓ Exercise 3.4 passed")
    with pytest.raises(ExerciseNotDone, match="3.4"):
        ch03.check_ddpm_build(stub, make_sampler())
    with pytest.raises(ExerciseNotDone, match="3.4"):
        ch03.check_ddpm_build(make_train_step(), stub)


@pytest.mark.parametrize("slip, match", [
    ({"low": 0}, "Draw t from 1..T"),
    ({"eps_first": True}, "Draw t first, then ε"),
    ({"sqrt": False}, "both coefficients need their square roots"),
    ({"target": "x0"}, "on the noise ε, not on x_0"),
    ({"reduce": "sum"}, "do not sum it"),
    ({"step": False}, "call opt.step\\(\\)"),
    ({"zero": False}, "Call opt.zero_grad\\(\\)"),
])
def test_wrong_training_steps_are_named(slip, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch03.check_ddpm_build(make_train_step(**slip), make_sampler())


def test_a_training_step_with_an_unknown_slip_gets_the_hint():
    def global_rng(model, opt, x0, alpha_bar, generator):  # ignores the generator
        return make_train_step()(model, opt, x0, alpha_bar, torch.Generator().manual_seed(1))

    with pytest.raises(ExerciseWrong, match="the package's l_simple gives"):
        ch03.check_ddpm_build(global_rng, make_sampler())


@pytest.mark.parametrize("slip, match", [
    ({"last_noise": True}, "no noise is added there"),
    ({"sigma2": "beta_tilde"}, "not the posterior variance"),
    ({"z_dtype": torch.float32}, "Draw z in x's dtype"),
    ({"stop": 2}, "stopped at x_1"),
    ({"eps_scale": 0.5}, "Hint: for t = T"),
])
def test_wrong_samplers_are_named(slip, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch03.check_ddpm_build(make_train_step(), make_sampler(**slip))


def test_the_package_is_rejected_and_restored():
    def train_step(model, opt, x0, alpha_bar, generator):
        loss = nb.elbo.l_simple(model, x0, torch.ones(alpha_bar.shape[0]), generator=generator)
        return loss

    def sampler(model, x_T, beta, generator):
        return nb.sample_ddpm(nb.Denoiser(model, beta), x_T, range(beta.shape[0] - 1, 0, -1),
                              generator=generator)

    with pytest.raises(ExerciseWrong, match="l_simple"):
        ch03.check_ddpm_build(train_step, make_sampler())
    with pytest.raises(ExerciseWrong, match="sample_ddpm"):
        ch03.check_ddpm_build(make_train_step(), sampler)
    beta = nb.beta_schedule("linear", 5)
    out = nb.sample_ddpm(nb.Denoiser(lambda x, t: x, beta), torch.zeros(2, 2), range(5, 0, -1))
    assert out.shape == (2, 2)
