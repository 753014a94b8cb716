"""The book's checkpoints: where they live, weights save/load, load_or_train, loss curves, evaluations.

Small published checkpoints hold weights + config + meta, written atomically and loaded with
weights_only=True. `save_weights` / `load_weights` / `load_or_train` are what the chapters use: the
site and CI load the committed checkpoint; a Colab reader sets TRAIN = True and retrains. Beside each
checkpoint may lie NAME.loss.json (its training-loss curve) and NAME*.eval.json (evaluations written by
`ddpm-nb eval ... --json`). Every bad file is one clear error.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import pick_device
from .errors import UserError
from .files import file_sha256, read_torch, save_torch, write_json
from .names import RECIPES as RECIPE_NAMES

__all__ = ["WEIGHTS_FORMAT", "checkpoint_dir", "save_weights", "load_weights", "load_or_train",
           "state_mismatch", "remedy", "checkpoint_meta", "loss_curve", "save_loss_curve", "read_loss_curve",
           "read_eval", "file_sha256"]

WEIGHTS_FORMAT = "ddpm_nb.weights/1"
Tensor = torch.Tensor
PathLike = str | os.PathLike



def remedy(path: PathLike) -> str:
    """What to do about a missing, corrupt or unfitting checkpoint, true wherever it is read (a chapter,
    the command line): a committed file comes back with git, and every one is remade by a command."""
    name = Path(path).stem
    if name not in RECIPE_NAMES:
        return "pass a checkpoint written by `ddpm-nb train MODEL --out PATH`, or retrain it that way"
    return (f"restore the committed file with `git checkout -- checkpoints/{name}.pt` (or use a fresh "
            f"clone), or retrain it with `ddpm-nb train {name}` (in a chapter: set TRAIN = True)")


def state_mismatch(want: Mapping[str, Tensor], got: Mapping[str, Any]) -> str:
    """Empty if `got` fits `want` (same names, same shapes), else a short description of the misfit."""

    def few(names: list[str]) -> str:
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    shapes = [
        f"{k} is {tuple(got[k].shape) if isinstance(got[k], Tensor) else type(got[k]).__name__} "
        f"in the file but {tuple(want[k].shape)} in the model"
        for k in want
        if k in got and (not isinstance(got[k], Tensor) or got[k].shape != want[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {few(missing)}")
    if unexpected:
        parts.append(f"unexpected {few(unexpected)}")
    if shapes:
        parts.append(f"shape of {few(shapes)}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------
# Published checkpoints: small, config + weights only, loaded with weights_only=True.


def _plain(obj: Any, name: str) -> Any:
    """A JSON round trip of `obj` (tuples become lists), or one ValueError if it is not JSON-able."""
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise UserError(f"{name} must be a plain JSON-able dict (numbers, strings, lists, dicts): "
                        f"{err}.") from err


def _check_expect(source: str, config: Mapping[str, Any], expect: Mapping[str, Any] | None, fix: str) -> None:
    for key, want in _plain(dict(expect or {}), "expect").items():
        if key not in config or config[key] != want:
            has = f"{key}={config[key]!r}" if key in config else f"no {key!r} in its config"
            raise UserError(f"{source} has {has} but {key}={want!r} is expected: {fix}.")


def save_weights(path: PathLike, model: nn.Module, *, config: dict, meta: dict | None = None) -> str:
    """Write a small checkpoint for publishing (pass the EMA model): its state_dict on the CPU, the
    `config` that rebuilds it, `meta` (command, seconds, steps, ...); atomic. Returns the file's sha256."""
    payload = {
        "format": WEIGHTS_FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": _plain(dict(config), "config"),
        "meta": _plain(dict(meta or {}), "meta"),
    }
    return save_torch(payload, Path(path))


def load_weights(
    path: PathLike,
    build_model: Callable[[dict], nn.Module],
    *,
    expect: dict | None = None,
    map_location: str | torch.device | None = None,
) -> tuple[nn.Module, dict]:
    """Rebuild a model from a `save_weights` file: returns (model in eval mode on `map_location`,
    default `pick_device()`; meta). `expect`: config values this caller relies on, checked first."""
    path = Path(path)
    ckpt = read_torch(path, WEIGHTS_FORMAT, "checkpoint", remedy(path))
    config = dict(ckpt["config"])
    _check_expect(f"Checkpoint {path}", config, expect, remedy(path))
    model = build_model(dict(config))
    problem = state_mismatch(model.state_dict(), ckpt["state_dict"])
    if problem:
        raise UserError(f"Checkpoint {path} does not fit the model built from its config ({problem}): "
                        f"{remedy(path)}.")
    model.load_state_dict(ckpt["state_dict"])
    device = torch.device(map_location) if map_location is not None else pick_device()
    return model.to(device).eval(), dict(ckpt["meta"])


def load_or_train(
    path: PathLike,
    build_model: Callable[[dict], nn.Module],
    train_fn: Callable[[], Any],
    *,
    config: dict,
    train: bool = False,
    expect: dict | None = None,
    meta: dict | None = None,
    map_location: str | torch.device | None = None,
) -> nn.Module:
    """Load the committed checkpoint at `path`, or (train=True, or no file) train and save it.

    train_fn() returns the trained EMA model (or a TrainResult, whose ema_model is used); it is
    saved with `config` and meta = {"seconds", "steps" if known, **meta}. Prints one line saying
    which happened. Returns the model in eval mode.
    """
    path = Path(path)
    _check_expect("The config to train with", _plain(dict(config), "config"), expect,
                  "train with the recipe's own config")
    if not train and path.exists():
        model, _ = load_weights(path, build_model, expect=expect, map_location=map_location)
        print(f"loaded {path} (sha256 {file_sha256(path)[:12]}…)")
        return model
    clock = time.perf_counter()
    result = train_fn()
    info: dict[str, Any] = {"seconds": round(time.perf_counter() - clock, 1)}
    model = result
    if hasattr(result, "ema_model"):  # a TrainResult
        model = result.ema_model
        info = {"seconds": round(result.seconds, 1), "steps": result.steps}
    if not isinstance(model, nn.Module):
        raise UserError(f"train_fn must return the trained model (an nn.Module), "
                        f"got {type(model).__name__}.")
    info.update(meta or {})
    digest = save_weights(path, model, config=config, meta=info)
    print(f"trained in {info['seconds']:.0f} s and saved {path} (sha256 {digest[:12]}…)")
    return model.eval()


# ---------------------------------------------------------------------------------------------- where


def checkpoint_dir() -> Path:
    """The book's `checkpoints/` folder: $DDPM_NB_CHECKPOINTS, else the checkout this package runs from,
    else the book folder above the notebooks (cwd/..), else cwd, else the Colab clone (~/ddpm-book)."""
    candidates = [Path(os.environ["DDPM_NB_CHECKPOINTS"])] if os.environ.get("DDPM_NB_CHECKPOINTS") else []
    candidates += [Path(__file__).resolve().parents[1] / "checkpoints", Path.cwd().parent / "checkpoints",
                   Path.cwd() / "checkpoints", Path.home() / "ddpm-book" / "checkpoints"]
    for folder in candidates:
        if (folder / "MANIFEST.md").is_file():
            return folder
    return candidates[0] if os.environ.get("DDPM_NB_CHECKPOINTS") else Path.cwd() / "checkpoints"


def checkpoint_meta(path: PathLike) -> dict:
    """What a checkpoint says about itself: its meta (command, steps, seconds, ...), path, size, sha256."""
    path = Path(path)
    meta = read_torch(path, WEIGHTS_FORMAT, "checkpoint", remedy(path))["meta"]
    return {**meta, "path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


# ---------------------------------------------------------------------------------------------- curves


def loss_curve(history: list[float], every: int = 50) -> dict:
    """Block means of per-update training losses: {"every", "step" (the last update of each block,
    counted from 1), "mean"}; len(history) must be a multiple of `every`."""
    if every < 1 or not history or len(history) % every:
        raise UserError(f"Need a non-empty history whose length is a multiple of every = {every}, "
                        f"got {len(history)} losses.")
    h = torch.tensor(history, dtype=torch.float64).reshape(-1, every)
    return {"every": every, "step": [every * (i + 1) for i in range(h.shape[0])], "mean": h.mean(1).tolist()}


def save_loss_curve(state_path: PathLike, checkpoint: PathLike, out: PathLike, *, every: int = 50) -> dict:
    """Write the training-loss curve of a checkpoint, read from the training state of the run that made it.

    The training state (NAME.state.pt, not committed: it holds the optimiser) keeps every update's loss;
    this writes their block means as a small JSON (NAME.loss.json) next to the checkpoint, with the
    checkpoint's sha256 and command. The state must be that run's: the same number of updates and the
    same mean loss over the last 100 updates as the checkpoint's meta, else UserError. Atomic write.
    """
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    meta = torch.load(checkpoint, map_location="cpu", weights_only=True)["meta"]
    history = [float(v) for v in state["history"]]
    last = sum(history[-100:]) / len(history[-100:]) if history else float("nan")
    if state["step"] != meta["steps"] or len(history) != meta["steps"] or \
            abs(last - meta["final_loss_mean_last_100"]) > 1e-9:
        raise UserError(f"{state_path} is not the training state of the run that made {checkpoint} "
                        f"(steps {state['step']} vs {meta['steps']}, last-100 mean loss {last:.6g} vs "
                        f"{meta['final_loss_mean_last_100']:.6g}).")
    curve = {"checkpoint": f"checkpoints/{Path(checkpoint).name}",
             "checkpoint_sha256": file_sha256(checkpoint), "command": meta["command"],
             "batch_size": meta["train"]["batch_size"],
             "source": f"the per-update training losses kept in {Path(state_path).name}, the training state "
                       f"of that run", **loss_curve(history, every)}
    write_json(out, curve, indent=1)
    return curve


def _read_committed_json(name: str, what: str, remake: str) -> dict:
    """checkpoints/NAME (a JSON file committed beside the checkpoints), read checked."""
    path = checkpoint_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"No {what} at {path}: restore it with `git checkout -- checkpoints/{name}`, "
                                f"or {remake}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}): restore it with `git checkout -- "
                        f"checkpoints/{name}`.") from err


def read_loss_curve(name: str) -> dict:
    """The committed training-loss curve of recipe `name`: checkpoints/NAME.loss.json (`save_loss_curve`)."""
    return _read_committed_json(f"{name}.loss.json", "training curve",
                                f"write it with `python tools/loss_curve.py {name}` after training")


def read_eval(name: str) -> dict:
    """A committed evaluation: checkpoints/NAME.eval.json, as `ddpm-nb eval ... --json` wrote it."""
    return _read_committed_json(f"{name}.eval.json", "evaluation",
                                "rerun the command the MANIFEST lists for it")


def read_runtimes() -> dict:
    """The chapters' measured run times: checkpoints/runtimes.json, as `tools/runtimes.py` wrote it."""
    return _read_committed_json("runtimes.json", "run-time record",
                                "rebuild the book and run `python tools/runtimes.py`")
