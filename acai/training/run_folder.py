"""A run folder: the names of its files, reading them back, and what state its run is in (SPEC 3).

  checkpoint.pt  the run's whole state (`Run.state_dict`), saved at every evaluation and every
                 checkpoint_seconds: what --resume, interpolate, samples, probe and cluster read
  log.jsonl      one line per evaluation: only what the run computed, so the same for a killed-and-resumed
                 run and an unbroken one
  clock.jsonl    the training seconds and wall-clock time at each evaluation
  metrics.json   the reported metrics (`run.finish`), written when the run reaches its budget: what marks
                 it done
  failed.json    why it stopped early (a non-finite loss); removed when it trains again
and what was measured or drawn from it: probe.json and cluster.json (acai/measures/represent.py),
report.html and report-files/ (`acai report`), tensorboard/ (`--tensorboard`).

`state(folder)` is the one answer to "what is this run doing?" (`acai status`, `acai report`), and
`finished_run(folder, config)` to "is this folder a finished run of this config?".
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acai.core.evaluations import REPORTED
from acai.training import checkpoint as ckpt
from acai.training.config import ConfigError, TrainConfig

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
# Training seconds and wall-clock time at each evaluation, one line each. Kept apart from log.jsonl, which
# holds only what the run computed and so is identical for a killed-and-resumed run and an unbroken one.
CLOCK = "clock.jsonl"
METRICS = "metrics.json"
FAILED = "failed.json"  # why a run stopped early (divergence); removed when it trains again
PROBE = "probe.json"  # the probe on the run's final codes, cached against its checkpoint
CLUSTER = "cluster.json"  # K-Means on the run's codes, cached against its checkpoint
REPORT = "report.html"  # `acai report`'s page, in the folder it reports
REPORT_FILES = "report-files"  # the grids that page drew itself
EVENTS = "tensorboard"  # TensorBoard event files
# What a run leaves in its folder besides its checkpoint, cleared by a fresh run: its results, its logs, and
# what was measured or drawn from it. metrics.json first: it is what marks a run as done.
RUN_FILES = (METRICS, FAILED, LOG, CLOCK, PROBE, CLUSTER, REPORT)
RUN_FOLDERS = (EVENTS, REPORT_FILES)

# The keys that readers take from metrics.json (`run.finish`) and each line of log.jsonl, and the type of each.
METRICS_KEYS = {"config": dict, "samples": int, "seconds": (int, float), "samples_per_second": (int, float)}
LOG_KEYS = {"samples": int}

STATES = ("running", "failed", "done", "resumable", "not started")


def clear_previous_run(out: Path) -> None:
    """Remove what an earlier run left in `out` (its checkpoint deleted, or never written), before a fresh
    run writes its step-0 checkpoint there: a folder's files belong to one run, so a fresh run killed early
    is never shown as done with the earlier run's metrics, nor measured with its caches."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)


def _log_remedy(path: Path) -> str:
    # A run's log.jsonl is rewritten from its checkpoint, which holds the same history: with the
    # checkpoint whole, the run needs only a resume, not to be trained again.
    if (path.parent / CHECKPOINT).exists():
        return (f"its run's {CHECKPOINT} holds the same history: delete {path.name} and {METRICS}, then "
                f"continue the run with --resume (acai reproduce: run it again), which rewrites both")
    return f"delete the run folder {path.parent} and train it again"


def read_log(path, keys: dict | None = None) -> list[dict]:
    """The evaluations of a log.jsonl, each with `keys` ({name: type}) if given; a damaged log is a
    one-line ConfigError that says how to restore it from the checkpoint beside it."""
    return ckpt.read_json_lines(path, keys, remedy=_log_remedy)


def summarise(history: list[dict], window: int) -> dict:
    """The reported value of each metric: median of its last `window` evaluations, and the state of
    the last evaluation.

    The release's rule (figures.ipynb, `get_final_value_median`: np.median of the last 20): one
    undefined (NaN) value among them makes the reported value undefined, as an evaluation whose
    interpolations all start and end on the same line does for Smoothness."""
    recent = history[-window:]
    summary = {}
    for key in REPORTED:
        values = [h[key] for h in recent if key in h]
        if values:
            summary[key] = float(np.median(values))
    if recent and "state" in recent[-1]:
        summary["state"] = recent[-1]["state"]
    return summary


def finished_run(folder, config: TrainConfig) -> dict | None:
    """Is `folder` a finished run of `config`? -> its metrics (summarised with config's eval_window), or
    None when it holds no finished run. A finished run of other settings is a ConfigError: never
    silently reused, never silently overwritten. The one place that answers this question."""
    folder = Path(folder)
    if not (folder / METRICS).exists():
        return None
    metrics = ckpt.read_json(folder / METRICS, METRICS_KEYS)
    if TrainConfig.from_dict(metrics["config"]).trained_fields() != config.trained_fields():
        raise ConfigError(f"{folder} holds a finished run with other settings; use another --out or delete it")
    return {**metrics, **summarise(read_log(folder / LOG, LOG_KEYS), config.eval_window)}


def samples_logged(folder) -> int:
    """Samples of the last evaluation logged (cheap: no checkpoint is loaded)."""
    try:
        lines = (Path(folder) / LOG).read_text().splitlines()
        return json.loads(lines[-1])["samples"] if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def samples_trained(folder, batch: int) -> int:
    """Samples of a run's last checkpoint: a run saves every few minutes between its evaluations, so the
    log alone (the last evaluation's samples) can say 0 for a run that has trained for an hour."""
    step = ckpt.saved_step(Path(folder) / CHECKPOINT)
    return max(step * batch if step is not None else 0, samples_logged(folder))


def is_run(folder) -> bool:
    """A run folder: its checkpoint, or the files a finished run leaves (results kept without checkpoints)."""
    folder = Path(folder)
    return (folder / CHECKPOINT).exists() or ((folder / METRICS).exists() and (folder / LOG).exists())


@dataclass(frozen=True, kw_only=True)
class FolderState:
    """What a run folder holds now (`state`)."""

    folder: Path
    name: str  # one of STATES
    metrics: dict | None = None  # done: its metrics (with a config: summarised with the config's eval_window)
    refused: str | None = None  # failed with a config: why the finished run there is not the config's

    def failure(self) -> dict:
        """Why a failed run failed: its failed.json ({"error": ..., "step": ...}, read now: a damaged one is a
        one-line ConfigError), or {"error": ...} for a finished run of other settings."""
        return {"error": self.refused} if self.refused is not None else ckpt.read_json(self.folder / FAILED, {})


def state(folder, config: TrainConfig | None = None) -> FolderState:
    """What the run in `folder` is doing: the one place this is decided (`acai status`, `acai report`).

      running      a live process holds the folder's lock (checkpoint.folder_lock)
      failed       failed.json: its loss stopped being finite; with `config`, also a finished run of other
                   settings (`finished_run`'s ConfigError)
      done         metrics.json: the run reached its budget; with `config`, a finished run of `config`
      resumable    a checkpoint that no process is training
      not started  neither
    """
    folder = Path(folder)
    if ckpt.is_locked(folder):
        return FolderState(folder=folder, name="running")
    if (folder / FAILED).exists():
        return FolderState(folder=folder, name="failed")
    if config is None:
        metrics = ckpt.read_json(folder / METRICS, METRICS_KEYS) if (folder / METRICS).exists() else None
    else:
        try:
            metrics = finished_run(folder, config)
        except ConfigError as error:
            return FolderState(folder=folder, name="failed", refused=str(error))
    if metrics is not None:
        return FolderState(folder=folder, name="done", metrics=metrics)
    return FolderState(folder=folder, name="resumable" if (folder / CHECKPOINT).exists() else "not started")


def refuse_diverged(folder, command: str) -> None:
    """ConfigError for a run that diverged (failed.json): its checkpoint is the last good one, often
    step 0's, and measuring or drawing it would pass untrained weights off as the run's result."""
    path = Path(folder) / FAILED
    if not path.exists():
        return
    failure = ckpt.read_json(path)
    error = failure.get("error") if isinstance(failure, dict) else None
    why = error.split(";")[0] if isinstance(error, str) and error else "its loss stopped being finite"
    raise ConfigError(f"{folder} diverged ({why}), so acai {command} refuses it: its checkpoint is from before the "
                      f"divergence, not a trained model; train it again into a new --out with a lower --lr (or "
                      f"other --hp values)")
