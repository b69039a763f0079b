"""Data sets by name: `lines` (synthetic), `mnist`, `svhn`, `cifar10`, `celeba`
and `folder:PATH` (any folder of images).

`get_source(name, data_dir)` returns a `DataSource` (acai/core/data/base.py): `shape`,
`num_classes`, `train_batch(seed, step, batch_size)`, `test_set()` and the
`capabilities` it declares (a fixed training set; lines metrics).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from .base import ArraySource, Capability, DataError, DataSource, ImageSplits, offers, to_unit_range

# name -> module under acai.core.data with `load(root: Path, **options) -> ImageSplits`
_FORMAT_LOADERS = {
    "mnist": "mnist",
    "svhn": "svhn",
    "cifar10": "cifar10",
    "celeba": "celeba",
}
NAMES = ("lines", *_FORMAT_LOADERS, "folder:PATH")


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $ACAI_DATA, else a per-user cache folder."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("ACAI_DATA"):
        return Path(os.environ["ACAI_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "acai" / "data"


def get_source(name: str, data_dir=None, **options):
    if name == "lines":
        from ..lines import LinesSource

        return LinesSource(**options)
    if name.startswith("folder:"):
        from . import folder

        return ArraySource(name, folder.load(Path(name[len("folder:"):]).expanduser(), **options))
    if name not in _FORMAT_LOADERS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    module = importlib.import_module(f".{_FORMAT_LOADERS[name]}", __name__)
    return ArraySource(name, module.load(data_root(data_dir) / name, **options))


__all__ = ["ArraySource", "Capability", "DataSource", "DataError", "offers", "ImageSplits", "NAMES", "data_root", "get_source", "to_unit_range"]
