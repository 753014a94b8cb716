"""`ddpm-nb bench noprop`: NoProp-DT against the backprop chain (chapter 6): accuracy, time, memory."""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

import torch

from ..checkpoints import load_weights
from ..config import pick_device
from ..errors import UserError
from ..files import file_sha256
from ..noprop import (
    NOPROP_INFERENCE,
    NoPropDT,
    SavedTensorMeter,
    accuracy,
    load_split,
    noprop_step,
    optimisers,
    predict,
)
from ..progress import progress_bar
from ..recipes import build, checkpoint_path

__all__ = ["bench_noprop", "step_cost", "noprop_accuracies", "checkpoint_accuracy"]


def step_cost(model, x: torch.Tensor, y: torch.Tensor, *, repeats: int = 3, seed: int = 0,
              progress: bool = False) -> dict:
    """What one training step of `model` costs on the batch x (B, 1, 28, 28), y (B,) (chapter 6).

    A NoPropDT takes a `noprop_step` (T block losses, each backward and update, then the output loss);
    any other classifier one cross-entropy forward/backward and AdamW update. The model is copied, so
    the caller's weights stay as they are. Returns seconds_per_step (median of `repeats` steps after a
    warm-up step), saved_bytes_per_step (peak bytes of the tensors saved for backward alive at once,
    `SavedTensorMeter`) and, on CUDA, peak_device_bytes (torch.cuda.max_memory_allocated).
    """
    if repeats < 1:
        raise UserError(f"repeats must be at least 1, got {repeats}.")
    net = copy.deepcopy(model).train()
    device = next(net.parameters()).device
    x, y = x.to(device), y.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    if isinstance(net, NoPropDT):
        opts = optimisers(net, 1e-4, 0.0)

        def step():
            noprop_step(net, opts, x, y, gen)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step():
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: allocations, optimiser state
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, peak = [], 0
    for _ in progress_bar(range(repeats), desc=f"timing {type(net).__name__} steps", disable=not progress):
        sync()
        t0 = time.perf_counter()
        with SavedTensorMeter() as meter:
            step()
        sync()
        times.append(time.perf_counter() - t0)
        peak = max(peak, meter.peak)
    out = {"seconds_per_step": statistics.median(times), "saved_bytes_per_step": peak,
           "batch_size": int(x.shape[0]), "device": str(device)}
    if device.type == "cuda":
        out["peak_device_bytes"] = torch.cuda.max_memory_allocated()
    return out


def noprop_accuracies(model, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0,
                      progress: bool = True) -> dict:
    """Test accuracy of a NoPropDT under each inference: one noisy chain (the paper's), the average of
    p(y|z_T) over 8 chains, and the mean path (no noise). Images x (N, 1, 28, 28), labels y (N,)."""
    device = next(model.parameters()).device
    chains = predict(model, x, noise=True, samples=8, per_chain=True, mean_path=True, progress=progress,
                     generator=torch.Generator(device=device).manual_seed(seed))
    return {"one_chain": accuracy(chains[0], y), "eight_chains": accuracy(chains[:8].mean(0), y),
            "mean_path": accuracy(chains[8], y)}


def checkpoint_accuracy(model, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0,
                        progress: bool = True) -> dict:
    """The accuracy the book reports for a trained chapter-6 classifier on images x (N, 1, 28, 28), labels
    y (N,): a NoPropDT's under NOPROP_INFERENCE (with every inference's, `noprop_accuracies`), any
    other classifier's argmax. Returns {"test_accuracy", and for NoProp "test_accuracy_by_inference",
    "inference"}."""
    if isinstance(model, NoPropDT):
        by = noprop_accuracies(model, x, y, seed=seed, progress=progress)
        return {"test_accuracy_by_inference": by, "test_accuracy": by[NOPROP_INFERENCE],
                "inference": NOPROP_INFERENCE}
    return {"test_accuracy": accuracy(predict(model, x, progress=progress), y)}


def bench_noprop(*, checkpoint: str | None = None, dataset: str = "fashion-mnist", batch_size: int = 128,
                 seed: int = 12345) -> dict:
    """NoProp-DT against the backprop chain, Fashion-MNIST (book split): accuracy of the committed
    checkpoints on the test images, seconds and saved bytes per training step at one batch size."""
    if batch_size < 2:
        raise UserError(f"batch_size (--batch-size) must be at least 2 (batch normalisation), "
                        f"got {batch_size}.")
    x_test, y_test, name = load_split(dataset, "test")
    x_train, y_train, _ = load_split(dataset, "train")
    device = pick_device()
    idx = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))[:batch_size]
    out = {"dataset": name, "split": "test", "test_images": len(y_test),
           "step_batch": f"{batch_size} train images, the same batch for both methods",
           "batch_size": batch_size, "device": str(device), "threads": torch.get_num_threads(),
           "torch": torch.__version__}
    for key, recipe in (("noprop", "noprop"), ("backprop", "noprop-backprop")):
        path = Path(checkpoint) if (checkpoint and key == "noprop") else checkpoint_path(recipe)
        model, _ = load_weights(path, build, expect={"data": "fashion-mnist-labelled"}, map_location=device)
        row = checkpoint_accuracy(model, x_test, y_test, seed=seed)
        row.update(step_cost(model, x_train[idx], y_train[idx], repeats=3, seed=seed, progress=True))
        row.update({"checkpoint": str(path), "checkpoint_sha256": file_sha256(path)})
        out[key] = row
    out["saved_bytes_ratio"] = out["noprop"]["saved_bytes_per_step"] / out["backprop"]["saved_bytes_per_step"]
    return out
