"""Block-parallel NoProp-DT: the T blocks split over worker processes, each worker training its blocks on
the same minibatch stream (Li, Teh & Pascanu 2025, sec. 3: no block needs another block's output or
gradient at training time, so blocks can be trained at the same time).

How it stays equal to one process (to float round-off; in practice bit for bit):
- every worker starts from the same initial weights (the caller's model, sent to each worker);
- every worker runs the book's loop `ddpm_nb.train.train` with the same cfg.seed, so its data
  generator draws the same batches in the same order in every worker;
- each block draws its noise from a generator of its own (`block_generators`, per_block_noise=True),
  seeded from one draw per step of the loop's noise generator and the block's index, so block t's noise
  does not depend on which other blocks its worker trains;
- each worker runs torch on one thread, so a block's arithmetic is the same whichever worker runs it.

The shared classifier head p(y|z_T) is trained by one worker, the last, on the output loss (with the
KL of z_0), beside its blocks: with one-hot class embeddings (the book's choice, a fixed buffer) the
head's loss reads only the head, the labels and its own noise, and no block's loss reads the head, so
nothing is exchanged between workers during training. A learned embedding W_embed takes gradients from
every block's loss at every step (see `NoPropDT`), which would need the workers to exchange it every step:
it is refused with a UserError. After training, each block's weights and EMA are taken from the worker
that trained it (the head's from the last) and gathered into one model; `save_weights` on its EMA model
writes a checkpoint the book's loaders read like any other. CPU processes only (spawned).
"""

from __future__ import annotations

import copy
import io
import math
import multiprocessing as mp
import os
import queue as queue_module
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..train import TrainConfig, TrainResult, train
from .model import NoPropDT
from .step import noprop_training

__all__ = ["split_blocks", "train_noprop_parallel", "ParallelResult"]

Tensor = torch.Tensor


def split_blocks(T: int, workers: int) -> list[list[int]]:
    """The indices each worker trains: 1..T in contiguous, near-equal runs (the first workers get one
    more where T does not divide), and T + 1 (the classifier head) with the last worker."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be a whole number, at least 1, got {workers!r}.")
    if workers > T:
        raise UserError(f"workers must be at most the number of blocks (T = {T}), got {workers}: each worker "
                        "trains at least one block.")
    base, extra = divmod(T, workers)
    runs, start = [], 1
    for w in range(workers):
        n = base + (w < extra)
        runs.append(list(range(start, start + n)))
        start += n
    runs[-1].append(T + 1)
    return runs


@dataclass
class ParallelResult(TrainResult):
    """`TrainResult` (the gathered model and EMA model, the mean block loss per step, the longest worker's
    training seconds) plus blocks (each worker's indices) and timed_seconds: wall time from the moment
    every worker had finished step `timed_from` to the moment the last one finished (None: not timed);
    timed_cpu_seconds: the CPU time the workers' processes spent in that span, summed (time.process_time),
    so timed_cpu_seconds / timed_seconds is how many cores they kept busy."""

    blocks: list[list[int]]
    timed_seconds: float | None
    timed_cpu_seconds: float | None


def _owns(name: str, chosen: list[int], T: int) -> bool:
    """Whether the state_dict entry `name` belongs to one of the chosen blocks (T + 1: the head)."""
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1 in chosen
    return name.startswith("head.") and T + 1 in chosen


def _to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _train_blocks(rank: int, job: dict, barrier) -> dict:
    """Train `job["blocks"]` with the book's loop on one torch thread: their weights and EMA, the losses,
    the clock at the end of step `timed_from` (once every worker reached it: `barrier`) and at the end."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = NoPropDT(**job["net_config"])
        model.load_state_dict(job["init"])
        chosen, timed_from, marks = job["blocks"], job["timed_from"], {}
        factory, step = noprop_training(model, chosen, per_block_noise=True)

        def callback(done: int, _loss: float) -> None:
            if done == timed_from:
                if barrier is not None:
                    barrier.wait(timeout=600)
                marks["start"], marks["start_cpu"] = time.perf_counter(), time.process_time()

        result = train(model, None, job["data"], job["cfg"], device="cpu", state_path=job["state_path"],
                       desc=f"noprop worker {rank}", progress=False, step=step, optimizers=factory,
                       callback=callback if timed_from is not None else None)
        marks["end"], marks["end_cpu"] = time.perf_counter(), time.process_time()
    finally:
        torch.set_num_threads(threads)
    own = {key: {k: v.clone() for k, v in m.state_dict().items() if _owns(k, chosen, model.T)}
           for key, m in (("model", result.model), ("ema", result.ema_model))}
    return {**own, "history": result.history, "seconds": result.seconds, "steps": result.steps,
            "marks": marks}


def _worker(rank: int, job: dict, barrier, results) -> None:
    """A spawned worker: `_train_blocks`, its result sent back as bytes (or its error, as a string)."""
    try:
        results.put((rank, None, _to_bytes(_train_blocks(rank, job, barrier))))
    except KeyboardInterrupt as err:  # Ctrl-C: the loop saved this worker's state; say where it stopped
        barrier.abort()
        results.put((rank, "interrupted", str(err)))
    except BaseException as err:  # the parent re-raises it; the other workers must not wait for this one
        barrier.abort()
        kind = "user" if isinstance(err, UserError) else "".join(traceback.format_exception(err))
        results.put((rank, kind, str(err)))


def _collect(procs: list, results, workers: int) -> dict[int, dict]:
    """Each worker's message; a worker's error (or death without a message) is raised here."""
    got: dict[int, dict] = {}
    while len(got) < workers:
        try:
            rank, kind, payload = results.get(timeout=1.0)
        except queue_module.Empty:
            dead = [r for r, p in enumerate(procs) if r not in got and p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"NoProp worker {dead[0]} died (exit code {procs[dead[0]].exitcode}) "
                                   "without a result.") from None
            continue
        if kind == "interrupted":
            raise KeyboardInterrupt(payload)
        if kind == "user":
            raise UserError(payload)
        if kind is not None:
            raise RuntimeError(f"NoProp worker {rank} failed: {payload}\n{kind}")
        got[rank] = torch.load(io.BytesIO(payload), weights_only=True)
    return got


def _check(model: NoPropDT, cfg: TrainConfig, timed_from: int | None) -> None:
    if not isinstance(model, NoPropDT):
        raise UserError(f"train_noprop_parallel trains a NoPropDT, got {type(model).__name__}.")
    if model.kind != "onehot":
        raise UserError("Block-parallel training needs fixed one-hot class embeddings (embed='onehot'): a "
                        "learned embedding takes gradients from every block at every step, so workers would "
                        "have to exchange it; train it in one process with train_noprop.")
    if timed_from is not None and not 1 <= timed_from < cfg.steps:
        raise UserError(f"timed_from must lie in 1..steps-1 = 1..{cfg.steps - 1} (the warm-up steps before "
                        f"timing), got {timed_from}.")


def train_noprop_parallel(model: NoPropDT, data: tuple[Tensor, Tensor], cfg: TrainConfig, *,
                          workers: int = 2, state_dir: str | Path | None = None,
                          timed_from: int | None = None) -> ParallelResult:
    """Train NoProp-DT with its T blocks split over `workers` spawned processes (one torch thread each, on
    the CPU; workers=1: this process, on one thread), each running `ddpm_nb.train.train` on the same
    batches of data = (images (N, 1, 28, 28), labels (N,)); the head trains in the last worker (see the
    module's docstring). Returns the weights gathered into `model` (in place) and an EMA copy, as
    `train_noprop` gives them with per-block noise, the same for any number of workers.
    state_dir: each worker's resumable training state (one file each). timed_from: time the steps after
    it (see `ParallelResult.timed_seconds`)."""
    _check(model, cfg, timed_from)
    runs = split_blocks(model.T, workers)
    net_config = dict(model.net_config)
    init = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if state_dir is not None:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
    folder = None if state_dir is None else Path(state_dir)
    jobs = [{"net_config": net_config, "init": init, "data": tuple(data), "cfg": cfg, "blocks": chosen,
             "state_path": None if folder is None else folder / f"worker{r}-of-{workers}.state.pt",
             "timed_from": timed_from} for r, chosen in enumerate(runs)]
    if workers == 1:  # nothing to run beside it: this process, on one thread
        return _gather(model, init, runs, {0: _train_blocks(0, jobs[0], None)}, timed_from)
    ctx = mp.get_context("spawn")  # a forked torch may hang
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, job, barrier, results), daemon=True)
             for r, job in enumerate(jobs)]
    try:
        for p in procs:
            p.start()
        got = _collect(procs, results, workers)
    except KeyboardInterrupt:  # Ctrl-C (every worker got it too) or SIGTERM to this process (pass it on)
        for p in procs:
            if p.is_alive():
                _interrupt(p)
        for p in procs:
            p.join(timeout=120)
        where = ("no state folder was asked for, so nothing is saved" if folder is None else
                 f"each worker saved its state in {folder}: rerun the same command to resume")
        raise KeyboardInterrupt(f"interrupted; {where}") from None
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join()
    return _gather(model, init, runs, got, timed_from)


def _interrupt(proc) -> None:
    """SIGINT to a worker, so that its training loop saves its state and stops."""
    try:
        os.kill(proc.pid, signal.SIGINT)
    except ProcessLookupError:  # it ended meanwhile
        pass


def _gather(model: NoPropDT, init: dict, runs: list[list[int]], got: dict[int, dict],
            timed_from: int | None) -> ParallelResult:
    """One model (and one EMA model) from the workers' blocks; the mean block loss of every step."""
    weights, ema = dict(init), dict(init)
    for rank in range(len(runs)):
        weights.update(got[rank]["model"])
        ema.update(got[rank]["ema"])
    model.cpu().load_state_dict(weights)
    ema_model = copy.deepcopy(model)
    ema_model.load_state_dict(ema)
    inner = [len([t for t in run if t <= model.T]) for run in runs]
    steps = len(got[0]["history"])
    history = [math.fsum(n * got[r]["history"][i] for r, n in enumerate(inner)) / model.T
               for i in range(steps)]
    timed = cpu = None
    marks = [got[r]["marks"] for r in range(len(runs))]
    if timed_from is not None and all("start" in m for m in marks):  # (a resumed run may start past it)
        timed = max(m["end"] for m in marks) - min(m["start"] for m in marks)
        cpu = math.fsum(m["end_cpu"] - m["start_cpu"] for m in marks)
    return ParallelResult(model=model, ema_model=ema_model.eval(), history=history,
                          seconds=max(got[r]["seconds"] for r in got), steps=got[0]["steps"], blocks=runs,
                          timed_seconds=timed, timed_cpu_seconds=cpu)
