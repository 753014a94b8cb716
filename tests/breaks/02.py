"""Chapter 2's formulas, broken: the posterior q(x_{t-1}|x_t,x_0) and the Gaussian KL (in the ELBO too)."""

PATCH = '''
import torch, ddpm_nb, ddpm_nb.diffusion as _d, ddpm_nb.elbo as _e
def _broken_posterior(x0, xt, t, beta):
    ab = _d.alpha_bar(beta)
    ab_t, ab_prev = _d._gather(ab, t, x0), _d._gather(ab, torch.as_tensor(t) - 1, x0)
    b = _d._gather(beta, t, x0, "beta")
    mean = torch.sqrt(ab_t) * b / (1 - ab_t) * x0 + torch.sqrt(1 - b) * (1 - ab_prev) / (1 - ab_t) * xt
    return mean, (1 - ab_prev) / (1 - ab_t) * b     # sqrt(ᾱ_{t-1}) became sqrt(ᾱ_t) in the mean
_d.posterior_mean_var = _e.posterior_mean_var = ddpm_nb.posterior_mean_var = _broken_posterior
def _broken_kl(mean_q, var_q, mean_p, var_p):
    return 0.5 * ((var_q + (mean_q - mean_p) ** 2) / var_p - 1)   # the log(var_p/var_q) term is lost
_d.gaussian_kl = _e.gaussian_kl = ddpm_nb.gaussian_kl = _broken_kl
'''
