"""Getting data files onto disk: download, checksum, and one-line errors.

Every format loader asks `ensure_files` for the files it needs. Files already in
the folder are used as they are; missing ones are downloaded (unless
ACAI_OFFLINE=1), and when that is impossible the DataError says in one line
which files to put in which folder and where to get them.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from .base import DataError

_CHUNK = 1 << 20


class RemoteFile(NamedTuple):
    """A file a data set needs: its name in the data folder, where to get it
    (None: no plain URL, e.g. Google Drive) and its MD5 (None: unknown)."""

    filename: str
    url: str | None
    md5: str | None = None


def offline() -> bool:
    """ACAI_OFFLINE=1 (tests, air-gapped clusters) forbids any network access."""
    return os.environ.get("ACAI_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def md5_bytes(data: bytes | memoryview) -> str:
    return hashlib.md5(data).hexdigest()


def check_md5(path: Path, expected: str, actual: str | None = None, *, what: str = "MD5") -> None:
    """Raise DataError naming `path` when its MD5 is not `expected`; `actual`
    saves re-reading a file already in memory, `what` names what was hashed."""
    actual = actual or md5sum(path)
    if actual != expected:
        raise DataError(f"{path}: checksum mismatch ({what} {actual}, expected {expected}); "
                        f"the file is corrupt or not the official one, delete it and get it again")


def check_official(path: Path, size: int, md5: str) -> None:
    """Check the MD5 of a file that claims to be the official one.

    Only a file of exactly the official size is checked: a different size is
    either caught by the format parser (truncation) or is a deliberately
    different file (e.g. a small test fixture); an official-size file with the
    wrong content is the silent corruption a checksum is for.
    """
    if path.stat().st_size == size:
        check_md5(path, md5)


def _temp_beside(path: Path) -> tuple[int, Path]:
    """A temporary file in `path`'s folder (so the final rename is atomic),
    with the permissions a plainly created file would get (mkstemp's are 0600,
    which would hide a shared data folder's files from other users)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(fd, 0o666 & ~umask)
    return fd, Path(name)


def fetch(url: str, dest: Path, md5: str | None = None) -> Path:
    """Download `url` to `dest`, via a temporary file in the same folder and an
    atomic rename, so that an interrupted download never leaves a file that
    looks complete. Network failures raise OSError (urllib's URLError is one);
    a checksum mismatch raises DataError and keeps nothing."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(dest)
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0)
            print(f"downloading {url} -> {dest}" + (f" ({total / 1e6:.1f} MB)" if total else ""), file=sys.stderr)
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                digest.update(block)
        if md5 is not None and digest.hexdigest() != md5:
            raise DataError(f"{dest}: checksum mismatch after downloading {url} "
                            f"(MD5 {digest.hexdigest()}, expected {md5}); try again later")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _where_to_get(files: list[RemoteFile], homepage: str | None) -> str:
    urls = [f.url for f in files if f.url]
    it = "it" if len(files) == 1 else "them"
    if len(urls) < len(files):  # no plain URL (Google Drive): point at the page
        return f"get {it} from {homepage or 'the official page of the data set'}"
    if len(urls) == 1:
        return f"get it from {urls[0]}"
    folders = {u.rsplit("/", 1)[0] + "/" for u in urls}
    if len(folders) == 1 and all(u.endswith("/" + f.filename) for u, f in zip(urls, files)):
        return f"get them from {folders.pop()}"
    return "get them from " + ", ".join(urls)


def missing_error(root: Path, files: list[RemoteFile], *, homepage: str | None = None,
                  alternatives: str = "", reason: str = "") -> DataError:
    """The one line that tells a user how to supply missing files."""
    root = Path(root).expanduser().absolute()
    names = ", ".join(f.filename for f in files)
    line = f"missing data: put {names} in {root}/ ({_where_to_get(files, homepage)})"
    if alternatives:
        line += f"; {alternatives}"
    if reason:
        line += f"; {reason}"
    return DataError(line)


def ensure_files(root: Path, files: Iterable[RemoteFile | tuple], *, homepage: str | None = None,
                 alternatives: str = "") -> list[Path]:
    """Paths of `files` in `root`, downloading the missing ones when allowed.

    `files` holds (filename, url, md5) triples. Files already present are not
    re-checked here: loaders check what they read (see check_official).
    """
    root = Path(root).expanduser()
    files = [RemoteFile(*f) for f in files]
    missing = [f for f in files if not (root / f.filename).is_file()]
    if missing:
        if any(f.url is None for f in missing):  # nothing to download from
            raise missing_error(root, missing, homepage=homepage, alternatives=alternatives)
        if offline():
            raise missing_error(root, missing, homepage=homepage, alternatives=alternatives,
                                reason="not downloading since ACAI_OFFLINE is set")
        for f in missing:
            try:
                fetch(f.url, root / f.filename, f.md5)
            except OSError as e:  # URLError, HTTPError, timeouts, disk full, read-only folder
                reason = getattr(e, "reason", None) or e
                raise missing_error(root, missing, homepage=homepage, alternatives=alternatives,
                                    reason=f"download failed: {reason}") from e
    return [root / f.filename for f in files]


def save_npy_atomic(path: Path, array: np.ndarray) -> bool:
    """Write a cache file atomically (temp file + rename), so a crash or a
    concurrent run never leaves a half-written cache that later loads as data.
    Returns False, without raising, when the folder is not writable: a cache is
    an optimisation, never a requirement."""
    path = Path(path)
    try:
        fd, tmp = _temp_beside(path)
    except OSError as e:
        print(f"note: cannot write cache {path} ({e}); it will be rebuilt next time", file=sys.stderr)
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
        return True
    except OSError as e:
        print(f"note: cannot write cache {path} ({e}); it will be rebuilt next time", file=sys.stderr)
        return False
    finally:
        tmp.unlink(missing_ok=True)


def load_npy_cache(path: Path, newer_than: Iterable[Path], *, mmap: bool = False) -> np.ndarray | None:
    """A cache written by save_npy_atomic, or None when it is absent, older
    than any of its sources, or unreadable (then it is rebuilt)."""
    path = Path(path)
    try:
        mtime = path.stat().st_mtime_ns
        if any(Path(src).stat().st_mtime_ns > mtime for src in newer_than):
            return None
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError):
        return None


__all__ = ["RemoteFile", "check_md5", "check_official", "ensure_files", "fetch", "load_npy_cache",
           "md5_bytes", "md5sum", "missing_error", "offline", "save_npy_atomic"]
