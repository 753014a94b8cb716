"""Where data sets live: read-only data roots, the writable cache, and verified downloads.

Search order used by every loader of the book: the folders in ``DDPM_NB_DATA`` (read-only), then
the cache (``DDPM_NB_CACHE``, default ``~/.cache/ddpm_nb``), then a download. A download streams to
a temporary file next to its destination, is checked against its published checksum, and only
then renamed into place, so a file under its final name is always whole and verified.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from ..files import atomic_open
from ..progress import progress_bar

__all__ = ["DatasetUnavailable", "CorruptDownload", "data_roots", "cache_dir", "md5sum", "sha256sum",
           "download"]

CHUNK = 1 << 20  # bytes read at a time, for hashing and downloading

# What a failed transfer raises; anything else (a full disk, a bug) propagates as it is.
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
                   ssl.SSLError)


class DatasetUnavailable(UserError):
    """A data set was found nowhere: not in the data roots, not in the cache, and not downloadable.

    dataset: what was wanted; looked: every place tried (a path or URL, with what was wrong
    there); todo: one sentence saying what the reader can do about it.
    """

    def __init__(self, dataset: str, looked: Sequence[str], todo: str):
        self.dataset, self.looked, self.todo = dataset, list(looked), todo
        places = "".join(f"\n  - {place}" for place in self.looked)
        super().__init__(f"{dataset} is not available on this machine; looked in:{places}\n{todo}")

    def __reduce__(self):
        return type(self), (self.dataset, self.looked, self.todo)


class CorruptDownload(UserError):
    """A file (a download, or a copy of one) does not match its published checksum."""


def data_roots() -> list[Path]:
    """The read-only data folders named by ``DDPM_NB_DATA`` (several joined by os.pathsep); [] if unset."""
    value = os.environ.get("DDPM_NB_DATA", "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def cache_dir() -> Path:
    """The writable cache: ``DDPM_NB_CACHE`` if set, else ``~/.cache/ddpm_nb`` (not created here)."""
    return Path(os.environ.get("DDPM_NB_CACHE") or "~/.cache/ddpm_nb").expanduser()


def _hexdigest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def md5sum(path: str | Path) -> str:
    """The md5 of a file as 32 lowercase hex digits, read in 1 MiB chunks (any file size)."""
    return _hexdigest(Path(path), "md5")


def sha256sum(path: str | Path) -> str:
    """The sha256 of a file as 64 lowercase hex digits, read in 1 MiB chunks (any file size)."""
    return _hexdigest(Path(path), "sha256")


def _describe(err: BaseException) -> str:
    """A short reason for a failed transfer, e.g. 'HTTP 404 Not Found' or 'Connection refused'."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        reason = err.reason
        return getattr(reason, "strerror", None) or str(reason)
    return f"{type(err).__name__}: {err}"


def download(urls: Sequence[str], dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
             timeout: float = 60) -> Path:
    """Fetch the first of `urls` that answers into `dest`, verified, and return `dest`.

    Mirrors are tried in order; a network error (refused, timed out, HTTP error, cut short) moves on
    to the next, and when all fail `DatasetUnavailable` lists each URL with its error. The bytes go
    to a hidden temporary file in dest's folder (with a progress bar) and are hashed on the way;
    the file is renamed onto `dest` (os.replace, atomic) only if it matches `md5` / `sha256`, else
    it is deleted and `CorruptDownload` is raised. Whatever happens, including Ctrl-C, no partial
    file is left behind and an existing `dest` is untouched unless the new file is verified.
    With neither checksum given, the caller must check the content itself.
    """
    if isinstance(urls, str):
        urls = [urls]
    if not urls:
        raise UserError("download needs at least one URL.")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = {name: value.lower() for name, value in (("md5", md5), ("sha256", sha256)) if value}
    errors = []
    for url in urls:
        try:
            return _fetch(url, dest, expected, timeout)
        except _NETWORK_ERRORS as err:
            errors.append(f"{url} ({_describe(err)})")
    raise DatasetUnavailable(
        dest.name, errors,
        f"Connect to the internet and run again, or copy {dest.name} into {dest.parent} by hand.")


def _fetch(url: str, dest: Path, expected: dict[str, str], timeout: float) -> Path:
    """One attempt of `download`: stream `url` to a temporary file, verify, rename onto `dest`."""
    hashers = {name: hashlib.new(name) for name in expected}
    with atomic_open(dest, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        received = 0
        with progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                  leave=False) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise ConnectionError(f"the transfer stopped after {received} of {total} bytes")
        for name, h in hashers.items():  # a mismatch raises inside the block: nothing is renamed
            if h.hexdigest() != expected[name]:
                raise CorruptDownload(
                    f"The download of {dest.name} from {url} has {name} {h.hexdigest()} but the published "
                    f"checksum is {expected[name]}, so it was deleted: run again (a proxy or a cut transfer "
                    f"can damage a download), or fetch the file by hand into {dest.parent}.")
    return dest
