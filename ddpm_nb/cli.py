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


def _write_json(path: str | None, payload: dict) -> None:
    import json
    import os
    import tempfile

    text = json.dumps(payload, indent=2)
    print(text)
    if path:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    import time
    from pathlib import Path

    import torch

    from .config import pick_device
    from .recipes import build, checkpoint_path, get_recipe
    from .train import train
    from .weights import save_weights

    recipe = get_recipe(args.model)
    cfg = recipe.quick if args.quick else recipe.train
    if args.steps is not None:  # a shorter run keeps the warm-up within it
        cfg = dataclasses.replace(cfg, steps=args.steps, warmup=min(cfg.warmup, args.steps // 10))
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else checkpoint_path(recipe.name)
    state = Path(args.state) if args.state else out.with_suffix(".state.pt")
    device = pick_device(args.device)
    torch.manual_seed(cfg.seed)
    model = build(recipe.config)
    print(f"{recipe.name}: {recipe.what}; {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{cfg.steps} steps on {device}")
    t0 = time.time()
    def fit(m, d, c, **kw):  # a recipe may bring its own training loop (NoProp trains block by block)
        return recipe.fit(m, d, c, **kw) if recipe.fit is not None else train(m, recipe.loss(), d, c, **kw)

    result = fit(model, recipe.data(), cfg, device=device, state_path=state, desc=recipe.name)
    meta = {"command": "ddpm-nb " + " ".join(args.argv), "steps": result.steps,
            "seconds": round(result.seconds, 1), "wall_seconds_this_run": round(time.time() - t0, 1),
            "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "train": dataclasses.asdict(cfg), "final_loss_mean_last_100": sum(result.history[-100:]) /
            max(1, len(result.history[-100:]))}
    sha = save_weights(out, result.ema_model.cpu(), config=recipe.config, meta=meta)
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB, sha256 {sha}) after {result.seconds:.0f} s")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    runners = {"elbo": bench.bench_elbo, "images": bench.bench_images, "samplers": bench.bench_samplers}
    runners["noprop"] = bench.bench_noprop
    if args.what not in runners:
        raise ValueError(f"Unknown benchmark {args.what!r}: choose one of {', '.join(runners)}.")
    _write_json(args.json, runners[args.what](args))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.what != "pusht":
        raise ValueError(f"Unknown evaluation {args.what!r}: choose one of pusht.")
    import torch

    from .policy import evaluate_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = evaluate_checkpoint(args.policy, sampler=args.sampler, steps=args.steps, first=args.first,
                                     checkpoint=args.checkpoint, episodes=args.episodes, seed=args.seed,
                                     threads=args.threads)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from e
    _write_json(args.json, {"command": "ddpm-nb " + " ".join(args.argv), **result,
                            "torch": torch.__version__, "threads": torch.get_num_threads()})
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

    p = sub.add_parser("train", help="train one of the book's models and save its checkpoint",
                       description="Train a model of the book (a recipe in ddpm_nb.recipes) and save its "
                                   "EMA weights; resumable: rerun the same command after an interruption.")
    p.add_argument("model", help="ddpm-2d | ddpm-images | fashion-classifier | noprop | noprop-backprop | "
                                 "pusht | pusht-bc")
    p.add_argument("--steps", type=int, help="override the number of training steps")
    p.add_argument("--quick", action="store_true", help="the tiny test-size run")
    p.add_argument("--device", choices=["cuda", "mps", "cpu"], help="default: the best available")
    p.add_argument("--out", help="checkpoint path (default: checkpoints/MODEL.pt)")
    p.add_argument("--state", help="resumable training state (default: next to --out, .state.pt)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(run=_cmd_train)

    p = sub.add_parser("bench", help="measure a number the book quotes and write it as JSON")
    p.add_argument("what", help="elbo | images | samplers | noprop")
    p.add_argument("--json", help="write the result to this file too")
    p.add_argument("--checkpoint", help="checkpoint to evaluate (default: the committed one)")
    p.add_argument("--points", type=int, default=2000, help="fresh data points (elbo, samplers' NLL)")
    p.add_argument("--sigma2", default="beta", help="reverse variance: beta | beta_tilde (elbo)")
    p.add_argument("--samples", type=int, help="generated samples (images: 1000; samplers: 10000)")
    p.add_argument("--sampler", default="ddim", help="ddpm | ddim (images)")
    p.add_argument("--steps", type=int, help="sampler steps (images; default 50 for ddim)")
    p.add_argument("--samplers", help="comma-separated sampler names (samplers; default all)")
    p.add_argument("--nfe", default="5,10,20,50,100,1000", help="network evaluations to try (samplers)")
    p.add_argument("--seeds", type=int, default=5, help="repetitions for the spread (samplers)")
    p.add_argument("--floor-pairs", type=int, default=50,
                   help="pairs of data draws for the data-vs-data floor and its spread (samplers)")
    p.add_argument("--rtol", type=float, default=1e-6, help="ODE solver tolerance for the NLL (samplers)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--dataset", default="fashion-mnist", help="data set (noprop)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch for the step timings (noprop)")
    p.set_defaults(run=_cmd_bench)

    p = sub.add_parser("eval", help="score a trained policy in its environment and write it as JSON",
                       description="Evaluate a PushT policy as Diffusion Policy did: episodes from seeds "
                                   "S .. S+N-1 (S = 100000 for reported numbers), score = mean max reward.")
    p.add_argument("what", help="pusht")
    p.add_argument("--policy", choices=["diffusion", "bc"], default="diffusion",
                   help="diffusion (checkpoints/pusht.pt) or bc, the MSE baseline (checkpoints/pusht-bc.pt)")
    p.add_argument("--sampler", help="diffusion only: ddim (default, 10 steps from step T-1) | ddpm | ...")
    p.add_argument("--steps", type=int, help="sampler steps (ddim default 10; ddpm: all)")
    p.add_argument("--first", type=int, help="step the reverse process starts from (default T-1; ddpm T)")
    p.add_argument("--checkpoint", help="policy checkpoint (default: the committed one)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=100000, help="first episode seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", help="write the result to this file too")
    p.set_defaults(run=_cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except ValueError as e:
        print(f"ddpm-nb {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
