"""Count each chapter's claims in its executed outputs: checked, main, and not checked at this size.

Usage: python tools/claims.py [FOLDER]   (default _build/jupyter_execute/notebooks, which the book
build writes). Prints one line per chapter; exits 1 if a chapter has fewer than three main claims
or no executed notebook is found. `make test` runs it after the site build.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHECKED, MAIN, UNCHECKED = "✓ ", "✓ main claim: ", "not checked at this size"
MIN_MAIN = 3


def count(nb: dict) -> dict[str, int]:
    """Checked claims, main claims among them, and claims not checked at this size, in `nb`'s outputs."""
    lines = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            lines += ("".join(text) if isinstance(text, list) else text).splitlines()
    return {"checked": sum(ln.startswith(CHECKED) for ln in lines),
            "main": sum(ln.startswith(MAIN) for ln in lines),
            "unchecked": sum(ln.startswith("– ") and UNCHECKED in ln for ln in lines)}


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "_build/jupyter_execute/notebooks")
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        print(f"claims: no executed notebook in {folder}: build the book first.")
        return 1
    short = []
    print("claims per chapter (checked, of which main; not checked at this size):")
    for path in paths:
        c = count(json.loads(path.read_text(encoding="utf-8")))
        print(f"  {path.stem:24s} {c['checked']:3d} checked, {c['main']} main; "
              f"{c['unchecked']} not checked at this size")
        if c["main"] < MIN_MAIN:
            short.append(path.stem)
    if short:
        print(f"claims: fewer than {MIN_MAIN} main claims checked in: {', '.join(short)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
