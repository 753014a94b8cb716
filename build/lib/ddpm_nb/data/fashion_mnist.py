"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) in the book's own train/test split.

The 70,000 grey 28x28 images are read from the four official IDX files (verified by their published
md5) or from a local 70k copy that has lost the official split. So that every figure means the same
thing whichever source was read, the book pools all 70,000 images and re-splits them by content
(`book_split`): the data set every figure names is "Fashion-MNIST, book split".
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..checks import check_shape
from ..errors import UserError
from .cache import CorruptDownload, DatasetUnavailable, cache_dir, data_roots, md5sum, sha256sum
from .cache import download as _download

__all__ = ["CLASSES", "OFFICIAL_FILES", "URLS", "SPLITS", "FashionMNIST", "load_fashion_mnist", "image_order",
           "parse_idx", "book_split", "to_model_range", "from_model_range"]

NAME = "Fashion-MNIST, book split"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# The four official files and their published md5 (github.com/zalandoresearch/fashion-mnist, README).
OFFICIAL_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# Mirrors tried in order (file name appended); the md5 protects the plain-HTTP one too. Tests point
# this at a local server.
URLS = ("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
NPZ_NAME = "fashion-mnist-70k.npz"  # a local copy of all 70k images, without the official split
NPZ_SHA256 = "680f8d9f40a1f30289935f64bcb142fb8283fe6328fac14f2ef06ae014334671"
SPLITS = ("train", "test", "all")
TEST_MODULUS = 7  # about 1 image in 7 is a test image

_IDX_NDIM = {0x00000801: 1, 0x00000803: 3}  # IDX magic -> number of dimensions (unsigned bytes only)


@dataclass(frozen=True)
class FashionMNIST:
    """One split of Fashion-MNIST as the book uses it.

    images: (N, 28, 28) uint8 tensor, 0 = black background, 255 = white.
    labels: (N,) int64 tensor of class indices into `CLASSES`.
    split: 'train', 'test' or 'all'; source: a sentence saying which files were read;
    name: "Fashion-MNIST, book split", the name every figure and table gives the data.
    """

    images: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    split: str
    source: str
    name: str = NAME

    def __len__(self) -> int:
        return self.images.shape[0]

    def spread(self, n: int) -> FashionMNIST:
        """n images of the split that stand for all of it: the first n in the order of their sha256
        digest (`image_order`). The stored order can be grouped by class (the 70k copy is), so a head
        slice `images[:n]` may hold one or two classes; this order is mixed, and the same whichever
        copy of the data was read."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self):
            raise UserError(f"n must be a whole number from 1 to {len(self)}, got {n!r}.")
        pick = torch.from_numpy(image_order(self.images.numpy())[:n].copy())
        return FashionMNIST(self.images[pick], self.labels[pick], self.split, self.source, self.name)


def _heads(images: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each image's sha256 digest (its 784 bytes, row-major), as big-endian u8."""
    images = np.ascontiguousarray(images)
    return np.frombuffer(b"".join(hashlib.sha256(im.tobytes()).digest()[:8] for im in images), dtype=">u8")


def image_order(images: np.ndarray) -> np.ndarray:
    """Indices that sort (N, 28, 28) uint8 images by their digest (`_heads`): a fixed shuffle that
    depends on the pixels only (ties, i.e. identical images, keep their order)."""
    return np.argsort(_heads(np.asarray(images)), kind="stable")


class _Pool(NamedTuple):
    """All 70k images (N, 28, 28) uint8, labels (N,) uint8, is_test (N,) bool: read-only arrays."""

    images: np.ndarray
    labels: np.ndarray
    is_test: np.ndarray
    source: str


# ---------------------------------------------------------------- the IDX format and the book's split

def parse_idx(data: bytes) -> np.ndarray:
    """Decode an IDX file of unsigned bytes (LeCun's MNIST format), plain or gzip-compressed.

    The header is a big-endian magic number, 0x00000801 for labels or 0x00000803 for images, then
    one big-endian uint32 per dimension. Returns labels (N,) uint8 or images (N, rows, cols) uint8.
    Raises a one-sentence ValueError for a bad magic number or data whose size the header denies.
    """
    data = bytes(data)
    if data[:2] == b"\x1f\x8b":  # the gzip magic
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"The gzip-compressed IDX data is damaged ({err}): download the file again."
                            ) from err
    if len(data) < 4:
        raise UserError(f"The IDX data is {len(data)} bytes long, too short for a header: the file is "
                        "damaged.")
    magic = int.from_bytes(data[:4], "big")
    if magic not in _IDX_NDIM:
        raise UserError(f"Not an IDX file of unsigned bytes: magic number 0x{magic:08x}, expected "
                        "0x00000801 (labels) or 0x00000803 (images).")
    ndim = _IDX_NDIM[magic]
    start = 4 + 4 * ndim
    if len(data) < start:
        raise UserError(f"The IDX header is cut short ({len(data)} of {start} bytes): the file is damaged.")
    shape = struct.unpack(f">{ndim}I", data[4:start])
    if len(data) - start != math.prod(shape):
        raise UserError(f"The IDX header promises shape {shape} ({math.prod(shape)} bytes) but "
                        f"{len(data) - start} bytes follow: the file is truncated or damaged, download it "
                        "again.")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape).copy()


def book_split(images: np.ndarray) -> np.ndarray:
    """The book's train/test split of Fashion-MNIST: True where an image is a test image.

    images: (N, 28, 28) uint8. Each image's 784 bytes (row-major) are hashed with sha256; the first
    8 bytes of the digest, read as an unsigned big-endian integer, decide: test when it is divisible
    by 7 (about 1 image in 7, 9,935 of the 70,000). The split depends on nothing but the pixels, so
    it is the same for the official files and for any copy, whatever the order, and identical images
    always land on the same side (no test image has a twin in training). Returns (N,) bool.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(f"images must be a (N, 28, 28) uint8 array, got {images.shape} {images.dtype}.")
    return _heads(images) % TEST_MODULUS == 0


# ---------------------------------------------------------------- finding and reading the files

def _stamp(path: Path) -> tuple[str, int, int]:
    """(absolute path, size, mtime): a cache key that changes when the file is replaced."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=16)
def _digest(stamp: tuple[str, int, int], algorithm: str) -> str:
    return md5sum(stamp[0]) if algorithm == "md5" else sha256sum(stamp[0])


def _bad_official(folder: Path) -> list[str]:
    """Names of the official files in `folder` whose md5 is not the published one."""
    return [name for name, md5 in OFFICIAL_FILES.items() if _digest(_stamp(folder / name), "md5") != md5]


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


def _read_official(folder: Path) -> _Pool:
    return _read_official_files(tuple((name, _stamp(folder / name)) for name in OFFICIAL_FILES))


@functools.lru_cache(maxsize=2)
def _read_official_files(files: tuple[tuple[str, tuple[str, int, int]], ...]) -> _Pool:
    """Pool the verified official files, given as (name, stamp) pairs: train first, then t10k."""
    path = {name: Path(stamp[0]) for name, stamp in files}
    train_x, train_y, test_x, test_y = (
        parse_idx(path[f"{part}-{kind}-idx{ndim}-ubyte.gz"].read_bytes())
        for part in ("train", "t10k") for kind, ndim in (("images", 3), ("labels", 1)))
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise UserError("The official image and label files disagree on the number of images.")
    images, labels = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    is_test = book_split(images)
    _read_only(images, labels, is_test)
    folder = next(iter(path.values())).parent
    return _Pool(images, labels, is_test, f"the four official IDX files in {folder} (train and t10k "
                                          "pooled, then re-split by the book)")


@functools.lru_cache(maxsize=2)
def _read_npz(stamp: tuple[str, int, int]) -> _Pool:
    """The verified 70k copy: images (70000, 28, 28) uint8, labels (70000,) uint8."""
    path = Path(stamp[0])
    with np.load(path, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    is_test = book_split(images)
    _read_only(images, labels, is_test)
    return _Pool(images, labels, is_test,
                 f"the 70k copy {path.name} in {path.parent} (no official split; re-split by the book)")


def _pool(*, download: bool) -> _Pool:
    """All 70k images from the first source found: (a) official files, (b) the 70k copy, (c) download."""
    roots, cache = data_roots(), cache_dir() / "fashion-mnist"
    looked: list[str] = []
    # (a) the four official files, verified, in a data root or the cache
    for folder in [root / "fashion-mnist" / "official" for root in roots] + [cache]:
        present = [name for name in OFFICIAL_FILES if (folder / name).is_file()]
        if len(present) < len(OFFICIAL_FILES):
            looked.append(f"{folder} ({len(present)} of the 4 official .gz files)")
            continue
        bad = _bad_official(folder)
        if not bad:
            return _read_official(folder)
        if folder != cache or not download:  # a damaged cached file is replaced by (c) below
            raise CorruptDownload(f"{folder / bad[0]} does not match its published md5 "
                                  f"{OFFICIAL_FILES[bad[0]]}: delete it and download it again from "
                                  f"{URLS[0]}.")
        looked.append(f"{folder} ({', '.join(bad)} damaged)")
    # (b) the 70k copy, verified, in a data root
    for root in roots:
        npz = root / "fashion-mnist" / NPZ_NAME
        if not npz.is_file():
            looked.append(f"{npz} (no such file)")
            continue
        stamp = _stamp(npz)
        if _digest(stamp, "sha256") != NPZ_SHA256:
            raise CorruptDownload(f"{npz} has sha256 {_digest(stamp, 'sha256')}, not the expected checksum "
                                  f"{NPZ_SHA256}: replace it with an intact copy, or remove it to use the "
                                  "official files.")
        return _read_npz(stamp)
    todo = (f"Set DDPM_NB_DATA to a folder holding fashion-mnist/{NPZ_NAME} or fashion-mnist/official/ "
            f"with the four official .gz files, connect to the internet and call load_fashion_mnist() "
            f"again, or copy the four official .gz files into {cache}.")
    if not roots:
        looked.insert(0, "DDPM_NB_DATA (not set)")
    if not download:
        raise DatasetUnavailable("Fashion-MNIST", looked + ["the internet (skipped: download=False)"], todo)
    # (c) download the missing or damaged official files into the cache, then read them as in (a)
    try:
        for name, md5 in OFFICIAL_FILES.items():
            path = cache / name
            if not (path.is_file() and _digest(_stamp(path), "md5") == md5):
                _download([base + name for base in URLS], path, md5=md5)
    except DatasetUnavailable as err:
        raise DatasetUnavailable("Fashion-MNIST", looked + err.looked, todo) from err
    return _read_official(cache)


def load_fashion_mnist(split: str = "train", *, download: bool = True) -> FashionMNIST:
    """Fashion-MNIST, book split: images (N, 28, 28) uint8 and labels (N,) int64 of one split.

    split: 'train' (60,065 images), 'test' (9,935, see `book_split`) or 'all' (70,000).
    Looks for, in order: the four official .gz files (published md5) in <root>/fashion-mnist/official/
    for each root in DDPM_NB_DATA, then in <cache>/fashion-mnist/; the 70k copy
    <root>/fashion-mnist/fashion-mnist-70k.npz (checked by sha256); then, if `download`, fetches the
    official files into the cache. Raises `DatasetUnavailable` saying where it looked if all fail.
    The decoded pool stays in memory, so a second call only copies out the split.
    """
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}: choose one of {', '.join(map(repr, SPLITS))}.")
    pool = _pool(download=download)
    if split == "all":
        keep = np.ones(len(pool.labels), dtype=bool)
    else:
        keep = pool.is_test if split == "test" else ~pool.is_test
    images = torch.from_numpy(pool.images[keep])  # boolean indexing copies: the pool stays intact
    labels = torch.from_numpy(pool.labels[keep].astype(np.int64))
    return FashionMNIST(images, labels, split, pool.source)


# ---------------------------------------------------------------- pixels <-> model inputs

def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) in 0..255 -> float32 (N, 1, H, W) in [-1, 1], the range the models see.

    x = p / 127.5 - 1, the linear scaling of DDPM (Ho, Jain & Abbeel 2020, sec. 3.3).
    """
    check_shape("images", images, (None, None, None))
    if images.dtype != torch.uint8:
        raise UserError(f"images must be uint8 pixels in 0..255, got {images.dtype}.")
    return images.unsqueeze(1).to(torch.float32) / 127.5 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """float images x (N, 1, H, W), nominally in [-1, 1] -> uint8 pixels (N, H, W), clamped and rounded.

    The inverse of `to_model_range`: p = round(127.5 (x + 1)), with x clamped to [-1, 1] first.
    """
    check_shape("x", x, (None, 1, None, None))
    if not torch.is_floating_point(x):
        raise UserError(f"x must be a floating-point tensor in [-1, 1], got {x.dtype}.")
    if not torch.isfinite(x).all():
        raise UserError("x holds NaN or infinite values (did sampling diverge?): they are not pixels.")
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).squeeze(1)
