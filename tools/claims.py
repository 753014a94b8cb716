"""Count each chapter's claims in its executed outputs: checked, main, and not checked at this size.

Usage: python tools/claims.py [PATH]   PATH: the book's execution cache (default _build/.jupyter_cache,
where nbval's and the book build's executed chapters are kept) or a folder of executed .ipynb files.
Prints one line per chapter; exits 1 if a chapter has fewer than three main claims or no executed
notebook is found. `make test` runs it after the site build.
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


def executed(path: Path) -> dict[str, dict]:
    """Chapter stem -> executed notebook (JSON), from a jupyter-cache or a folder of .ipynb files."""
    if (path / "global.db").is_file():
        from jupyter_cache import get_cache

        cache = get_cache(str(path))
        return {Path(r.uri).stem: json.loads(json.dumps(cache.get_cache_bundle(r.pk).nb))
                for r in cache.list_cache_records() if Path(r.uri).parent.name == "notebooks"}
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(path.glob("*.ipynb"))}


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "_build/.jupyter_cache")
    chapters = executed(path) if path.is_dir() else {}
    if not chapters:
        print(f"claims: no executed notebook in {path}: build the book first.")
        return 1
    short = []
    print("claims per chapter (checked, of which main; not checked at this size):")
    for stem, nb in sorted(chapters.items()):
        c = count(nb)
        print(f"  {stem:24s} {c['checked']:3d} checked, {c['main']} main; "
              f"{c['unchecked']} not checked at this size")
        if c["main"] < MIN_MAIN:
            short.append(stem)
    if short:
        print(f"claims: fewer than {MIN_MAIN} main claims checked in: {', '.join(short)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
