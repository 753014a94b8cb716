"""`ddpm-nb`: the book's command line. Every number the book quotes comes from a command here.

The parser is built from plain name lists (`ddpm_nb.names`), so `--help` and argument errors never
import torch. Errors a user can fix (`ddpm_nb.errors.UserError`, a missing or unreadable file) end in
one sentence on stderr and exit status 2; Ctrl-C in one sentence and 130; SIGTERM (`kill`, a batch
scheduler, `timeout`) is handled as Ctrl-C is (a training run saves its state), in one sentence and 143;
anything else is a bug and keeps its traceback. Output paths are checked before any work starts.
"""

from __future__ import annotations

import argparse
import glob
import os
import signal
import sys

from . import names

__all__ = ["main", "build_parser"]

EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143


# ---------------------------------------------------------------------------------------------- arguments


def _whole(low: int, what: str):
    """An argparse type: a whole number >= low, or one clear message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{what} must be at least {low}, got {value}")
        return value

    return parse


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"give whole numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"give positive whole numbers separated by commas, got {text!r}")
    return values


def _name_list(choices: tuple[str, ...], what: str):
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in values if v not in choices]
        if not values or unknown:
            bad = ", ".join(unknown) or repr(text)
            raise argparse.ArgumentTypeError(f"unknown {what} {bad}: choose from {', '.join(choices)}")
        return values

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


# ---------------------------------------------------------------------------------------------- commands


def _use_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _device(name: str | None):
    """The device asked for, or the best available; a device that is not there is one sentence."""
    import torch

    from .config import pick_device
    from .errors import UserError

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but this machine has no CUDA GPU that torch can use "
                        "(torch.cuda.is_available() is False): leave --device out to use the best device "
                        "here.")
    mps = getattr(torch.backends, "mps", None)
    if name == "mps" and not (mps is not None and mps.is_available()):
        raise UserError("--device mps was asked for, but Apple's MPS is not available here: leave --device "
                        "out.")
    return pick_device(name)


def _write_json(path: str | None, payload: dict) -> None:
    import json

    from .files import write_json

    if path:
        write_json(path, payload)
    print(json.dumps(payload, indent=2))


def _cmd_info(args: argparse.Namespace) -> int:
    import torch

    from . import __version__
    from .config import is_quick, pick_device

    print(f"ddpm_nb {__version__}, torch {torch.__version__}, device {pick_device()}, "
          f"quick mode {'on' if is_quick() else 'off'}")
    print(f"DDPM_NB_DATA = {os.environ.get('DDPM_NB_DATA', '(not set)')}")
    return 0


def _chapters(args: argparse.Namespace) -> list[str]:
    from .errors import UserError

    paths = args.notebooks or sorted(glob.glob("notebooks/*.ipynb"))
    if not paths:
        raise UserError("No notebooks given and none found in ./notebooks: run this in the book's folder or "
                        "name the notebooks.")
    return paths


def _cmd_student(args: argparse.Namespace) -> int:
    from .student import make_student_edition

    for p in make_student_edition(_chapters(args), args.out):
        print(f"wrote {p}")
    return 0


def _cmd_teacher(args: argparse.Namespace) -> int:
    from .teacher import make_teacher_edition

    for p in make_teacher_edition(_chapters(args), args.out):
        print(f"wrote {p}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    import time
    from pathlib import Path

    import torch

    from .checkpoints import save_weights
    from .files import check_writable
    from .recipes import checkpoint_path, fit, get_recipe, train_config

    recipe = get_recipe(args.model)
    cfg = train_config(args.model, quick=args.quick, steps=args.steps)
    if args.workers is not None:
        _check_workers(args)
    out = check_writable(Path(args.out) if args.out else checkpoint_path(recipe.name), "checkpoint")
    if args.workers is None:
        state = check_writable(Path(args.state) if args.state else out.with_suffix(".state.pt"),
                               "training state")
    else:
        state = Path(args.state) if args.state else out.with_suffix(".workers")
        check_writable(state / "worker0.state.pt", "training state")
    _use_threads(args.threads)
    device = _device(args.device) if args.workers is None else torch.device("cpu")
    print(f"{recipe.name}: {recipe.what}; {cfg.steps} steps on {device}"
          + ("" if args.workers is None else f", its blocks over {args.workers} processes"))
    t0 = time.time()
    if args.workers is None:
        _, result = fit(args.model, cfg, device=device, state_path=state)
    else:
        from .noprop import train_noprop_parallel
        from .recipes import build

        torch.manual_seed(cfg.seed)  # the initial weights, as fit() makes them
        result = train_noprop_parallel(build(recipe.config), recipe.data(), cfg, workers=args.workers,
                                       state_dir=state)
    meta = {"command": "ddpm-nb " + " ".join(args.argv), "steps": result.steps,
            "seconds": round(result.seconds, 1), "wall_seconds_this_run": round(time.time() - t0, 1),
            "device": str(device), "threads": torch.get_num_threads() if args.workers is None else 1,
            "workers": args.workers or 1, "torch": torch.__version__,
            "train": dataclasses.asdict(cfg), "final_loss_mean_last_100": sum(result.history[-100:]) /
            max(1, len(result.history[-100:]))}
    sha = save_weights(out, result.ema_model.cpu(), config=recipe.config, meta=meta)
    params = sum(p.numel() for p in result.ema_model.parameters())
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB, {params:,} parameters, sha256 {sha}) after "
          f"{result.seconds:.0f} s")
    return 0


def _check_workers(args: argparse.Namespace) -> None:
    from .errors import UserError

    if args.model != "noprop":
        raise UserError(f"--workers splits NoProp-DT's blocks over processes (train noprop); {args.model} is "
                        "one network: use --threads.")
    if args.device not in (None, "cpu"):
        raise UserError("--workers trains on the CPU, one thread a process: leave out --device.")
    if args.threads is not None:
        raise UserError("--workers runs one torch thread in each process: leave out --threads.")


# bench NAME -> the keyword arguments of its function, from the parsed arguments
def _seed(args: argparse.Namespace, default: int = 12345) -> int:
    """The bench's --seed, or its own default (the PushT sweep starts at the protocol's seed 100000)."""
    return default if args.seed is None else args.seed


_BENCH_ARGS = {
    "elbo": lambda a: {"checkpoint": a.checkpoint, "points": a.points, "sigma2": a.sigma2, "seed": _seed(a)},
    "images": lambda a: {"checkpoint": a.checkpoint, "samples": a.samples or 1000, "sampler": a.sampler,
                         "steps": a.steps, "seed": _seed(a)},
    "samplers": lambda a: {"checkpoint": a.checkpoint, "samplers": a.samplers, "nfe": a.nfe,
                           "samples": a.samples or 10000, "seeds": a.seeds, "floor_pairs": a.floor_pairs,
                           "points": a.points, "rtol": a.rtol, "seed": _seed(a), "out": a.json},
    "noprop": lambda a: {"checkpoint": a.checkpoint, "dataset": a.dataset, "batch_size": a.batch_size,
                         "seed": _seed(a)},
    "noprop-parallel": lambda a: {"steps": a.steps or 20, "batch_size": a.batch_size, "dataset": a.dataset,
                                  "seed": _seed(a), "test_images": a.test_images},
    "pusht-samplers": lambda a: {"checkpoint": a.checkpoint, "flow_checkpoint": a.flow_checkpoint,
                                 "episodes": a.episodes or 100, "seed": _seed(a, 100000),
                                 "workers": a.workers, "out": a.json},
}


def _cmd_bench(args: argparse.Namespace) -> int:
    from .files import check_writable

    if args.json:
        check_writable(args.json, "--json")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"No checkpoint at {args.checkpoint}: check the --checkpoint path.")
    from .bench import BENCHMARKS

    _write_json(args.json, BENCHMARKS[args.what](**_BENCH_ARGS[args.what](args)))
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from .files import check_writable, write_json

    check_writable(args.json, "--json")
    if args.csv:
        check_writable(args.csv, "--csv")
    from .grading import grade, gradebook_csv

    book = grade(args.submissions, cell_timeout=args.cell_timeout, timeout=args.timeout, workers=args.workers)
    write_json(args.json, {"command": "ddpm-nb " + " ".join(args.argv), **book})
    if args.csv:
        from .files import atomic_open

        with atomic_open(args.csv, "w", encoding="utf-8") as f:
            f.write(gradebook_csv(book))
    for s in book["submissions"]:
        extra = f" (+{s['manual_points']} by hand)" if s["manual_points"] else ""
        print(f"{s['student']}: {s['points']}/{s['max_points']}{extra}  {s['file']}")
    print(f"gradebook: {args.json}" + (f", {args.csv}" if args.csv else ""))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .files import check_writable

    if args.json:
        check_writable(args.json, "--json")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"No checkpoint at {args.checkpoint}: check the --checkpoint path.")
    from .policy import evaluate_checkpoint

    result = evaluate_checkpoint(args.policy, sampler=args.sampler, steps=args.steps, first=args.first,
                                 checkpoint=args.checkpoint, episodes=args.episodes, seed=args.seed,
                                 threads=args.threads, workers=args.workers)
    _write_json(args.json, {"command": "ddpm-nb " + " ".join(args.argv), **result})
    return 0


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddpm-nb",
        description="Helper commands of the executable book 'Diffusion models for robotics'.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("info", help="print the version, the device and the data path in use")
    p.set_defaults(run=_cmd_info)
    for name, run, help, description in (
            ("student", _cmd_student, "write the student edition (solution cells removed)",
             "Write the student edition of the chapters: cells tagged 'solution' are removed; exercise "
             "stubs and checkers stay."),
            ("teacher", _cmd_teacher, "write the teacher's edition (solutions, points, model answers)",
             "Write the teacher's edition: the chapters with their solutions open, each exercise's "
             "points, a model answer and rubric for each think exercise, and TEACHER.md (points, run "
             "times, the course's commands).")):
        p = sub.add_parser(name, help=help, description=description)
        p.add_argument("notebooks", nargs="*", help="chapters to convert (default: notebooks/*.ipynb)")
        p.add_argument("--out", default=name, help=f"output folder (default: ./{name})")
        p.set_defaults(run=run)

    p = sub.add_parser("grade", help="grade students' notebooks into a gradebook (JSON, CSV)",
                       description="Run each submitted notebook (a student-edition chapter, filled in) in a "
                                   "fresh kernel in a temporary folder, score each exercise by its checker "
                                   "and write the gradebook.")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="notebook files, or folders searched for .ipynb files")
    p.add_argument("--json", required=True, help="the gradebook to write (JSON)")
    p.add_argument("--csv", help="the same rows as CSV, one per student and exercise")
    p.add_argument("--cell-timeout", type=_positive_float, default=120.0, metavar="S",
                   help="seconds a cell may run (default 120)")
    p.add_argument("--timeout", type=_positive_float, default=900.0, metavar="S",
                   help="seconds a notebook may run (default 900)")
    p.add_argument("--workers", type=_whole(1, "--workers"), default=1,
                   help="notebooks graded at once, one kernel each (default 1)")
    p.set_defaults(run=_cmd_grade)

    p = sub.add_parser("train", help="train one of the book's models and save its checkpoint",
                       description="Train a model of the book (a recipe in ddpm_nb.recipes) and save its "
                                   "EMA weights; resumable: rerun the same command after an interruption.")
    p.add_argument("model", choices=names.RECIPES, metavar="MODEL", help=" | ".join(names.RECIPES))
    p.add_argument("--steps", type=_whole(1, "--steps"), help="override the number of training steps")
    p.add_argument("--quick", action="store_true", help="the tiny test-size run")
    p.add_argument("--device", choices=names.DEVICES, help="default: the best available")
    p.add_argument("--out", help="checkpoint path (default: checkpoints/MODEL.pt)")
    p.add_argument("--state", help="resumable training state (default: next to --out, .state.pt)")
    p.add_argument("--threads", type=_whole(1, "--threads"), help="torch CPU threads")
    p.add_argument("--workers", type=_whole(1, "--workers"),
                   help="noprop only: split its blocks over this many processes, one thread each "
                        "(block-parallel NoProp-DT, per-block noise; state in OUT's .workers folder)")
    p.set_defaults(run=_cmd_train)

    p = sub.add_parser("bench", help="measure a number the book quotes and write it as JSON")
    p.add_argument("what", choices=names.BENCHMARKS, metavar="BENCHMARK", help=" | ".join(names.BENCHMARKS))
    p.add_argument("--json", help="write the result to this file too")
    p.add_argument("--checkpoint", help="checkpoint to evaluate (default: the committed one)")
    p.add_argument("--points", type=_whole(2, "--points"), default=2000,
                   help="fresh data points (elbo, samplers' NLL)")
    p.add_argument("--sigma2", default="beta", choices=("beta", "beta_tilde"), help="reverse variance (elbo)")
    p.add_argument("--samples", type=_whole(1, "--samples"),
                   help="generated samples (images: 1000; samplers: 10000)")
    p.add_argument("--sampler", default="ddim", choices=("ddpm", "ddim"), help="images")
    p.add_argument("--steps", type=_whole(1, "--steps"),
                   help="sampler steps (images; default 50 for ddim); training steps timed "
                        "(noprop-parallel; default 20)")
    p.add_argument("--samplers", type=_name_list(names.SAMPLERS, "sampler"),
                   help="comma-separated sampler names (samplers; default all): " + ", ".join(names.SAMPLERS))
    p.add_argument("--nfe", type=_int_list, default=[5, 10, 20, 50, 100, 1000],
                   help="network evaluations to try, comma-separated (samplers)")
    p.add_argument("--seeds", type=_whole(2, "--seeds"), default=5,
                   help="repetitions for the spread (samplers)")
    p.add_argument("--floor-pairs", type=_whole(2, "--floor-pairs"), default=50,
                   help="pairs of data draws for the data-vs-data floor and its spread (samplers)")
    p.add_argument("--rtol", type=_positive_float, default=1e-6,
                   help="ODE solver tolerance for the NLL (samplers)")
    p.add_argument("--seed", type=_whole(0, "--seed"),
                   help="random seed (default 12345; pusht-samplers: the first episode seed, 100000)")
    p.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist",),
                   help="data set (noprop, noprop-parallel)")
    p.add_argument("--batch-size", type=_whole(2, "--batch-size"), default=128,
                   help="training batch for the step timings (noprop, noprop-parallel)")
    p.add_argument("--test-images", type=_whole(1, "--test-images"),
                   help="test images the checkpoints are scored on (noprop-parallel; default all)")
    p.add_argument("--episodes", type=_whole(1, "--episodes"), help="episodes a row (pusht-samplers: 100)")
    p.add_argument("--workers", type=_whole(1, "--workers"), default=1,
                   help="processes the episodes are spread over (pusht-samplers)")
    p.add_argument("--flow-checkpoint", help="flow policy checkpoint (pusht-samplers; default "
                                             "checkpoints/pusht-flow.pt where it exists)")
    p.set_defaults(run=_cmd_bench)

    p = sub.add_parser("eval", help="score a trained policy in its environment and write it as JSON",
                       description="Evaluate a PushT policy as Diffusion Policy did: episodes from seeds "
                                   "S .. S+N-1 (S = 100000 for reported numbers), score = mean max reward.")
    p.add_argument("what", choices=names.EVALUATIONS, metavar="ENV", help=" | ".join(names.EVALUATIONS))
    p.add_argument("--policy", choices=names.POLICIES, default="diffusion",
                   help="diffusion (checkpoints/pusht.pt), flow, its flow-matching twin "
                        "(checkpoints/pusht-flow.pt), or bc, the MSE baseline (checkpoints/pusht-bc.pt)")
    p.add_argument("--sampler", choices=names.SAMPLERS,
                   help="diffusion: dpm_solver (default, 5 steps from step T-1) | ddim | ddpm | ...")
    p.add_argument("--steps", type=_whole(1, "--steps"),
                   help="sampler steps (dpm_solver default 5, ddim 10, flow 10; ddpm: all)")
    p.add_argument("--first", type=_whole(1, "--first"),
                   help="step the reverse process starts from (default T-1; ddpm T)")
    p.add_argument("--checkpoint", help="policy checkpoint (default: the committed one)")
    p.add_argument("--episodes", type=_whole(1, "--episodes"), default=50)
    p.add_argument("--seed", type=_whole(0, "--seed"), default=100000, help="first episode seed")
    p.add_argument("--threads", type=_whole(1, "--threads"), default=1,
                   help="torch CPU threads per process (default 1)")
    p.add_argument("--workers", type=_whole(1, "--workers"), default=1,
                   help="processes the episodes are spread over (default 1); per-episode results are the "
                        "same for any number")
    p.add_argument("--json", help="write the result to this file too")
    p.set_defaults(run=_cmd_eval)
    return parser


def _fail(command: str, message: str, status: int) -> int:
    print(f"ddpm-nb {command}: {message}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)  # argparse prints its usage and a one-line message
    except SystemExit as done:  # --help (0) or a bad argument (2): returned, so main() never exits itself
        return int(done.code or 0)
    args.argv = argv
    from .errors import UserError

    terminated = []
    previous = _catch_sigterm(terminated)
    try:
        return args.run(args)
    except UserError as err:
        return _fail(args.command, str(err), EXIT_USAGE)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as err:
        # ours carry a whole sentence; the operating system's a reason and a file name
        message = f"{err.strerror}: {err.filename}." if err.filename else str(err)
        return _fail(args.command, message, EXIT_USAGE)
    except KeyboardInterrupt as err:
        what = str(err) or "interrupted; nothing was written"
        if terminated:
            return _fail(args.command, f"stopped by SIGTERM: {what}", EXIT_TERMINATED)
        return _fail(args.command, what, EXIT_INTERRUPTED)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _catch_sigterm(seen: list):
    """Make SIGTERM raise KeyboardInterrupt, as Ctrl-C does, so that a training run killed politely saves
    its state; only where nobody else handles it (the default handler, in the main thread). Returns
    the handler to put back, or None."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def on_term(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, on_term)


if __name__ == "__main__":
    sys.exit(main())
