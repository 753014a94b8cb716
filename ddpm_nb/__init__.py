"""ddpm_nb: the helper package of the executable book 'Diffusion models for robotics'.

Every chapter does ``import ddpm_nb as nb`` then ``cfg = nb.setup()``.
"""

from . import (
    data,
    elbo,
    exercises,
    likelihood,
    nets,
    plot,
    quality,
    recipes,
    samplers,
    sde,
    train,
    weights,
    widgets,
)
from .checks import ClaimFailed, check_close, check_shape, check_true
from .config import Setup, in_colab, is_quick, pick_device, setup
from .diffusion import (
    eps_from_x0,
    gaussian_kl,
    p_mean_from_eps,
    posterior_mean_var,
    posterior_variance,
    q_mean_var,
    q_sample,
    q_step,
    simulate_forward,
    x0_from_eps,
)
from .markov import (
    estimate_order2_transitions,
    estimate_transitions,
    gaussian_chain,
    sample_chain,
    sample_order2_chain,
    stationary_distribution,
)
from .samplers import Denoiser, sample_ddim, sample_ddpm, timesteps
from .schedules import (
    SCHEDULES,
    alpha_bar,
    alpha_bar_continuous,
    beta_continuous,
    beta_schedule,
    discretize_continuous,
    snr,
)
from .source import show

__version__ = "0.1.0"

__all__ = [
    "__version__", "data", "elbo", "exercises", "likelihood", "nets", "plot", "quality", "recipes",
    "samplers",
    "sde", "train", "weights", "widgets",
    "setup", "Setup", "pick_device", "is_quick", "in_colab",
    "check_close", "check_true", "check_shape", "ClaimFailed", "show",
    "SCHEDULES", "beta_schedule", "alpha_bar", "snr", "beta_continuous", "alpha_bar_continuous",
    "discretize_continuous",
    "sample_chain", "sample_order2_chain", "stationary_distribution", "estimate_transitions",
    "estimate_order2_transitions", "gaussian_chain",
    "q_step", "simulate_forward", "q_mean_var", "q_sample", "gaussian_kl",
    "posterior_variance", "posterior_mean_var", "x0_from_eps", "eps_from_x0", "p_mean_from_eps",
    "Denoiser", "sample_ddpm", "sample_ddim", "timesteps",
]
