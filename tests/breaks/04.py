"""Chapter 4's formulas, broken: the SDE's ᾱ(t), the probability-flow drift, and DPM-Solver++'s
second-order correction."""

PATCH = '''
import math, torch, ddpm_nb
import ddpm_nb.schedules as _sch, ddpm_nb.sde as _sde
import ddpm_nb.samplers as _smp, ddpm_nb.samplers.continuous as _cont
import ddpm_nb.likelihood as _lik

def _broken_ab(t, kind="linear", *, beta_min=0.1, beta_max=20.0, s=0.008):
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.exp(-(beta_min * t + (beta_max - beta_min) * t**2))  # lost the ½ of ∫β
_sch.alpha_bar_continuous = ddpm_nb.alpha_bar_continuous = _broken_ab

def _broken_drift(model, x, t):
    # -½ b (x + ∇log p) became -½ b (x + 2 ∇log p): the reverse SDE's g² without its ½
    return -0.5 * float(_sde.b_at(model, t)) * (x + 2 * _sde.score_at(model, x, t))
_sde.pf_ode_drift = _cont.pf_ode_drift = _lik.pf_ode_drift = _broken_drift

@torch.no_grad()
def _first_order_dpm(model, x, ts, *, generator=None, callback=None):
    ts = _cont.check_times(model, ts)
    a_s = [tuple(float(v) for v in _sde.alpha_sigma(model, t)) for t in ts]
    lam = [math.log(a / s) for a, s in a_s]
    for i in range(len(ts) - 1):
        x0, _ = _cont.denoise_at(model, x, ts[i])   # no correction from the previous x0
        h = lam[i + 1] - lam[i]
        x = (a_s[i + 1][1] / a_s[i][1]) * x - a_s[i + 1][0] * math.expm1(-h) * x0
    return _cont.denoise_at(model, x, ts[-1])[0]
_cont.sample_dpm_solver = _smp.sample_dpm_solver = _first_order_dpm
_smp.SAMPLERS["dpm_solver"] = _first_order_dpm
'''

# No main claim reads these: the sampler benchmark and its figure, one start's ODE and SDE samples,
# the grid comparison and chapter 5's stored sweep (about 80 of the run's 120 s at one thread). The
# convergence cell (`n_o = ...`) stays: the order check reads its reference solution.
SKIP = (
    "one = torch.randn(1, 2, generator=gen)",
    "fig, ax = plt.subplots(figsize=(7, 4.2))",
    "n_b, seeds_b = cfg.size(quick=500",
    "fig, ax = plt.subplots(figsize=(6.5, 4.5))",
    "# 10 NFE is cheap, and fewer samples",
    "import json",
)
