"""Progress bars obey TQDM_DISABLE even where tqdm.auto picks the notebook widget (which ignores it),
and `nb.show` displays its code wherever it stands in a cell."""

from __future__ import annotations

import pytest

from ddpm_nb import progress, source


@pytest.mark.parametrize("value, off", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_tqdm_disable_turns_every_bar_off(monkeypatch, value, off):
    monkeypatch.setenv("TQDM_DISABLE", value)
    bar = progress.progress_bar(range(3))
    assert bar.disable is off
    assert list(bar) == [0, 1, 2]
    assert progress.progress_bar(range(3), disable=True).disable


def test_the_notebook_widget_is_disabled_too(monkeypatch):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as notebook_tqdm

    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(progress, "tqdm", notebook_tqdm)  # as tqdm.auto chooses inside a kernel
    assert progress.progress_bar(range(3)).disable
    assert not notebook_tqdm(range(3)).disable  # what a bare tqdm.auto bar would do in a notebook


def test_show_displays_from_anywhere_in_a_cell(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    assert source.show(progress.progress_bar) is None
    assert "def progress_bar" in shown[0].data
    with pytest.raises(ValueError, match="Cannot show the source"):
        source.show(42)
