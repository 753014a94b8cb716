"""Small published checkpoints: weights + config + meta, written atomically, loaded with weights_only=True.

`save_weights` / `load_weights` / `load_or_train` are what the chapters use: the site and CI load the
committed checkpoint; a Colab reader sets TRAIN = True and retrains. Every bad file is one clear error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import pick_device

__all__ = ["save_weights", "load_weights", "load_or_train", "file_sha256", "WEIGHTS_FORMAT"]

WEIGHTS_FORMAT = "ddpm_nb.weights/1"
Tensor = torch.Tensor
PathLike = str | os.PathLike

def _state_mismatch(want: Mapping[str, Tensor], got: Mapping[str, Any]) -> str:
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
# Files: atomic writes, hashes, reading a checkpoint with one clear error.


def file_sha256(path: PathLike) -> str:
    """The sha256 hex digest of a file (what checkpoints/MANIFEST records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_save(obj: Any, path: Path) -> str:
    """torch.save to a temp file in the same folder, then os.replace: never a half-written `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        digest = file_sha256(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return digest


def _read(path: Path, fmt: str, what: str, remedy: str) -> dict[str, Any]:
    """torch.load(weights_only=True) to the CPU; a corrupt or foreign file is one ValueError."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"The {what} {path} is corrupt or truncated ({type(err).__name__}): delete it and {remedy}."
        ) from err
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        tag = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path} is not a {what} (format {tag!r}, expected {fmt!r}): "
                         f"delete it and {remedy}.")
    return obj


# ----------------------------------------------------------------------------------------------
# Published checkpoints: small, config + weights only, loaded with weights_only=True.


def _plain(obj: Any, name: str) -> Any:
    """A JSON round trip of `obj` (tuples become lists), or one ValueError if it is not JSON-able."""
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a plain JSON-able dict (numbers, strings, lists, dicts): "
                         f"{err}.") from err


def _check_expect(source: str, config: Mapping[str, Any], expect: Mapping[str, Any] | None) -> None:
    for key, want in _plain(dict(expect or {}), "expect").items():
        if key not in config or config[key] != want:
            has = f"{key}={config[key]!r}" if key in config else f"no {key!r} in its config"
            raise ValueError(f"{source} has {has} but {key}={want!r} is expected: retrain (TRAIN = True) "
                             "or use a matching checkpoint.")


def save_weights(path: PathLike, model: nn.Module, *, config: dict, meta: dict | None = None) -> str:
    """Write a small checkpoint for publishing (pass the EMA model): its state_dict on the CPU, the
    `config` that rebuilds it, `meta` (command, seconds, steps, ...); atomic. Returns the file's sha256."""
    payload = {
        "format": WEIGHTS_FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": _plain(dict(config), "config"),
        "meta": _plain(dict(meta or {}), "meta"),
    }
    return _atomic_save(payload, Path(path))


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
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: train the model (TRAIN = True) or check the path.")
    ckpt = _read(path, WEIGHTS_FORMAT, "checkpoint", "retrain (TRAIN = True) or restore it with git")
    config = dict(ckpt["config"])
    _check_expect(f"Checkpoint {path}", config, expect)
    model = build_model(dict(config))
    problem = _state_mismatch(model.state_dict(), ckpt["state_dict"])
    if problem:
        raise ValueError(f"Checkpoint {path} does not fit the model built from its config ({problem}): "
                         "retrain (TRAIN = True) or use a matching checkpoint.")
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
    _check_expect("The config to train with", _plain(dict(config), "config"), expect)
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
        raise ValueError(f"train_fn must return the trained model (an nn.Module), "
                         f"got {type(model).__name__}.")
    info.update(meta or {})
    digest = save_weights(path, model, config=config, meta=info)
    print(f"trained in {info['seconds']:.0f} s and saved {path} (sha256 {digest[:12]}…)")
    return model.eval()
