"""What the benchmarks share: a checkpoint's stored config, a network wrapper that counts calls, and the
store that keeps a long bench's finished rows in its JSON file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..checkpoints import WEIGHTS_FORMAT, remedy
from ..errors import UserError
from ..files import read_torch, write_json

__all__ = ["stored_config", "CountCalls", "RowStore"]


def stored_config(path: Path) -> dict:
    """The config a checkpoint was saved with (read checked, weights_only=True)."""
    return read_torch(path, WEIGHTS_FORMAT, "checkpoint", remedy(path))["config"]


class CountCalls:
    """Wraps a network and counts its batched evaluations: the NFE a sampler really spent."""

    def __init__(self, net):
        self.net, self.calls = net, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.net(x, t)


class RowStore:
    """The finished rows of a long bench, kept in its --json file as they finish (`save`), and found
    again by a rerun with the same settings (`get`), so an interruption or a late error loses nothing.

    out: the --json path (None: nothing is kept); key(row) -> the settings that make a row reusable.
    A file at `out` that is not a bench's JSON is one UserError (it is never overwritten silently).
    """

    def __init__(self, out: str | Path | None, key: Callable[[dict], tuple]):
        self.out, self.key, self.done = (Path(out) if out else None), key, {}
        if self.out is not None and self.out.is_file():
            try:
                rows = json.loads(self.out.read_text(encoding="utf-8")).get("rows", [])
                self.done = {key(r): r for r in rows}
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
                raise UserError(f"{self.out} exists but is not a result this bench wrote ({err}): move it "
                                "away or pass another --json.") from err

    def get(self, key: tuple) -> dict | None:
        return self.done.get(key)

    def save(self, payload: dict) -> None:
        """Write what is measured so far (atomically); a no-op without --json."""
        if self.out is not None:
            write_json(self.out, payload)
