"""A 1-D temporal convolutional UNet over action chunks, FiLM-conditioned: the Diffusion Policy backbone.

Chi et al. 2023 (Diffusion Policy, sec. 3.2 "CNN-based"), after Janner et al. 2022 (Diffuser): the
noisy action sequence x (B, T_p, A) is processed as A channels over T_p time steps by residual blocks
of Conv1d -> GroupNorm -> Mish, down- and up-sampled in time with skip connections. The condition (the
observation window, flattened, and the embedding of the diffusion step t) enters every residual block
through FiLM (Perez et al. 2018): a per-channel scale γ and shift β, h <- γ h + β.

With `time_input=False` the same network is a plain regressor of the action chunk from the observations
(the MSE baseline): there is no step embedding, t must be None, and x is any fixed input (zeros).

Planning calls this small network many times on tiny tensors (one chunk of 16 × 2 per call), where
Python's per-module overhead costs as much as the arithmetic. Without gradients the network therefore
runs a TorchScript trace of itself (`torch.jit.trace`), made once per input shape, dtype and device:
the same aten operations on the same parameters (shared, not copied: later weight updates are seen), so
its output is bitwise the eager one (a test checks it), about 1.5x faster on one CPU thread. With
gradients on (training), while tracing, or where tracing fails (it is deprecated in recent torch), the
eager code runs.
"""

from __future__ import annotations

import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .embeddings import TimeEmbedding

__all__ = ["UNet1D"]


class ConvBlock(nn.Module):
    """Conv1d (same length) -> GroupNorm -> Mish: (B, cin, T) -> (B, cout, T)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, padding=kernel // 2)
        self.norm = nn.GroupNorm(min(groups, cout), cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(self.norm(self.conv(x)))


class FiLMResBlock(nn.Module):
    """Two ConvBlocks with FiLM in between: h = γ(c) ⊙ block1(x) + β(c); out = block2(h) + skip(x)."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.block1, self.block2 = ConvBlock(cin, cout, kernel, groups), ConvBlock(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(cond).unsqueeze(-1).chunk(2, dim=1)  # (B, cout, 1) each
        h = gamma * self.block1(x) + beta
        return self.block2(h) + self.skip(x)


class UNet1D(nn.Module):
    """ε_θ(x_t, t | o) for action chunks x_t (B, T_p, A), steps t (B,), observations obs (B, T_o, D).

    down_dims: channel widths per level (T_p must be divisible by 2^(levels - 1)); kernel: temporal
    kernel size (odd); step_dim: width of the step embedding; time_input=False: a regressor (no t).
    `config` holds the constructor arguments (what a checkpoint stores to rebuild the net).
    Defaults give about 1.1 M parameters (the paper's PushT net: (256, 512, 1024), 65 M).
    """

    def __init__(self, action_dim: int = 2, obs_dim: int = 5, obs_horizon: int = 2,
                 down_dims: tuple[int, ...] = (32, 64, 128), kernel: int = 5, groups: int = 8,
                 step_dim: int = 64, time_input: bool = True):
        super().__init__()
        if kernel % 2 == 0 or not down_dims:
            raise UserError(f"kernel must be odd and down_dims non-empty, got {kernel} and {down_dims}.")
        self.config = {"action_dim": action_dim, "obs_dim": obs_dim, "obs_horizon": obs_horizon,
                       "down_dims": list(down_dims), "kernel": kernel, "groups": groups,
                       "step_dim": step_dim, "time_input": time_input}
        self.action_dim, self.obs_dim, self.obs_horizon = action_dim, obs_dim, obs_horizon
        self.time_input, self.levels = time_input, len(down_dims)
        self.step = TimeEmbedding(step_dim, step_dim) if time_input else None
        cond = obs_dim * obs_horizon + (step_dim if time_input else 0)

        def res(cin, cout):
            return FiLMResBlock(cin, cout, cond, kernel, groups)

        widths = [action_dim, *down_dims]
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            last = i == len(down_dims) - 1
            sample = nn.Identity() if last else nn.Conv1d(cout, cout, 3, stride=2, padding=1)
            self.down.append(nn.ModuleList([res(cin, cout), res(cout, cout), sample]))
        self.mid = nn.ModuleList([res(down_dims[-1], down_dims[-1]), res(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList()  # deepest level first: upsample, join that level's skip, 2 blocks
        for i in reversed(range(len(down_dims) - 1)):
            deep, here = down_dims[i + 1], down_dims[i]
            self.up.append(nn.ModuleList([nn.ConvTranspose1d(deep, deep, 4, stride=2, padding=1),
                                          res(deep + here, here), res(here, here)]))
        self.out = nn.Sequential(ConvBlock(down_dims[0], down_dims[0], kernel, groups),
                                 nn.Conv1d(down_dims[0], action_dim, 1))

    def _check_cond(self, t: torch.Tensor | None, obs: torch.Tensor, batch: int) -> None:
        want = (batch, self.obs_horizon, self.obs_dim)
        if obs.shape != want:
            raise UserError(f"obs must have shape {want} (B, T_o, D), got {tuple(obs.shape)}.")
        if not self.time_input:
            if t is not None:
                raise UserError("This UNet1D is a regressor (time_input=False): pass t=None.")
        elif t is None or t.shape != (batch,):
            raise UserError(f"t must be diffusion steps of shape ({batch},), got "
                            f"{None if t is None else tuple(t.shape)}.")

    def _cond(self, t: torch.Tensor | None, obs: torch.Tensor, batch: int) -> torch.Tensor:
        cond = obs.reshape(batch, -1)
        return torch.cat([self.step(t), cond], dim=1) if self.time_input else cond

    def forward(self, x: torch.Tensor, t: torch.Tensor | None, obs: torch.Tensor) -> torch.Tensor:
        """x (B, T_p, A), t (B,) or None, obs (B, T_o, D) -> (B, T_p, A): the predicted noise (or chunk)."""
        if x.dim() != 3 or x.shape[2] != self.action_dim or x.shape[1] % 2 ** (self.levels - 1):
            raise UserError(f"x must have shape (B, T_p, {self.action_dim}) with T_p divisible by "
                            f"{2 ** (self.levels - 1)}, got {tuple(x.shape)}.")
        self._check_cond(t, obs, x.shape[0])
        if t is None or torch.is_grad_enabled() or torch.jit.is_tracing():
            return self._run(x, t, obs)
        return _traced(self, x, t, obs)(x, t, obs)

    def _run(self, x: torch.Tensor, t: torch.Tensor | None, obs: torch.Tensor) -> torch.Tensor:
        cond = self._cond(t, obs, x.shape[0])
        h, skips = x.transpose(1, 2), []  # (B, A, T_p): actions are channels, time is the conv axis
        for block1, block2, down in self.down:
            h = block2(block1(h, cond), cond)
            skips.append(h)  # (B, d_i, T_p / 2^i)
            h = down(h)
        skips.pop()  # the deepest level continues straight into the middle
        for block in self.mid:
            h = block(h, cond)
        for up, block1, block2 in self.up:
            h = block2(block1(torch.cat([up(h), skips.pop()], dim=1), cond), cond)
        return self.out(h).transpose(1, 2)


# ------------------------------------------------------------------------------ the traced fast path
# net -> {(shapes, dtypes, device, mode): trace, or None where tracing failed}; weak, so a deleted
# network takes its traces with it, and a copy (deepcopy, an EMA) starts without any.
_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Run(nn.Module):
    """What is traced: the network's forward without its argument checks (they ran before)."""

    def __init__(self, net: UNet1D):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return self.net._run(x, t, obs)


def _traced(net: UNet1D, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor):
    """The trace of `net` for inputs like (x, t, obs), made on first use; `net._run` where it fails."""
    param = next(net.parameters())
    key = (tuple(x.shape), x.dtype, t.dtype, tuple(obs.shape), obs.dtype, x.device, param.dtype,
           param.device, net.training)
    traces = _TRACES.setdefault(net, {})
    if key not in traces:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # jit.trace is deprecated in torch 2.13; eager: fallback
                traces[key] = torch.jit.trace(_Run(net), (x, t, obs), check_trace=False)
        except Exception:  # noqa: BLE001 - any failure to trace: run the eager code for these inputs
            traces[key] = None
    return traces[key] or net._run
