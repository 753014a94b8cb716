"""Write the Colab bootstrap cell (from ddpm_nb.colab) into every notebook, with _config.yml's URL.

Usage: python tools/sync_bootstrap.py [--check]. With --check, change nothing and exit 1 if a
notebook is out of date. Run it after changing repository.url in _config.yml.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from ddpm_nb.colab import BOOTSTRAP_FIRST_LINE, bootstrap_source

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    want = bootstrap_source(url)
    stale = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = next(c for c in nb["cells"] if c["cell_type"] == "code")
        if not "".join(first["source"]).startswith(BOOTSTRAP_FIRST_LINE):
            print(f"{path.name}: the first code cell is not the Colab bootstrap; fix it by hand.")
            return 1
        if "".join(first["source"]) != want:
            stale.append(path.name)
            if "--check" not in argv:
                lines = want.split("\n")
                first["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
                path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(("out of date: " if "--check" in argv else "updated: ") + (", ".join(stale) or "none"))
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
