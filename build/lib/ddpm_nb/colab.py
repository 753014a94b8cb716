"""The Colab bootstrap: the first code cell of every chapter.

On Colab it clones the book and installs `ddpm_nb` (a plain `pip install` of the clone, not `-e`,
so the package is importable without restarting the runtime); anywhere else it does nothing.
The text is generated here, once; `tools/sync_bootstrap.py` writes it into every notebook and
a test checks that every notebook carries it with the repository URL of `_config.yml`.
"""

from __future__ import annotations

from .errors import UserError

__all__ = ["BOOTSTRAP_FIRST_LINE", "bootstrap_source"]

BOOTSTRAP_FIRST_LINE = "# Colab bootstrap: on Google Colab, install the book's helper package ddpm_nb."


def bootstrap_source(repo_url: str) -> str:
    """The source of the bootstrap cell for a book published at `repo_url`."""
    if not repo_url.startswith(("https://", "http://")):
        raise UserError(f"The repository URL must be an https:// URL, got {repo_url!r}.")
    return f'''{BOOTSTRAP_FIRST_LINE}
# Anywhere else this cell does nothing: install locally with `pip install -e .` (see the README).
import importlib, os, subprocess, sys
BOOK_REPO = "{repo_url}"  # must equal repository.url in _config.yml
if "google.colab" in sys.modules or os.environ.get("DDPM_NB_BOOTSTRAP") == "1":
    src = os.environ.get("DDPM_NB_BOOTSTRAP_FROM", BOOK_REPO)
    dest = os.path.expanduser("~/ddpm-book")
    if not os.path.isdir(dest):
        subprocess.run(["git", "clone", "--depth", "1", src, dest], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", dest], check=True)
    importlib.invalidate_caches()'''
