"""Write checkpoints/NAME.loss.json (the training-loss curve) from checkpoints/NAME.state.pt.

Usage: python tools/loss_curve.py NAME [NAME ...]  (e.g. pusht pusht-bc). The training state is not
committed (it holds the optimiser); its per-update losses are, as block means of 50 updates, so the
chapter can draw the curve. Run it right after `ddpm-nb train NAME`, while the state is that run's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ddpm_nb.checkpoints import save_loss_curve

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2])
        return 2
    for name in argv:
        ckpt = ROOT / "checkpoints"
        curve = save_loss_curve(ckpt / f"{name}.state.pt", ckpt / f"{name}.pt", ckpt / f"{name}.loss.json")
        print(f"wrote checkpoints/{name}.loss.json: {len(curve['step'])} points, "
              f"every {curve['every']} updates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
