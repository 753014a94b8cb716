"""Tests for the PushT policy: the 1-D UNet, the planners, the receding-horizon controller, the policy
checkpoint, evaluation on gym-pusht, training (untrained or tiny nets and hand-written planners only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_pusht import REAL

from ddpm_nb.checkpoints import save_weights
from ddpm_nb.data.pusht import read_store
from ddpm_nb.diffusion import q_sample
from ddpm_nb.nets import UNet1D
from ddpm_nb.policy import (
    DiffusionPlanner,
    MinMax,
    PolicyModel,
    RecedingHorizonPolicy,
    RegressionPlanner,
    chunk_error,
    diffusion_loss,
    evaluate,
    load_policy,
    make_env,
    policy_config,
    prepare,
    rollout,
    save_policy,
    train_policy,
    validation_loss,
)
from ddpm_nb.train import TrainConfig

TINY = {"down_dims": [8, 16], "step_dim": 16, "groups": 4}


def tiny_policy(objective: str = "diffusion", features: str = "state", seed: int = 0) -> PolicyModel:
    """An untrained small policy with normalisers spanning the workspace (512 x 512 pixels, angle 0..2π)."""
    torch.manual_seed(seed)
    model = PolicyModel({"kind": "pusht-policy", "objective": objective, "features": features, "net": TINY,
                         "schedule": {"kind": "cosine", "T": 100}})
    d = 5 if features == "state" else 6
    high = torch.tensor([512.0, 512.0, 512.0, 512.0, 2 * math.pi, 1.0][:d])
    low = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, -1.0][:d])
    if features == "sincos":
        low[4], high[4] = -1.0, 1.0
    model.set_normalizers(MinMax(low, high), MinMax(torch.tensor([10.0, 20.0]), torch.tensor([500.0, 490.0])))
    return model.eval()


WINDOW = torch.tensor([[200.0, 100.0, 250.0, 300.0, 1.0], [205.0, 110.0, 250.0, 300.0, 1.0]])


# ---------------------------------------------------------------- the network

def test_unet1d_shapes_size_and_conditioning():
    net = UNet1D()
    assert 1.0e6 < sum(p.numel() for p in net.parameters()) < 1.3e6  # the default: about 1.1 M
    x, t, obs = torch.randn(3, 16, 2), torch.tensor([1, 50, 100]), torch.randn(3, 2, 5)
    y = net(x, t, obs)
    assert y.shape == (3, 16, 2)
    # FiLM carries both conditions: changing either the step or the observations changes the output
    assert not torch.allclose(net(x, torch.tensor([2, 50, 100]), obs)[0], y[0])
    assert torch.allclose(net(x, torch.tensor([2, 50, 100]), obs)[1:], y[1:])
    assert not torch.allclose(net(x, t, obs + 0.5), y)
    reg = UNet1D(time_input=False, **TINY)
    assert reg(x, None, obs).shape == (3, 16, 2)


T2 = torch.ones(2, dtype=torch.long)


@pytest.mark.parametrize("args, message", [
    ((torch.zeros(2, 15, 2), T2, torch.zeros(2, 2, 5)), "divisible by 4"),
    ((torch.zeros(2, 16, 2), T2, torch.zeros(2, 5)), r"obs must have shape \(2, 2, 5\)"),
    ((torch.zeros(2, 16, 2), None, torch.zeros(2, 2, 5)), r"t must be diffusion steps of shape \(2,\)"),
])
def test_unet1d_refuses_wrong_shapes(args, message):
    with pytest.raises(ValueError, match=message):
        UNet1D(down_dims=(8, 16, 32), groups=4)(*args)
    with pytest.raises(ValueError, match="regressor"):
        UNet1D(time_input=False, **TINY)(torch.zeros(1, 16, 2), torch.ones(1), torch.zeros(1, 2, 5))


# ---------------------------------------------------------------- planners

def test_diffusion_planner_is_reproducible_and_stays_in_the_action_range():
    model = tiny_policy()
    planner = DiffusionPlanner(model, "ddim", 5, seed=7)
    a = planner(WINDOW)
    assert a.shape == (16, 2) and a.dtype == torch.float32
    assert (a >= torch.tensor([10.0, 20.0]) - 1e-3).all() and (a <= torch.tensor([500.0, 490.0]) + 1e-3).all()
    assert not torch.equal(planner(WINDOW), a)  # fresh noise for the next plan
    planner.reset(7)
    assert torch.equal(planner(WINDOW), a)  # the same seed, the same plan
    assert planner.ts == [100, 75, 50, 26, 1]
    assert DiffusionPlanner(model, "ddim", 5, first=99).ts == [99, 74, 50, 26, 1]
    ddpm = DiffusionPlanner(model, "ddpm")
    assert (ddpm.sampler, ddpm.steps, len(ddpm.ts)) == ("ddpm", 100, 100)
    assert DiffusionPlanner(model, "dpm_solver", 4, first=99).ts[0] == 99.0
    assert DiffusionPlanner(model, "dpm_solver", 3)(WINDOW).shape == (16, 2)


def test_planners_refuse_bad_input():
    model = tiny_policy()
    with pytest.raises(ValueError, match="Unknown sampler 'ddpm100': choose one of ddpm, ddim"):
        DiffusionPlanner(model, "ddpm100")
    with pytest.raises(ValueError, match="visits every one of the 100 steps"):
        DiffusionPlanner(model, "ddpm", 10)
    with pytest.raises(ValueError, match="steps must be an integer from 1 to 100"):
        DiffusionPlanner(model, "ddim", 0)
    with pytest.raises(ValueError, match="first must be an integer step from 1 to T = 100"):
        DiffusionPlanner(model, "ddim", first=101)
    with pytest.raises(ValueError, match=r"last 2 states as a \(2, 5\) tensor, got \(5,\)"):
        DiffusionPlanner(model)(WINDOW[0])
    with pytest.raises(ValueError, match="use RegressionPlanner"):
        DiffusionPlanner(tiny_policy("regression"))
    with pytest.raises(ValueError, match="use DiffusionPlanner"):
        RegressionPlanner(model)
    with pytest.raises(ValueError, match="Not a PushT policy config"):
        PolicyModel({"kind": "pusht-policy", "objective": "gan"})


def test_regression_planner_is_deterministic():
    planner = RegressionPlanner(tiny_policy("regression", "sincos"))
    a = planner(WINDOW)
    assert a.shape == (16, 2) and torch.equal(planner(WINDOW), a)


# ---------------------------------------------------------------- the receding-horizon controller

class Recorder:
    """A hand-written planner: remembers each window; plans action k = (100 + 10 * plan + k, 300 - k)."""

    def __init__(self):
        self.windows, self.seeds = [], []

    def reset(self, seed):
        self.seeds.append(seed)

    def __call__(self, window):
        self.windows.append(window.clone())
        k = torch.arange(16.0)
        return torch.stack([100 + 10 * (len(self.windows) - 1) + k, 300 - k], dim=1)


def test_policy_executes_eight_of_sixteen_and_replans():
    planner = Recorder()
    policy = RecedingHorizonPolicy(planner)
    observations = [np.full(5, float(i)) for i in range(20)]
    actions = [policy(o) for o in observations]
    assert len(planner.windows) == 3 and policy.plans == 3  # plans at steps 0, 8, 16
    assert planner.windows[0].tolist() == [[0.0] * 5, [0.0] * 5]  # the first observation repeated
    assert planner.windows[1].tolist() == [[7.0] * 5, [8.0] * 5]  # the last two observations
    assert actions[0].tolist() == [101.0, 299.0] and actions[7].tolist() == [108.0, 292.0]  # rows 1..8
    assert actions[8].tolist() == [111.0, 299.0]
    assert actions[0].shape == (2,) and actions[0].dtype == np.float64
    policy.reset(seed=5)
    policy(observations[3])
    assert planner.seeds == [5] and planner.windows[-1].tolist() == [[3.0] * 5, [3.0] * 5]


def test_policy_refuses_a_wrong_observation_or_plan():
    policy = RecedingHorizonPolicy(Recorder())
    with pytest.raises(ValueError, match=r"one PushT state of shape \(5,\).*got shape \(2, 5\)"):
        policy(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        policy(np.array([1.0, 2.0, np.nan, 4.0, 5.0]))
    short = RecedingHorizonPolicy(lambda window: torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"action chunk \(T_p, A\) tensor with T_p >= 9, got \(4, 2\)"):
        short(np.zeros(5))


# ---------------------------------------------------------------- the checkpoint

def test_policy_checkpoint_round_trips_with_weights_only(tmp_path):
    model = tiny_policy(features="sincos")
    path = tmp_path / "pusht.pt"
    save_policy(path, model, meta={"steps": 0})
    raw = torch.load(path, weights_only=True)
    assert torch.equal(raw["state_dict"]["act_low"], torch.tensor([10.0, 20.0]))  # the normaliser travels
    back, meta = load_policy(path, map_location="cpu")
    assert meta == {"steps": 0} and back.config == model.config
    x, t, obs = torch.randn(2, 16, 2), torch.tensor([3, 90]), torch.randn(2, 2, 6)
    assert torch.equal(back(x, t, obs), model(x, t, obs))
    assert torch.equal(back.encode_obs(WINDOW), model.encode_obs(WINDOW))


def test_a_corrupt_or_incompatible_checkpoint_is_refused(tmp_path):
    model = tiny_policy()
    good = tmp_path / "good.pt"
    save_policy(good, model)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_policy(cut)
    other = tmp_path / "other.pt"  # a checkpoint of the book, but not a policy
    save_weights(other, torch.nn.Linear(2, 2), config={"net": "MLPDenoiser"})
    with pytest.raises(ValueError, match="no 'kind' in its config but kind='pusht-policy' is expected"):
        load_policy(other)
    misfit = tmp_path / "misfit.pt"  # a policy whose weights do not fit its config
    bigger = tiny_policy()
    config = {**model.config, "net": {**model.config["net"], "down_dims": [8, 32]}}
    save_weights(misfit, bigger, config=config)
    with pytest.raises(ValueError, match="does not fit the model built from its config"):
        load_policy(misfit)
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_policy(tmp_path / "missing.pt")


# ---------------------------------------------------------------- rollouts and evaluation on gym-pusht

@pytest.fixture(scope="module")
def env():
    pytest.importorskip("gym_pusht")
    e = make_env()
    yield e
    e.close()


def test_seeds_reproduce_episodes(env):
    policy = RecedingHorizonPolicy(DiffusionPlanner(tiny_policy(), "ddim", 3))
    a, b = rollout(policy, env, 100000, max_steps=20), rollout(policy, env, 100000, max_steps=20)
    c = rollout(policy, env, 100001, max_steps=20)
    assert a.observations.shape == (21, 5) and a.actions.shape == (20, 2)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.observations[0], c.observations[0])  # another seed, another start
    np.testing.assert_allclose(a.rewards, np.clip(a.coverage / 0.95, 0, 1))  # the reward we score with


def test_one_episode_smoke_evaluation(env):
    policy = RecedingHorizonPolicy(DiffusionPlanner(tiny_policy(), "ddim", 3))
    threads = torch.get_num_threads()
    report = evaluate(policy, 1, seed=0, max_steps=30, env=env, progress=False)
    assert torch.get_num_threads() == threads  # evaluation restores the thread count it changed
    assert set(report) >= {"episodes", "mean_score", "mean_max_coverage", "success_rate", "plans_per_second",
                           "sampler", "steps", "checkpoint", "checkpoint_sha256"}
    assert (report["episodes"], report["sampler"], report["steps"]) == (1, "ddim", 3)
    assert policy.plans == 4 and report["plans_per_second"] > 0  # 30 steps: plans at 0, 8, 16, 24
    episode = rollout(policy, env, 0, max_steps=30)
    assert report["mean_score"] == pytest.approx(episode.rewards.max())
    assert report["mean_max_coverage"] == pytest.approx(episode.coverage.max())
    assert report["success_rate"] == float(episode.coverage.max() > 0.95) == 0.0
    with pytest.raises(ValueError, match="episodes must be a positive integer"):
        evaluate(policy, 0, env=env)


def test_split_evaluations_merge_into_the_whole(env):
    from ddpm_nb.policy import merge_evaluations

    def run(episodes, seed):
        policy = RecedingHorizonPolicy(DiffusionPlanner(tiny_policy(), "ddim", 3))
        return evaluate(policy, episodes, seed=seed, max_steps=12, env=env, progress=False)

    whole, parts = run(3, 7), [run(1, 7), run(2, 8)]
    merged = merge_evaluations(parts)
    assert merged["episodes"] == 3 and merged["seed"] == 7 and merged["scores"] == whole["scores"]
    assert merged["mean_score"] == pytest.approx(whole["mean_score"])
    assert merged["plans"] == whole["plans"] == 6  # 12 steps: plans at 0 and 8, per episode
    assert merged["plans_per_second"] == pytest.approx(merged["plans"] / merged["plan_seconds"])
    with pytest.raises(ValueError, match="consecutive seeds"):
        merge_evaluations([parts[1], parts[0]])
    with pytest.raises(ValueError, match="at least one"):
        merge_evaluations([])


# ---------------------------------------------------------------- training (a few steps of a tiny net)

@pytest.fixture(scope="module")
def demos():
    if not REAL.is_dir():
        pytest.skip(f"the shared data folder has no {REAL}")
    return read_store(REAL)


def test_prepare_fits_the_normalisers_on_training_episodes_only(demos):
    w = prepare(demos, "sincos")
    assert w.train_obs.shape == (21920, 2, 6) and w.val_act.shape == (2288, 16, 2)
    assert len(w.train_episodes) == 186 and len(w.val_episodes) == 20
    for x in (w.train_obs, w.train_act):  # the training windows span exactly [-1, 1]
        assert x.min().item() == pytest.approx(-1.0) and x.max().item() == pytest.approx(1.0)
    rows = torch.cat([torch.arange(demos.episode(e).start, demos.episode(e).stop) for e in w.train_episodes])
    assert torch.equal(w.act_norm.low, demos.action[rows].min(0).values)


def test_diffusion_loss_is_l_simple_on_action_chunks():
    model = tiny_policy()
    obs, a0 = torch.randn(4, 2, 5), torch.rand(4, 16, 2) * 2 - 1
    got = diffusion_loss(model, (obs, a0), torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)  # the same draws, in the same order, by hand
    t = torch.randint(1, 101, (4,), generator=gen)
    eps = torch.randn(a0.shape, generator=gen)
    at = q_sample(a0, t, torch.cumprod(1 - model.beta, 0).float(), eps)
    want = ((model(at, t, obs) - eps) ** 2).mean()
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("objective", ["diffusion", "regression"])
def test_train_policy_smoke_and_checkpoint(tmp_path, demos, objective):
    config = policy_config(objective, down_dims=(8, 16))
    cfg = TrainConfig(steps=3, batch_size=8, lr=1e-3, warmup=1, ckpt_every=None)
    result, w = train_policy(config, demos, cfg, device="cpu", progress=False)
    ema = result.ema_model
    assert torch.equal(ema.act_low, w.act_norm.low) and torch.equal(ema.obs_high, w.obs_norm.high)
    val = validation_loss(ema, w.val_obs[:64], w.val_act[:64])
    assert val == validation_loss(ema, w.val_obs[:64], w.val_act[:64]) and 0 < val < 10  # fixed draws
    assert 0 < chunk_error(ema, w.val_obs[:8], w.val_act[:8], steps=2) < 800
    save_policy(tmp_path / "p.pt", ema)
    back, _ = load_policy(tmp_path / "p.pt", map_location="cpu")
    assert back.objective == objective and torch.equal(back.obs_low, ema.obs_low)


# ---------------------------------------------------------------- a flow-matching policy (issue 15)
def test_a_flow_policy_plans_trains_and_round_trips(tmp_path, env):
    from ddpm_nb.policy import FlowPlanner, flow_policy_loss, load_policy, make_planner, save_policy

    model = tiny_policy("flow")
    assert model.config["flow"] == {"time_scale": 100.0} and "schedule" not in model.config
    planner = make_planner(model, steps=3)
    assert isinstance(planner, FlowPlanner) and planner.steps == 3 and planner.sampler == "euler"
    window = torch.tensor([[100.0, 200.0, 300.0, 300.0, 1.0]] * 2)
    a, b = planner(window), (planner.reset(0), planner(window))[1]
    planner.reset(0)
    assert a.shape == (16, 2) and torch.equal(planner(window), b)  # the seed alone decides the chunk
    # Euler in 3 steps makes 3 network calls
    calls = []
    net = model.net.forward
    model.net.forward = lambda *args: calls.append(1) or net(*args)
    planner(window)
    model.net.forward = net
    assert len(calls) == 3
    # the loss is the flow-matching regression, and a gradient step lowers it on a fixed batch
    obs, act = torch.rand(8, 2, 5) * 2 - 1, torch.rand(8, 16, 2) * 2 - 1
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    model.train()
    before = flow_policy_loss(model, (obs, act), gen())
    before.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 1e-3 * p.grad
    assert flow_policy_loss(model, (obs, act), gen()) < before
    path = tmp_path / "flow.pt"
    save_policy(path, model.eval())
    again, _ = load_policy(path)
    assert again.objective == "flow" and again.config == model.config
    # a flow policy takes no diffusion sampler
    with pytest.raises(ValueError, match="Euler steps on its velocity"):
        make_planner(model, "ddim", 3)
    score = evaluate(RecedingHorizonPolicy(make_planner(model, steps=2)), 1, seed=3, max_steps=10, env=env,
                     progress=False)
    assert score["sampler"] == "euler" and score["steps"] == 2 and score["plans"] == 2


def test_keypoint_features_reproduce_the_recorded_keypoints():
    if not REAL.is_dir():
        pytest.skip("the shared PushT store is not here")
    from ddpm_nb.policy import state_features

    data = read_store(REAL)
    feats = state_features(data.state.double(), "keypoints")
    assert feats.shape == (data.state.shape[0], 20)
    assert torch.equal(feats[:, :2], data.state[:, :2].double())  # the agent comes first
    err = (feats[:, 2:].reshape(-1, 9, 2) - data.keypoint.double()).norm(dim=-1)
    assert float(err.max()) < 2.5 and float(err.mean()) < 1.0, (float(err.max()), float(err.mean()))
    # a wrong rotation sense would miss by tens of pixels
    flipped = state_features(data.state.double() * torch.tensor([1, 1, 1, 1, -1.0]), "keypoints")
    assert float((flipped[:, 2:].reshape(-1, 9, 2) - data.keypoint.double()).norm(dim=-1).mean()) > 10
