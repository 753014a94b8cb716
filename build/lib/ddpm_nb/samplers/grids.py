"""Every time grid a sampler walks, how many network evaluations it costs, and what a sampler can do.

- `timesteps`: the DDIM grid of n integer steps; ancestral DDPM walks every step.
- `continuous_timesteps`: n + 1 real times, evenly spaced in t or in λ = log(α/σ) (half the log-SNR,
  Lu et al. 2022, sec. 3.1: DPM-Solver's spacing), optionally jumping first to a chosen λ.
- `sampler_times(name, model, steps, ...)`: the grid of any sampler by name, the one place that
  decides it (the 2-D bench, chapter 4 and the PushT planners all call it).
- `steps_for_nfe` / `nfe_of`: steps for a budget of network evaluations, and back.
- `CLIPS_X0`: the samplers that can clip their x0 prediction (`clip_x0=`).
"""

from __future__ import annotations

import torch

from ..errors import UserError
from ..schedules import half_log_snr, log_alpha_bar_at
from .denoiser import Denoiser

__all__ = ["timesteps", "continuous_timesteps", "sampler_times", "steps_for_nfe", "nfe_of", "CLIPS_X0",
           "SPACINGS", "GRIDS_2D"]

SPACINGS = ("time", "lambda")
CLIPS_X0 = ("ddpm", "ddim")
# Where the continuous-time solvers put their steps on the book's 2-D model (ddpm-2d): t_min and, for
# DPM-Solver, the λ of the first stop. DPM-Solver's were chosen on tuning seeds 2000-2004 (never on the
# bench's reporting seeds 1000+) for the v-prediction model: sliced W1 at 10 / 20 NFE 0.0225 / 0.0205
# with t_min 5 and a first stop at λ = -1.5, against 0.0283 / 0.0220 with t_min 1 and even λ spacing.
GRIDS_2D = {"euler_maruyama": {"t_min": 1.0}, "euler": {"t_min": 1.0}, "heun": {"t_min": 1.0},
            "rk45": {"t_min": 1.0}, "dpm_solver": {"t_min": 5.0, "first_lambda": -1.5},
            "unipc": {"t_min": 5.0, "first_lambda": -1.5}}  # UniPC: DPM-Solver's grid, not tuned apart


def timesteps(T: int, n: int, *, first: int | None = None) -> list[int]:
    """n decreasing steps from `first` (default T) to 1, evenly spaced (rounded): the DDIM grid."""
    first = T if first is None else first
    if not 1 <= n <= first <= T:
        raise UserError(f"Need 1 <= n <= first <= T, got n={n}, first={first}, T={T}.")
    steps = torch.linspace(first, 1, n).round().long().tolist()
    return sorted(set(steps), reverse=True)


def continuous_timesteps(model: Denoiser, n: int, *, t_min: float = 1.0, spacing: str = "time",
                         first_lambda: float | None = None) -> list[float]:
    """n + 1 decreasing real times from T to t_min: evenly spaced in t, or in λ = log(α/σ).

    With spacing "lambda" and `first_lambda` λ_a, the first step jumps from T straight to the time
    where λ = λ_a, and the other n - 1 steps are evenly spaced in λ from there: no steps are spent
    where the noisy data is still featureless.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"The number of steps must be a positive integer, got {n!r}.")
    if not 0 < t_min < model.T:
        raise UserError(f"t_min must lie in (0, {model.T}), got {t_min}.")
    if spacing not in SPACINGS:
        raise UserError(f"Unknown spacing {spacing!r}: choose one of {', '.join(SPACINGS)}.")
    if spacing == "time":
        if first_lambda is not None:
            raise UserError("first_lambda applies to spacing='lambda' only.")
        return torch.linspace(model.T, t_min, n + 1, dtype=torch.float64).tolist()
    fine = torch.linspace(t_min, model.T, 20001, dtype=torch.float64)
    lam = half_log_snr(log_alpha_bar_at(model.beta.double().cpu(), fine))  # decreasing in t
    lam_hi, lam_lo = float(lam[0]), float(lam[-1])
    if first_lambda is None:
        targets = torch.linspace(lam_lo, lam_hi, n + 1, dtype=torch.float64)
    else:
        if not lam_lo < first_lambda < lam_hi or n < 2:
            raise UserError(f"first_lambda must lie in ({lam_lo:.2f}, {lam_hi:.2f}), the range of "
                            f"λ = log(α/σ) from T to t_min, and needs n >= 2 steps; got {first_lambda}, "
                            f"n={n}.")
        targets = torch.cat([torch.tensor([lam_lo], dtype=torch.float64),
                             torch.linspace(first_lambda, lam_hi, n, dtype=torch.float64)])
    idx = torch.searchsorted(-lam, -targets).clamp(0, len(fine) - 1)
    ts = fine[idx].tolist()
    ts[0], ts[-1] = float(model.T), float(t_min)
    if any(a <= b for a, b in zip(ts, ts[1:], strict=False)):
        raise UserError(f"{n} steps are too many for this λ range: two steps fall on the same time.")
    return ts


def sampler_times(name: str, model: Denoiser, steps: int | None, *, t_min: float = 1.0,
                  first_lambda: float | None = None) -> list:
    """The time grid of sampler `name` with `steps` steps on `model` (from its last step model.T).

    ddpm: every step T..1 (steps ignored); ddim: the DDIM grid; rk45: just [T, t_min] (adaptive);
    dpm_solver, unipc: even in λ (with an optional first jump to `first_lambda`); the others: even in t.
    """
    if name == "ddpm":
        return list(range(model.T, 0, -1))
    if name == "ddim":
        return timesteps(model.T, steps)
    if name == "rk45":
        return [float(model.T), float(t_min)]
    if name not in ("euler_maruyama", "euler", "heun", "dpm_solver", "unipc"):
        raise UserError(f"No time grid for sampler {name!r}.")
    spacing = "lambda" if name in ("dpm_solver", "unipc") else "time"
    extra = {"first_lambda": first_lambda} if first_lambda is not None else {}
    return continuous_timesteps(model, steps, t_min=t_min, spacing=spacing, **extra)


def steps_for_nfe(name: str, nfe: int) -> int | None:
    """Solver steps that spend at most `nfe` network evaluations (None when none fits).

    ddim: one per step. euler, euler_maruyama, dpm_solver, unipc: one per step plus the final denoising
    evaluation. heun: two per step plus the final one (an even budget leaves one unused; benches
    report the evaluations actually counted). ddpm: every step (one per step).
    """
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise UserError(f"NFE must be a whole number, at least 1, got {nfe!r}.")
    if name in ("ddim", "ddpm"):
        return nfe
    if name in ("euler", "euler_maruyama", "dpm_solver", "unipc"):
        return nfe - 1 if nfe >= 2 else None
    if name == "heun":
        return (nfe - 1) // 2 if nfe >= 3 else None
    raise UserError(f"No NFE rule for sampler {name!r}.")


def nfe_of(name: str, steps: int) -> int:
    """Network evaluations a fixed-step sampler spends in `steps` steps (the inverse of `steps_for_nfe`)."""
    if name in ("ddim", "ddpm"):
        return steps
    if name in ("euler", "euler_maruyama", "dpm_solver", "unipc"):
        return steps + 1
    if name == "heun":
        return 2 * steps + 1
    raise UserError(f"No NFE rule for sampler {name!r}.")
