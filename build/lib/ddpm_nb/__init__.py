"""ddpm_nb: the helper package of the executable book 'Diffusion models for robotics'.

Every chapter does ``import ddpm_nb as nb`` then ``cfg = nb.setup()``. Names are imported lazily
(PEP 562): ``import ddpm_nb`` loads nothing heavy, so the command line starts fast, and ``nb.X``
imports X's module on first use.

The layers, from the bottom: config, checks, errors, files, names; the math (schedules, markov,
diffusion, elbo, sde, likelihood, quality, samplers); nets and data (loading only); the training loop
(train) and checkpoints; recipes (every trained model of the book); the applications (policy,
noprop); the benchmarks (bench); and the reader's face (plot, widgets, source, exercises, student,
cli). Imports only point down.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Modules reachable as nb.NAME.
MODULES = (
    "bench", "checkpoints", "checks", "colab", "config", "data", "diffusion", "elbo", "errors", "exercises",
    "files", "flow", "likelihood", "markov", "names", "nets", "noprop", "plot", "policy", "progress", "prose",
    "quality", "recipes", "samplers", "schedules", "sde", "source", "student", "train", "widgets",
)

# Short public names: NAME -> the module that defines it.
_WHERE = {
    **dict.fromkeys(("ClaimFailed", "check_close", "check_estimate", "check_shape", "check_true"), "checks"),
    **dict.fromkeys(("Setup", "in_colab", "is_quick", "pick_device", "setup"), "config"),
    **dict.fromkeys(("UserError",), "errors"),
    **dict.fromkeys(("eps_from_x0", "gaussian_kl", "p_mean_from_eps", "posterior_mean_var",
                     "posterior_variance", "q_mean_var", "q_sample", "q_step", "simulate_forward",
                     "x0_from_eps", "reverse_variance"), "diffusion"),
    **dict.fromkeys(("estimate_order2_transitions", "estimate_transitions", "gaussian_chain", "sample_chain",
                     "sample_order2_chain", "stationary_distribution"), "markov"),
    **dict.fromkeys(("Denoiser", "sample_ddim", "sample_ddpm", "timesteps"), "samplers"),
    **dict.fromkeys(("SCHEDULES", "alpha_bar", "alpha_bar_continuous", "beta_continuous", "beta_schedule",
                     "discretize_continuous", "snr", "log_alpha_bar_at"), "schedules"),
    **dict.fromkeys(("show",), "source"),
    **dict.fromkeys(("glue",), "prose"),
    **dict.fromkeys(("progress_bar",), "progress"),
}

__all__ = ["__version__", *MODULES, *_WHERE]


def __getattr__(name: str):
    if name in MODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ddpm_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
