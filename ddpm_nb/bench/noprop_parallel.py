"""`ddpm-nb bench noprop-parallel`: does NoProp's independence of blocks buy wall time? (chapter 6)

In one run, on this machine's CPU: NoProp-DT trained with its blocks split over 1 and 2 worker processes
(`ddpm_nb.noprop.train_noprop_parallel`, one torch thread each), and the same blocks chained and trained
by back-propagation (the `noprop-backprop` recipe) on 1 and 2 torch threads; the same batch size, the
same T blocks, the book's training loop for all four. Each row's time is the wall time of `steps`
training steps after `warmup` steps (process start-up and first-step allocations left out), scaled to
one epoch of the book split's training images. Each row's cores_busy (CPU seconds of its processes over
wall seconds, in the timed span) says whether a second worker or thread got a core of its own: about 2
for 2 workers on 2 free cores; about 1 where they shared one (another job on the machine), so their wall
time could not halve. Beside the rows, the committed checkpoints' test accuracy.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import torch

from ..checkpoints import load_weights
from ..errors import UserError
from ..files import file_sha256
from ..noprop import load_split, train_noprop_parallel
from ..recipes import build, checkpoint_path, get_recipe, train_config
from .noprop import checkpoint_accuracy

__all__ = ["bench_noprop_parallel", "time_noprop", "time_backprop"]

RECIPES = {"noprop": "noprop", "backprop": "noprop-backprop"}


def _check(steps: int, warmup: int, batch_size: int, test_images: int | None) -> None:
    rules = [(steps >= 1, f"steps (--steps) must be at least 1, got {steps}"),
             (warmup >= 1, f"warmup must be at least 1 (a step before timing), got {warmup}"),
             (batch_size >= 2, f"batch_size (--batch-size) must be at least 2 (batch normalisation), "
                               f"got {batch_size}"),
             (test_images is None or test_images >= 1,
              f"test_images (--test-images) must be at least 1, got {test_images}")]
    for ok, message in rules:
        if not ok:
            raise UserError(f"{message}.")


def _config(name: str, steps: int, warmup: int, batch_size: int):
    """The recipe's training config, cut to warmup + steps steps at this batch size, with no saving."""
    return dataclasses.replace(train_config(name, steps=warmup + steps), batch_size=batch_size,
                               ckpt_every=None)


def time_noprop(data: tuple[torch.Tensor, torch.Tensor], *, workers: int, steps: int, warmup: int,
                batch_size: int, seed: int) -> dict:
    """Seconds per step of NoProp-DT (the `noprop` recipe's blocks, fresh weights seeded by `seed`) over
    `steps` steps after `warmup`, its blocks split over `workers` processes; data = (images, labels)."""
    torch.manual_seed(seed)
    model = build(get_recipe(RECIPES["noprop"]).config)
    result = train_noprop_parallel(model, data, _config(RECIPES["noprop"], steps, warmup, batch_size),
                                   workers=workers, timed_from=warmup)
    return {"method": "noprop", "workers": workers, "seconds_per_step": result.timed_seconds / steps,
            "steps_timed": steps, "cores_busy": result.timed_cpu_seconds / result.timed_seconds,
            "blocks_per_worker": result.blocks}


def time_backprop(data: tuple[torch.Tensor, torch.Tensor], *, threads: int, steps: int, warmup: int,
                  batch_size: int, seed: int) -> dict:
    """Seconds per step of the backprop chain (the `noprop-backprop` recipe: its blocks, loss and loop),
    in this process on `threads` torch threads, over `steps` steps after `warmup`."""
    recipe = get_recipe(RECIPES["backprop"])
    torch.manual_seed(seed)
    model = build(recipe.config)
    marks: dict[str, float] = {}

    def clock(done: int, _loss: float) -> None:
        if done == warmup:
            marks["start"], marks["start_cpu"] = time.perf_counter(), time.process_time()

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        recipe.fit(model, data, _config(RECIPES["backprop"], steps, warmup, batch_size), device="cpu",
                   progress=False, callback=clock)
        seconds, cpu = time.perf_counter() - marks["start"], time.process_time() - marks["start_cpu"]
    finally:
        torch.set_num_threads(before)
    return {"method": "backprop", "threads": threads, "seconds_per_step": seconds / steps,
            "steps_timed": steps, "cores_busy": cpu / seconds}


def _accuracies(dataset: str, test_images: int | None, seed: int) -> tuple[dict, dict]:
    """The committed checkpoints' test accuracy (on `test_images` of the test split, seeded; None: all),
    and what was scored."""
    x, y, _ = load_split(dataset, "test")
    if test_images is not None and test_images < len(y):
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:test_images]
        x, y = x[keep], y[keep]
    acc, info = {}, {"test_images": len(y), "checkpoints": {}}
    for key, name in RECIPES.items():
        path = checkpoint_path(name)
        model, _ = load_weights(path, build, expect={"data": "fashion-mnist-labelled"}, map_location="cpu")
        row = checkpoint_accuracy(model, x, y, seed=seed, progress=False)
        acc[key] = row["test_accuracy"]
        info["checkpoints"][key] = {"path": str(path), "sha256": file_sha256(path)}
        if "inference" in row:
            info["inference"] = row["inference"]
    return acc, info


def bench_noprop_parallel(*, steps: int = 20, warmup: int = 2, batch_size: int = 128,
                          dataset: str = "fashion-mnist", seed: int = 12345,
                          test_images: int | None = None) -> dict:
    """Wall time per epoch of NoProp-DT on 1 and 2 workers and of backprop on 1 and 2 threads, same batch
    and blocks, measured in this one run; the committed checkpoints' test accuracy. Rows:
    {"method": "noprop" | "backprop", "workers" | "threads", "seconds_per_epoch", "steps_timed", ...}."""
    _check(steps, warmup, batch_size, test_images)
    x, y, name = load_split(dataset, "train")
    per_epoch = math.ceil(len(y) / batch_size)
    size = {"steps": steps, "warmup": warmup, "batch_size": batch_size, "seed": seed}
    rows = [time_noprop((x, y), workers=w, **size) for w in (1, 2)]
    rows += [time_backprop((x, y), threads=n, **size) for n in (1, 2)]
    for row in rows:
        row["seconds_per_epoch"] = row["seconds_per_step"] * per_epoch
    accuracy, scored = _accuracies(dataset, test_images, seed)
    by = {(r["method"], r.get("workers", r.get("threads"))): r["seconds_per_epoch"] for r in rows}
    net = get_recipe(RECIPES["noprop"]).config["net_config"]
    return {"rows": rows, "test_accuracy": accuracy,
            "ratios": {"noprop_2_workers_over_1": by["noprop", 2] / by["noprop", 1],
                       "noprop_2_workers_over_backprop_2_threads": by["noprop", 2] / by["backprop", 2],
                       "backprop_2_threads_over_1": by["backprop", 2] / by["backprop", 1]},
            "dataset": name, "train_images": len(y), "steps_per_epoch": per_epoch, "batch_size": batch_size,
            "warmup_steps": warmup, "T": net["T"], "width": net["width"], **scored, "seed": seed,
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch": torch.__version__}
