"""`show(fn)`: the highlighted source of a package function, in Jupyter, on Colab and on the site."""

from __future__ import annotations

import inspect

from .errors import UserError

__all__ = ["show"]


def show(obj) -> None:
    """Display the source of a function or class of `ddpm_nb` with syntax highlighting.

    The chapters call the package rather than copy code; `show` lets the reader see it in place. It
    displays (rather than returns) the code, so it shows wherever it stands in a cell, not only last.
    """
    from IPython.display import Code, display

    try:
        src = inspect.getsource(obj)
    except (TypeError, OSError) as e:
        raise UserError(f"Cannot show the source of {obj!r}: pass a Python function or class.") from e
    display(Code(inspect.cleandoc(src) if src.startswith((" ", "\t")) else src, language="python"))
