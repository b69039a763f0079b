"""Representation learning (section 4, SPEC 5): what the codes of a trained run are worth.

* `linear_probe`: one dense layer, softmax cross-entropy, Adam(1e-4), batch 64,
  test accuracy every `eval_every` samples, reported as the median of the last
  `window` evaluations: the tandem probe's protocol, run on fixed features.
  `pixel_probe` applies it to raw pixels (the paper's baseline: 92.31 % on MNIST).
* `cluster_run`: SPEC 5's K-Means clustering accuracy of a run's codes, cached
  in the run folder as cluster.json.

A run's "codes" are `model.features(x)`, what its tandem probe reads (the
encoder output; VQ-VAE: the quantised bottleneck output; VAE: the encoder
output h, a linear map away from μ, which whitening makes irrelevant).
"""
from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint as ckpt
from .cluster import evaluate_clustering
from .config import ConfigError
from .data import get_source
from .nets import dense
from .data import Capability, offers
from .nets import in_chunks, to_device
from .train import CHECKPOINT, load_run

CLUSTER = "cluster.json"
PROBE = "probe.json"


@torch.no_grad()
def encode_split(run, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of every image of the run's `split` ("train" or "test") -> (N, d) float32, labels (N,)."""
    x, y = run.source.train_set() if split == "train" else run.source.test_set()
    run.model.eval()
    codes = in_chunks(lambda b: run.model.features(to_device(b, run.device)).flatten(1).float(), x, 1000)
    return codes.cpu(), y


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, samples: int = 1 << 24, batch: int = 64, lr: float = 1e-4,
                 eval_every: int = 1 << 16, window: int = 20, seed: int = 0, progress: bool = False) -> dict:
    """Train a dense layer on fixed features (N, d); test accuracy in percent (median of the last `window`)."""
    if len(train_x) < batch:
        raise ConfigError(f"the probe needs at least one batch of {batch} training examples, got {len(train_x)}")
    torch.manual_seed(seed)
    train_x, test_x = train_x.flatten(1).float(), test_x.flatten(1).float()
    layer = dense(train_x.shape[1], num_classes)
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    steps, every = -(-samples // batch), max(1, eval_every // batch)
    order, position, history = rng.permutation(len(train_x)), 0, []
    start = time.perf_counter()
    for step in tqdm(range(1, steps + 1), disable=not progress, desc="probe", unit="step", dynamic_ncols=True):
        if position + batch > len(order):  # a new epoch: reshuffle, as the training stream does
            order, position = rng.permutation(len(train_x)), 0
        index = torch.from_numpy(order[position:position + batch])
        position += batch
        loss = F.cross_entropy(layer(train_x[index]), train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % every == 0 or step == steps:
            with torch.no_grad():
                history.append(100.0 * (layer(test_x).argmax(1) == test_y).float().mean().item())
    return dict(accuracy=float(np.median(history[-window:])), history=history, samples=steps * batch,
                seconds=time.perf_counter() - start)


_PROBE_DEFAULTS = {name: p.default for name, p in inspect.signature(linear_probe).parameters.items()
                   if p.default is not inspect.Parameter.empty and name != "progress"}


def pixel_probe(data: str, data_dir=None, **probe_options) -> dict:
    """The paper's pixel baseline: `linear_probe` on the flattened [-1, 1] pixels of `data`."""
    source = get_source(data, data_dir)
    if not source.num_classes or not offers(source, Capability.TRAIN_SET):
        raise ConfigError(f"data set {data!r} has no fixed labelled training set to probe; "
                          "use mnist, svhn, cifar10 or a labelled folder:PATH")
    train_x, train_y = source.train_set()
    test_x, test_y = source.test_set()
    return linear_probe(train_x, train_y, test_x, test_y, source.num_classes, **probe_options)


def run_probe(run_dir, progress: bool = False, **probe_options) -> dict:
    """`linear_probe` on the frozen codes of a trained run (after training, not in tandem);
    reuses run_dir/probe.json if made with the same options."""
    run_dir = Path(run_dir)
    options = {**_PROBE_DEFAULTS, **probe_options, "checkpoint": ckpt.digest(checkpoint_of(run_dir))}
    cached = ckpt.cached_json(run_dir / PROBE, options)
    if cached:
        return cached
    run = load_run(run_dir)
    _require_labels(run, "probe")
    (train_x, train_y), (test_x, test_y) = encode_split(run, "train"), encode_split(run, "test")
    result = linear_probe(train_x, train_y, test_x, test_y, run.source.num_classes, progress=progress,
                          **{k: v for k, v in options.items() if k != "checkpoint"})
    ckpt.save_json({**options, **result}, run_dir / PROBE)
    return {**options, **result}


def checkpoint_of(run_dir: Path) -> Path:
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise ConfigError(f"no checkpoint at {path}; train first (acai train ... --out {run_dir})")
    return path


def _require_labels(run, what: str) -> None:
    if not run.source.num_classes or not offers(run.source, Capability.TRAIN_SET):
        raise ConfigError(f"cannot {what} a run on {run.config.data!r}: it needs a labelled data set with a "
                          "fixed training set (mnist, svhn, cifar10 or a labelled folder:PATH)")


def cluster_run(run_dir, restarts: int = 1000, iterations: int = 1000, seed: int = 0,
                progress: bool = False) -> dict:
    """SPEC 5 clustering accuracy of a run's codes; reuses run_dir/cluster.json if made with these settings."""
    run_dir = Path(run_dir)
    settings = dict(restarts=restarts, iterations=iterations, seed=seed, checkpoint=ckpt.digest(checkpoint_of(run_dir)))
    cached = ckpt.cached_json(run_dir / CLUSTER, settings)
    if cached:
        return cached
    run = load_run(run_dir)
    _require_labels(run, "cluster")
    start = time.perf_counter()
    (train_codes, _), (test_codes, test_labels) = encode_split(run, "train"), encode_split(run, "test")
    encoding = time.perf_counter() - start
    result = evaluate_clustering(train_codes.numpy(), test_codes.numpy(), test_labels.numpy(),
                                 run.source.num_classes, restarts=restarts, iterations=iterations, seed=seed,
                                 progress=progress)
    result = {**settings, **result, "encode_seconds": encoding, "codes": list(train_codes.shape)}
    ckpt.save_json(result, run_dir / CLUSTER)
    return result
