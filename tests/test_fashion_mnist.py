"""Tests for ddpm_nb.data.fashion_mnist: the IDX parser, the book's split, the search order, the loader.

The loader is tested on the real local copy in ../shared/data. Small arrays written by the tests
themselves are labelled fixtures for the parser and the search logic only, never Fashion-MNIST.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import use_folders
from test_cache import LABEL_MD5, OFFICIAL, refused_url, serving

from ddpm_nb.data import fashion_mnist as fm
from ddpm_nb.data.cache import CorruptDownload, DatasetUnavailable, md5sum

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # what `make` sets DDPM_NB_DATA to


def forget_loaded() -> None:
    """Empty the loader's in-memory caches, so the next load searches the folders again."""
    for cached in (fm._read_official_files, fm._read_npz, fm._digest):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_caches():
    forget_loaded()
    yield
    forget_loaded()


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes holding `array` (1-D labels or 3-D images)."""
    magic = {1: 0x00000801, 3: 0x00000803}[array.ndim]
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


# ---------------------------------------------------------------- parse_idx (on tiny fixtures)

@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_parse_idx_reads_images_and_labels(tmp_path, compress):
    images = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4) * 7
    labels = np.array([7, 0, 9], dtype=np.uint8)
    for name, array in (("images.idx", images), ("labels.idx", labels)):
        data = idx_bytes(array)
        (tmp_path / name).write_bytes(gzip.compress(data) if compress else data)
        got = fm.parse_idx((tmp_path / name).read_bytes())
        assert got.dtype == np.uint8 and got.shape == array.shape
        np.testing.assert_array_equal(got, array)
        got[0] = 1  # a writable array of its own


def test_parse_idx_rejects_a_bad_magic_number():
    with pytest.raises(ValueError, match="magic number 0x00000802, expected 0x00000801"):
        fm.parse_idx(struct.pack(">III", 0x00000802, 1, 1) + b"\x00")
    float_images = struct.pack(">IIII", 0x00000D03, 1, 1, 1) + b"\x00" * 4
    with pytest.raises(ValueError, match="magic number 0x00000d03"):
        fm.parse_idx(float_images)


def test_parse_idx_rejects_data_the_header_does_not_describe():
    data = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"promises shape \(2, 3, 3\) \(18 bytes\) but 17 bytes follow"):
        fm.parse_idx(data[:-1])
    with pytest.raises(ValueError, match="but 19 bytes follow"):
        fm.parse_idx(data + b"\x00")
    with pytest.raises(ValueError, match="header is cut short"):
        fm.parse_idx(data[:10])
    with pytest.raises(ValueError, match="too short for a header"):
        fm.parse_idx(b"\x00\x00")
    with pytest.raises(ValueError, match="gzip-compressed IDX data is damaged"):
        fm.parse_idx(gzip.compress(data)[:-6])


# ---------------------------------------------------------------- book_split

def test_book_split_is_the_documented_hash_rule():
    images = np.random.default_rng(0).integers(0, 256, (300, 28, 28), dtype=np.uint8)
    want = [int.from_bytes(hashlib.sha256(bytes(im)).digest()[:8], "big") % 7 == 0 for im in images]
    got = fm.book_split(images)
    assert got.dtype == np.bool_ and got.tolist() == want
    assert 10 < got.sum() < 80  # about 1 in 7 of 300


def test_book_split_sends_identical_images_to_the_same_side():
    images = np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    order = np.random.default_rng(2).permutation(100)
    doubled = np.concatenate([images, images])[order]  # each image twice, shuffled
    np.testing.assert_array_equal(fm.book_split(doubled), np.concatenate([fm.book_split(images)] * 2)[order])
    with pytest.raises(ValueError, match=r"\(N, 28, 28\) uint8"):
        fm.book_split(images.astype(np.float32))


# ---------------------------------------------------------------- to_model_range / from_model_range

def test_model_range_round_trips_every_pixel_value():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16).repeat(2, 1, 1)
    x = fm.to_model_range(pixels)
    assert x.shape == (2, 1, 16, 16) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.equal(fm.from_model_range(x), pixels)


def test_from_model_range_clamps_and_rounds():
    x = torch.tensor([[[[-3.0, -1.0, 0.0, 0.003, 1.0, 1.7]]]])
    assert fm.from_model_range(x).tolist() == [[[0, 0, 128, 128, 255, 255]]]
    with pytest.raises(ValueError, match="NaN"):
        fm.from_model_range(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="uint8"):
        fm.to_model_range(torch.zeros(1, 28, 28))


# ---------------------------------------------------------------- the loader on the real local copy

@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict[str, fm.FashionMNIST]:
    """The three splits read from the shared data folder (with an empty cache, no download)."""
    if not (SHARED / "fashion-mnist" / fm.NPZ_NAME).is_file():
        pytest.skip(f"the shared data folder {SHARED} has no fashion-mnist/{fm.NPZ_NAME}")
    with pytest.MonkeyPatch.context() as mp:
        use_folders(mp, SHARED, tmp_path_factory.mktemp("empty-cache"))
        forget_loaded()
        return {split: fm.load_fashion_mnist(split, download=False) for split in fm.SPLITS}


def test_book_split_of_the_local_copy(book):
    train, test, pool = book["train"], book["test"], book["all"]
    assert len(pool) == 70000 and len(train) + len(test) == 70000
    assert len(test) == 9935  # measured; 9000..11000 is what the rule promises
    for data in book.values():
        assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (28, 28)
        assert data.labels.dtype == torch.int64 and data.labels.shape == (len(data),)
        assert data.name == "Fashion-MNIST, book split"
        assert fm.NPZ_NAME in data.source and str(SHARED) in data.source
    for data, expected in ((train, 6000), (test, 1000)):  # every class, in about its fair share
        counts = torch.bincount(data.labels, minlength=10)
        assert counts.min() > 0.9 * expected * len(data) / {train: 60000, test: 10000}[data]
        assert counts.max() < 1.1 * expected * len(data) / {train: 60000, test: 10000}[data]
    assert (train.split, test.split, pool.split) == ("train", "test", "all")


def test_no_image_is_in_both_train_and_test(book):
    train = {bytes(im) for im in book["train"].images.numpy()}
    test = {bytes(im) for im in book["test"].images.numpy()}
    assert len(train) + len(test) == 69946  # the data set has duplicates: they never straddle
    assert not train & test


def test_the_splits_are_the_pool_cut_by_book_split(book):
    pool = book["all"]
    is_test = torch.from_numpy(fm.book_split(pool.images.numpy()))
    assert torch.equal(pool.images[is_test], book["test"].images)
    assert torch.equal(pool.labels[~is_test], book["train"].labels)


def test_spread_mixes_the_classes_that_the_stored_order_groups(book):
    test = book["test"]
    assert torch.bincount(test.labels[:100], minlength=10).count_nonzero() <= 2  # the copy is by class
    mixed = test.spread(100)
    assert torch.bincount(mixed.labels, minlength=10).count_nonzero() == 10
    assert len(mixed) == 100 and mixed.split == "test" and mixed.name == test.name


def test_spread_depends_on_the_pixels_only():
    """Any copy, in any order, gives the same images (ties keep their order)."""
    g = np.random.default_rng(0)
    images = g.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    images[7] = images[3]  # a duplicate
    data = fm.FashionMNIST(torch.from_numpy(images), torch.arange(50), "test", "a labelled fixture")
    perm = g.permutation(50)
    shuffled = fm.FashionMNIST(torch.from_numpy(images[perm]), torch.arange(50)[perm], "test", "fixture")
    assert torch.equal(data.spread(20).images, shuffled.spread(20).images)
    heads = [int.from_bytes(hashlib.sha256(im.tobytes()).digest()[:8], "big") for im in images]
    assert fm.image_order(images).tolist() == sorted(range(50), key=lambda i: heads[i])
    with pytest.raises(fm.UserError, match="from 1 to 50"):
        data.spread(51)


def test_pixel_mean_is_the_published_one(book):
    images = book["all"].images
    mean = images.sum(dtype=torch.int64).item() / (images.numel() * 255)
    assert mean == pytest.approx(0.2860, abs=1e-3)


def test_loading_is_deterministic_and_kept_in_memory(book, monkeypatch, tmp_path):
    use_folders(monkeypatch, SHARED, tmp_path)
    again = fm.load_fashion_mnist("test", download=False)
    assert torch.equal(again.images, book["test"].images) and torch.equal(again.labels, book["test"].labels)
    hits = fm._read_npz.cache_info().hits
    third = fm.load_fashion_mnist("test", download=False)
    assert fm._read_npz.cache_info().hits == hits + 1  # read once, then served from memory
    third.images[0] = 0  # a copy: changing it changes nothing for the next caller
    assert torch.equal(fm.load_fashion_mnist("test", download=False).images, book["test"].images)


# ---------------------------------------------------------------- errors a reader can meet

def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown split 'val': choose one of 'train', 'test', 'all'"):
        fm.load_fashion_mnist("val")


def test_nothing_found_offline_names_every_folder(monkeypatch, tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    use_folders(monkeypatch, data, cache)
    with pytest.raises(DatasetUnavailable) as info:
        fm.load_fashion_mnist(download=False)
    message = str(info.value)
    assert str(data / "fashion-mnist" / "official") in message
    assert str(data / "fashion-mnist" / fm.NPZ_NAME) in message
    assert str(cache / "fashion-mnist") in message and "download=False" in message
    assert "DDPM_NB_DATA" in message  # what to do about it


def test_a_local_copy_with_the_wrong_checksum_is_refused(monkeypatch, tmp_path):
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    np.savez(folder / fm.NPZ_NAME, images=np.zeros((7, 28, 28), np.uint8), labels=np.zeros(7, np.uint8))
    use_folders(monkeypatch, tmp_path / "data", tmp_path / "cache")
    with pytest.raises(CorruptDownload, match=f"{fm.NPZ_NAME} has sha256 .* not the expected checksum"):
        fm.load_fashion_mnist(download=False)


def _fixture_official_files(monkeypatch, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Four tiny IDX files under the official names, with their own md5 patched in (a search fixture)."""
    rng = np.random.default_rng(3)
    images, labels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([3, 1, 4, 1, 5], np.uint8)
    folder.mkdir(parents=True)
    parts = {"train-images-idx3-ubyte.gz": images[:3], "train-labels-idx1-ubyte.gz": labels[:3],
             "t10k-images-idx3-ubyte.gz": images[3:], "t10k-labels-idx1-ubyte.gz": labels[3:]}
    for name, array in parts.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    monkeypatch.setattr(fm, "OFFICIAL_FILES", {name: md5sum(folder / name) for name in parts})
    return images, labels


def test_official_files_come_first_and_are_pooled_train_then_test(monkeypatch, tmp_path):
    images, labels = _fixture_official_files(monkeypatch, tmp_path / "data" / "fashion-mnist" / "official")
    (tmp_path / "data" / "fashion-mnist" / fm.NPZ_NAME).write_bytes(b"not even an npz")  # never opened
    use_folders(monkeypatch, tmp_path / "data", tmp_path / "cache")
    pool = fm.load_fashion_mnist("all", download=False)
    assert torch.equal(pool.images, torch.from_numpy(images))
    assert pool.labels.tolist() == [3, 1, 4, 1, 5] and pool.labels.dtype == torch.int64
    assert "official IDX files in " + str(tmp_path / "data" / "fashion-mnist" / "official") in pool.source
    n_test = int(fm.book_split(images).sum())
    assert len(fm.load_fashion_mnist("test", download=False)) == n_test
    assert len(fm.load_fashion_mnist("train", download=False)) == 5 - n_test


def test_a_damaged_official_file_in_a_data_root_is_refused(monkeypatch, tmp_path):
    folder = tmp_path / "data" / "fashion-mnist" / "official"
    _fixture_official_files(monkeypatch, folder)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.array([9, 9], np.uint8))))
    use_folders(monkeypatch, tmp_path / "data", tmp_path / "cache")
    with pytest.raises(CorruptDownload, match="t10k-labels-idx1-ubyte.gz does not match its published md5"):
        fm.load_fashion_mnist(download=True)


def test_download_fills_the_cache_with_verified_files_and_says_what_is_missing(monkeypatch, tmp_path):
    if not all((OFFICIAL / name).is_file() for name in LABEL_MD5):
        pytest.skip(f"the official label files are not in {OFFICIAL} (the shared data folder)")
    served = tmp_path / "served"  # the two real label files; the image files cannot be had here
    served.mkdir()
    for name in LABEL_MD5:
        shutil.copyfile(OFFICIAL / name, served / name)
    cache = tmp_path / "cache" / "fashion-mnist"
    cache.mkdir(parents=True)
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")  # replaced by a verified download
    use_folders(monkeypatch, None, tmp_path / "cache")
    labels_first = sorted(fm.OFFICIAL_FILES.items(), key=lambda item: "images" in item[0])
    monkeypatch.setattr(fm, "OFFICIAL_FILES", dict(labels_first))  # so they are fetched before a failure
    with serving(served, monkeypatch) as base:
        monkeypatch.setattr(fm, "URLS", (refused_url(), base))
        with pytest.raises(DatasetUnavailable) as info:
            fm.load_fashion_mnist()
    message = str(info.value)
    assert base + "train-images-idx3-ubyte.gz (HTTP 404" in message and "DDPM_NB_DATA (not set)" in message
    assert sorted(p.name for p in cache.iterdir()) == sorted(LABEL_MD5)  # verified files only, no parts
    assert all(md5sum(cache / name) == md5 for name, md5 in LABEL_MD5.items())
