"""Files, the one way: write atomically (bytes, text, JSON, torch), hash, and read a checked torch file.

Every file the package writes goes to a hidden temporary file in the destination's folder, is flushed
to disk, made readable by all (0644) and only then renamed onto its name (os.replace), so a file under
its final name is always whole; on any error, Ctrl-C included, the temporary file is removed and an
existing file is left as it was. `check_writable` lets a command refuse a bad output path before any
work starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = ["atomic_open", "write_bytes", "write_text", "write_json", "save_torch", "read_torch",
           "file_sha256", "check_writable"]

PathLike = str | os.PathLike
CHUNK = 1 << 20
# The torch files the book writes, by the prefix of their "format" tag: what to call each in a message.
KNOWN_FORMATS = {
    "ddpm_nb.weights/": "a checkpoint (NAME.pt, the weights `ddpm-nb train` saves)",
    "ddpm_nb.train_state/": "a training state (NAME.state.pt, what `ddpm-nb train` resumes from; the "
                            "checkpoint it makes is NAME.pt)",
}


def file_sha256(path: PathLike) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks (what checkpoints/MANIFEST records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, encoding: str | None = None) -> Iterator[io.IOBase]:
    """Open a temporary file beside `path` for writing; on a clean exit it becomes `path` (0644).

    mode 'wb' or 'w' (text, utf-8 unless `encoding`). An exception inside the block removes the
    temporary file and leaves `path` untouched. The folder is created if missing.
    """
    if mode not in ("wb", "w"):
        raise UserError(f"atomic_open writes with mode 'wb' or 'w', got {mode!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; what the book writes is readable by all
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: PathLike, text: str) -> None:
    """Write `text` (utf-8) to `path` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: PathLike, obj: Any, *, indent: int = 2) -> str:
    """Write `obj` as JSON (and a final newline) to `path` atomically; returns the text written."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"
    write_text(path, text)
    return text


def save_torch(obj: Any, path: PathLike) -> str:
    """torch.save `obj` to `path` atomically; returns the file's sha256."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_torch(path: PathLike, fmt: str, what: str, remedy: str) -> dict[str, Any]:
    """torch.load(weights_only=True) to the CPU of a file written with {"format": fmt, ...}.

    A missing file raises FileNotFoundError; a corrupt or foreign one a UserError whose message ends
    with `remedy` (what to do about it, e.g. "restore it with git checkout checkpoints/").
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {what} at {path}: {remedy}.")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":  # torch files are zip archives
        kind = "a JSON file" if head.lstrip()[:1] in (b"{", b"[") else "not a torch file"
        raise UserError(f"{path} is {kind}, not a {what}: pass the {what} itself (a .pt file the book "
                        "wrote).")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"The {what} {path} is corrupt or truncated ({type(err).__name__}): "
                        f"{remedy}.") from err
    tag = obj.get("format") if isinstance(obj, dict) else None
    if tag != fmt:
        known = next((name for prefix, name in KNOWN_FORMATS.items() if str(tag).startswith(prefix)), None)
        if known is not None:  # a good file of another kind: nothing to delete or retrain
            raise UserError(f"{path} is {known}, not a {what} ({fmt}): pass the {what} itself.")
        raise UserError(f"{path} is not a {what} (format {tag!r}, expected {fmt!r}): {remedy}.")
    return obj


def check_writable(path: PathLike, what: str = "output") -> Path:
    """Refuse, before any work starts, an output path that cannot be written: one UserError.

    `path` must not be a folder, and its folder (created if missing) must accept a new file: this is
    tried by creating and removing a temporary file there, so permissions, read-only mounts and
    immutable folders are all caught.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"The {what} path {path} is a folder: give a file name, e.g. {path / 'out.json'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise UserError(f"Cannot write the {what} {path} ({err.strerror or err}): choose a folder you "
                        "can write to.") from err
    return path
