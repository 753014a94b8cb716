"""`glue(name, value)`: hand a computed number to the prose, so no sentence can drift from its cell.

The chapter's markdown cites it as ``{glue:text}`name:.3f` `` (myst-nb's glue roles); the site build
fills it in from the executed notebook. Where myst-nb is not installed (a Colab kernel), `glue`
does nothing and the markdown keeps the role's text.
"""

from __future__ import annotations

import numbers

from .errors import UserError

__all__ = ["glue"]


def glue(name: str, value) -> None:
    """Record `value` (a number, or a string) under `name` for the chapter's prose; display nothing."""
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"A glue name is letters, digits, '_' or '-', got {name!r}.")
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()  # a 0-d tensor or NumPy scalar becomes a Python number
    if not isinstance(value, (numbers.Real, str)):
        raise UserError(f"glue({name!r}, ...) takes a number or a string, got {type(value).__name__}.")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=False)
