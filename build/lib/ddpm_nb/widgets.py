"""ipywidgets explorers. Each also leaves a static figure, so the rendered site shows something."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from .plot import plot_schedules
from .schedules import SCHEDULES, alpha_bar, beta_schedule

__all__ = ["schedule_explorer"]


class _LiveWidget:
    """Shows the widget where a live kernel renders it, and a one-line note on a static page."""

    def __init__(self, widget, note: str):
        self.widget, self.note = widget, note

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.note
        return bundle


def _draw(kind: str, T: int, beta_start: float, beta_end: float) -> None:
    ab = {f"{kind}, T={T}": alpha_bar(beta_schedule(kind, T, beta_start=beta_start, beta_end=beta_end))}
    if kind != "linear":
        ab["linear (reference)"] = alpha_bar(beta_schedule("linear", T))
    plot_schedules(ab)
    plt.show()


def schedule_explorer(kind: str = "linear", T: int = 1000, beta_range: tuple[float, float] = (1e-4, 0.02)):
    """Interactive ᾱ_t and SNR for a schedule (kind, T, β range; the range applies to 'linear').

    Draws the default setting as a static figure first, then returns the live controls.
    """
    import ipywidgets as w

    _draw(kind, T, *beta_range)
    lo, hi = (math.log10(b) for b in beta_range)
    controls = w.interactive(
        lambda kind, T, log10_beta: _draw(kind, T, 10 ** log10_beta[0], 10 ** log10_beta[1]),
        kind=w.Dropdown(options=list(SCHEDULES), value=kind, description="schedule"),
        T=w.IntSlider(value=T, min=10, max=2000, step=10, description="T"),
        log10_beta=w.FloatRangeSlider(value=(lo, hi), min=-5, max=-0.5, step=0.1,
                                      description="log10 β", readout_format=".1f"),
    )
    return _LiveWidget(controls, "[Interactive schedule explorer: open this chapter in Jupyter or "
                                 "Colab to move the sliders; the figure above shows the default.]")
