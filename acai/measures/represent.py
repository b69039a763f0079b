"""Representation learning (section 4, SPEC 5): what the codes of a trained run are worth.

* `linear_probe`: one dense layer, softmax cross-entropy, Adam, batch 64, test
  accuracy every `eval_every` samples, reported as the median of the last
  `window` evaluations. Two protocols (`PROTOCOLS`):
    - "classify_fc", the release's classify_fc.py, for the pixel baseline
      (`pixel_probe`; the paper's 92.31 % on MNIST): labels smoothed by 0.1 and
      a learning rate that decays continuously by 0.1 per half of the run;
    - "tandem", the tandem probe's (plain cross-entropy, constant Adam 1e-4),
      for the probe on a run's final codes (`run_probe`): that probe exists to
      show what the tandem probe would reach on converged inputs, so it changes
      nothing but the inputs being fixed.
* `cluster_run`: SPEC 5's K-Means clustering accuracy, cached in the run
  folder (a pretrained model's: its cache folder) as cluster.json. It
  clusters the codes (`model.encode`, the release's `ops.encode`: the VAE's
  sampled z, drawn with a generator seeded from the clustering seed; the
  VQ-VAE's continuous encoder output) of the first 60,000
  training images in file order (the release's `train_once` stream: for SVHN
  the first 60,000 of svhn-train, not train + extra) and of the whole test set.

The probes read `model.features(x)`, what the tandem probe reads (the VAE: the
encoder output h before sampling; the VQ-VAE: the quantised bottleneck output).
Both take a run folder or pretrained:NAME (`acai.pretrained.resolve`).
"""
from __future__ import annotations

import inspect
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from acai.training import checkpoint as ckpt
from acai.measures.cluster import PAPER_ITERATIONS, PAPER_RESTARTS, evaluate_clustering
from acai.training.config import ConfigError
from acai.core.data import Capability, get_source, offers
from acai.core.nets import dense, in_chunks, to_device
from acai.pretrained import resolve
from acai.training.progress import Tick
from acai.training.run import TrainedModel, derived_seed
from acai.training.run_folder import CLUSTER, PROBE

# cluster.py's `get_latents_and_labels(..., ds.train_once, 60000)`: the whitening and K-Means are
# fitted on the codes of the first 60,000 images of the unshuffled training stream.
CLUSTER_TRAIN_IMAGES = 60_000
CODES_STREAM = 3  # tag of the generator that draws sampled codes for clustering (acai/training/run.py uses 1, 2)

# label_smoothing: the target is (1 - s)·onehot + s/K; lr_decay: the rate is multiplied by this
# per half of the run, continuously (tf.train.exponential_decay, staircase=False).
PROTOCOLS = {
    "tandem": dict(label_smoothing=0.0, lr_decay=1.0),
    "classify_fc": dict(label_smoothing=0.1, lr_decay=0.1),
}


def probe_learning_rate(lr: float, lr_decay: float, step: int, steps: int) -> float:
    """The rate of (0-based) step `step` of `steps`: lr · lr_decay^(step / (steps // 2)).

    classify_fc.py: exponential_decay(lr, global_step, decay_steps=halfway, decay_rate=0.1)
    with halfway = (total samples // batch) // 2, read before the step increments it."""
    if lr_decay == 1.0:
        return lr
    return lr * lr_decay ** (step / max(1, steps // 2))


def probe_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean softmax cross-entropy against labels smoothed as the release's single_layer_classifier:
    target = onehot - s·(onehot - 1/K)."""
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, samples: int = 1 << 24, batch: int = 64, lr: float = 1e-4,
                 eval_every: int = 1 << 16, window: int = 20, seed: int = 0, label_smoothing: float = 0.0,
                 lr_decay: float = 1.0, progress: bool = False, tick: Tick | None = None) -> dict:
    """Train a dense layer on fixed features (N, d); test accuracy in percent (median of the last `window`).

    label_smoothing and lr_decay: see PROTOCOLS (0 and 1: the tandem probe's plain protocol).
    progress: a tqdm bar; tick(step, steps) at each evaluation (a sweep's display)."""
    if len(train_x) < batch:
        raise ConfigError(f"the probe needs at least one batch of {batch} training examples, got {len(train_x)}")
    if not 0 <= label_smoothing < 1 or not 0 < lr_decay <= 1:
        raise ConfigError(f"label_smoothing must be in [0, 1) and lr_decay in (0, 1], got {label_smoothing}, "
                          f"{lr_decay}")
    train_x, test_x = train_x.flatten(1).float(), test_x.flatten(1).float()
    layer = dense(train_x.shape[1], num_classes, torch.Generator().manual_seed(seed))
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
        for group in optimizer.param_groups:
            group["lr"] = probe_learning_rate(lr, lr_decay, step - 1, steps)
        loss = probe_loss(layer(train_x[index]), train_y[index], label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % every == 0 or step == steps:
            with torch.no_grad():
                history.append(100.0 * (layer(test_x).argmax(1) == test_y).float().mean().item())
            if tick is not None:
                tick(step, steps)
    return dict(accuracy=float(np.median(history[-window:])), history=history, samples=steps * batch,
                seconds=time.perf_counter() - start)


_PROBE_DEFAULTS = {name: p.default for name, p in inspect.signature(linear_probe).parameters.items()
                   if p.default is not inspect.Parameter.empty and name not in ("progress", "tick")}


def protocol_options(protocol: str) -> dict:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown probe protocol {protocol!r}; use {' or '.join(PROTOCOLS)}")
    return dict(PROTOCOLS[protocol])


def pixel_probe(data: str, data_dir=None, protocol: str = "classify_fc", **probe_options) -> dict:
    """The paper's pixel baseline: `linear_probe` on the flattened [-1, 1] pixels of `data`, by default
    with the release's classify_fc.py protocol (label smoothing 0.1, rate decayed 0.1 per half run)."""
    source = get_source(data, data_dir)
    if not source.num_classes or not offers(source, Capability.TRAIN_SET):
        raise ConfigError(f"data set {data!r} has no fixed labelled training set to probe; "
                          "use mnist, svhn, cifar10 or a labelled folder:PATH")
    train_x, train_y = source.train_set()
    test_x, test_y = source.test_set()
    options = {**protocol_options(protocol), **probe_options}
    return {"protocol": protocol, **linear_probe(train_x, train_y, test_x, test_y, source.num_classes, **options)}


def run_probe(source: str | os.PathLike, progress: bool = False, protocol: str = "tandem", tick: Tick | None = None,
              cached_only: bool = False, **probe_options) -> dict | None:
    """`linear_probe` on the frozen codes of a trained run (after training, not in tandem) or of
    pretrained:NAME, by default with the tandem probe's protocol; reuses the probe.json of its cache
    folder (a run's own) if made with the same options. `cached_only`: that cached result, or None;
    nothing is computed."""
    trained = resolve(source)
    trained.check("probe")
    options = {**_PROBE_DEFAULTS, **protocol_options(protocol), **probe_options, "checkpoint": trained.digest()}
    # probe.json files written before the protocols existed were made with the tandem protocol.
    cached = ckpt.cached_json(trained.cache / PROBE, options, absent=PROTOCOLS["tandem"])
    if cached or cached_only:
        return cached
    run = trained.load("probe")
    _require_labels(run, trained.label, "probe")
    (train_x, train_y), (test_x, test_y) = encode_split(run, "train"), encode_split(run, "test")
    result = linear_probe(train_x, train_y, test_x, test_y, run.source.num_classes, progress=progress, tick=tick,
                          **{k: v for k, v in options.items() if k != "checkpoint"})
    ckpt.save_json({**options, **result}, trained.cache / PROBE)
    return {**options, **result}


@torch.no_grad()
def encode_split(run: TrainedModel, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Probe features of every image of the run's `split` ("train" or "test") -> (N, d) float32, labels (N,)."""
    x, y = run.source.train_set() if split == "train" else run.source.test_set()
    run.model.eval()
    codes = in_chunks(lambda b: run.model.features(to_device(b, run.device)).flatten(1).float(), x, 1000)
    return codes.cpu(), y


@torch.no_grad()
def encode_codes(model, x: torch.Tensor, generator: torch.Generator, device) -> torch.Tensor:
    """The codes `model.encode(x, generator)` of images x, flattened -> (N, d_z) float32 on the CPU.
    A model whose codes are samples (the VAE) draws them with `generator`, chunk after chunk."""
    model.eval()
    return in_chunks(lambda b: model.encode(to_device(b, device), generator).flatten(1).float(), x, 1000).cpu()


def clustering_sets(run: TrainedModel, seed: int, limit: int):
    """(train codes, test codes, test labels) as the release's cluster.py reads them: the codes of the
    first `limit` training images in file order, then of every test image, drawn (for a sampling
    model) from one generator seeded from `seed`."""
    generator = torch.Generator(run.device).manual_seed(derived_seed(seed, CODES_STREAM))
    train_x, _ = run.source.train_set(limit=limit)
    test_x, test_y = run.source.test_set()
    return (encode_codes(run.model, train_x, generator, run.device),
            encode_codes(run.model, test_x, generator, run.device), test_y)


def _require_labels(run: TrainedModel, label: str, what: str) -> None:
    if not run.source.num_classes or not offers(run.source, Capability.TRAIN_SET):
        raise ConfigError(f"cannot {what} {label}: it was trained on {run.config.data!r}, and acai {what} needs a "
                          f"labelled data set with a fixed training set (mnist, svhn, cifar10 or a labelled "
                          f"folder:PATH)")


def cluster_run(source: str | os.PathLike, restarts: int = PAPER_RESTARTS, iterations: int = PAPER_ITERATIONS,
                seed: int = 0, progress: bool = False, tick: Tick | None = None,
                cached_only: bool = False) -> dict | None:
    """SPEC 5 clustering accuracy of the codes of a run folder or pretrained:NAME; reuses the cluster.json of
    its cache folder (a run's own) if made with these settings (files made before the codes were `encode`'s
    and the first 60,000 training images are recomputed). `cached_only`: that cached result, or None;
    nothing is computed."""
    trained = resolve(source)
    trained.check("cluster")
    settings = dict(restarts=restarts, iterations=iterations, seed=seed, clustered="model.encode",
                    train_images=CLUSTER_TRAIN_IMAGES, checkpoint=trained.digest())
    cached = ckpt.cached_json(trained.cache / CLUSTER, settings)
    if cached or cached_only:
        return cached
    run = trained.load("cluster")
    _require_labels(run, trained.label, "cluster")
    start = time.perf_counter()
    train_codes, test_codes, test_labels = clustering_sets(run, seed, CLUSTER_TRAIN_IMAGES)
    encoding = time.perf_counter() - start
    result = evaluate_clustering(train_codes.numpy(), test_codes.numpy(), test_labels.numpy(),
                                 run.source.num_classes, restarts=restarts, iterations=iterations, seed=seed,
                                 progress=progress, tick=tick)
    result = {**settings, **result, "encode_seconds": encoding, "clustered_codes": run.model.CODES,
              "codes": list(train_codes.shape)}
    ckpt.save_json(result, trained.cache / CLUSTER)
    return result
