"""`acai status OUT`: every run of a sweep with its state, and what each table still lacks.

States: done (finished with the sweep's settings), running (a live process holds its
folder), resumable (a checkpoint, nobody training it), failed (failed.json: why),
not started. Read from the run folders only, so it works while a sweep runs,
after it died, and from another machine of a cluster.
"""
from __future__ import annotations

import json

from . import checkpoint as ckpt
from .config import ConfigError
from .sweep import finished, read_sweep
from .train import CHECKPOINT, FAILED, LOG


def run_state(run, out) -> tuple[str, int, str]:
    """-> (state, samples done, detail) of one run of a sweep."""
    folder = run.folder(out)
    budget = run.config.steps * run.config.batch
    if ckpt.is_locked(folder):
        return "running", _samples(folder), ""
    if (folder / FAILED).exists():
        failure = ckpt.read_json(folder / FAILED)
        return "failed", failure.get("step", 0) * run.config.batch, failure.get("error", "")
    try:
        metrics = finished(run, out)
    except ConfigError as error:
        return "failed", 0, str(error)
    if metrics is not None:
        state = metrics.get("state", "ok")
        return "done", metrics["samples"], "" if state == "ok" else state
    if (folder / CHECKPOINT).exists():
        return "resumable", _samples(folder), f"of {budget:,}"
    return "not started", 0, f"of {budget:,}"


def _samples(folder) -> int:
    """Samples of the last evaluation logged (cheap: no checkpoint is loaded)."""
    try:
        lines = (folder / LOG).read_text().splitlines()
        return json.loads(lines[-1])["samples"] if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def status(out) -> str:
    spec = read_sweep(out)
    rows, counts = [], {}
    for run in spec.runs():
        state, samples, detail = run_state(run, out)
        counts[state] = counts.get(state, 0) + 1
        rows.append(f"  {run.id:34s} {state:12s} {samples:>12,} samples  {detail}".rstrip())
    lacking = counts.get("not started", 0) + counts.get("resumable", 0) + counts.get("running", 0)
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    table = (f"{spec.what}: complete, {ckpt.Path(out) / (spec.what + '.md')}" if not lacking and
             not counts.get("failed") else f"{spec.what}: lacks {lacking} run{'s' if lacking != 1 else ''} "
             f"to train" + (f" and has {counts['failed']} failed" if counts.get("failed") else ""))
    return "\n".join([f"sweep in {out}: {spec.what}, preset {spec.preset.name}, {spec.seeds} seed(s); {summary}",
                      *rows, table])
