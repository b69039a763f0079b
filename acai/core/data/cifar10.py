"""CIFAR-10, python version: cifar-10-python.tar.gz or its extracted folder.

SPEC 6: 50k train (data_batch_1..5), 10k test (test_batch). Each batch is a
pickled dict with b"data", (N, 3072) uint8 rows holding the 1024 red, then
green, then blue pixels of a 32x32 image in row-major order, and b"labels".
"""
from __future__ import annotations

import codecs
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

from .base import ImageSplits
from .download import DataError, RemoteFile, check_official, ensure_files

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE, ARCHIVE_SIZE, ARCHIVE_MD5 = "cifar-10-python.tar.gz", 170498071, "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickling runs arbitrary code by design; the batches only need numpy's
    array reconstruction, so nothing else may be loaded from a (possibly
    tampered) download."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # pickled by numpy 1.x (the official files)
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # pickled by numpy 2.x
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # pickle protocol 5, numpy 1.x
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,  # pickle protocol 5, numpy 2.x
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes pickled by Python 3 at protocol 2
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def parse_batch(stream: BinaryIO, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch as (N, 3, 32, 32) uint8 images and int64 labels;
    `where` names the file (or archive member) in error messages."""
    try:
        batch = _ArrayUnpickler(stream, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DataError(f"{where}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{where}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{where}: b'data' should be uint8 (N, 3072), got "
                        f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: {labels.size} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: labels should be 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_folder(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    batches = {}
    for name in TRAIN_BATCHES + TEST_BATCHES:
        try:
            with open(folder / name, "rb") as f:
                batches[name] = parse_batch(f, str(folder / name))
        except OSError as e:
            raise DataError(f"{folder / name}: cannot read ({e.strerror or e})") from e
    return batches


def _read_archive(archive: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    check_official(archive, ARCHIVE_SIZE, ARCHIVE_MD5)
    wanted = {f"{FOLDER}/{name}": name for name in TRAIN_BATCHES + TEST_BATCHES}
    batches = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one pass through the gzip stream
                name = wanted.get(member.name.removeprefix("./"))
                if name and member.isfile():
                    batches[name] = parse_batch(tar.extractfile(member), f"{archive}:{member.name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:  # truncated or not a .tar.gz
        raise DataError(f"{archive}: corrupt or truncated archive ({type(e).__name__}: {e})") from e
    missing = [member for member, name in wanted.items() if name not in batches]
    if missing:
        raise DataError(f"{archive}: no {', '.join(missing)} in this archive (is it the python version?)")
    return batches


def load(root: Path) -> ImageSplits:
    root = Path(root)
    folder = root / FOLDER
    if all((folder / name).is_file() for name in TRAIN_BATCHES + TEST_BATCHES):
        batches = _read_folder(folder)  # already extracted: no decompression
    else:
        [archive] = ensure_files(root, [RemoteFile(ARCHIVE, URL, ARCHIVE_MD5)],
                                 alternatives=f"or its extracted folder {folder.absolute()}/")
        batches = _read_archive(archive)

    def joined(names):
        return (np.concatenate([batches[n][0] for n in names]), np.concatenate([batches[n][1] for n in names]))

    return ImageSplits(*joined(TRAIN_BATCHES), *joined(TEST_BATCHES), num_classes=10)
