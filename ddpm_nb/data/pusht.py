"""The PushT demonstrations of Diffusion Policy (Chi et al., RSS 2023), windows and normaliser.

The data are the official `pusht_cchi_v7_replay.zarr` as released: a zarr v2 store (one folder per
array, a `.zarray` JSON header, blosc-compressed chunks), read here by a few lines of our own
(`read_zarr_array`) instead of the full `zarr` package. It is looked for in, in order:
<root>/pusht/pusht_cchi_v7_replay.zarr for each root in DDPM_NB_DATA, <cache>/pusht/..., and the
official archive `pusht.zip` downloaded into the cache. No checksum is published for the archive, so a
store is accepted only if its structure is the released one (`verify_store`).

A training example is a window of the policy's horizons (Chi et al. 2023, sec. 3.1 and fig. 3):
T_o = 2 observations, T_p = 16 predicted actions starting at the first observation, of which T_a = 8
are executed from the current (last observed) step on. Windows are cut inside one episode and padded
at its edges by repeating the first or last step (`window_index`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .cache import CorruptDownload, DatasetUnavailable, cache_dir, data_roots
from .cache import download as _download

__all__ = [
    "STORE_NAME", "URLS", "OFFICIAL_SIZE", "OBS_HORIZON", "PRED_HORIZON", "ACTION_HORIZON", "VAL_EVERY",
    "PushTData", "read_zarr_array", "verify_store", "read_store", "load_pusht", "split_episodes",
    "window_index", "make_windows", "MinMax", "FEATURES", "state_features",
]

STORE_NAME = "pusht_cchi_v7_replay.zarr"
# The official archive (tests point this at a local server).
URLS = ("https://diffusion-policy.cs.columbia.edu/data/training/pusht.zip",)
ARCHIVE_NAME = "pusht.zip"
OFFICIAL_SIZE = {"steps": 25650, "episodes": 206}  # the released store (tests shrink it for their archives)
OBS_HORIZON, PRED_HORIZON, ACTION_HORIZON = 2, 16, 8  # T_o, T_p, T_a of Chi et al. 2023 (PushT, state)
FEATURES = {"state": 5, "sincos": 6}  # observation features -> their width (see state_features)
VAL_EVERY = 10  # episode i is held out for validation when i % VAL_EVERY == VAL_EVERY - 1

# array path -> (shape after the first dimension, dtype); keypoint is read when present
ARRAYS = {"data/state": ((5,), "<f4"), "data/action": ((2,), "<f4"), "meta/episode_ends": ((), "<i8")}
OPTIONAL = {"data/keypoint": ((9, 2), "<f4")}


@dataclass(frozen=True)
class PushTData:
    """The PushT demonstrations, all episodes end to end.

    state: (N, 5) float32, agent x, y, block x, y (pixels of the 512 x 512 workspace), block angle (rad).
    action: (N, 2) float32, the commanded agent target x, y. keypoint: (N, 9, 2) float32 or None.
    episode_ends: (E,) int64, the exclusive end row of each episode. source: where it was read.
    """

    state: torch.Tensor = field(repr=False)
    action: torch.Tensor = field(repr=False)
    episode_ends: torch.Tensor = field(repr=False)
    source: str
    keypoint: torch.Tensor | None = field(default=None, repr=False)

    @property
    def episodes(self) -> int:
        return int(self.episode_ends.shape[0])

    def episode(self, i: int) -> slice:
        """Rows of episode i."""
        start = int(self.episode_ends[i - 1]) if i > 0 else 0
        return slice(start, int(self.episode_ends[i]))


# ---------------------------------------------------------------- a zarr v2 reader for this store

def _decode_chunk(raw: bytes, compressor: dict | None, path: Path) -> bytes:
    if compressor is None:
        return raw
    if compressor.get("id") != "blosc":
        raise ValueError(f"{path.parent} uses the compressor {compressor.get('id')!r}; this reader knows "
                         "only blosc (the one the released PushT store uses).")
    try:
        import blosc
    except ImportError as err:
        raise ImportError("Reading PushT needs the blosc package: pip install blosc") from err
    try:
        return blosc.decompress(raw)
    except Exception as err:  # blosc raises several types for damaged data
        raise ValueError(f"The chunk {path} does not decode ({err}): the store is damaged, "
                         "delete it and download it again.") from err


def read_zarr_array(folder: str | Path) -> np.ndarray:
    """Read one zarr v2 array (a folder with `.zarray` and its chunk files) into memory.

    Handles C order, no filters, no or blosc compression, any chunk grid with '.' or '/' keys; every
    chunk must be present (a missing chunk in a released store means damage, not fill_value).
    Returns the array, shape and dtype as its header says. One ValueError names whatever is wrong.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / ".zarray").read_text())
        shape, chunks, dtype = tuple(meta["shape"]), tuple(meta["chunks"]), np.dtype(meta["dtype"])
        if meta.get("zarr_format") != 2 or meta.get("order", "C") != "C" or meta.get("filters"):
            raise ValueError("only zarr v2 arrays in C order without filters are read")
        if len(shape) != len(chunks) or any(c < 1 for c in chunks):
            raise ValueError("shape and chunks disagree")
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{folder / '.zarray'} is not a readable zarr v2 array header ({err}).") from err
    sep = meta.get("dimension_separator", ".")
    out = np.empty(shape, dtype=dtype)
    grid = [range(math.ceil(s / c)) for s, c in zip(shape, chunks, strict=True)]
    for index in np.ndindex(*[len(g) for g in grid]) if shape else [()]:
        path = folder / (sep.join(map(str, index)) or "0")
        if not path.is_file():
            raise ValueError(f"The chunk {path} is missing: the store is incomplete, download it again.")
        data = _decode_chunk(path.read_bytes(), meta.get("compressor"), path)
        if len(data) != math.prod(chunks) * dtype.itemsize:
            raise ValueError(f"The chunk {path} holds {len(data)} bytes, not the {math.prod(chunks)} values "
                             f"of {dtype} its header promises: the store is damaged.")
        block = np.frombuffer(data, dtype=dtype).reshape(chunks)
        where = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, chunks, shape, strict=True))
        out[where] = block[tuple(slice(0, w.stop - w.start) for w in where)]
    return out


# ---------------------------------------------------------------- the store: structure, reading, finding

def _read_arrays(store: Path) -> dict[str, np.ndarray]:
    if not (store / ".zgroup").is_file():
        raise ValueError(f"{store} is not a zarr v2 group (no .zgroup file).")
    arrays = {}
    for name, (tail, dtype) in {**ARRAYS, **OPTIONAL}.items():
        if name in OPTIONAL and not (store / name / ".zarray").is_file():
            continue
        if not (store / name / ".zarray").is_file():
            raise ValueError(f"{store} has no array {name}: it is not the PushT store or it is incomplete.")
        a = read_zarr_array(store / name)
        if a.shape[1:] != tail or a.dtype != np.dtype(dtype) or a.ndim != len(tail) + 1:
            want = "(" + ", ".join(["N", *map(str, tail)]) + ")"
            raise ValueError(f"{store}/{name} is {a.shape} {a.dtype}, expected {want} {np.dtype(dtype)}.")
        arrays[name] = a
    return arrays


def _check_structure(store: Path, arrays: dict[str, np.ndarray], size: dict | None) -> None:
    n, ends = arrays["data/state"].shape[0], arrays["meta/episode_ends"]
    for name, a in arrays.items():
        if name != "meta/episode_ends" and a.shape[0] != n:
            raise ValueError(f"{store}: {name} has {a.shape[0]} rows but data/state has {n}.")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"{store}: {name} holds NaN or infinite values: the store is damaged.")
    if ends.size == 0 or ends[0] <= 0 or np.any(np.diff(ends) <= 0) or ends[-1] != n:
        raise ValueError(f"{store}: meta/episode_ends must increase strictly from above 0 to the number of "
                         f"rows {n}, got {ends[:3].tolist()}...{ends[-2:].tolist()}.")
    if size is not None and (n, ends.size) != (size["steps"], size["episodes"]):
        raise ValueError(f"{store} holds {n} steps in {ends.size} episodes, but the released store holds "
                         f"{size['steps']} in {size['episodes']}: it is another version or damaged.")


def verify_store(store: str | Path, size: dict | None = None) -> dict[str, np.ndarray]:
    """Check a PushT zarr store by its structure and return its arrays (numpy, keyed by zarr path).

    Checked: a zarr v2 group with data/state (N, 5) f4, data/action (N, 2) f4, meta/episode_ends (E,)
    i8 (and data/keypoint (N, 9, 2) f4 if present); every chunk present and decoding; no NaN;
    episode ends strictly increasing up to N; and, with `size` ({"steps": N, "episodes": E}), the
    counts of the released store. Raises one ValueError saying what is wrong.
    """
    store = Path(store)
    if not store.is_dir():
        raise ValueError(f"{store} is not a folder, so not a zarr store.")
    arrays = _read_arrays(store)
    _check_structure(store, arrays, size)
    return arrays


def read_store(store: str | Path, size: dict | None = None) -> PushTData:
    """Read and verify a PushT store (see `verify_store`) into a `PushTData` of torch tensors."""
    a = verify_store(store, size)
    keypoint = a.get("data/keypoint")
    return PushTData(state=torch.from_numpy(a["data/state"]), action=torch.from_numpy(a["data/action"]),
                     episode_ends=torch.from_numpy(a["meta/episode_ends"]), source=str(Path(store)),
                     keypoint=None if keypoint is None else torch.from_numpy(keypoint))


def _extract_store(archive: Path, dest: Path) -> None:
    """Unpack the store inside `archive` (a member path ending in STORE_NAME/...) to `dest`, verified.

    Writes into a temporary folder next to `dest` and renames it into place only when `verify_store`
    accepts it; a damaged or foreign archive raises CorruptDownload and leaves nothing behind.
    """
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        try:
            with zipfile.ZipFile(archive) as z:
                members = [m for m in z.infolist() if f"{STORE_NAME}/" in m.filename and not m.is_dir()
                           and not m.filename.startswith("__MACOSX/")]  # skip macOS resource forks
                if not members:
                    raise ValueError(f"the archive holds no {STORE_NAME} folder")
                for m in members:
                    rel = m.filename.split(f"{STORE_NAME}/", 1)[1]
                    if rel.startswith("/") or ".." in Path(rel).parts:
                        raise ValueError(f"unsafe member name {m.filename!r}")
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(m))
            verify_store(tmp, OFFICIAL_SIZE)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            raise CorruptDownload(f"The PushT archive {archive.name} is damaged or not the released one "
                                  f"({err}), "
                                  f"so it was deleted: run again, or unpack {ARCHIVE_NAME} from {URLS[0]} by "
                                  f"hand into {dest.parent}.") from err
        old = dest.with_name(f".{dest.name}.old") if dest.exists() else None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_pusht(*, download: bool = True) -> PushTData:
    """The PushT demonstrations (206 episodes, 25,650 steps), from the first place that has them.

    Looks for <root>/pusht/pusht_cchi_v7_replay.zarr for each root in DDPM_NB_DATA, then
    <cache>/pusht/pusht_cchi_v7_replay.zarr, then (if `download`) fetches the official pusht.zip into
    the cache, unpacks and verifies it. Raises DatasetUnavailable saying where it looked if all fail,
    ValueError if a local store is damaged.
    """
    roots, cache = data_roots(), cache_dir() / "pusht"
    looked = [] if roots else ["DDPM_NB_DATA (not set)"]
    for store in [root / "pusht" / STORE_NAME for root in roots] + [cache / STORE_NAME]:
        if not store.is_dir():
            looked.append(f"{store} (no such folder)")
            continue
        try:
            return read_store(store, OFFICIAL_SIZE)
        except ValueError:
            if store.parent != cache or not download:
                raise
            looked.append(f"{store} (damaged: replaced by a download)")
    todo = (f"Set DDPM_NB_DATA to a folder holding pusht/{STORE_NAME}, connect to the internet and call "
            f"load_pusht() again, or unpack {ARCHIVE_NAME} from {URLS[0]} into {cache}.")
    if not download:
        raise DatasetUnavailable("PushT", looked + ["the internet (skipped: download=False)"], todo)
    try:
        archive = _download(list(URLS), cache / ARCHIVE_NAME)
    except DatasetUnavailable as err:
        raise DatasetUnavailable("PushT", looked + err.looked, todo) from err
    try:
        _extract_store(archive, cache / STORE_NAME)
    finally:
        archive.unlink(missing_ok=True)
    return read_store(cache / STORE_NAME, OFFICIAL_SIZE)


# ---------------------------------------------------------------- episodes, windows, normaliser

def split_episodes(n_episodes: int, every: int = VAL_EVERY) -> tuple[list[int], list[int]]:
    """(train, validation) episode indices: every `every`-th episode (i % every == every - 1) is held out."""
    if n_episodes < 1 or every < 2:
        raise ValueError(f"Need at least one episode and every >= 2, got {n_episodes} and {every}.")
    val = [i for i in range(n_episodes) if i % every == every - 1]
    return [i for i in range(n_episodes) if i % every != every - 1], val


def window_index(episode_ends: torch.Tensor, episodes: list[int] | None = None, *,
                 obs_horizon: int = OBS_HORIZON, pred_horizon: int = PRED_HORIZON,
                 action_horizon: int = ACTION_HORIZON) -> torch.Tensor:
    """Row indices of every training window: (W, pred_horizon) int64, each row inside one episode.

    A window covers steps s .. s + T_p - 1 of its episode (L steps), with s from -(T_o - 1) to
    L - T_p + T_a - 1: max(L - T_p + T_o + T_a - 1, 1) windows. Its observations are rows 0 .. T_o - 1,
    the current step is row T_o - 1, the executed actions rows T_o - 1 .. T_o + T_a - 2 (always inside
    the episode), all T_p rows are the predicted actions. Steps before 0 or after L - 1 are clamped:
    the edges are padded by repeating the first or last step (as in Chi et al. 2023's sequence sampler).
    episodes: which episodes (default all), in that order.
    """
    if not 1 <= obs_horizon <= pred_horizon or not 1 <= action_horizon <= pred_horizon - obs_horizon + 1:
        raise ValueError(f"Need 1 <= obs_horizon <= pred_horizon and 1 <= action_horizon <= pred_horizon - "
                         f"obs_horizon + 1, got {obs_horizon}, {pred_horizon}, {action_horizon}.")
    ends = episode_ends.tolist()
    starts = [0] + ends[:-1]
    episodes = range(len(ends)) if episodes is None else episodes
    offsets = torch.arange(pred_horizon)
    rows = []
    for e in episodes:
        if not 0 <= e < len(ends):
            raise ValueError(f"Episode {e} does not exist: there are {len(ends)}.")
        length = ends[e] - starts[e]
        first = -(obs_horizon - 1)
        s = torch.arange(first, max(length - pred_horizon + action_horizon, first + 1))
        rows.append(starts[e] + (s[:, None] + offsets[None, :]).clamp(0, length - 1))
    return torch.cat(rows) if rows else torch.empty(0, pred_horizon, dtype=torch.long)


def make_windows(obs: torch.Tensor, action: torch.Tensor, index: torch.Tensor,
                 obs_horizon: int = OBS_HORIZON) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather windows: obs (N, D) and action (N, A) rows, index (W, T_p) -> ((W, T_o, D), (W, T_p, A))."""
    if index.dim() != 2 or index.shape[1] < obs_horizon:
        raise ValueError(f"index must be (W, T_p) with T_p >= {obs_horizon}, got {tuple(index.shape)}.")
    return obs[index[:, :obs_horizon]], action[index]


def state_features(state: torch.Tensor, kind: str = "state") -> torch.Tensor:
    """What the network sees of a state (..., 5): 'state' as is (..., 5), or 'sincos' (..., 6) =
    agent x, y, block x, y, sin θ, cos θ, which has no jump where the angle wraps from 2π to 0."""
    if kind not in FEATURES:
        raise ValueError(f"Unknown observation features {kind!r}: choose one of {', '.join(FEATURES)}.")
    if state.shape[-1:] != (5,):
        raise ValueError(f"A PushT state has 5 numbers (agent x, y, block x, y, angle), got shape "
                         f"{tuple(state.shape)}.")
    if kind == "state":
        return state
    return torch.cat([state[..., :4], state[..., 4:].sin(), state[..., 4:].cos()], dim=-1)


@dataclass(frozen=True)
class MinMax:
    """Min-max normaliser to [-1, 1] per feature: y = 2 (x - low) / (high - low) - 1 (Chi et al. 2023).

    low, high: (D,) float32. A feature with high - low < 1e-6 (constant) is only shifted to 0.
    Fit it on training rows only; store it with `state_dict()` (a plain dict of tensors).
    """

    low: torch.Tensor
    high: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> MinMax:
        """The normaliser of x (N, D) or (N, ..., D): per last-dimension feature min and max."""
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(f"Fit the normaliser on at least one row (N, D), got {tuple(x.shape)}.")
        flat = x.reshape(-1, x.shape[-1]).float()
        return cls(flat.min(0).values, flat.max(0).values)

    def _scale_offset(self) -> tuple[torch.Tensor, torch.Tensor]:
        span = self.high - self.low
        ok = span >= 1e-6
        scale = torch.where(ok, 2.0 / span.clamp(min=1e-6), torch.ones_like(span))
        offset = torch.where(ok, -1.0 - scale * self.low, -(self.high + self.low) / 2)
        return scale, offset

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1:] != self.low.shape:
            raise ValueError(f"The normaliser has {self.low.shape[0]} features but x has shape "
                             f"{tuple(x.shape)}.")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) in data units -> (..., D), the fitted range mapped onto [-1, 1]."""
        self._check(x)
        scale, offset = self._scale_offset()
        return x * scale.to(x) + offset.to(x)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse of `encode`: y (..., D) -> data units."""
        self._check(y)
        scale, offset = self._scale_offset()
        return (y - offset.to(y)) / scale.to(y)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"low": self.low.detach().cpu().clone(), "high": self.high.detach().cpu().clone()}

    @classmethod
    def from_state_dict(cls, state: dict) -> MinMax:
        """Rebuild from `state_dict()`; a dict without matching (D,) tensors 'low' and 'high' is refused."""
        low, high = state.get("low") if isinstance(state, dict) else None, \
            state.get("high") if isinstance(state, dict) else None
        if not (isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor) and low.dim() == 1
                and low.shape == high.shape and bool((high >= low).all())):
            raise ValueError("A normaliser state must be {'low': (D,), 'high': (D,)} tensors with "
                             "high >= low.")
        return cls(low.float(), high.float())
