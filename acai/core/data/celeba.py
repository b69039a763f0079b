"""CelebA aligned faces: img_align_celeba.zip or the extracted img_align_celeba/.

SPEC 6: each 218x178 (rows x columns) JPEG loses 36 rows at the top and
bottom and 16 columns at the left and right (-> the 146x146 face square), then
is bicubic-resized to 32x32 RGB. No labels: CelebA is only used for
interpolation figures (labels -1, num_classes 0).

Split: the official list_eval_partition.txt when present (0 = train, 2 = test;
1 = validation is unused), else the first 90% / last 10% by file name.

Decoding 202,599 JPEGs takes minutes, so the converted images (in file-name
order) are cached next to the source as img_align_celeba.32x32.npy, or
img_align_celeba.32x32.first<N>.npy for a `limit` run.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .base import ImageSplits
from .download import DataError, RemoteFile, ensure_files, load_npy_cache, save_npy_atomic
from .folder import SIZE, is_image, open_image, progress, resize_32

# The files are on Google Drive (no plain-URL download), so a missing-data
# error points at the official page instead.
HOMEPAGE = "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
ZIP, FOLDER, PARTITION = "img_align_celeba.zip", "img_align_celeba", "list_eval_partition.txt"
WIDTH, HEIGHT = 178, 218
CROP_ROWS, CROP_COLS = 36, 16
BOX = (CROP_COLS, CROP_ROWS, WIDTH - CROP_COLS, HEIGHT - CROP_ROWS)  # PIL (left, top, right, bottom)


class _Source:
    """The aligned images, from the extracted folder when there is one (no
    decompression), else the zip: `names` sorted, `read(name)` a path or bytes."""

    def __init__(self, root: Path):
        self._zip = None
        folder = root / FOLDER
        if folder.is_dir():
            self.names = sorted(p.name for p in folder.iterdir() if p.is_file() and is_image(p))
            if self.names:
                self.path = folder
                return
        [self.path] = ensure_files(root, [RemoteFile(ZIP, None)], homepage=HOMEPAGE,
                                   alternatives=f"or extract it to {folder.absolute()}/; {PARTITION} beside it (optional) "
                                                "gives the standard split")
        try:
            self._zip = zipfile.ZipFile(self.path)
            self._members = {Path(i.filename).name: i for i in self._zip.infolist()
                             if not i.is_dir() and is_image(Path(i.filename))}
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{self.path}: corrupt or truncated zip file ({e})") from e
        if not self._members:
            raise DataError(f"{self.path}: no images in this zip file")
        self.names = sorted(self._members)

    def read(self, name: str) -> Path | bytes:
        if self._zip is None:
            return self.path / name
        try:
            return self._zip.read(self._members[name])
        except (zipfile.BadZipFile, OSError, EOFError) as e:  # CRC mismatch, truncated member
            raise DataError(f"{self.path}:{self._members[name].filename}: corrupt zip member ({e})") from e

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _partition(root: Path) -> dict[str, int] | None:
    """The official partition (name -> 0 train, 1 val, 2 test), if present."""
    for path in (root / PARTITION, root / "Eval" / PARTITION):
        if path.is_file():
            break
    else:
        return None
    partition = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(f"{path}:{number}: expected '<image name> <0|1|2>', got {line.strip()!r}")
        partition[fields[0]] = int(fields[1])
    return partition


def _convert(source: _Source, names: list[str]) -> np.ndarray:
    out = np.empty((len(names), 3, SIZE, SIZE), np.uint8)
    for i, name in enumerate(progress(names, f"converting CelebA ({source.path})")):
        image = open_image(source.read(name), source.path / name)
        if image.size != (WIDTH, HEIGHT):
            raise DataError(f"{source.path / name}: image is {image.size[0]}x{image.size[1]}, aligned CelebA images "
                            f"are {WIDTH}x{HEIGHT} (width x height); use img_align_celeba, not the in-the-wild images")
        out[i] = resize_32(image, BOX, "RGB")
    return out


def _images(root: Path, source: _Source, limit: int | None) -> np.ndarray:
    """The first `limit` (default all) images in name order, through the cache."""
    total = len(source.names)
    n = total if limit is None else min(limit, total)
    full_cache = root / f"{FOLDER}.32x32.npy"
    cache = full_cache if n == total else root / f"{FOLDER}.32x32.first{n}.npy"
    for path, length in dict.fromkeys([(full_cache, total), (cache, n)]):  # a full cache serves any limit
        images = load_npy_cache(path, [source.path], mmap=True)
        if images is not None and images.shape == (length, 3, SIZE, SIZE):
            return np.array(images[:n])
    images = _convert(source, source.names[:n])
    save_npy_atomic(cache, images)
    return images


def load(root: Path, *, limit: int | None = None) -> ImageSplits:
    """CelebA at 32x32; `limit` reads only the first `limit` images by name
    (for quick runs; these all lie in the standard training partition, so they
    are split 90/10)."""
    if limit is not None and limit < 2:
        raise DataError(f"celeba limit must be at least 2 (one train and one test image), got {limit}")
    root = Path(root)
    source = _Source(root)
    try:
        images = _images(root, source, limit)
    finally:
        source.close()
    names = source.names[:len(images)]
    if len(images) < 2:
        raise DataError(f"{source.path}: only {len(images)} image, need at least 2 (train and test)")

    train = test = None
    partition = _partition(root)
    if partition is not None:
        codes = np.array([partition.get(name, -1) for name in names])
        train, test = np.flatnonzero(codes == 0), np.flatnonzero(codes == 2)
        if len(train) == 0 or len(test) == 0:  # e.g. a limit run: fall back to 90/10 below
            train = test = None
    if train is None:
        n_train = min(len(images) - 1, round(0.9 * len(images)))
        train, test = np.arange(n_train), np.arange(n_train, len(images))
    unlabelled = np.full(len(images), -1, np.int64)
    return ImageSplits(images[train], unlabelled[train], images[test], unlabelled[test], num_classes=0)
