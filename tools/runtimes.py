"""Record each chapter's run time from the book's execution cache into checkpoints/runtimes.json.

Usage, after a build that executed the notebooks (nbval in `make test` for quick mode, `make book`
for full mode):  python tools/runtimes.py --mode quick|full [--cache _build/.jupyter_cache]
The time of a chapter is the execution time its cache record holds (nbval's, or the book build's).
The chapters glue these times into their opening (ddpm_nb.prose.glue_runtime).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "checkpoints" / "runtimes.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def cached_times(cache: Path) -> dict[str, float]:
    """Notebook stem -> execution seconds, for every notebook of notebooks/ in the jupyter-cache."""
    from jupyter_cache import get_cache

    times = {}
    for record in get_cache(str(cache)).list_cache_records():
        path = Path(record.uri)
        seconds = (record.data or {}).get("execution_seconds")
        if path.parent.name == "notebooks" and seconds is not None:
            times[path.stem] = float(seconds)
    return times


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["quick", "full"], required=True)
    parser.add_argument("--cache", type=Path, default=ROOT / "_build" / ".jupyter_cache")
    args = parser.parse_args(argv)
    if not args.cache.is_dir():
        print(f"runtimes: no execution cache at {args.cache}: build the book first.")
        return 2
    times = cached_times(args.cache)
    if not times:
        print(f"runtimes: the cache at {args.cache} holds no executed chapter.")
        return 2
    record = json.loads(OUT.read_text(encoding="utf-8")) if OUT.is_file() else {"chapters": {}}
    record["cpu"] = cpu_model()
    for stem, seconds in sorted(times.items()):
        record["chapters"].setdefault(stem, {})[f"{args.mode}_s"] = round(seconds, 1)
        print(f"  {stem:24s} {args.mode}: {seconds:7.1f} s")
    OUT.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"runtimes: wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
