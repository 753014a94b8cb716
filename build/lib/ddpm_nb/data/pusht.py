"""The PushT demonstrations of Diffusion Policy (Chi et al., RSS 2023), windows and normaliser.

The data are the official `pusht_cchi_v7_replay.zarr` as released: a zarr v2 store (one folder per
array, a `.zarray` JSON header, blosc-compressed chunks), read here by a few lines of our own
(`read_zarr_array`) instead of the full `zarr` package. It is looked for in, in order:
<root>/pusht/pusht_cchi_v7_replay.zarr for each root in DDPM_NB_DATA, <cache>/pusht/..., and the
official archive `pusht.zip` downloaded into the cache. No checksum is published for the archive, so a
store is accepted only if its structure is the released one (`verify_store`).

Loading only: the training windows and normalisers are cut in `ddpm_nb.policy.windows`.
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

from ..errors import MissingPackage, UserError
from .cache import CorruptDownload, DatasetUnavailable, cache_dir, data_roots
from .cache import download as _download

__all__ = [
    "STORE_NAME", "URLS", "OFFICIAL_SIZE", "PushTData", "read_zarr_array", "verify_store", "read_store",
    "load_pusht",
]

STORE_NAME = "pusht_cchi_v7_replay.zarr"
# The official archive (tests point this at a local server).
URLS = ("https://diffusion-policy.cs.columbia.edu/data/training/pusht.zip",)
ARCHIVE_NAME = "pusht.zip"
OFFICIAL_SIZE = {"steps": 25650, "episodes": 206}  # the released store (tests shrink it for their archives)

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
        raise UserError(f"{path.parent} uses the compressor {compressor.get('id')!r}; this reader knows "
                        "only blosc (the one the released PushT store uses).")
    try:
        import blosc
    except ImportError as err:
        raise MissingPackage("Reading PushT needs the blosc package: pip install blosc") from err
    try:
        return blosc.decompress(raw)
    except Exception as err:  # blosc raises several types for damaged data
        raise UserError(f"The chunk {path} does not decode ({err}): the store is damaged, "
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
            raise UserError("only zarr v2 arrays in C order without filters are read")
        if len(shape) != len(chunks) or any(c < 1 for c in chunks):
            raise UserError("shape and chunks disagree")
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"{folder / '.zarray'} is not a readable zarr v2 array header ({err}).") from err
    sep = meta.get("dimension_separator", ".")
    out = np.empty(shape, dtype=dtype)
    grid = [range(math.ceil(s / c)) for s, c in zip(shape, chunks, strict=True)]
    for index in np.ndindex(*[len(g) for g in grid]) if shape else [()]:
        path = folder / (sep.join(map(str, index)) or "0")
        if not path.is_file():
            raise UserError(f"The chunk {path} is missing: the store is incomplete, download it again.")
        data = _decode_chunk(path.read_bytes(), meta.get("compressor"), path)
        if len(data) != math.prod(chunks) * dtype.itemsize:
            raise UserError(f"The chunk {path} holds {len(data)} bytes, not the {math.prod(chunks)} values "
                            f"of {dtype} its header promises: the store is damaged.")
        block = np.frombuffer(data, dtype=dtype).reshape(chunks)
        where = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, chunks, shape, strict=True))
        out[where] = block[tuple(slice(0, w.stop - w.start) for w in where)]
    return out


# ---------------------------------------------------------------- the store: structure, reading, finding

def _read_arrays(store: Path) -> dict[str, np.ndarray]:
    if not (store / ".zgroup").is_file():
        raise UserError(f"{store} is not a zarr v2 group (no .zgroup file).")
    arrays = {}
    for name, (tail, dtype) in {**ARRAYS, **OPTIONAL}.items():
        if name in OPTIONAL and not (store / name / ".zarray").is_file():
            continue
        if not (store / name / ".zarray").is_file():
            raise UserError(f"{store} has no array {name}: it is not the PushT store or it is incomplete.")
        a = read_zarr_array(store / name)
        if a.shape[1:] != tail or a.dtype != np.dtype(dtype) or a.ndim != len(tail) + 1:
            want = "(" + ", ".join(["N", *map(str, tail)]) + ")"
            raise UserError(f"{store}/{name} is {a.shape} {a.dtype}, expected {want} {np.dtype(dtype)}.")
        arrays[name] = a
    return arrays


def _check_structure(store: Path, arrays: dict[str, np.ndarray], size: dict | None) -> None:
    n, ends = arrays["data/state"].shape[0], arrays["meta/episode_ends"]
    for name, a in arrays.items():
        if name != "meta/episode_ends" and a.shape[0] != n:
            raise UserError(f"{store}: {name} has {a.shape[0]} rows but data/state has {n}.")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise UserError(f"{store}: {name} holds NaN or infinite values: the store is damaged.")
    if ends.size == 0 or ends[0] <= 0 or np.any(np.diff(ends) <= 0) or ends[-1] != n:
        raise UserError(f"{store}: meta/episode_ends must increase strictly from above 0 to the number of "
                        f"rows {n}, got {ends[:3].tolist()}...{ends[-2:].tolist()}.")
    if size is not None and (n, ends.size) != (size["steps"], size["episodes"]):
        raise UserError(f"{store} holds {n} steps in {ends.size} episodes, but the released store holds "
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
        raise UserError(f"{store} is not a folder, so not a zarr store.")
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
                    raise UserError(f"the archive holds no {STORE_NAME} folder")
                for m in members:
                    rel = m.filename.split(f"{STORE_NAME}/", 1)[1]
                    if rel.startswith("/") or ".." in Path(rel).parts:
                        raise UserError(f"unsafe member name {m.filename!r}")
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(m))
            verify_store(tmp, OFFICIAL_SIZE)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            raise CorruptDownload(f"The PushT archive {archive.name} is damaged or not the released one "
                                  f"({err}), "
                                  f"so it was deleted: run again, or download {ARCHIVE_NAME} from {URLS[0]} "
                                  f"by hand and put it in {dest.parent}.") from err
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
    <cache>/pusht/pusht_cchi_v7_replay.zarr, then an archive <cache>/pusht/pusht.zip put there by
    hand, then (if `download`) fetches the official pusht.zip into the cache; an archive is verified
    and unpacked there, then removed. Raises DatasetUnavailable saying where it looked if all fail,
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
    todo = (f"Set DDPM_NB_DATA to a folder holding pusht/{STORE_NAME}; or connect to the internet and "
            f"call load_pusht() again; or download {ARCHIVE_NAME} from {URLS[0]} by hand and put it, as it "
            f"is, in {cache}: the next call verifies and unpacks it there.")
    archive = cache / ARCHIVE_NAME
    if archive.is_file():  # put there by hand (the hint above): use it instead of downloading
        looked.append(f"{archive} (an archive put there by hand: unpacked)")
    elif not download:
        raise DatasetUnavailable("PushT", looked + [f"{archive} (no such file)",
                                                    "the internet (skipped: download=False)"], todo)
    else:
        try:
            _download(list(URLS), archive)
        except DatasetUnavailable as err:
            raise DatasetUnavailable("PushT", looked + [f"{archive} (no such file)", *err.looked],
                                     todo) from err
    try:
        _extract_store(archive, cache / STORE_NAME)
    finally:
        archive.unlink(missing_ok=True)
    return read_store(cache / STORE_NAME, OFFICIAL_SIZE)
