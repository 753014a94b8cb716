"""Progress bars: the one `progress_bar(...)` every loop a reader waits for goes through.

`tqdm.auto` picks the notebook widget in a kernel, and that widget ignores TQDM_DISABLE (measured:
only tqdm.std honours it), so a page built with TQDM_DISABLE=1 would still carry frozen "0%" bars.
`progress_bar` passes `disable=` explicitly: off when the caller says so, or when TQDM_DISABLE is set (what
`make book` and the notebook test do), live everywhere else (Jupyter, Colab, a terminal).
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm

__all__ = ["progress_bar", "bars_disabled"]


def bars_disabled() -> bool:
    """True when TQDM_DISABLE asks for no progress bars (any value but '', 0, false, no, off)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no", "off")


def progress_bar(iterable=None, *, disable: bool = False, **kw) -> tqdm:
    """tqdm.auto.tqdm(iterable, **kw), disabled when `disable` is true or TQDM_DISABLE is set."""
    return tqdm(iterable, disable=disable or bars_disabled(), **kw)
