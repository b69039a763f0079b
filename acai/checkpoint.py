"""Atomic writes: a run killed at any moment leaves the last complete file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj, path) -> None:
    _atomic(path, lambda handle: torch.save(obj, handle))


def save_json(obj, path) -> None:
    _atomic(path, lambda handle: handle.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def save_bytes(data: bytes, path) -> None:
    _atomic(path, lambda handle: handle.write(data))


def load_torch(path):
    return torch.load(path, map_location="cpu", weights_only=False)
