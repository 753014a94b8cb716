"""Tests for chapter 5's helpers: drawing PushT (ddpm_nb.policy.draw), a planner started from given
noise, and the committed training curves (ddpm_nb.checkpoints.loss_curve and friends)."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
import torch
from conftest import ROOT
from test_policy import WINDOW, tiny_policy

from ddpm_nb.checkpoints import file_sha256, loss_curve, read_loss_curve, save_loss_curve
from ddpm_nb.policy import DiffusionPlanner, geometry
from ddpm_nb.policy import draw as plots_pusht

matplotlib.use("Agg")


# ---------------------------------------------------------------- geometry against gym-pusht

def test_the_t_has_the_area_and_corners_of_gym_pushts_block():
    parts = plots_pusht.tee_polygons((0.0, 0.0, 0.0))
    assert [p.shape for p in parts] == [(4, 2), (4, 2)]
    area = sum(0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], 1)) - np.dot(p[:, 1], np.roll(p[:, 0], 1)))
               for p in parts)
    assert area == pytest.approx(120 * 30 + 30 * 90)
    turned = plots_pusht.tee_polygons((10.0, 20.0, math.pi / 2))  # (x, y) -> (-y, x), then shifted
    assert np.allclose(turned[0], parts[0] @ np.array([[0, 1], [-1, 0]]) + [10, 20])
    with pytest.raises(ValueError, match=r"A pose is \(x, y, θ\): shape \(3,\), got \(5,\)"):
        plots_pusht.tee_polygons(np.zeros(5))


def test_polygons_and_coverage_match_the_environment():
    pytest.importorskip("gym_pusht")
    from ddpm_nb.policy import make_env

    env = make_env()
    try:
        obs, _ = env.reset(seed=100003)
        block = env.unwrapped.block
        theirs = np.concatenate([np.array([block.local_to_world(v) for v in shape.get_vertices()])
                                 for shape in env.unwrapped._block_shapes])
        mine = np.concatenate(plots_pusht.tee_polygons(obs[2:]))
        assert np.allclose(np.sort(mine, 0), np.sort(theirs, 0), atol=1e-6)
        for action in ([256.0, 256.0], [300.0, 250.0], [260.0, 300.0]):
            for _ in range(8):
                obs, _, _, _, info = env.step(np.array(action))
            assert plots_pusht.coverage(obs[2:]) == pytest.approx(info["coverage"], abs=1e-9)
    finally:
        env.close()
    assert plots_pusht.coverage(plots_pusht.GOAL_POSE) == pytest.approx(1.0)
    assert plots_pusht.coverage((100.0, 100.0, 0.0)) == 0.0


def test_draw_scene_and_its_errors():
    import matplotlib.pyplot as plt

    ax = plots_pusht.workspace_axes()
    assert ax.get_ylim() == (512.0, 0.0)  # y points down, as in the environment's image
    artists = plots_pusht.draw_scene(ax, np.array([100.0, 100.0, 256.0, 256.0, 0.3]))
    assert len(artists) == 5  # goal (2 parts), block (2 parts), agent
    assert len(plots_pusht.draw_scene(ax, None)) == 2
    with pytest.raises(ValueError, match=r"shape \(5,\), got \(2, 5\)"):
        plots_pusht.draw_scene(ax, np.zeros((2, 5)))
    plt.close("all")


def test_animate_episodes_makes_one_offline_html_animation():
    a = np.tile(np.array([100.0, 100.0, 256.0, 256.0, 0.0]), (10, 1))
    a[:, 0] += np.arange(10)
    b = a[:4]
    html = plots_pusht.animate_episodes([a, b], ["long", "short"], every=3,
                                        coverages=[np.linspace(0, 1, 9), np.linspace(0, 1, 3)]).data
    assert "<script" in html and "https://" not in html and "<i class=" not in html  # offline, no icon font
    assert "▶" in html and "‖" in html
    assert html.count("data:image/jpeg;base64") == 4  # steps 0, 3, 6 and the last one, 9
    png = plots_pusht.animate_episodes([b], ["short"], every=2, frame_format="png").data
    assert png.count("data:image/png;base64") == 3  # steps 0, 2 and the last one, 3
    with pytest.raises(ValueError, match="one title per episode"):
        plots_pusht.animate_episodes([a], ["x", "y"])
    with pytest.raises(ValueError, match=r"\(n \+ 1, 5\) arrays"):
        plots_pusht.animate_episodes([a[:, :4]], ["x"])
    with pytest.raises(ValueError, match="every must be at least 1"):
        plots_pusht.animate_episodes([a], ["x"], every=0)
    with pytest.raises(ValueError, match="frame_format must be 'jpeg' or 'png'"):
        plots_pusht.animate_episodes([a], ["x"], frame_format="gif")


def test_animation_buttons_are_visible_text_in_a_font_matplotlib_ships():
    """Every control of the player is a non-empty button whose text DejaVu Sans can draw: no Font
    Awesome icon (blank without its stylesheet) and no glyph the fallback fonts lack (an empty box)."""
    import re

    from matplotlib import font_manager, ft2font

    a = np.tile(np.array([100.0, 100.0, 256.0, 256.0, 0.0]), (3, 1))
    html = plots_pusht.animate_episodes([a], ["x"]).data
    assert "fa fa-" not in html and "font-awesome" not in html
    buttons = re.findall(r'<button title="([^"]+)"[^>]*>(.*?)</button>', html, re.S)
    titles = [t for t, _ in buttons]
    assert {"Play", "Pause", "First frame", "Last frame", "Next frame", "Previous frame"} <= set(titles)
    texts = {t: text.strip() for t, text in buttons}
    assert all(texts.values()), f"empty buttons: {[t for t, v in texts.items() if not v]}"
    assert len(set(texts.values())) == len(texts)  # each control can be told apart
    font = ft2font.FT2Font(font_manager.findfont("DejaVu Sans", fallback_to_default=False))
    charmap = font.get_charmap()
    missing = {t: v for t, v in texts.items() if any(ord(ch) not in charmap for ch in v)}
    assert not missing, f"glyphs DejaVu Sans cannot draw (empty boxes on the page): {missing}"
    assert set("".join(texts.values())) <= plots_pusht.BUTTON_GLYPHS
    assert 'font-family: "DejaVu Sans"' in html
    with pytest.raises(ValueError, match="icons offline_buttons does not know"):
        plots_pusht.offline_buttons('<button><i class="fa fa-rocket"></i></button>')


# ---------------------------------------------------------------- a planner started from given noise

def test_planner_sample_from_given_noise():
    model = tiny_policy()
    obs = model.encode_obs(WINDOW).unsqueeze(0).expand(3, -1, -1)
    x = torch.randn(3, 16, 2, generator=torch.Generator().manual_seed(0))
    ode = DiffusionPlanner(model, "ddim", 5, seed=1)
    first = ode.sample(obs, x)
    ode.reset(2)  # the ODE uses no noise but x_T: another generator state changes nothing
    assert torch.equal(ode.sample(obs, x.clone()), first)
    sde = DiffusionPlanner(model, "ddpm", seed=1)
    a, b = sde.sample(obs, x), sde.sample(obs, x)  # the same x_T, fresh noise at every step
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"starting noise x must have shape \(3, 16, 2\)"):
        ode.sample(obs, x[:2])


# ---------------------------------------------------------------- training curves

def test_loss_curve_takes_block_means():
    curve = loss_curve([1.0, 3.0, 2.0, 4.0, 0.0, 0.0], every=2)
    assert curve == {"every": 2, "step": [2, 4, 6], "mean": [2.0, 3.0, 0.0]}
    with pytest.raises(ValueError, match="multiple of every = 4, got 6 losses"):
        loss_curve([1.0] * 6, every=4)
    with pytest.raises(ValueError, match="non-empty"):
        loss_curve([], every=1)


def _run_files(tmp_path, steps=200, last_mean=None):
    history = [float(i % 7) for i in range(steps)]
    state = tmp_path / "run.state.pt"
    torch.save({"step": steps, "history": history}, state)
    meta = {"command": "ddpm-nb train x", "steps": steps, "train": {"batch_size": 8},
            "final_loss_mean_last_100": sum(history[-100:]) / 100 if last_mean is None else last_mean}
    ckpt = tmp_path / "run.pt"
    torch.save({"meta": meta}, ckpt)
    return state, ckpt, history


def test_save_loss_curve_writes_the_checkpoints_run(tmp_path):
    state, ckpt, history = _run_files(tmp_path)
    out = tmp_path / "run.loss.json"
    curve = save_loss_curve(state, ckpt, out, every=50)
    assert json.loads(out.read_text()) == curve
    assert curve["checkpoint_sha256"] == file_sha256(ckpt) and curve["command"] == "ddpm-nb train x"
    assert curve["step"] == [50, 100, 150, 200] and curve["mean"][0] == pytest.approx(np.mean(history[:50]))
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    assert oct(out.stat().st_mode & 0o777) == "0o644"


def test_save_loss_curve_refuses_another_runs_state(tmp_path):
    state, ckpt, _ = _run_files(tmp_path, last_mean=1.5)
    out = tmp_path / "run.loss.json"
    with pytest.raises(ValueError, match="is not the training state of the run that made"):
        save_loss_curve(state, ckpt, out)
    assert not out.exists()


@pytest.mark.parametrize("name", ["pusht", "pusht-bc"])
def test_the_committed_curves_belong_to_the_committed_checkpoints(name):
    curve = read_loss_curve(name)
    ckpt = ROOT / "checkpoints" / f"{name}.pt"
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["meta"]
    assert curve["checkpoint_sha256"] == file_sha256(ckpt)
    assert curve["step"][-1] == meta["steps"] and curve["every"] == 50
    assert np.mean(curve["mean"][-2:]) == pytest.approx(meta["final_loss_mean_last_100"], abs=1e-9)


def test_read_loss_curve_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("DDPM_NB_CHECKPOINTS", str(tmp_path))
    (tmp_path / "MANIFEST.md").write_text("# Checkpoints\n")  # a checkpoints folder without the curves
    with pytest.raises(FileNotFoundError, match="python tools/loss_curve.py pusht"):
        read_loss_curve("pusht")


def test_reproducible_coverage_equals_shapely_near_the_goal():
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    rng = np.random.default_rng(0)
    goal = unary_union([Polygon(p) for p in geometry.tee_polygons(geometry.GOAL_POSE)])
    for _ in range(500):
        pose = np.array(geometry.GOAL_POSE) + rng.normal(0, [15, 15, 0.4])
        block = unary_union([Polygon(p) for p in geometry.tee_polygons(pose)])
        assert geometry.coverage(pose) == pytest.approx(block.intersection(goal).area / goal.area, abs=1e-12)


def test_convex_clipping_and_area():
    square = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    shifted = [(1.0, 1.0), (3.0, 1.0), (3.0, 3.0), (1.0, 3.0)]
    assert geometry.polygon_area(square) == 4.0 and geometry.polygon_area(square[::-1]) == -4.0
    assert abs(geometry.polygon_area(geometry.clip_convex(square, shifted))) == pytest.approx(1.0)
    assert abs(geometry.polygon_area(geometry.clip_convex(shifted[::-1], square))) == pytest.approx(1.0)
    far = [(5.0, 5.0), (6.0, 5.0), (6.0, 6.0)]
    assert geometry.clip_convex(square, far) == []


def test_coverage_is_the_same_bits_in_another_process():
    import subprocess
    import sys

    code = ("import numpy as np; from ddpm_nb.policy import geometry\n"
            "rng = np.random.default_rng(1)\n"
            "print([geometry.coverage(np.array(geometry.GOAL_POSE) + rng.normal(0, [10, 10, 0.3])).hex()"
            " for _ in range(300)])")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1
