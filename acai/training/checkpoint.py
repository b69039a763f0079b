"""Atomic writes and one writer per folder: a run killed at any moment leaves the last complete
file, and two processes never write the same run."""
from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from acai.training.config import ConfigError

TEMP_MARK = ".tmp-"  # in the name of every file being written; one left behind was killed mid-write
LOCK = ".lock"


_UMASK = os.umask(0)
os.umask(_UMASK)


_CAUSES = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
           errno.EACCES: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a folder",
           errno.EEXIST: "a part of the path is a file, not a folder"}


# What to do when a write fails, for the commands that write where --out says (train, reproduce).
OUT_REMEDY = "free space or choose another --out, then rerun (a run continues with --resume)"


def _write_error(path: Path, error: OSError, remedy: str = OUT_REMEDY) -> ConfigError:
    """One line naming the file and the cause (ENOSPC...), what is left, and `remedy`."""
    cause = _CAUSES.get(error.errno, error.strerror or type(error).__name__)
    code = errno.errorcode.get(error.errno, "")
    kept = f"; the previous {path.name} is intact" if path.exists() else ""
    return ConfigError(f"cannot write {path}: {cause}{f' ({code})' if code else ''}{kept}; {remedy}")


def _atomic(path: Path, write, remedy: str = OUT_REMEDY) -> None:
    """Write `path` through a temp file in its folder, renamed over it once complete: a reader or a
    killed writer never sees half a file. A failure (disk full...) is a one-line ConfigError that
    ends with `remedy`, what the command that writes can do about it."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, error, remedy) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj, path) -> None:
    # Serialised in memory first: torch's zip writer turns a failed write into "unexpected pos ...",
    # losing the OSError (and its ENOSPC) that a plain write of the bytes keeps.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    _atomic(path, lambda handle: handle.write(buffer.getbuffer()))


def save_json(obj, path) -> None:
    _atomic(path, lambda handle: handle.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def save_bytes(data: bytes, path, remedy: str = OUT_REMEDY) -> None:
    _atomic(path, lambda handle: handle.write(data), remedy)


def load_torch(path):
    """A checkpoint, or a one-line ConfigError if it is missing, empty, truncated or not a checkpoint."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ConfigError(f"no checkpoint at {path}; train first (acai train ... --out {path.parent})") from None
    except Exception as error:  # torch raises many kinds for a damaged file (EOFError, RuntimeError, pickle errors)
        raise ConfigError(f"{path} is not a readable checkpoint ({type(error).__name__}: "
                          f"{str(error).splitlines()[0][:120] if str(error) else 'damaged'}); delete it and train "
                          f"again, or restore it from a copy") from None
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ConfigError(f"{path} is not an acai checkpoint; delete it and train again")
    # What every reader of a checkpoint takes from it (training.run.Run.load_state_dict, acai status): a
    # file that unpickles but lacks one is as unusable as a truncated one, and says so in one line.
    wrong = _misfits(state, CHECKPOINT_KEYS)
    if wrong:
        raise ConfigError(f"{path} is not a whole acai checkpoint ({wrong}); delete it and train again, or "
                          f"restore it from a copy")
    return state


# The keys that readers take from a checkpoint (training/run.py's Run.state_dict), and the type of each; those
# of a run folder's other files are in training/run_folder.py.
CHECKPOINT_KEYS = {"config": dict, "model": dict, "optimizers": dict, "step": int, "history": list}


def _misfits(value, keys: dict) -> str:
    """'' if `value` is an object holding each of `keys` with its type, else what is wrong, in words."""
    if not isinstance(value, dict):
        return f"it holds {type(value).__name__ if value is not None else 'null'}, not an object"
    for key, kind in keys.items():
        if key not in value:
            return f"it has no {key!r}"
        # bool is an int to Python, never a count to acai
        if not isinstance(value[key], kind) or isinstance(value[key], bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            return f"its {key!r} is {type(value[key]).__name__}, not {names}"
    return ""


def saved_step(path) -> int | None:
    """The step of the checkpoint at `path`, its tensors left on disk (memory-mapped, never read), or None
    if it is missing or unreadable: cheap enough for `acai status` to ask every run of a sweep."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # missing, being replaced, damaged: the caller falls back on the log
        return None
    step = state.get("step") if isinstance(state, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def read_json(path, keys: dict | None = None):
    """A JSON file, or a one-line ConfigError naming it if it is unreadable or damaged. With `keys`
    ({name: type}) it must hold an object with each of them, of that type: a file that parses but
    has another shape (`[]`, a missing key) is refused in the same one line, not as a TypeError later."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{path} is unreadable or damaged ({type(error).__name__}); delete it (it is "
                          f"rewritten when its run or measurement is redone)") from None
    wrong = _misfits(value, keys) if keys is not None else ""
    if wrong:
        raise ConfigError(f"{path} is not what acai writes there ({wrong}); delete it (it is rewritten when its "
                          f"run or measurement is redone)")
    return value


def read_json_lines(path, keys: dict | None = None, remedy: Callable[[Path], str] | None = None) -> list:
    """The objects of a JSON-lines file, each with `keys` ({name: type}) if given; an unreadable or damaged
    file is a one-line ConfigError ending with `remedy(path)`, what to do about it (a run's log.jsonl:
    training/run_folder.py `read_log`)."""
    path = Path(path)
    try:
        values = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        wrong = next((f"line {n}: {why}" for n, value in enumerate(values, 1)
                      if (why := _misfits(value, keys if keys is not None else {}))), "")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        wrong = type(error).__name__
    if wrong:
        what = remedy(path) if remedy is not None else "delete it (it is rewritten when what wrote it is redone)"
        raise ConfigError(f"{path} is unreadable or damaged ({wrong}); {what}") from None
    return values


def cached_json(path, settings: dict, absent: dict | None = None) -> dict | None:
    """The result cached at `path` if it was made with exactly `settings`, else None. A damaged
    cache counts as missing: it is recomputed and rewritten. `absent`: settings that older caches
    do not record, and the value they had then (a cache without the key was made with it)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    absent = absent or {}
    if isinstance(result, dict) and all(result.get(k, absent.get(k)) == v for k, v in settings.items()):
        return result
    return None


def digest(path) -> str:
    """SHA-256 of a file: what a cached measurement records of the checkpoint it read."""
    import hashlib

    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _writable_error(folder: Path, error: OSError) -> ConfigError:
    reason = {errno.EACCES: "is not writable", errno.EROFS: "is on a read-only file system",
              errno.ENOSPC: "is on a full disk", errno.ENOTDIR: "is a file, not a folder",
              errno.EEXIST: "is a file, not a folder"}.get(error.errno, f"cannot be written ({error.strerror})")
    return ConfigError(f"{folder} {reason}; choose another --out")


@contextmanager
def folder_lock(folder):
    """Hold `folder` as its only writer: another process gets a one-line ConfigError at once.

    An flock on folder/.lock: the kernel releases it when the holder dies, so a
    killed run never blocks the next one. Holding it, the temp files that a killed
    writer left behind are removed. The folders it made are removed again if nothing
    was written into them (a bad --data or --device found after the lock was taken)."""
    folder = Path(folder)
    made = [parent for parent in (folder, *folder.parents) if not parent.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _writable_error(folder, error) from None
    path = folder / LOCK
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as error:
            raise _writable_error(folder, error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(f"{folder} is being written by {holder}; wait for it to finish or choose another "
                              f"--out") from None
        try:  # the holder before us may have removed the file between our open and our lock
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        try:  # who holds it, for the message of a second writer; on a full disk it stays unsaid
            os.ftruncate(fd, 0)
            os.write(fd, f"acai process {os.getpid()} on {os.uname().nodename}".encode())
        except OSError:
            pass
        for stale in folder.glob(f".*{TEMP_MARK}*"):
            stale.unlink(missing_ok=True)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
        for made_here in made:
            try:
                made_here.rmdir()  # only if empty: another writer's files, or ours, stay
            except OSError:
                break


def is_locked(folder) -> bool:
    """Whether a live process holds `folder` (acai status)."""
    path = Path(folder) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
