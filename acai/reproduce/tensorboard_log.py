"""TensorBoard event files beside log.jsonl, an optional extra: pip install 'acai[tensorboard]'.

log.jsonl stays the source of truth; the events in RUN/tensorboard/ are a view of it for TensorBoard
(`tensorboard --logdir OUT`), every value at step = training samples seen:
* `Writer` hooks into the training loop (`acai train --tensorboard`): every LOSS_EVERY steps the step
  logs (train/NAME: the losses and each model's own logs), at every evaluation its metrics (eval/NAME,
  and eval/state as text when it is not ok) and a grid of interpolations.
* `convert(out)` writes the same for runs trained without it (`acai report --tensorboard OUT`): the
  metrics from log.jsonl and a grid from the final checkpoint. Losses are not in log.jsonl, so a
  converted run has none.
A resumed run appends a new event file; TensorBoard's reader drops the events a restart repeats (a
step that goes back purges what was logged after it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from acai.training.config import ConfigError
from acai.core.data import Capability, DataError, offers
from acai.training.run import load_run
from acai.training.run_folder import CHECKPOINT, EVENTS, LOG, read_log
from acai.training.loop import Hooks

CONVERTED = ".from-log"  # the suffix of the event files `convert` writes (replaced when converting again)
PAIRS, STEPS = 4, 8  # the interpolation grid: PAIRS rows of STEPS images


def summary_writer():
    """torch's SummaryWriter class, or a one-line ConfigError when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("TensorBoard output needs the tensorboard package: pip install 'acai[tensorboard]' "
                          "(or pip install tensorboard)") from None
    return SummaryWriter


def write_evaluation(writer, entry: dict) -> None:
    """One log.jsonl entry: each number as the scalar eval/NAME, a flagged state as text."""
    for key, value in entry.items():
        if key not in ("samples", "evaluation") and isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"eval/{key}", value, entry["samples"])
    if entry.get("state", "ok") != "ok":
        writer.add_text("eval/state", entry["state"], entry["samples"])


def grid_pictures(run) -> torch.Tensor:
    """The 2·PAIRS pictures the grid interpolates between: fixed random lines, or test images."""
    rng = np.random.default_rng(0)
    if offers(run.source, Capability.LINES):
        return run.source.batch_from_angles(rng.uniform(0, 2 * np.pi, 2 * PAIRS))[0]
    x, _ = run.source.test_set()
    return x[torch.from_numpy(rng.permutation(len(x))[:2 * PAIRS])]


def interpolation_grid(run, pictures: torch.Tensor) -> np.ndarray:
    """(H, W, 3) uint8: PAIRS rows of STEPS decoded mixtures; leaves the model in the mode it found it."""
    from acai.reproduce.figures import grid_image, interpolation_rows

    training = run.model.training
    try:
        rows = interpolation_rows(run.model, pictures[:PAIRS], pictures[PAIRS:], STEPS)
    finally:
        run.model.train(training)
    return np.asarray(grid_image(rows))


class Writer:
    """The training loop's TensorBoard hooks (`hooks()`), one SummaryWriter per run folder."""

    def __init__(self):
        self.SummaryWriter = summary_writer()
        self.writers: dict[Path, object] = {}
        self.pictures: dict[Path, torch.Tensor] = {}

    def writer(self, out: Path):
        if out not in self.writers:
            self.writers[out] = self.SummaryWriter(str(Path(out) / EVENTS))
        return self.writers[out]

    def losses(self, run, out: Path, logs: dict[str, float]) -> None:
        writer = self.writer(out)
        for name, value in logs.items():
            writer.add_scalar(f"train/{name}", value, run.step * run.config.batch)

    def evaluation(self, run, out: Path) -> None:
        writer, entry = self.writer(out), run.history[-1]
        write_evaluation(writer, entry)
        if out not in self.pictures:
            self.pictures[out] = grid_pictures(run)
        writer.add_image("interpolations", interpolation_grid(run, self.pictures[out]), entry["samples"],
                         dataformats="HWC")
        writer.flush()

    def hooks(self) -> Hooks:
        return Hooks(after_losses=self.losses, after_evaluation=self.evaluation)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def convert(out) -> list[str]:
    """Event files for every run folder under `out` (a sweep's OUT, or one run) from its log.jsonl and
    final checkpoint -> one line per run. Runs whose events were written while training are left alone."""
    SummaryWriter = summary_writer()
    lines = []
    for log in sorted(Path(out).rglob(LOG)):
        folder, events = log.parent, log.parent / EVENTS
        if any(not p.name.endswith(CONVERTED) for p in events.glob("events.out.tfevents.*")):
            lines.append(f"{folder}: kept the events written while training")
            continue
        for old in events.glob(f"events.out.tfevents.*{CONVERTED}"):
            old.unlink()
        history = read_log(log)
        note = ""
        with SummaryWriter(str(events), filename_suffix=CONVERTED) as writer:
            for entry in history:
                write_evaluation(writer, entry)
            if (folder / CHECKPOINT).exists():
                try:
                    run = load_run(folder, device="cpu")
                    writer.add_image("interpolations", interpolation_grid(run, grid_pictures(run)),
                                     run.step * run.config.batch, dataformats="HWC")
                except (ConfigError, DataError) as error:
                    note = f" (no grid: {error})"
        lines.append(f"{folder}: {len(history)} evaluations -> {events}{note}")
    if not lines:
        raise ConfigError(f"{out} holds no run folder ({LOG} files); nothing to convert")
    return lines
