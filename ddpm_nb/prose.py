"""`glue(name, value)`: hand a computed number to the prose, so no sentence can drift from its cell.

The chapter's markdown cites it as ``{glue:text}`name:.3f` `` (myst-nb's glue roles); the site build
fills it in from the executed notebook. `glue` writes the output myst-nb reads (a display whose mime
types carry the prefix `application/papermill.record/`, with `scrapbook` metadata naming the value)
itself: importing `myst_nb.glue` costs about 2 s in every kernel (it loads nbformat's JSON-schema
checks), and a Colab kernel has no myst-nb. Outside IPython it does nothing.
"""

from __future__ import annotations

import numbers

from .errors import UserError

__all__ = ["runtime_words", "glue", "glue_runtime", "duration"]


def glue(name: str, value) -> None:
    """Record `value` (a number, or a string) under `name` for the chapter's prose; display nothing."""
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"A glue name is letters, digits, '_' or '-', got {name!r}.")
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()  # a 0-d tensor or NumPy scalar becomes a Python number
    if not isinstance(value, (numbers.Real, str)):
        raise UserError(f"glue({name!r}, ...) takes a number or a string, got {type(value).__name__}.")
    from IPython import get_ipython

    if get_ipython() is None:
        return
    from IPython.core.formatters import format_display_data

    bundle, metadata = format_display_data(value)
    metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
    _display({GLUE_PREFIX + mime: data for mime, data in bundle.items()}, raw=True, metadata=metadata)


GLUE_PREFIX = "application/papermill.record/"  # what myst-nb's glue roles look for in an output


def _display(*args, **kwargs) -> None:
    from IPython.display import display

    display(*args, **kwargs)


def duration(seconds: float) -> str:
    """A run time as a reader says it: '40 s', '3 min', '1 h 10 min'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def runtime_words(chapter: str) -> dict[str, str]:
    """A chapter's measured run times, in words: runtime_quick, runtime_full, runtime_cpu, runtime_gpu.

    chapter: the notebook's stem, e.g. "03_ddpm". The times come from checkpoints/runtimes.json
    (written by tools/runtimes.py from the book's execution cache); a mode never measured says so.
    """
    from .checkpoints import read_runtimes

    record = read_runtimes()
    times = record.get("chapters", {}).get(chapter)
    if times is None:
        raise UserError(f"checkpoints/runtimes.json has no chapter {chapter!r}: "
                        f"it lists {sorted(record.get('chapters', {}))}.")
    cpu = record.get("cpu") or "this project's CPU"
    return {
        "runtime_quick": f"{duration(times['quick_s'])} in quick mode" if times.get("quick_s")
        else "not yet measured in quick mode",
        "runtime_full": f"{duration(times['full_s'])} in full mode" if times.get("full_s")
        else "not yet measured in full mode",
        "runtime_cpu": cpu,
        "runtime_gpu": f"{duration(times['gpu_s'])} in full mode on a GPU ({record.get('gpu')})"
        if times.get("gpu_s") else "not measured on a GPU",
    }


def glue_runtime(chapter: str) -> dict[str, str]:
    """Glue `runtime_quick`, `runtime_full`, `runtime_cpu` and `runtime_gpu` (`runtime_words`)."""
    words = runtime_words(chapter)
    for name, text in words.items():
        glue(name, text)
    return words
