"""`acai status OUT`: every run of a sweep with its state, and what each table still lacks.

States (acai/training/run_folder.py `state`): done (finished with the sweep's settings),
running (a live process holds its folder), resumable (a checkpoint, nobody training it),
failed (failed.json, a finished run of other settings, or the SLURM task's error: why),
not started; and, for a sweep on SLURM, queued (its task waits in the array). Read from the run folders, and from squeue for a SLURM array
(OUT/slurm.json), so it works while a sweep runs, after its submitter died, and from
another machine of a cluster.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from acai.training.config import ConfigError
from acai.reproduce.slurm import LIVE, read_record, result, squeue
from acai.reproduce.plan import read_sweep
from acai.training.run_folder import samples_trained, state as folder_state


def run_state(run, out) -> tuple[str, int, str]:
    """-> (state, samples done, detail) of one run of a sweep."""
    folder = run.folder(out)
    budget = run.config.steps * run.config.batch
    now = folder_state(folder, run.config)
    if now.name == "running":
        return "running", samples_trained(folder, run.config.batch), ""
    if now.name == "failed":
        failure = now.failure()
        return "failed", failure.get("step", 0) * run.config.batch, failure.get("error", "")
    if now.name == "done":
        flag = now.metrics.get("state", "ok")
        return "done", now.metrics["samples"], "" if flag == "ok" else flag
    if now.name == "resumable":
        return "resumable", samples_trained(folder, run.config.batch), f"of {budget:,}"
    return "not started", 0, f"of {budget:,}"


def slurm_tasks(out) -> tuple[dict[str, tuple[str, str, str | None]], str | None]:
    """For a sweep submitted to SLURM: {run id: (task, its state, its error line or None)} and a summary."""
    array = read_record(out)
    if array is None:
        return {}, None
    try:
        states = squeue(array)
    except ConfigError as error:
        return {}, f"{array}: state unknown ({error})"
    tasks = {}
    for task, runs in zip(array.tasks, array.runs):
        returned = result(array, task)
        for run in runs:
            tasks[run] = (task, states.get(task, "gone from squeue"), returned and returned[1])
    counts = Counter(states.get(task, "gone from squeue") for task in array.tasks)
    return tasks, (f"{array}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
                   f"; logs in {array.folder}")


def with_task(state: str, detail: str, task: str, slurm: str, error: str | None) -> tuple[str, str]:
    """A run's state as its folder shows it, completed by what SLURM says of its task."""
    if state in ("done", "failed"):
        return state, detail
    if slurm in LIVE:
        if state == "running":
            return state, f"SLURM task {task}"
        return ("running", f"SLURM task {task} RUNNING, starting") if slurm == "RUNNING" else \
            ("queued", f"{detail}; SLURM task {task} {slurm}".lstrip("; "))
    if error:
        return "failed", f"SLURM task {task}: {error}"
    return state, f"{detail}; SLURM task {task} {slurm}".lstrip("; ")


def status(out) -> str:
    spec = read_sweep(out)
    tasks, slurm = slurm_tasks(out)
    rows, counts = [], {}
    for run in spec.runs():
        state, samples, detail = run_state(run, out)
        if run.id in tasks:
            state, detail = with_task(state, detail, *tasks[run.id])
        counts[state] = counts.get(state, 0) + 1
        rows.append(f"  {run.id:34s} {state:12s} {samples:>12,} samples  {detail}".rstrip())
    lacking = sum(counts.get(state, 0) for state in ("not started", "queued", "resumable", "running"))
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    table = (f"{spec.table.name}: complete, {Path(out) / (spec.table.name + '.md')}" if not lacking and
             not counts.get("failed") else f"{spec.table.name}: lacks {lacking} run{'s' if lacking != 1 else ''} "
             f"to train" + (f" and has {counts['failed']} failed" if counts.get("failed") else ""))
    return "\n".join([f"sweep in {out}: {spec.table.name}, preset {spec.preset.name}, {spec.seeds} seed(s); {summary}",
                      *rows, *([slurm] if slurm else []), table])
