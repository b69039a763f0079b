"""MNIST from the four standard IDX files (gzipped or not), padded to 32x32.

SPEC 6: 60k train / 10k test, 28x28 padded by 2 on each side with the value
that becomes -1 in [-1, 1], i.e. uint8 0 (0·2/255 - 1 = -1).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .base import ImageSplits
from .download import DataError, RemoteFile, check_md5, ensure_files, md5_bytes

# The Google mirror serves the same files as yann.lecun.com, which now often
# refuses plain downloads.
URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

# Uncompressed name -> (shape, MD5 of the uncompressed file, SPEC 6). The gzip
# files themselves differ between mirrors (re-compressed), so the check is on
# the decompressed bytes.
FILES = {
    "train-images-idx3-ubyte": ((60000, 28, 28), "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ((60000,), "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ((10000, 28, 28), "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ((10000,), "27ae3e4e09519cfbb04c329615203637"),
}
_IDX_UBYTE = 0x08  # IDX type code of unsigned bytes, the only type MNIST uses


def _file_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (whatever its name)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    if data[:2] == b"\x1f\x8b":  # gzip magic
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:  # truncated, bad CRC, bad deflate stream
            raise DataError(f"{path}: corrupt or truncated gzip file ({e})") from e
    return data


def parse_idx(data: bytes, path: Path) -> np.ndarray:
    """IDX bytes as a uint8 array (a view, no copy), refusing anything that is
    not exactly what the header promises; `path` is only for the message."""
    # Header: 2 zero bytes, type code, number of dims, then each dim as big-endian uint32.
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != _IDX_UBYTE or not 1 <= data[3] <= 4:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number {data[:4].hex() or 'none'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, header alone needs {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: truncated or corrupt IDX file ({len(data)} bytes, header {shape} says {expected})")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file, gzipped or not, as a uint8 array."""
    return parse_idx(_file_bytes(Path(path)), path)


def _counterpart(name: str) -> str:
    """The same kind of file of the other split: train-images-idx3-ubyte <-> t10k-images-idx3-ubyte."""
    prefix, _, rest = name.partition("-")
    return f"{'t10k' if prefix == 'train' else 'train'}-{rest}"


def _swapped(path: Path, name: str, count: int | None = None) -> DataError:
    """The files of the two splits under each other's names: known by the other file's MD5, or (`count`)
    by holding as many items as the other split and more than this one."""
    split, other = ("test", "train") if name.startswith("t10k") else ("train", "test")
    kind = "images" if "images" in name else "labels"
    what = (f"holds MNIST's {other} {kind}, not its {split} {kind}" if count is None else
            f"holds {count:,} {kind}, as many as MNIST's {other} split, where its {split} split has "
            f"{FILES[name][0][0]:,}")
    return DataError(f"{path} {what}: the train and test files are swapped (train-* hold the 60,000 training "
                     f"images, t10k-* the 10,000 test images); rename them")


def _read_official(path: Path, name: str) -> np.ndarray:
    data = _file_bytes(path)
    array = parse_idx(data, path)
    shape, official_md5 = FILES[name]
    if array.shape[1:] != shape[1:]:
        raise DataError(f"{path}: expected items of shape {shape[1:]}, got {array.shape[1:]}")
    # A file of the official size must be the official file (cheap: ~0.1 s for
    # all four); smaller ones (test fixtures, subsets) are taken as they are,
    # unless they are the other split's official file, or hold more than the split has.
    other_shape, other_md5 = FILES[_counterpart(name)]
    if array.shape == shape:
        check_md5(path, official_md5, md5_bytes(data), what="MD5 of the uncompressed data")
    elif array.shape == other_shape and md5_bytes(data) == other_md5:
        raise _swapped(path, name)
    if len(array) > shape[0]:
        if len(array) == other_shape[0]:
            raise _swapped(path, name, len(array))
        split = "test" if name.startswith("t10k") else "train"
        raise DataError(f"{path}: {len(array):,} items, but MNIST's {split} split has {shape[0]:,}; use the "
                        f"official files (or a subset of each)")
    return array


def _locate(root: Path) -> dict[str, Path]:
    """Each standard file as `<name>.gz`, else uncompressed `<name>`; the
    missing ones are downloaded as .gz (or the DataError says where to get them)."""
    found, missing = {}, []
    for name in FILES:
        for candidate in (root / f"{name}.gz", root / name):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(name)
    if missing:
        paths = ensure_files(root, [RemoteFile(f"{n}.gz", URL + f"{n}.gz") for n in missing],
                             alternatives="uncompressed files are fine too")
        found.update(zip(missing, paths))
    return found


def pad_to_32(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 1, 32, 32) with a 2-pixel border of 0 (= -1 after scaling)."""
    out = np.zeros((len(images), 1, 32, 32), np.uint8)
    out[:, 0, 2:30, 2:30] = images
    return out


def load(root: Path) -> ImageSplits:
    root = Path(root)
    paths = _locate(root)
    arrays = {name: _read_official(path, name) for name, path in paths.items()}
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]
        if len(images) != len(labels):
            raise DataError(f"{paths[f'{prefix}-labels-idx1-ubyte']}: {len(labels)} labels "
                            f"for {len(images)} images in {paths[f'{prefix}-images-idx3-ubyte'].name}")
        if labels.size and labels.max() > 9:
            raise DataError(f"{paths[f'{prefix}-labels-idx1-ubyte']}: label {labels.max()} is not a digit")
        splits[split] = (pad_to_32(images), labels.astype(np.int64))
    return ImageSplits(*splits["train"], *splits["test"], num_classes=10)
