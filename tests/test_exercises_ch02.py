"""Tests for the chapter 2 build exercise (2.5, the terms of the ELBO): the right build passes, each wrong
build fails with the message that names its slip, and the checker's reference is the package's ELBO."""

import math

import pytest
import torch

from ddpm_nb import elbo
from ddpm_nb.exercises import ExerciseNotDone, ExerciseWrong, ch02


def make_terms(kl_order="qp", q_var="beta_tilde", root="alpha", log_norm=True, prior=True, reduce="sum",
               sigma=None, row_shift=0, per_dim=False, clip=True):
    """A build of `elbo_terms`; the keywords make realistic wrong builds."""
    def kl(m1, v1, m2, v2):
        if kl_order == "pq":
            m1, v1, m2, v2 = m2, v2, m1, v1
        return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)

    def elbo_terms(eps_model, x0, beta, eps, sigma2):
        s2 = sigma or sigma2
        T, B = beta.shape[0] - 1, x0.shape[0]
        ab = torch.cumprod(1 - beta, 0)
        bt = torch.zeros_like(beta)
        bt[1:] = (1 - ab[:-1]) / (1 - ab[1:]) * beta[1:]
        var_p = beta.clone() if s2 == "beta" else bt.clone()
        if s2 != "beta" and clip:
            var_p[1] = bt[2]
        red = (lambda x: x) if per_dim else (lambda x: x.sum(1) if reduce == "sum" else x.mean(1))

        def x_at(t):
            return ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps[t]

        def mean_p(xt, t):
            e = eps_model(xt, torch.full((B,), t, dtype=torch.long))
            div = (1 - beta[t]).sqrt() if root == "alpha" else ab[t].sqrt()
            return (xt - beta[t] / (1 - ab[t]).sqrt() * e) / div

        L = torch.zeros((T + 1, B) + ((x0.shape[1],) if per_dim else ()), dtype=x0.dtype)
        one = torch.ones_like(x0)
        if prior:
            L[T] = red(kl(ab[T].sqrt() * x0, (1 - ab[T]) * one, 0 * x0, one) if kl_order == "qp" else
                       0.5 * (ab[T] * x0**2 - ab[T] - torch.log(1 - ab[T])))
        for t in range(2, T + 1):
            xt = x_at(t)
            m_q = (ab[t - 1].sqrt() * beta[t] * x0
                   + (1 - beta[t]).sqrt() * (1 - ab[t - 1]) * xt) / (1 - ab[t])
            v_q = bt[t] if q_var == "beta_tilde" else beta[t]
            L[t - 1 + row_shift] = red(kl(m_q, v_q * one, mean_p(xt, t), var_p[t] * one))
        nll = (x0 - mean_p(x_at(1), 1)) ** 2 / (2 * var_p[1])
        if log_norm:
            nll = nll + 0.5 * torch.log(2 * math.pi * var_p[1])
        L[0] = red(nll)
        return L
    return elbo_terms


def test_elbo_terms_right_build_passes(capsys):
    ch02.check_elbo_terms(make_terms())
    assert capsys.readouterr().out.startswith("✓ Exercise 2.5 passed")


def test_elbo_terms_float32_storage_passes():
    right = make_terms()
    ch02.check_elbo_terms(lambda *a: right(*a).float())  # a float32 result is fine at the checker's tolerance


def test_elbo_terms_stub_not_done():
    def elbo_terms(eps_model, x0, beta, eps, sigma2):
        raise NotImplementedError

    with pytest.raises(ExerciseNotDone, match="2.5: `elbo_terms` still raises NotImplementedError"):
        ch02.check_elbo_terms(elbo_terms)


@pytest.mark.parametrize("wrong, match", [
    (make_terms(kl_order="pq"), "The KL is the wrong way round"),
    (make_terms(q_var="beta"), "The posterior's variance is β̃_t"),
    (make_terms(root="alpha_bar"), "μ_θ divides by sqrt\\(ᾱ_t\\)"),
    (make_terms(log_norm=False), "L_0 lacks the Gaussian's normaliser"),
    (make_terms(prior=False), "Row T is zero"),
    (make_terms(reduce="mean"), "averaged over the data dimensions"),
    (make_terms(sigma="beta"), "With sigma2='beta_tilde' your terms are those of sigma2='beta'"),
    (make_terms(sigma="beta_tilde"), "With sigma2='beta' your terms are those of sigma2='beta_tilde'"),
    (make_terms(row_shift=1), "Your row t holds L_\\{t-1\\}"),
    (make_terms(per_dim=True), "sum the KL \\(and L_0\\) over the data dimensions"),
    (make_terms(clip=False),
     "row 0 \\(L_0, the decoder\\) is not finite. With sigma2='beta_tilde', σ_1² = β̃_1 = 0"),
])
def test_elbo_terms_wrong_builds(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch02.check_elbo_terms(wrong)


def test_elbo_terms_unknown_slip_names_the_wrong_rows():
    right = make_terms()

    def decoder_off(*args):  # only L_0 wrong, in a way the checker has no name for
        L = right(*args).clone()
        L[0] = 1.1 * L[0]
        return L

    with pytest.raises(ExerciseWrong, match="largest error .*wrong: row 0 \\(L_0, the decoder\\)\\. Row k"):
        ch02.check_elbo_terms(decoder_off)

    def some_steps_off(*args):  # four diffusion rows wrong
        L = right(*args).clone()
        L[3:7] = 0.9 * L[3:7]
        return L

    with pytest.raises(ExerciseWrong, match="4 of the diffusion rows 1..19 \\(first: row 3, L_3\\)"):
        ch02.check_elbo_terms(some_steps_off)


def test_elbo_terms_that_call_the_package_are_rejected():
    import ddpm_nb as nb

    right = make_terms()

    def with_package_kl(eps_model, x0, beta, eps, sigma2):
        nb.gaussian_kl(x0, torch.ones_like(x0), x0, torch.ones_like(x0))
        return right(eps_model, x0, beta, eps, sigma2)

    with pytest.raises(ExerciseWrong, match="the package's own answer .*gaussian_kl"):
        ch02.check_elbo_terms(with_package_kl)

    def with_package_term(eps_model, x0, beta, eps, sigma2):
        return elbo.diffusion_term(eps_model, x0, 2, beta, sigma2)

    with pytest.raises(ExerciseWrong, match="the package's own answer"):
        ch02.check_elbo_terms(with_package_term)
    x = torch.zeros(1)
    assert float(nb.gaussian_kl(x, 1.0, x, 1.0)) == 0.0  # restored


@pytest.mark.parametrize("sigma2", ["beta", "beta_tilde"])
def test_the_checker_reference_is_the_package_elbo(sigma2):
    """Row by row, the reference equals elbo.prior_term / diffusion_term / reconstruction_term drawn with
    the same noise (each of those draws x_t from its generator: torch.randn(x0.shape))."""
    beta, x0, eps = ch02._elbo_inputs()
    T = beta.shape[0] - 1
    ab = ch02.alpha_bar(beta)

    def model(x, t):
        return ch02.mixture_eps(x, t, ab)

    eps = eps.clone()
    for t in range(1, T + 1):
        eps[t] = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t), dtype=x0.dtype)
    L = ch02.elbo_terms_reference(model, x0, beta, eps, sigma2)
    torch.testing.assert_close(L[T], elbo.prior_term(x0, beta), rtol=0, atol=1e-12)
    for t in range(2, T + 1):
        want = elbo.diffusion_term(model, x0, t, beta, sigma2, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(L[t - 1], want, rtol=0, atol=1e-12)
    want = elbo.reconstruction_term(model, x0, beta, sigma2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(L[0], want, rtol=0, atol=1e-12)
