"""SVHN cropped digits (format 2): train_32x32.mat, test_32x32.mat, extra_32x32.mat.

SPEC 6: train + extra for training (604,388 images), test for test. In the
.mat files X is (32, 32, 3, N) uint8 and y is (N, 1) with 1..10, where 10
stands for the digit 0.

The training images are kept in file order, train then extra: the order of the
release's `svhn32_train_once` stream (svhn-train.tfrecord then svhn-extra.tfrecord,
unshuffled, each written in .mat order), so the first 60,000 that its clustering
fits are the first 60,000 of train_32x32.mat (it holds 73,257).

Decoding the 1.3 GB extra .mat takes tens of seconds, so each converted file is
cached next to it as `<stem>.images.npy` / `<stem>.labels.npy` and reused while
newer than the .mat.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import ImageSplits
from .download import DataError, RemoteFile, check_official, ensure_files, load_npy_cache, save_npy_atomic

URL = "http://ufldl.stanford.edu/housenumbers/"

# part -> (file name, official size in bytes, official MD5)
FILES = {
    "train": ("train_32x32.mat", 182040794, "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test": ("test_32x32.mat", 64275384, "eb5a983be6a315427106f1b164d9cef3"),
    "extra": ("extra_32x32.mat", 1329278602, "a93ce644f1a588dc4d68dda5feec44a7"),
}


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One .mat file as (N, 3, 32, 32) uint8 images and int64 labels 0..9."""
    from scipy.io import loadmat  # scipy is slow to import; only SVHN needs it

    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except Exception as e:  # scipy raises many types (ValueError, MatReadError, ...) for a bad file
        raise DataError(f"{path}: not a readable SVHN .mat file ({type(e).__name__}: {e})") from e
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise DataError(f"{path}: no X and y arrays in this .mat file (is it the format-2 cropped-digits file?)")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X should be uint8 (32, 32, 3, N), got {x.dtype} {x.shape}")
    y = y.reshape(-1).astype(np.int64)
    if len(y) != x.shape[3]:
        raise DataError(f"{path}: {len(y)} labels for {x.shape[3]} images")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: labels should be 1..10, found {y.min()}..{y.max()}")
    # X[row, col, channel, n] -> images[n, channel, row, col]; label 10 is the digit 0.
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y % 10


def _cache_paths(mat: Path) -> tuple[Path, Path]:
    return mat.with_name(f"{mat.stem}.images.npy"), mat.with_name(f"{mat.stem}.labels.npy")


def converted(mat: Path, size: int | None = None, md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """read_mat through the .npy cache. Images come back memory-mapped from the
    cache (the caller copies them once into the final array)."""
    images_npy, labels_npy = _cache_paths(mat)
    images = load_npy_cache(images_npy, [mat], mmap=True)
    labels = load_npy_cache(labels_npy, [mat])
    if (images is not None and labels is not None and images.dtype == np.uint8
            and images.shape[1:] == (3, 32, 32) and labels.shape == (len(images),)):
        return images, labels
    if size is not None and md5 is not None:
        check_official(mat, size, md5)  # only on a cache miss: 3 s for extra
    images, labels = read_mat(mat)
    # Labels first: the images file is the one whose presence means "complete".
    save_npy_atomic(labels_npy, labels)
    save_npy_atomic(images_npy, images)
    return images, labels


def _concatenate(parts: list[np.ndarray]) -> np.ndarray:
    """One in-memory array from (possibly memory-mapped) parts, copying each
    once, so train + extra peaks at its final 1.9 GB rather than twice that."""
    out = np.empty((sum(len(p) for p in parts), *parts[0].shape[1:]), parts[0].dtype)
    start = 0
    for p in parts:
        out[start:start + len(p)] = p
        start += len(p)
    return out


def load(root: Path, *, extra: bool = True) -> ImageSplits:
    """SVHN with train (+ extra when `extra`, as in SPEC 6) for training."""
    root = Path(root)
    parts = ["train", "test"] + (["extra"] if extra else [])
    paths = ensure_files(root, [RemoteFile(FILES[p][0], URL + FILES[p][0], FILES[p][2]) for p in parts],
                         alternatives="extra_32x32.mat (1.3 GB) is not needed with extra=False" if extra else "")
    data = {p: converted(path, *FILES[p][1:]) for p, path in zip(parts, paths)}
    train = [p for p in parts if p != "test"]
    return ImageSplits(
        train_images=_concatenate([data[p][0] for p in train]),
        train_labels=np.concatenate([data[p][1] for p in train]),
        test_images=_concatenate([data["test"][0]]),
        test_labels=data["test"][1],
        num_classes=10,
    )
