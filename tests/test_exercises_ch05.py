"""Tests for the chapter 5 exercise checkers: right answers pass, stubs and each known slip are named."""

import numpy as np
import pytest
import torch

from ddpm_nb.exercises import ExerciseNotDone, ExerciseWrong, ch05

# ---------------------------------------------------------------- 5.1 windows with padding


def episode_windows(length, obs_horizon=2, pred_horizon=16, action_horizon=8):
    s = torch.arange(-(obs_horizon - 1), max(length - pred_horizon + action_horizon, -(obs_horizon - 1) + 1))
    return (s[:, None] + torch.arange(pred_horizon)[None, :]).clamp(0, length - 1)


def windows_by_loop(length, obs_horizon=2, pred_horizon=16, action_horizon=8):
    rows = []
    for s in range(1 - obs_horizon, max(length - pred_horizon + action_horizon, 2 - obs_horizon)):
        rows.append([min(max(s + k, 0), length - 1) for k in range(pred_horizon)])
    return torch.tensor(rows, dtype=torch.int32)


def stub(*args):
    raise NotImplementedError("Exercise 5.x")


@pytest.mark.parametrize("answer", [episode_windows, windows_by_loop])
def test_windows_right_answers_pass(answer, capsys):
    ch05.check_episode_windows(answer)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.1 passed")


def test_windows_stub_not_done():
    with pytest.raises(ExerciseNotDone, match="5.1: `stub` still raises NotImplementedError"):
        ch05.check_episode_windows(stub)


def _range(first, last, length, t_p, pad):
    rows = torch.arange(first, max(last, first + 1))[:, None] + torch.arange(t_p)[None, :]
    if pad == "wrap":
        return rows % length
    if pad == "zero":
        rows = rows.clamp(min=0)
        return torch.where(rows > length - 1, torch.zeros_like(rows), rows)
    if pad == "none":
        return rows.clamp(max=length - 1)
    return rows.clamp(0, length - 1)


@pytest.mark.parametrize("wrong, match", [
    (lambda L, o, p, a: _range(0, L - p + a, L, p, "clamp"), "first window starts T_o - 1 steps before"),
    (lambda L, o, p, a: _range(1 - o, L - p + 1, L, p, "clamp"),
     "last window starts at s = L - T_p \\+ T_a - 1"),
    (lambda L, o, p, a: _range(0, L - p + 1, L, p, "clamp"), "Pad at both ends"),
    (lambda L, o, p, a: _range(1 - o, L - p + a, L, p, "wrap"), "not by wrapping around"),
    (lambda L, o, p, a: _range(1 - o, L - p + a, L, p, "zero"), "not with row 0"),
    (lambda L, o, p, a: _range(1 - o, L - p + a, L, p, "none"), "index -1 would read the last step"),
    (lambda L, o, p, a: _range(1 - o, L - p + a, L, p, "clamp") + 1, "Hint: rows = \\(s \\+ k\\).clamp"),
    (lambda L, o, p, a: _range(2 - o, L - p + a + 1, L, p, "clamp"), "Hint: rows"),  # right count, shifted
])
def test_windows_known_slips(wrong, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch05.check_episode_windows(wrong)


def test_windows_hard_coded_horizons_are_caught():
    with pytest.raises(ExerciseWrong, match="one row of T_p = 8 indices per window"):
        ch05.check_episode_windows(lambda L, o, p, a: episode_windows(L))  # ignores the horizons
    with pytest.raises(ExerciseWrong, match="windows for an episode of 30 steps"):
        ch05.check_episode_windows(lambda L, o, p, a: episode_windows(L, 2, p, a))  # ignores T_o


def test_windows_wrong_type_and_shape():
    with pytest.raises(ExerciseWrong, match="integer torch.Tensor"):
        ch05.check_episode_windows(lambda *args: episode_windows(*args).float())
    with pytest.raises(ExerciseWrong, match="integer torch.Tensor"):
        ch05.check_episode_windows(lambda *args: episode_windows(*args).numpy())
    with pytest.raises(ExerciseWrong, match="one row of T_p = 16 indices"):
        ch05.check_episode_windows(lambda *args: episode_windows(*args).T)


# ---------------------------------------------------------------- 5.2 min-max normaliser


def encode(x, low, high):
    span = high - low
    return torch.where(span >= 1e-6, 2 * (x - low) / span.clamp(min=1e-6) - 1, x - (high + low) / 2)


def decode(y, low, high):
    span = high - low
    return torch.where(span >= 1e-6, (y + 1) * span / 2 + low, y + (high + low) / 2)


def test_minmax_right_answer_passes(capsys):
    ch05.check_minmax(encode, decode)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.2 passed")


def test_minmax_plain_decode_passes():
    # without a special case, (y + 1)(high - low)/2 + low gives a constant feature back exactly
    ch05.check_minmax(encode, lambda y, low, high: (y + 1) * (high - low) / 2 + low)


def test_minmax_stubs_not_done():
    with pytest.raises(ExerciseNotDone, match="`stub` still raises NotImplementedError"):
        ch05.check_minmax(stub, decode)
    with pytest.raises(ExerciseNotDone, match="`stub` still raises NotImplementedError"):
        ch05.check_minmax(encode, stub)


def _safe(f):
    def g(x, low, high):
        span = high - low
        return torch.where(span >= 1e-6, f(x, low, span.clamp(min=1e-6), high), x - (high + low) / 2)
    return g


@pytest.mark.parametrize("wrong_encode, match", [
    (lambda x, low, high: 2 * (x - low) / (high - low) - 1, "NaN or inf. Feature 3 is constant"),
    (_safe(lambda x, low, span, high: (x - low) / span), "maps onto \\[0, 1\\]"),
    (_safe(lambda x, low, span, high: 2 * (x - low) / span), "Subtract 1 after scaling by 2"),
    (_safe(lambda x, low, span, high: 2 * (x - low) / high - 1), "Scale by high - low, not by high"),
    (_safe(lambda x, low, span, high: 2 * (x - low) / span + 1), "Hint: y = 2 \\(x - low\\)"),
    (lambda x, low, high: torch.where(high - low >= 1e-6, encode(x, low, high), x), "shifted to 0"),
])
def test_minmax_encode_slips(wrong_encode, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch05.check_minmax(wrong_encode, decode)


@pytest.mark.parametrize("wrong_decode, match", [
    (lambda y, low, high: (y + 1) * (high - low) + low, "you forgot the / 2"),
    (lambda y, low, high: y * (high - low) / 2 + low, "must undo the - 1 too"),
    (encode, "That is encode again"),
    (lambda y, low, high: (y + 1) * (high - low) / 2 - low, "Hint: Solve y"),
])
def test_minmax_decode_slips(wrong_decode, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch05.check_minmax(encode, wrong_decode)


def test_minmax_wrong_shape():
    with pytest.raises(ExerciseWrong, match="should have shape \\(64, 4\\)"):
        ch05.check_minmax(lambda x, low, high: encode(x, low, high)[:, :3], decode)


# ---------------------------------------------------------------- 5.3 receding horizon


def receding_horizon(planner, step, obs, n_steps, obs_horizon=2, action_horizon=8):
    history = [obs] * obs_horizon
    queue, actions = [], []
    for _ in range(n_steps):
        if not queue:
            chunk = planner(torch.stack(history))
            queue = list(chunk[obs_horizon - 1: obs_horizon - 1 + action_horizon])
        action = queue.pop(0)
        actions.append(action)
        obs = step(action)
        history = history[1:] + [obs]
    return torch.stack(actions)


def receding_horizon_deque(planner, step, obs, n_steps, obs_horizon=2, action_horizon=8):
    from collections import deque

    history, queue, actions = deque([obs] * obs_horizon, maxlen=obs_horizon), deque(), []
    for _ in range(n_steps):
        if not queue:
            queue.extend(planner(torch.stack(list(history))).numpy()[obs_horizon - 1:][:action_horizon])
        actions.append(queue.popleft())
        history.append(step(actions[-1]))
    return actions  # a list of numpy rows is accepted too


@pytest.mark.parametrize("answer", [receding_horizon, receding_horizon_deque])
def test_receding_horizon_right_answers_pass(answer, capsys):
    ch05.check_receding_horizon(answer)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.3 passed")


def test_receding_horizon_stub_not_done():
    with pytest.raises(ExerciseNotDone, match="5.3: `stub` still raises NotImplementedError"):
        ch05.check_receding_horizon(stub)


def loop(how):
    """A receding-horizon loop with one mistake, written as a student might."""

    def run(planner, step, obs, n_steps, obs_horizon=2, action_horizon=8):
        history = [obs] * (1 if how == "no_padding" else obs_horizon)
        queue, actions = [], []
        for _ in range(n_steps):
            if not queue or how == "every_step":
                window = torch.stack(history[::-1] if how == "newest_first" else history)
                chunk = planner(window)
                start = 0 if how == "from_oldest" else obs_horizon - 1
                queue = list(chunk[start:] if how == "whole_chunk" else chunk[start:start + action_horizon])
            actions.append(queue.pop(0))
            obs = step(actions[-1])
            if how != "stale":
                history = (history + [obs])[-obs_horizon:]
        return torch.stack(actions)

    return run


@pytest.mark.parametrize("how, match", [
    ("from_oldest", "the action for the current step is row T_o - 1"),
    ("every_step", "You re-plan at every step"),
    ("whole_chunk", "Execute only T_a actions"),
    ("newest_first", "oldest first"),
    ("stale", "Append each new observation"),
    ("no_padding", "repeat the first one"),
])
def test_receding_horizon_known_slips(how, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch05.check_receding_horizon(loop(how))


def test_receding_horizon_other_mistakes_get_the_hint():
    def late(planner, step, obs, n_steps, obs_horizon=2, action_horizon=8):
        out = receding_horizon(planner, step, obs, n_steps + 1, obs_horizon, action_horizon)
        return out[1:]  # drops the first action, so one more plan may be made

    with pytest.raises(ExerciseWrong, match="Hint: keep the last T_o observations|planner was called"):
        ch05.check_receding_horizon(late)

    def every_other(planner, step, obs, n_steps, obs_horizon=2, action_horizon=8):
        return receding_horizon(planner, step, obs, n_steps, obs_horizon, max(1, action_horizon // 2))

    with pytest.raises(ExerciseWrong, match="planner was called"):
        ch05.check_receding_horizon(every_other)


def test_receding_horizon_wrong_shape():
    with pytest.raises(ExerciseWrong, match="should have shape \\(20, 2\\)"):
        ch05.check_receding_horizon(lambda *args: receding_horizon(*args)[:-1])
    with pytest.raises(ExerciseWrong, match="returned None"):
        ch05.check_receding_horizon(lambda *args: None)


def test_receding_horizon_checker_accepts_numpy_actions():
    def numpy_rows(planner, step, obs, n_steps, obs_horizon=2, action_horizon=8):
        return np.stack([np.asarray(a) for a in receding_horizon(planner, step, obs, n_steps, obs_horizon,
                                                                 action_horizon)])

    ch05.check_receding_horizon(numpy_rows)


# ---------------------------------------------------------------- 5.5 a DDIM planner in the simulator (build)

def ddim_plan(model, window, noise, steps=10, first=99, *, encode=True, clip="x0", decode=True, last=True):
    """DDIM-10 from step 99, with switches for the wrong builds."""
    obs = (model.encode_obs(window) if encode else model.obs_norm.encode(window))[None]
    ab = torch.cumprod(1 - model.beta, 0).float()
    ts = torch.linspace(first, 1, steps).round().long().tolist()
    x = noise[None]
    with torch.no_grad():
        for i, t in enumerate(ts):
            s = ts[i + 1] if i + 1 < len(ts) else 0
            eps = model(x, torch.full((1,), t), obs)
            x0 = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
            if clip != "none":
                x0 = x0.clamp(-1, 1)
            if clip == "x0":
                eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
            if s == 0 and not last:
                break
            x = ab[s].sqrt() * x0 + (1 - ab[s]).sqrt() * eps
    x = x.clamp(-1, 1)
    return model.act_norm.decode(x)[0] if decode else x[0]


def make_episode(plan=ddim_plan, controller=receding_horizon, *, reseed=False, env_seed=True, score="max"):
    def episode(model, seed, n_steps):
        from ddpm_nb.policy import make_env

        env = make_env()
        obs, _ = env.reset(seed=seed) if env_seed else env.reset()
        g = torch.Generator().manual_seed(seed)
        rewards = []

        def planner(window):
            if reseed:
                g.manual_seed(seed)
            return plan(model, window, torch.randn(16, 2, generator=g))

        def step(action):
            obs, reward, *_ = env.step(np.asarray(action, dtype=np.float64))
            rewards.append(reward)
            return torch.tensor(obs, dtype=torch.float32)

        actions = controller(planner, step, torch.tensor(obs, dtype=torch.float32), n_steps, 2, 8)
        return actions, {"max": max, "last": lambda r: r[-1], "mean": np.mean}[score](rewards)

    return episode


def test_ddim_planner_right_build_passes(capsys):
    pytest.importorskip("gym_pusht")
    ch05.check_ddim_planner(ddim_plan, make_episode())
    out = capsys.readouterr().out
    assert "✓ Exercise 5.5 passed" in out and out.count("your score") == 2


def test_ddim_planner_stub_not_done():
    with pytest.raises(ExerciseNotDone, match="5.5"):
        ch05.check_ddim_planner(stub, make_episode())


@pytest.mark.parametrize("plan, match", [
    (lambda *a: ddim_plan(*a, decode=False), "Map the chunk back to pixels with model.act_norm.decode"),
    (lambda m, w, n: ddim_plan(m, w, n, first=100), "Start the grid at step first = 99"),
    (lambda *a: ddim_plan(*a, clip="none"), "Clip the predicted x0 to \\[-1, 1\\] at every step"),
    (lambda *a: ddim_plan(*a, clip="x0_only"), "recompute ε = "),
    (lambda *a: ddim_plan(*a, last=False), "The last step goes from t = 1 to 0"),
    (lambda m, w, n: ddim_plan(m, w, n, steps=20), "Hint: features = model.encode_obs"),
    # raw states, normalised without the model's features (sin/cos, or keypoints): the network's input
    # has the wrong width
    (lambda *a: ddim_plan(*a, encode=False), "`<lambda>` raised"),
])
def test_ddim_planner_wrong_chunks(plan, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch05.check_ddim_planner(plan, make_episode())


@pytest.mark.parametrize("episode, match", [
    (make_episode(reseed=True), "Every plan used the same noise"),
    (make_episode(env_seed=False), "seed 100000: the first action differs"),
    (make_episode(score="last"), "the score is the best reward of the episode"),
    # the student's controller of exercise 5.3 with a slip: it re-plans at every step
    (make_episode(controller=lambda p, s, o, n, t_o, t_a: receding_horizon(p, s, o, n, t_o, 1)),
     "the actions agree up to step 1, then differ"),
])
def test_ddim_planner_wrong_episodes(episode, match):
    pytest.importorskip("gym_pusht")
    with pytest.raises(ExerciseWrong, match=match):
        ch05.check_ddim_planner(ddim_plan, episode)


def test_ddim_planner_calling_the_package_is_rejected():
    from ddpm_nb import policy

    def plan(model, window, noise):
        return policy.make_planner(model)(window)

    with pytest.raises(ExerciseWrong, match="the package's own answer"):
        ch05.check_ddim_planner(plan, make_episode())

    def episode(model, seed, n_steps):
        ep = policy.rollout(policy.RecedingHorizonPolicy(lambda w: ddim_plan(model, w, torch.zeros(16, 2))),
                            policy.make_env(), seed, n_steps)
        return ep.actions, ep.score

    pytest.importorskip("gym_pusht")
    with pytest.raises(ExerciseWrong, match="the package's own answer"):
        ch05.check_ddim_planner(ddim_plan, episode)
