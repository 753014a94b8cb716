"""`ddpm-nb`: the book's command line. Every number the book quotes comes from a command here."""

from __future__ import annotations

import argparse
import glob
import sys

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    import os

    import torch

    from . import __version__
    from .config import is_quick, pick_device

    print(f"ddpm_nb {__version__}, torch {torch.__version__}, device {pick_device()}, "
          f"quick mode {'on' if is_quick() else 'off'}")
    print(f"DDPM_NB_DATA = {os.environ.get('DDPM_NB_DATA', '(not set)')}")
    return 0


def _cmd_student(args: argparse.Namespace) -> int:
    from .student import make_student_edition

    paths = args.notebooks or sorted(glob.glob("notebooks/*.ipynb"))
    if not paths:
        raise ValueError("No notebooks given and none found in ./notebooks: run this in the book's "
                         "folder or name the notebooks.")
    for p in make_student_edition(paths, args.out):
        print(f"wrote {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddpm-nb",
        description="Helper commands of the executable book 'Diffusion models for robotics'.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("info", help="print the version, the device and the data path in use")
    p.set_defaults(run=_cmd_info)
    p = sub.add_parser("student", help="write the student edition (solution cells removed)",
                       description="Write the student edition of the chapters: cells tagged "
                                   "'solution' are removed; exercise stubs and checkers stay.")
    p.add_argument("notebooks", nargs="*", help="notebooks to convert (default: notebooks/*.ipynb)")
    p.add_argument("--out", default="student", help="output folder (default: ./student)")
    p.set_defaults(run=_cmd_student)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as e:
        print(f"ddpm-nb {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
