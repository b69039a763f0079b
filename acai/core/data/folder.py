"""Any folder of images as a data set (`folder:PATH`), plus the image helpers
CelebA shares.

Sub-folders are classes (sorted names -> labels 0..K-1); a folder with images
only is unlabelled (labels -1). Every image is centre-cropped to a square and
resized to 32x32 (bicubic), in RGB, or in grayscale when all images are.
A seeded permutation puts 90% in train and 10% in test, the same every run.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from .base import ImageSplits
from .download import DataError

SIZE = 32
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "F"})
# Pillow raises these for a file it cannot decode (truncated, not an image,
# absurdly large); DecompressionBombError is not an OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def open_image(source: Path | bytes, name: str | Path) -> Image.Image:
    """A fully decoded image (first frame of an animation); `name` identifies
    the file in the error message."""
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()  # decode now, so a truncated file fails here, naming the file
        return image
    except _DECODE_ERRORS as e:
        raise DataError(f"{name}: unreadable image ({type(e).__name__}: {e})") from e


def is_grayscale(image: Image.Image) -> bool:
    return image.mode in _GRAY_MODES


def resize_32(image: Image.Image, box: tuple[int, int, int, int] | None = None, mode: str = "RGB") -> np.ndarray:
    """Crop `box` (left, top, right, bottom; default: the centred square),
    then bicubic-resize to 32x32: (C, 32, 32) uint8 with C = 3 (RGB) or 1 (L).
    Cropping first, then resizing, means no pixel outside the box leaks in."""
    if box is None:
        w, h = image.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    image = image.convert(mode).crop(box).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def progress(items: Sequence, desc: str) -> Iterable:
    """tqdm on a terminal for long decodes (CelebA: minutes), silent otherwise."""
    if len(items) < 2000:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", file=sys.stderr, disable=None)


def list_images(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths (sorted), their labels and the class names ([] if unlabelled)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (folder:PATH needs a folder of images, or of class sub-folders)")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    loose = [p for p in entries if p.is_file() and is_image(p)]
    classes = [(d.name, sorted(p for p in d.rglob("*") if p.is_file() and is_image(p)))
               for d in entries if d.is_dir()]
    classes = [(name, files) for name, files in classes if files]  # folders without images are not classes
    if loose and classes:
        raise DataError(f"{folder}: has both images ({loose[0].name}, ...) and class sub-folders "
                        f"({classes[0][0]}, ...); move the images into a class folder or use one of the sub-folders")
    if classes:
        paths = [p for _, files in classes for p in files]
        labels = np.concatenate([np.full(len(files), k, np.int64) for k, (_, files) in enumerate(classes)])
        return paths, labels, [name for name, _ in classes]
    if not loose:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder or its sub-folders")
    return loose, np.full(len(loose), -1, np.int64), []


def split_indices(n: int, seed: int = 0, test_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic train/test split of n items (each part kept in file order).
    Test gets round(n·test_fraction) items, at least one when n >= 2."""
    n_test = min(n - 1, max(1, round(n * test_fraction))) if n >= 2 else 0
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def load(path: Path, *, seed: int = 0, test_fraction: float = 0.1) -> ImageSplits:
    folder = Path(path).expanduser()
    paths, labels, class_names = list_images(folder)
    decoded, gray = [], True
    for p in progress(paths, f"reading {folder}"):
        image = open_image(p, p)
        gray = gray and is_grayscale(image)
        decoded.append(resize_32(image, mode="L" if is_grayscale(image) else "RGB"))
    # Colour wins: a grayscale image among colour ones is repeated over RGB
    # (what converting it to RGB would give).
    channels = 1 if gray else 3
    images = np.stack([np.broadcast_to(a, (channels, SIZE, SIZE)) for a in decoded])
    train, test = split_indices(len(images), seed, test_fraction)
    return ImageSplits(images[train], labels[train], images[test], labels[test], num_classes=len(class_names))
