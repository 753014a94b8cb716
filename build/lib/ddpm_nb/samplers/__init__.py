"""Samplers. One signature for all: `sample_x(model, x, ts, *, generator=None, callback=None) -> x`.

`model` is a `Denoiser`: a network ε_θ(x_t, t) together with its schedule β (T + 1,).
`x` is the starting noise x_T (B, ...); `ts` the decreasing times to visit, from ts[0] down to
ts[-1] > 0, after which the sampler lands on x_0. `callback(i, t, x, x0_hat)` sees every step
(the book draws trajectories with it). `ddpm` and `ddim` visit integer steps (`discrete`); the
continuous-time solvers (`euler_maruyama`, `euler`, `heun`, `dpm_solver`, `rk45`: `continuous`;
`unipc`: `unipc`) accept real times. Every grid is made in `grids`.
"""

from __future__ import annotations

from ..errors import UserError
from ..names import SAMPLERS as SAMPLER_NAMES
from .continuous import (
    denoise_at,
    sample_dpm_solver,
    sample_euler,
    sample_euler_maruyama,
    sample_heun,
    sample_rk45,
)
from .denoiser import Denoiser
from .discrete import ddim_encode, sample_ddim, sample_ddpm
from .grids import (
    CLIPS_X0,
    GRIDS_2D,
    continuous_timesteps,
    nfe_of,
    sampler_times,
    steps_for_nfe,
    timesteps,
)
from .unipc import sample_unipc, unipc_coefficients

__all__ = [
    "Denoiser", "SAMPLERS", "SAMPLER_NAMES", "timesteps", "continuous_timesteps", "sampler_times",
    "steps_for_nfe", "nfe_of", "CLIPS_X0", "GRIDS_2D", "sample_ddpm", "sample_ddim", "ddim_encode",
    "sample_euler_maruyama", "sample_euler", "sample_heun", "sample_dpm_solver", "sample_rk45", "denoise_at",
    "sample_unipc", "unipc_coefficients", "get_sampler",
]

SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim, "euler_maruyama": sample_euler_maruyama,
            "euler": sample_euler, "heun": sample_heun, "dpm_solver": sample_dpm_solver,
            "unipc": sample_unipc, "rk45": sample_rk45}


def get_sampler(name: str):
    """The sampler function called `name`."""
    if name not in SAMPLERS:
        raise UserError(f"Unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}.")
    return SAMPLERS[name]
