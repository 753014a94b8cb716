"""The book's figures and animations: one style, a few reusable drawings."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch

from .errors import UserError
from .schedules import snr

__all__ = ["PALETTE", "FONT_PT", "use_style", "plot_schedules", "animate_points"]

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


# Points of the figures' text: at the site's 100 dpi and page width, as large as the 16 px body text.
FONT_PT = 12


def use_style() -> None:
    """Apply the book's matplotlib style (called by `setup()`)."""
    mpl.rcParams.update({
        "figure.figsize": (6.4, 4.0),
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "font.size": FONT_PT,
        "axes.titlesize": FONT_PT + 1,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.prop_cycle": mpl.cycler(color=PALETTE),
        "legend.frameon": False,
        "animation.embed_limit": 40.0,  # MB, for to_jshtml animations
    })


def plot_schedules(schedules: dict[str, torch.Tensor], axes=None):
    """Draw ᾱ_t and log SNR against t/T for named ᾱ schedules, each a (T + 1,) tensor."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(7, 3.2))
    for name, ab in schedules.items():
        T = ab.shape[0] - 1
        u = torch.arange(T + 1) / T
        axes[0].plot(u, ab, label=name)
        axes[1].plot(u[1:], torch.log(snr(ab[1:])), label=name)
    axes[0].set(xlabel="t / T", ylabel=r"$\bar\alpha_t$", title="signal kept")
    axes[1].set(xlabel="t / T", ylabel=r"$\log \mathrm{SNR}(t)$", title="signal-to-noise ratio")
    axes[0].legend()
    axes[0].figure.tight_layout()
    return axes


def animate_points(frames: torch.Tensor, titles: list[str], *, lim: float = 3.5,
                   interval: int = 250):
    """An animation of 2-D point clouds, frames (F, N, 2), as HTML (matplotlib's to_jshtml)."""
    from IPython.display import HTML
    from matplotlib import animation

    if frames.dim() != 3 or frames.shape[-1] != 2:
        raise UserError(f"frames must have shape (F, N, 2), got {tuple(frames.shape)}.")
    if len(titles) != frames.shape[0]:
        raise UserError(f"Give one title per frame: {frames.shape[0]} frames, {len(titles)} titles.")
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    scat = ax.scatter(frames[0, :, 0], frames[0, :, 1], s=3, alpha=0.5, color=PALETTE[0])
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    title = ax.set_title(titles[0])

    def draw(i):
        scat.set_offsets(frames[i].numpy())
        title.set_text(titles[i])
        return scat, title

    anim = animation.FuncAnimation(fig, draw, frames=frames.shape[0], interval=interval)
    html = anim.to_jshtml(default_mode="loop")
    plt.close(fig)
    return HTML(html)
