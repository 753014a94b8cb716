"""Chapter 5's formulas, broken: the training windows, where a planner's randomness enters, the clean
chunk a flow velocity implies, and the paired difference the sampler sweep is judged by."""

PATCH = '''
import torch, ddpm_nb, ddpm_nb.policy as _p, ddpm_nb.policy.windows as _w
import ddpm_nb.policy.planners as _pl

def _broken_window_index(episode_ends, episodes=None, *, obs_horizon=2,
                         pred_horizon=16, action_horizon=8):
    # windows start at s = 0 and end at s = L - T_p: no padding, so the
    # first action of an episode (and its last T_a - 1) is never executed
    ends = episode_ends.tolist()
    starts = [0] + ends[:-1]
    rows = []
    for e in (range(len(ends)) if episodes is None else episodes):
        n = ends[e] - starts[e]
        s = torch.arange(0, max(n - pred_horizon + 1, 1))
        r = (s[:, None] + torch.arange(pred_horizon)[None, :]).clamp(0, n - 1)
        rows.append(starts[e] + r)
    return torch.cat(rows)

_w.window_index = _p.window_index = _broken_window_index
window_index = _broken_window_index          # the name the chapter imported

_sample = _pl.DiffusionPlanner.sample
def _broken_sample(self, obs, x=None):
    # the starting noise A^K is drawn once for the whole batch, and a given
    # A^K is ignored
    shape = (1, _pl.PRED_HORIZON, self.model.net.action_dim)
    x = torch.randn(shape, generator=self.generator, device=self.device)
    return _sample(self, obs, x.expand(obs.shape[0], -1, -1).contiguous())
_pl.DiffusionPlanner.sample = _broken_sample

import ddpm_nb.flow as _f
def _broken_x0(xt, v, t):
    # x0 read off the velocity with the noise's coefficient: x_t - (1 - t) v
    tt = t.to(xt).reshape(-1, *([1] * (xt.dim() - 1)))
    return xt - (1 - tt) * v
_f.x0_from_velocity = _broken_x0

import ddpm_nb.policy.stats as _s
_paired = _s.paired_difference
def _broken_paired(a, b):
    # the paired difference taken the wrong way round: b - a
    return _paired(b, a)
_s.paired_difference = _broken_paired
'''
