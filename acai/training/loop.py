"""One training loop for every autoencoder and any number of seeds (SPEC 3).

`train` is the one entry point and `run_loop` the one loop. It advances a stack of
K >= 1 runs (acai/training/run.py) through a `Stepper`: `SingleStepper` steps one
run in place, acai/training/stacked.py's `StackedStepper` steps K seeds at once
with stacked weights. A single run is
a stack of one; everything else is the loop's, once: the progress display,
the evaluation schedule (every `eval_every` samples and at the last step),
checkpoints (then and every `checkpoint_seconds`), Ctrl-C / SIGTERM / SIGUSR2
(saved at the next step boundary), and a non-finite loss (stopped, the last
good checkpoint kept). `resume=True` continues a run on the same sample and
noise streams, so a killed run resumes to identical results. Stop signals are
acai/training/signals.py's.
"""
from __future__ import annotations

import json
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch

from acai.training import checkpoint as ckpt
from acai.training.config import BFLOAT16_CHECKED, ConfigError, TrainConfig
from acai.core.data import FOLDER_PREFIX
from acai.core.evaluations import worst_state
from acai.core.nets import to_device
from acai.training.progress import Display, Progress, Silent
from acai.training.machine import check_room, keep_freed_memory, native_bfloat16, resolve_device
from acai.training.run import (LOSS_EVERY, Run, RunFailed, evaluate, finish, open_run, save_checkpoint, save_logs,
                               train_step)
from acai.training.run_folder import CHECKPOINT, FAILED, METRICS, clear_previous_run
from acai.training.signals import Interrupted, StoppedUnsaved, stop_requests
from acai.training.stacked import StackedStepper, check_stackable

def check_source(run: Run) -> None:
    """ConfigError now, not in the report after the training, for a data set with too few test images
    to draw one interpolation (two ends): a folder of a few images, whose test split is a tenth of them."""
    splits = getattr(run.source, "splits", None)
    count = None if splits is None else len(splits.test_images)
    if count is not None and count < 2:
        total = count + len(splits.train_images)
        hint = ("add images to the folder (15 or more give 2 test images)" if run.config.data.startswith(FOLDER_PREFIX)
                else "give the data set at least 2 test images")
        raise ConfigError(f"{run.config.data} has {total} image{'s' if total != 1 else ''}, of which {count} in its "
                          f"test split: interpolations and the report need at least 2 test images; {hint}")


class Stepper(Protocol):
    """Advances a stack of runs by one training step each."""

    runs: list[Run]

    def step(self) -> dict[str, torch.Tensor]:
        """Train every run on its next batch and increment its `step`; -> logs, each (K,) or a scalar."""

    def sync(self) -> None:
        """Make every Run hold its current weights and optimiser state (before evaluating or saving)."""


class SingleStepper:
    """One run, stepped in place by `train_step`."""

    def __init__(self, run: Run):
        self.runs = [run]

    def step(self):
        run = self.runs[0]
        x, y = run.source.train_batch(run.config.seed, run.step, run.config.batch)
        logs = train_step(run, to_device(x, run.device), to_device(y, run.device))
        run.step += 1
        return logs

    def sync(self):
        pass  # the Run's own tensors are the ones trained


@dataclass
class Hooks:
    """Where a caller can look into the loop: `before_training()` runs once all is checked and
    nothing has trained yet, `after_step(step)` after every step and
    `after_checkpoint(out)` after every checkpoint written (tests use them to kill a run at a chosen
    moment); `progress` receives the samples, status and evaluations."""

    before_training: Callable[[], None] | None = None  # once every run is opened and checked, before any step
    after_step: Callable[[int], None] | None = None
    after_checkpoint: Callable[[Path], None] | None = None  # after each run folder's checkpoint is written
    progress: Progress | None = None
    # Reporting (acai/reproduce/tensorboard_log.py): every LOSS_EVERY steps, each run's step logs as floats; after each
    # evaluation (its result is run.history[-1]), before the checkpoint, in time not counted as training.
    after_losses: Callable[[Run, Path, dict[str, float]], None] | None = None
    after_evaluation: Callable[[Run, Path], None] | None = None


def _status(logs: dict[str, torch.Tensor], rate: float, state: str) -> dict[str, str]:
    status = {k: f"{v.float().mean().item():.4g}" for k, v in logs.items()} | {"samples/s": f"{rate:.0f}"}
    return status | ({"state": state} if state != "ok" else {})


def _member(value: torch.Tensor, k: int, members: int) -> float:
    """Member k's value of a step log: (K,) for a stack of K runs, else a scalar."""
    value = value.detach().float().flatten()
    return float(value[k] if value.numel() == members > 1 else value.mean())


def _nonfinite_loss(logs: dict[str, torch.Tensor]) -> str | None:
    """The name of the first loss that is NaN or infinite (for any member of a stack), else None."""
    for name, value in logs.items():
        if name.startswith("loss_") and not bool(torch.isfinite(value).all()):
            return name[len("loss_"):]
    return None


def run_loop(stepper: Stepper, outs: list[Path], until: int, progress: Progress, hooks: Hooks) -> None:
    """Step `stepper` until its runs reach step `until`.

    Evaluates every `eval_every` samples and at the last step; checkpoints then and
    every `checkpoint_seconds`; on Ctrl-C, SIGTERM or SIGUSR2 saves at the step's end
    and raises Interrupted; when a loss stops being finite, stops with RunFailed and
    keeps the last good checkpoint.
    """
    runs, cfg = stepper.runs, stepper.runs[0].config
    per_step = cfg.batch * len(runs)
    seeds = ",".join(str(run.config.seed) for run in runs)
    progress.start(f"{cfg.model}/{cfg.data}/seed{'s' if len(runs) > 1 else ''}{seeds}", cfg.steps * per_step,
                   runs[0].step * per_step)
    tick = last_save = time.perf_counter()  # run.seconds counts training only, not evaluation or saving
    window, state, saved_step = (runs[0].step, tick), "ok", runs[0].step

    def save(now: float, synced: bool = False) -> None:
        nonlocal tick, last_save, saved_step
        if not synced:
            stepper.sync()
        for run, out in zip(runs, outs):
            run.seconds += now - tick  # K stacked seeds share the wall time: each member counts all of it
            save_checkpoint(run, out)
            if hooks.after_checkpoint is not None:
                hooks.after_checkpoint(out)
        tick = last_save = time.perf_counter()
        saved_step = runs[0].step

    try:
        with stop_requests() as requested:
            while runs[0].step < until:
                logs = stepper.step()
                step = runs[0].step
                bad = _nonfinite_loss(logs)
                if bad is not None:
                    message = (f"the {bad} loss is not finite at step {step} (sample {step * cfg.batch:,}); the "
                               f"checkpoint of step {saved_step} is kept; lower --lr or check the --hp values")
                    for out in outs:
                        ckpt.save_json({"error": message, "step": step, "state": "diverged"}, out / FAILED)
                    raise RunFailed(message)
                status = {}
                if step % LOSS_EVERY == 0:
                    now = time.perf_counter()
                    status = _status(logs, (step - window[0]) * per_step / max(now - window[1], 1e-9), state)
                    window = (step, now)
                    if hooks.after_losses is not None:
                        for k, (run, out) in enumerate(zip(runs, outs)):
                            hooks.after_losses(run, out, {name: _member(value, k, len(runs))
                                                          for name, value in logs.items()})
                progress.advance(per_step, status)
                evaluate_now = step % cfg.eval_every_steps == 0 or step == cfg.steps
                if evaluate_now or time.perf_counter() - last_save > cfg.checkpoint_seconds:
                    now = time.perf_counter()
                    if evaluate_now:
                        stepper.sync()
                        for run in runs:  # evaluation time is not training time: save() counts up to `now`
                            run.history.append(evaluate(run))
                            run.clock.append({"samples": run.step * run.config.batch,
                                              "train_seconds": round(run.seconds + now - tick, 3),
                                              "time": round(time.time(), 3)})
                            progress.note(json.dumps({"seed": run.config.seed} | {
                                k: round(v, 6) if isinstance(v, float) else v for k, v in run.history[-1].items()}))
                        state = worst_state(run.history[-1].get("state", "ok") for run in runs)
                        if hooks.after_evaluation is not None:
                            for run, out in zip(runs, outs):
                                hooks.after_evaluation(run, out)
                    save(now, synced=evaluate_now)
                    window = (step, tick)
                if hooks.after_step is not None:
                    hooks.after_step(step)
                if requested:
                    save(time.perf_counter())
                    raise Interrupted(requested[0])
    except StoppedUnsaved as stop:  # a second Ctrl-C: what the folders hold is the last save's
        stop.step, stop.samples = saved_step, saved_step * cfg.batch
        raise
    finally:
        progress.close()


def train(configs: list[TrainConfig], outs: list, resume: bool = False, progress: bool | Progress = True,
          hooks: Hooks | None = None) -> list[dict]:
    """Train (or resume) one run per config, each into its own folder; -> their reported metrics.

    The one entry point to training. One config is one run; K > 1 configs are the seeds of one
    model trained together with stacked weights (acai/training/stacked.py), which requires that
    they differ only in their seed. Each folder ends up with exactly what training it alone
    would have written.
    """
    hooks = hooks or Hooks()
    display = hooks.progress or (progress if not isinstance(progress, bool) else Display() if progress else Silent())
    outs = [Path(out) for out in outs]
    if len(configs) != len(outs) or not configs:
        raise ConfigError(f"train needs one output folder per config, got {len(configs)} and {len(outs)}")
    if len(configs) > 1:
        check_stackable(configs, outs)
    if any(config.device != "cuda" for config in configs):
        keep_freed_memory()
    with ExitStack() as held:
        for out in outs:
            held.enter_context(ckpt.folder_lock(out))  # one writer per run folder
        resumed = [resume and (out / CHECKPOINT).exists() for out in outs]
        runs = [open_run(config, out, resume) for config, out in zip(configs, outs)]
        for run in runs:
            check_source(run)
        for run, out, loaded in zip(runs, outs, resumed):
            if not loaded:
                clear_previous_run(out)
            elif run.step < run.config.steps:  # resumed to a larger budget: not done until it reaches it
                (out / METRICS).unlink(missing_ok=True)
            (out / FAILED).unlink(missing_ok=True)
            if run.step == 0:
                save_checkpoint(run, out)  # an unwritable or full folder fails now, not after the training
            elif loaded:
                save_logs(run, out)  # from the checkpoint: a log.jsonl deleted (or damaged) is whole again
            check_room(run, out / CHECKPOINT)
            warn_precision(run.config)
        if hooks.before_training is not None:
            hooks.before_training()
        if len(runs) > 1:
            target = max(run.step for run in runs)  # a killed stack may have saved its members at different steps
            for run, out in zip(runs, outs):
                if run.step < target:
                    run_loop(SingleStepper(run), [out], target, display, hooks)
            run_loop(StackedStepper(runs), outs, runs[0].config.steps, display, hooks)
        else:
            run_loop(SingleStepper(runs[0]), outs, runs[0].config.steps, display, hooks)
        return [finish(run, out) for run, out in zip(runs, outs)]


def warn_precision(config: TrainConfig) -> None:
    if config.precision != "bfloat16":
        return
    if config.model not in BFLOAT16_CHECKED:
        warnings.warn(f"bfloat16 is not checked for {config.model} (its lines metrics left float32's seed spread, "
                      f"see benchmarks/precision_check.py); use --precision float32 for paper numbers", stacklevel=3)
    if not native_bfloat16(resolve_device(config.device)):
        warnings.warn(f"bfloat16 is emulated on this {config.device} (no AVX-512 BF16 or AMX): it trains several times "
                      f"slower than float32 here; use --precision float32", stacklevel=3)

