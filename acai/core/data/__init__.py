"""Data sets by name: `lines` (synthetic), `mnist`, `svhn`, `cifar10`, `celeba`
and `folder:PATH` (any folder of images).

`describe_data(name)` says what a data set offers without loading it (a `DataDescription`,
acai/core/data/base.py: its kind, its capabilities, whether it reads files, whether its latent
size is fixed). `get_source(name, data_dir)` loads it: a `DataSource` with `shape`,
`num_classes`, `train_batch(seed, step, batch_size)`, `test_set()` and the `capabilities` of its
description (a fixed training set; lines metrics).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from .base import (DRAWN_LINES, IMAGE_FILES, ArraySource, Capability, DataDescription, DataError, DataSource,
                   ImageSplits, Kind, offers, to_unit_range)


def _lines_source(**options) -> DataSource:
    from ..lines import LinesSource  # on first use: acai.core.lines imports torch and this package's base

    return LinesSource(**options)


# Drawn in memory: name -> the function that makes its source.
_DRAWN = {"lines": _lines_source}
# Read from files under the data root: name -> module under acai.core.data with `load(root: Path, **options) -> ImageSplits`
_FORMAT_LOADERS = {
    "mnist": "mnist",
    "svhn": "svhn",
    "cifar10": "cifar10",
    "celeba": "celeba",
}
FOLDER_PREFIX = "folder:"  # folder:PATH, a folder of images (acai/core/data/folder.py)
DESCRIPTIONS: dict[str, DataDescription] = {"lines": DRAWN_LINES, **{name: IMAGE_FILES for name in _FORMAT_LOADERS}}
NAMES = (*DESCRIPTIONS, f"{FOLDER_PREFIX}PATH")


def describe_data(name: str) -> DataDescription:
    """What the data set `name` offers, from its name alone; an unknown name is a DataError."""
    if name.startswith(FOLDER_PREFIX):
        return IMAGE_FILES
    if name not in DESCRIPTIONS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    return DESCRIPTIONS[name]


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $ACAI_DATA, else a per-user cache folder."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("ACAI_DATA"):
        return Path(os.environ["ACAI_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "acai" / "data"


def get_source(name: str, data_dir=None, **options):
    describe_data(name)  # an unknown name: the one error for it
    if name in _DRAWN:
        return _DRAWN[name](**options)
    if name.startswith(FOLDER_PREFIX):
        from . import folder

        return ArraySource(name, folder.load(Path(name[len(FOLDER_PREFIX):]).expanduser(), **options))
    module = importlib.import_module(f".{_FORMAT_LOADERS[name]}", __name__)
    return ArraySource(name, module.load(data_root(data_dir) / name, **options))


__all__ = ["ArraySource", "Capability", "DESCRIPTIONS", "DataDescription", "DataSource", "DataError", "FOLDER_PREFIX",
           "Kind", "offers", "ImageSplits", "NAMES", "data_root", "describe_data", "get_source", "to_unit_range"]
