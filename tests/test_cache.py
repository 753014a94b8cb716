"""Tests for ddpm_nb.data.cache: search folders, checksums and verified downloads from a local HTTP server.

The files served are the two real official Fashion-MNIST label files from ../shared/data, checked
against their published md5; nothing here touches the internet.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from ddpm_nb.data import cache
from ddpm_nb.data.cache import CorruptDownload, DatasetUnavailable, download, md5sum, sha256sum
from ddpm_nb.data.fashion_mnist import parse_idx

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist" / "official"
LABEL_MD5 = {"train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(folder: Path, monkeypatch: pytest.MonkeyPatch, handler=None) -> Iterator[str]:
    """Serve `folder` on 127.0.0.1 (a free port) from a thread; yield the base URL, ending in '/'."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")  # a proxy set on the machine must not step in
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    handler = handler or functools.partial(_QuietHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


def refused_url() -> str:
    """A base URL on a port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def labels_dir(tmp_path: Path) -> Path:
    """A folder holding copies of the two real official label files."""
    if not all((OFFICIAL / name).is_file() for name in LABEL_MD5):
        pytest.skip(f"the official label files are not in {OFFICIAL} (the shared data folder)")
    folder = tmp_path / "served"
    folder.mkdir()
    for name in LABEL_MD5:
        shutil.copyfile(OFFICIAL / name, folder / name)
    return folder


# ---------------------------------------------------------------- folders and checksums

def test_data_roots_and_cache_dir_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DDPM_NB_DATA", raising=False)
    monkeypatch.delenv("DDPM_NB_CACHE", raising=False)
    assert cache.data_roots() == []
    assert cache.cache_dir() == Path.home() / ".cache" / "ddpm_nb"
    monkeypatch.setenv("DDPM_NB_DATA", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.setenv("DDPM_NB_CACHE", str(tmp_path / "c"))
    assert cache.data_roots() == [tmp_path / "a", tmp_path / "b"]
    assert cache.cache_dir() == tmp_path / "c"


def test_md5sum_and_sha256sum_read_a_file_larger_than_one_chunk(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 3 * cache.CHUNK + 5, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert md5sum(path) == hashlib.md5(data).hexdigest()
    assert sha256sum(str(path)) == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- download

def test_download_fetches_and_verifies_the_official_label_files(monkeypatch, tmp_path, labels_dir):
    dest = tmp_path / "cache" / "fashion-mnist"
    with serving(labels_dir, monkeypatch) as base:
        for name, md5 in LABEL_MD5.items():
            assert download([base + name], dest / name, md5=md5) == dest / name
    assert sorted(p.name for p in dest.iterdir()) == sorted(LABEL_MD5)  # no temporary file left over
    for name, md5 in LABEL_MD5.items():
        assert md5sum(dest / name) == md5
        assert (dest / name).read_bytes() == (labels_dir / name).read_bytes()
    train = parse_idx((dest / "train-labels-idx1-ubyte.gz").read_bytes())
    test = parse_idx((dest / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert train.shape == (60000,) and test.shape == (10000,) and train.dtype == np.uint8
    assert np.bincount(train).tolist() == [6000] * 10  # the official files: balanced classes
    assert np.bincount(test).tolist() == [1000] * 10


def test_download_checks_sha256_as_well(monkeypatch, tmp_path, labels_dir):
    name = "t10k-labels-idx1-ubyte.gz"
    right = hashlib.sha256((labels_dir / name).read_bytes()).hexdigest()
    with serving(labels_dir, monkeypatch) as base:
        download([base + name], tmp_path / "ok" / name, sha256=right.upper())
        with pytest.raises(CorruptDownload, match="sha256"):
            download([base + name], tmp_path / "bad" / name, md5=LABEL_MD5[name], sha256="0" * 64)
    assert sha256sum(tmp_path / "ok" / name) == right
    assert list((tmp_path / "bad").iterdir()) == []


def test_a_corrupt_download_is_deleted_and_named(monkeypatch, tmp_path, labels_dir):
    name = "train-labels-idx1-ubyte.gz"
    data = bytearray((labels_dir / name).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped
    (labels_dir / name).write_bytes(data)
    dest = tmp_path / "cache"
    with serving(labels_dir, monkeypatch) as base:
        with pytest.raises(CorruptDownload) as info:
            download([base + name], dest / name, md5=LABEL_MD5[name])
    message = str(info.value)
    assert name in message and LABEL_MD5[name] in message and hashlib.md5(data).hexdigest() in message
    assert list(dest.iterdir()) == []  # neither the file nor a temporary part of it


def test_a_failed_download_leaves_an_existing_file_untouched(monkeypatch, tmp_path, labels_dir):
    name = "t10k-labels-idx1-ubyte.gz"
    dest = tmp_path / "cache" / name
    dest.parent.mkdir()
    dest.write_bytes(b"the copy from before")
    with serving(labels_dir, monkeypatch) as base:
        with pytest.raises(CorruptDownload):
            download([base + name], dest, md5="0" * 32)
    assert dest.read_bytes() == b"the copy from before"
    assert [p.name for p in dest.parent.iterdir()] == [name]


def test_a_refused_mirror_falls_back_to_the_next(monkeypatch, tmp_path, labels_dir):
    name = "t10k-labels-idx1-ubyte.gz"
    with serving(labels_dir, monkeypatch) as base:
        download([refused_url() + name, base + name], tmp_path / name, md5=LABEL_MD5[name])
    assert md5sum(tmp_path / name) == LABEL_MD5[name]


def test_all_mirrors_failing_raises_dataset_unavailable_with_each_url(monkeypatch, tmp_path, labels_dir):
    refused = refused_url() + "t10k-labels-idx1-ubyte.gz"
    with serving(labels_dir, monkeypatch) as base:
        missing = base + "no-such-file.gz"
        with pytest.raises(DatasetUnavailable) as info:
            download([refused, missing], tmp_path / "cache" / "t10k-labels-idx1-ubyte.gz", md5="0" * 32)
    message = str(info.value)
    assert refused in message and missing in message and "HTTP 404" in message
    assert str(tmp_path / "cache") in message  # where to copy the file by hand
    assert info.value.looked[0].startswith(refused) and len(info.value.looked) == 2
    assert list((tmp_path / "cache").iterdir()) == []


class _ShortHandler(http.server.BaseHTTPRequestHandler):
    """Promises 1000 bytes and sends 10, as a dropped connection would."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def test_a_transfer_cut_short_counts_as_a_network_error(monkeypatch, tmp_path):
    with serving(tmp_path, monkeypatch, handler=_ShortHandler) as base:
        with pytest.raises(DatasetUnavailable, match="stopped after 10 of 1000 bytes"):
            download([base + "file.bin"], tmp_path / "cache" / "file.bin")  # no checksum: the length alone
    assert list((tmp_path / "cache").iterdir()) == []


def test_ctrl_c_during_a_download_leaves_nothing(monkeypatch, tmp_path, labels_dir):
    class Interrupted:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            raise KeyboardInterrupt

    monkeypatch.setattr(cache, "progress_bar", Interrupted)
    name = "train-labels-idx1-ubyte.gz"
    with serving(labels_dir, monkeypatch) as base:
        with pytest.raises(KeyboardInterrupt):
            download([base + name], tmp_path / "cache" / name, md5=LABEL_MD5[name])
    assert list((tmp_path / "cache").iterdir()) == []
