"""What every data source gives the trainer: deterministic, resumable batches.

A batch is a pure function of (seed, step), so a resumed run sees exactly the
samples it would have seen without the interruption, and K seeds never share a
stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import numpy as np
import torch


class DataError(ValueError):
    """A data set is missing, corrupt or unknown; the message says how to fix it."""


class Capability(Enum):
    """What a data source offers beyond the DataSource protocol; each source lists its own."""

    # Probe and clustering on codes. train_set(limit) is the first `limit` images in file order: the
    # release's `train_once` stream (unshuffled, read once), whose first 60,000 images its clustering fits.
    TRAIN_SET = "a fixed training set in file order, train_set(limit=None) -> (images, labels)"
    LINES = "fresh evaluation lines, evaluation_lines(seed, evaluation, count)"  # the lines metrics


class Kind(Enum):
    """Which of a preset's two budgets trains a data set (acai/reproduce/presets.py `Preset`)."""

    LINES = "lines"
    IMAGES = "images"


@dataclass(frozen=True, kw_only=True)
class DataDescription:
    """What a data set offers, declared with its name (`describe_data` in acai/core/data/__init__.py) so
    that what has not loaded it (a saved config, a sweep's plan, a report, a table) can ask.

    Whether a set is labelled is not here: a folder of images has classes only if it has class
    sub-folders, so only its loaded source knows (`DataSource.num_classes`)."""

    kind: Kind
    capabilities: frozenset[Capability]  # what its source offers beyond the DataSource protocol
    reads_files: bool  # False: drawn in memory, so a data root (data_dir) means nothing to it
    # True: the paper trains it at its architecture's own latent size only (lines: d_z 64, the
    # VQ-VAE's 256), so a sweep neither chooses (--latents) nor sets its d_z.
    fixed_latent: bool

    def offers(self, capability: Capability) -> bool:
        return capability in self.capabilities


# The two descriptions of the data sets there are: drawn lines, and images read from files (MNIST,
# SVHN, CIFAR-10, CelebA, any folder). Each source declares its capabilities from its own.
DRAWN_LINES = DataDescription(kind=Kind.LINES, capabilities=frozenset({Capability.LINES}), reads_files=False,
                              fixed_latent=True)
IMAGE_FILES = DataDescription(kind=Kind.IMAGES, capabilities=frozenset({Capability.TRAIN_SET}), reads_files=True,
                              fixed_latent=False)


class DataSource(Protocol):
    """What every data source offers the trainer."""

    name: str
    shape: tuple[int, int, int]  # (C, H, W) of one image
    num_classes: int  # 0 for an unlabelled set
    capabilities: frozenset[Capability]  # the optional parts it offers, declared by the source

    def train_batch(self, seed: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `step` of the stream of `seed`: images (B, C, H, W) in [-1, 1], labels (B,); pure."""

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All test images (N, C, H, W) in [-1, 1] and their labels (N,)."""


def offers(source: DataSource, capability: Capability) -> bool:
    return capability in source.capabilities


def to_unit_range(images_u8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1] as x·2/255 - 1 (SPEC 6)."""
    x = torch.as_tensor(images_u8)
    return x.float() * (2.0 / 255.0) - 1.0


@dataclass
class ImageSplits:
    """A data set in memory, as the format loaders return it.

    Images are uint8 (N, C, 32, 32) so that SVHN's 600k images fit in 1.8 GB;
    they become [-1, 1] floats one batch at a time. Labels are int64 (N,),
    all -1 for an unlabelled set (CelebA). The training images are in file
    order, the order of the release's `train_once` stream: MNIST's file,
    CIFAR-10's batches 1 to 5, SVHN's train file then extra.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int

    def __post_init__(self):
        for name in ("train", "test"):
            images, labels = getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")
            if images.dtype != np.uint8 or images.ndim != 4:
                raise ValueError(f"{name} images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}")
            if len(labels) != len(images):
                raise ValueError(f"{name}: {len(images)} images but {len(labels)} labels")


class ArraySource:
    """Batches drawn from in-memory arrays, reshuffled every epoch.

    Sample i of the stream (i = step·batch + k) is image perm_e[i mod N] with
    e = i div N and perm_e a permutation seeded by (seed, e).
    """

    capabilities = IMAGE_FILES.capabilities

    def __init__(self, name: str, splits: ImageSplits):
        self.name = name
        self.splits = splits
        self.shape = tuple(splits.train_images.shape[1:])  # (C, H, W)
        self.num_classes = splits.num_classes
        self._perm_key = None
        self._perm = None

    def _permutation(self, seed: int, epoch: int) -> np.ndarray:
        if self._perm_key != (seed, epoch):
            n = len(self.splits.train_images)
            self._perm = np.random.default_rng([seed, epoch]).permutation(n)
            self._perm_key = (seed, epoch)
        return self._perm

    def train_batch(self, seed: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.splits.train_images)
        positions = np.arange(step * batch_size, (step + 1) * batch_size)
        index = np.empty(batch_size, dtype=np.int64)
        for epoch in np.unique(positions // n):  # at most two epochs per batch
            sel = positions // n == epoch
            index[sel] = self._permutation(seed, int(epoch))[positions[sel] % n]
        x = to_unit_range(self.splits.train_images[index])  # (B, C, H, W)
        y = torch.from_numpy(self.splits.train_labels[index])
        return x, y

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All test images as [-1, 1] floats and their labels."""
        return to_unit_range(self.splits.test_images), torch.from_numpy(self.splits.test_labels)

    def train_set(self, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The training images as [-1, 1] floats and their labels, in file order; with `limit`, the
        first `limit` of them (only those are converted: SVHN's 604,388 would be 7.4 GB as floats)."""
        if limit is not None and limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        stop = None if limit is None else limit
        return (to_unit_range(self.splits.train_images[:stop]),
                torch.from_numpy(np.ascontiguousarray(self.splits.train_labels[:stop])))
