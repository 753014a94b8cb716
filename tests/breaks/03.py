"""Chapter 3's formulas, broken: the loss that trains the live model, the noise of the reverse step
that DDPM samples with, and the exact score of the noised mixture that the regression target of
L_simple is compared with."""

PATCH = '''
import torch, ddpm_nb, ddpm_nb.diffusion as _d, ddpm_nb.elbo as _e, ddpm_nb.samplers.discrete as _s
import ddpm_nb.data as _data, ddpm_nb.data.toy2d as _toy
def _broken_l_simple(eps_model, x0, beta, *, weights=None, generator=None, t_power=1.0):
    T = beta.shape[0] - 1
    t = torch.randint(1, T + 1, (x0.shape[0],), generator=generator, device=x0.device)
    eps = _d.noise_like(x0, generator)
    xt = _d.q_sample(x0, t, _d.alpha_bar(beta).to(x0), eps)
    return ((x0 - eps_model(xt, t)) ** 2).mean()        # regressed on x0 instead of the noise
_e.l_simple = _broken_l_simple
_exact_var = _d.reverse_variance
def _broken_reverse_variance(beta, sigma2):
    return _exact_var(beta, sigma2) ** 2                 # σ_t = β_t instead of sqrt(β_t)
_d.reverse_variance = _s.reverse_variance = ddpm_nb.reverse_variance = _broken_reverse_variance
_exact_eps = _toy.mixture_eps
def _broken_mixture_eps(xt, t, alpha_bar, *args, **kw):
    ab = alpha_bar.to(torch.float64)[torch.as_tensor(t).to(torch.long).cpu()].reshape(-1, 1)
    return (_exact_eps(xt, t, alpha_bar, *args, **kw) * (1 - ab).sqrt()).to(xt)  # -(1-ᾱ_t)·score
_toy.mixture_eps = _data.mixture_eps = mixture_eps = _broken_mixture_eps
'''
