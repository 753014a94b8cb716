"""Drawing PushT: the T block, its goal, the agent, demonstration paths and rollouts as animations.

The geometry (the T's two rectangles, the goal pose, coverage) is in `ddpm_nb.policy.geometry`. The
agent is a disc of radius 15. Image coordinates: x to the right, y down (as `env.render()` shows it),
so the axes drawn here have y pointing down.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, Polygon

from ..errors import UserError
from ..plot import PALETTE
from .geometry import AGENT_RADIUS, GOAL_POSE, WORKSPACE, coverage, tee_polygons

__all__ = ["GOAL_POSE", "AGENT_RADIUS", "WORKSPACE", "COLORS", "tee_polygons", "coverage", "draw_scene",
           "workspace_axes", "animate_episodes", "offline_buttons", "BUTTON_GLYPHS"]

COLORS = {"goal": "#b8e6b8", "block": "#778899", "agent": "#4169e1", "path": PALETTE[1]}


def workspace_axes(ax=None, *, size: float = 3.2, ticks: bool = False):
    """An axis showing the 512 x 512 workspace with y pointing down (like the environment's image)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    ax.set(xlim=(0, WORKSPACE), ylim=(WORKSPACE, 0), aspect="equal")
    ax.grid(False)
    for spine in ax.spines.values():  # the workspace is a closed box (the book's style hides two spines)
        spine.set(visible=True, color="#999999", linewidth=0.8)
    if not ticks:
        ax.set(xticks=[], yticks=[])
    return ax


def draw_scene(ax, state: Sequence[float] | np.ndarray | None = None, *, goal: bool = True,
               block_alpha: float = 0.9, agent: bool = True) -> list:
    """Draw the goal (green), the block (grey) and the agent (blue disc) of a PushT state (5,) =
    agent x, y, block x, y, θ on `ax`; state None draws the goal only. Returns the artists."""
    artists = []
    if goal:
        for part in tee_polygons(GOAL_POSE):
            artists.append(ax.add_patch(Polygon(part, closed=True, color=COLORS["goal"], zorder=0)))
    if state is not None:
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (5,):
            raise UserError(f"A PushT state is (agent x, y, block x, y, θ): shape (5,), got {state.shape}.")
        for part in tee_polygons(state[2:5]):
            artists.append(ax.add_patch(Polygon(part, closed=True, color=COLORS["block"], alpha=block_alpha,
                                                zorder=1)))
        if agent:
            artists.append(ax.add_patch(Circle(state[:2], AGENT_RADIUS, color=COLORS["agent"], zorder=3)))
    return artists


def animate_episodes(observations: Sequence[np.ndarray], titles: Sequence[str], *, every: int = 4,
                     coverages: Sequence[np.ndarray] | None = None, width: float = 7.0, dpi: int = 100,
                     interval: int = 120, frame_format: str = "jpeg"):
    """Side-by-side rollouts as one HTML animation (matplotlib's to_jshtml, works offline).

    observations: one (n_i + 1, 5) array per episode (agent x, y, block x, y, θ at each step); every:
    draw every `every`-th step (the last step is always drawn; a finished episode stays on its last
    frame); coverages: optional (n_i,) per episode, shown in the panel's title; width: of the whole
    animation in inches (the panels share it, at most 3.2 inches each; at `dpi` 100 the frames are as
    wide as a static figure of the book and their 12-pt titles as large as its text); frame_format:
    "jpeg" (about half the bytes of "png" for these drawings) or "png". Returns IPython HTML.
    """
    from IPython.display import HTML
    from matplotlib import animation

    obs = [np.asarray(o, dtype=np.float64) for o in observations]
    if not obs or any(o.ndim != 2 or o.shape[1] != 5 or len(o) < 1 for o in obs):
        raise UserError("observations must be a non-empty list of (n + 1, 5) arrays of PushT states.")
    if len(titles) != len(obs):
        raise UserError(f"Give one title per episode: {len(obs)} episodes, {len(titles)} titles.")
    if every < 1:
        raise UserError(f"every must be at least 1, got {every}.")
    if frame_format not in ("jpeg", "png"):
        raise UserError(f"frame_format must be 'jpeg' or 'png', got {frame_format!r}.")
    longest = max(len(o) for o in obs)
    frames = sorted(set(range(0, longest, every)) | {longest - 1})
    panel = min(3.2, width / len(obs))
    fig, axes = plt.subplots(1, len(obs), figsize=(panel * len(obs), panel + 0.6), dpi=dpi, squeeze=False)
    axes = axes[0]

    def draw(k: int):
        for ax, o, name, i in zip(axes, obs, titles, range(len(obs)), strict=True):
            ax.clear()
            workspace_axes(ax)
            step = min(frames[k], len(o) - 1)
            ax.plot(o[: step + 1, 0], o[: step + 1, 1], color=COLORS["path"], lw=1, alpha=0.7, zorder=2)
            draw_scene(ax, o[step])
            cov = ""
            if coverages is not None and step > 0:
                cov = f": {np.asarray(coverages[i])[step - 1]:.0%} covered"
            ax.set_title(f"{name}\nstep {step}{cov}", fontsize=12)
        return []

    draw(0)
    fig.tight_layout()  # after a first drawing, so that the titles are given room
    anim = animation.FuncAnimation(fig, draw, frames=len(frames), interval=interval, blit=False)
    # the frames are saved at savefig.dpi (not the figure's dpi), in animation.frame_format
    with mpl.rc_context({"savefig.dpi": dpi, "animation.frame_format": frame_format}):
        html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(offline_buttons(html))


# matplotlib's player draws its buttons with Font Awesome 4 icons (`<i class="fa fa-play">`) from a CDN,
# which neither an offline page nor the book's theme provides: the buttons come out as empty boxes. Each
# icon becomes text in glyphs that DejaVu Sans has (the font matplotlib ships and most Linux browsers
# fall back to); the media-control symbols U+23EE-23F8 (⏮ ⏸ ⏭) are missing from it and from Liberation
# Sans, and render as empty boxes too.
_ICONS = {"fa fa-minus": "−", "fa fa-fast-backward": "|◀", "fa fa-step-backward": "◁|",
          "fa fa-play fa-flip-horizontal": "◀", "fa fa-pause": "‖", "fa fa-play": "▶",
          "fa fa-step-forward": "|▷", "fa fa-fast-forward": "▶|", "fa fa-plus": "+"}
BUTTON_GLYPHS = frozenset("".join(_ICONS.values()))
_BUTTON_CSS = ('<style>.anim-buttons button {font-family: "DejaVu Sans", "Segoe UI Symbol", sans-serif; '
               'font-size: 15px; line-height: 26px;}</style>')


def offline_buttons(html: str) -> str:
    """An HTML animation from matplotlib's `to_jshtml` without its Font Awesome stylesheet (fetched from a
    CDN): each button's icon becomes text (`BUTTON_GLYPHS`, all in DejaVu Sans), so the player's controls
    are visible with no network and no icon font. Raises if an icon is left (a matplotlib that changed
    its player), rather than leave a button blank."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https://[^"]*font-awesome[^"]*">', "", html)
    for cls, symbol in _ICONS.items():
        html = html.replace(f'<i class="{cls}"></i>', symbol)
    if "<i class=" in html:
        left = sorted(set(re.findall(r'<i class="([^"]*)"', html)))
        raise UserError(f"The animation player has icons offline_buttons does not know: {left}.")
    return html.replace('<div class="animation">', _BUTTON_CSS + '\n<div class="animation">', 1)
