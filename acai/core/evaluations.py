"""What is measured during training, as objects in one list (SPEC 2, 5).

Each evaluation names the metrics it reports; the trainer runs every one that
applies to the run's data, and the tables, the command line and the reported
summary read the same names from `EVALUATIONS`. Adding an evaluation is one
class here and one entry in that list.

A lines evaluation also says what state the model is in, so that a table never
shows a collapsed model as merely "undefined":
  ok         the decoded interpolations are lines and move;
  mean image the decoded images are about as far from the lines as the mean
             training image (a blurred disc) is: the model has not yet learned to
             draw lines (every model spends its first samples here). Its
             Smoothness, if defined, describes blobs, not lines;
  constant   every interpolation starts and ends on the same line (smoothness
             undefined): the model draws one image, typically the mean image;
  collapsed  the decoded images are further from every line than twice the
             mean image is (no decoded image resembles a line).
A run whose loss stops being finite is `diverged` (acai/training/loop.py).

An evaluation reads a run through `EvaluatedRun`, what acai.training.run.Run offers, so that this
module needs only the core.
"""
from __future__ import annotations

import functools
import math
from typing import Protocol

import numpy as np
import torch

from acai.core import lines
from acai.core.data.base import Capability, DataSource, offers
from acai.core.nets import in_chunks, to_device

STATES = ("ok", "constant", "mean image", "collapsed", "diverged")  # worst last; see the module docstring
UNRANKED = ("mean image", "collapsed", "diverged")  # states a table flags and never ranks "best"
MEAN_IMAGE_FRACTION = 0.75  # a Mean Distance above this fraction of the mean image's is "mean image"


class EvaluationSettings(Protocol):
    """What an evaluation reads from a run's configuration (acai.training.config.TrainConfig)."""

    seed: int

    def evaluation_pairs(self, index: int) -> int: ...  # lines interpolations evaluation `index` scores

    def whole_evaluation(self, index: int) -> bool: ...  # whether evaluation `index` measures everything


class EvaluatedRun(Protocol):
    """What an evaluation reads from a run (acai.training.run.Run)."""

    config: EvaluationSettings
    source: DataSource
    model: torch.nn.Module
    probe: torch.nn.Module | None  # the tandem probe, for a labelled data set
    device: torch.device
    history: list[dict]  # the evaluations made so far: its length is the index of the one being made


class Evaluation(Protocol):
    metrics: tuple[str, ...]  # the numbers it reports; every name is a key of its result (which may add "state")

    def applies(self, run: EvaluatedRun) -> bool: ...

    def __call__(self, run: EvaluatedRun, generator: torch.Generator) -> dict[str, float | str]: ...


@torch.no_grad()
def lines_interpolations(model, lines_batch: torch.Tensor, steps: int = 16,
                         generator: torch.Generator | None = None) -> np.ndarray:
    """The release's protocol: pair the first half of `lines_batch` with the second half,
    decode `steps` evenly spaced mixtures of their codes -> (pairs, steps, 32, 32).
    `generator` draws the codes of a model that samples them (the VAE)."""
    pairs = len(lines_batch) // 2
    device = next(model.parameters()).device
    z = in_chunks(lambda b: model.encode(b, generator), to_device(lines_batch, device))  # (2P, latent, h, w)
    mixed = lines.interpolate_codes(z[:pairs], z[pairs:], steps).flatten(0, 1)  # (P·S, latent, h, w)
    images = in_chunks(model.decode, mixed)  # (P·S, 1, 32, 32)
    return images.view(pairs, steps, *images.shape[1:])[:, :, 0].float().cpu().numpy()


@functools.lru_cache(maxsize=1)
def mean_image_distance() -> float:
    """Mean Distance of the mean training image (a blurred disc): what a model that draws one
    image, the best single image, scores. About 0.0296."""
    mean = lines.render(np.random.default_rng(0).uniform(0, 2 * np.pi, 20_000)).mean(axis=0)
    return float(lines.nearest_references(mean[None])[0][0])


def lines_state(mean_distance: float, smoothness: float) -> str:
    if not (math.isfinite(mean_distance)):
        return "diverged"
    if mean_distance > 2 * mean_image_distance():
        return "collapsed"
    if mean_distance >= MEAN_IMAGE_FRACTION * mean_image_distance():
        return "mean image"
    return "constant" if math.isnan(smoothness) else "ok"


class LinesMetrics:
    """Mean Distance and Smoothness of 256 interpolations between fresh random lines (SPEC 2)."""

    metrics = ("mean_distance", "smoothness")

    def applies(self, run: EvaluatedRun) -> bool:
        return offers(run.source, Capability.LINES)

    def __call__(self, run: EvaluatedRun, generator: torch.Generator) -> dict[str, float | str]:
        return lines_metrics(run.model, run.source, run.config, len(run.history), generator)


def lines_metrics(model: torch.nn.Module, source: DataSource, config: EvaluationSettings, index: int,
                  generator: torch.Generator) -> dict[str, float | str]:
    """The lines metrics of evaluation `index` of a run configured as `config`: its own fresh lines
    (drawn from its seed and the index) and, for a model that samples its codes, `generator`'s draws.
    Apart from `LinesMetrics` so that trained weights can be scored again as their run scored them
    (`acai evaluate`)."""
    pairs = config.evaluation_pairs(index)
    batch = source.evaluation_lines(config.seed, index, 2 * pairs)
    mean_distance, smoothness = lines.evaluate(lines_interpolations(model, batch, generator=generator))
    return {"mean_distance": mean_distance, "smoothness": smoothness,
            "state": lines_state(mean_distance, smoothness), "pairs": pairs}


class ProbeAccuracy:
    """Test accuracy (%) of the linear probe trained in tandem on the stopped-gradient features."""

    metrics = ("probe_accuracy",)

    def applies(self, run: EvaluatedRun) -> bool:
        # len(history): the index of the evaluation being made; a progress evaluation skips the probe
        return run.probe is not None and run.config.whole_evaluation(len(run.history))

    @torch.no_grad()
    def __call__(self, run: EvaluatedRun, generator: torch.Generator) -> dict[str, float | str]:
        x, y = run.source.test_set()
        logits = in_chunks(lambda b: run.probe(run.model.features(to_device(b, run.device)).flatten(1)), x, 1000)
        return {"probe_accuracy": 100.0 * (logits.argmax(1).cpu() == y).float().mean().item()}


EVALUATIONS: tuple[Evaluation, ...] = (ProbeAccuracy(), LinesMetrics())
# The numeric metrics a run reports (median of its last evaluations), in table order.
REPORTED = tuple(m for evaluation in EVALUATIONS for m in evaluation.metrics)


def worst_state(states) -> str:
    return max(states, key=STATES.index, default="ok")
