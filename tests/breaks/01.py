"""Chapter 1's formulas, broken: the closed form of q(x_t|x_0), the forward step, the VP discretisation."""

PATCH = '''
import torch, ddpm_nb, ddpm_nb.diffusion as _d, ddpm_nb.schedules as _s
def _broken_q(x0, t, alpha_bar):
    ab = _d._gather(alpha_bar, t, x0)
    return ab * x0, 1 - ab          # sqrt(ᾱ_t)·x0 became ᾱ_t·x0
_d.q_mean_var = ddpm_nb.q_mean_var = _broken_q
def _broken_forward(x0, beta, *, generator=None):
    b = beta[1:].to(x0.dtype)
    return ddpm_nb.markov.gaussian_chain(x0, torch.sqrt(1 - b), b, generator=generator)
_d.simulate_forward = ddpm_nb.simulate_forward = _broken_forward   # β·ε instead of sqrt(β)·ε
def _broken_discretize(T, *, beta_min=0.1, beta_max=20.0):
    t = torch.arange(1, T + 1, dtype=torch.float64)
    b = (beta_min + t / T * (beta_max - beta_min)) / T   # β(t/T)/T instead of Song et al.'s grid
    return torch.cat([torch.zeros(1, dtype=torch.float64), b])
_s.discretize_continuous = ddpm_nb.discretize_continuous = _broken_discretize
'''
