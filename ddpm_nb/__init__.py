"""ddpm_nb: the helper package of the executable book 'Diffusion models for robotics'.

Every chapter does ``import ddpm_nb as nb`` then ``cfg = nb.setup()``.
"""

from . import data, exercises, plot, widgets
from .checks import ClaimFailed, check_close, check_shape, check_true
from .config import Setup, in_colab, is_quick, pick_device, setup
from .diffusion import gaussian_kl, q_mean_var, q_sample, q_step, simulate_forward
from .markov import (
    estimate_order2_transitions,
    estimate_transitions,
    gaussian_chain,
    sample_chain,
    sample_order2_chain,
    stationary_distribution,
)
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
    "__version__", "data", "exercises", "plot", "widgets",
    "setup", "Setup", "pick_device", "is_quick", "in_colab",
    "check_close", "check_true", "check_shape", "ClaimFailed", "show",
    "SCHEDULES", "beta_schedule", "alpha_bar", "snr", "beta_continuous", "alpha_bar_continuous",
    "discretize_continuous",
    "sample_chain", "sample_order2_chain", "stationary_distribution", "estimate_transitions",
    "estimate_order2_transitions", "gaussian_chain",
    "q_step", "simulate_forward", "q_mean_var", "q_sample", "gaussian_kl",
]
