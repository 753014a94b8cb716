"""Chapter 1's formulas, broken: the closed form of q(x_t|x_0) and the forward step."""

PATCH = '''
import torch, ddpm_nb, ddpm_nb.diffusion as _d
def _broken_q(x0, t, alpha_bar):
    ab = _d._gather(alpha_bar, t, x0)
    return ab * x0, 1 - ab          # sqrt(ᾱ_t)·x0 became ᾱ_t·x0
_d.q_mean_var = ddpm_nb.q_mean_var = _broken_q
def _broken_forward(x0, beta, *, generator=None):
    b = beta[1:].to(x0.dtype)
    return ddpm_nb.markov.gaussian_chain(x0, torch.sqrt(1 - b), b, generator=generator)
_d.simulate_forward = ddpm_nb.simulate_forward = _broken_forward   # β·ε instead of sqrt(β)·ε
'''
