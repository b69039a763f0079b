"""The SLURM executor: a sweep's units as one job array, submitted through submitit.

* One array task per unit (acai/reproduce/plan.py). A unit is idempotent, so every way a task can end
  early is mended by running it again: a requeued task (preemption, the time limit, `scontrol
  requeue`) and a later `acai reproduce` both continue from the runs' checkpoints.
* Before the time limit SLURM sends SIGUSR2 (submitit asks for `--signal=USR2@90`). The training
  loop saves at its next step boundary and raises Interrupted; the task then hands over to
  submitit's own handler, which requeues it. SIGTERM (scancel, a preemption) also saves first.
* OUT/slurm/ holds submitit's files (batch script, pickles, one log per task); OUT/slurm.json the
  last array's id and the unit of each task: a later `reproduce` on the same OUT waits for that
  array while it lives instead of submitting the units again, and `acai status OUT` shows its
  queued and running tasks.
* Accounting may be off, and then `sacct` fails (submitit's own state watcher warns and guesses).
  States come from `squeue -t all` instead, which lists finished tasks too for MinJobAge seconds,
  and each task's outcome from the result file submitit writes and the task's log.
"""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from acai.training import checkpoint as ckpt
from acai.training.config import ConfigError
from acai.training.progress import Display
from acai.training.run_folder import samples_logged

RECORD, FOLDER = "slurm.json", "slurm"
# States in which a task may still run (held ones included: waiting on them shows their state).
LIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
        "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "RESV_DEL_HOLD"}
TIMEOUTS = 20  # time limits a task may reach, each followed by a requeue, before submitit gives up on it


@dataclass(frozen=True, kw_only=True)
class Array:
    """A submission: its SLURM job id and name, submitit's folder, and per task its id ("JOB_INDEX";
    "JOB" when submitit sends a single unit as a plain job), its unit and the unit's runs."""

    job: str
    name: str  # unique: squeue never mistakes another job for it, should a cluster reuse the id
    folder: Path
    tasks: tuple[str, ...]
    units: tuple[str, ...]
    runs: tuple[tuple[str, ...], ...]

    def __str__(self) -> str:
        return f"SLURM {'array' if len(self.tasks) > 1 else 'job'} {self.job}"

    def log(self, task: str) -> Path:  # submitit's JobPaths(folder, task).stderr
        return self.folder / f"{task}_0_log.err"

    def result_file(self, task: str) -> Path:  # submitit's JobPaths(folder, task).result_pickle
        return self.folder / f"{task}_0_result.pkl"


def read_record(out) -> Array | None:
    path = Path(out) / RECORD
    if not path.exists():
        return None
    record = ckpt.read_json(path)
    return Array(job=record["job"], name=record["name"], folder=Path(out) / FOLDER, tasks=tuple(record["tasks"]),
                 units=tuple(record["units"]), runs=tuple(map(tuple, record["runs"])))


def squeue(array: Array) -> dict[str, str]:
    """{task id: state} of the array's tasks that SLURM still knows, finished ones included."""
    job = array.job
    if shutil.which("squeue") is None:
        raise ConfigError("squeue is not on PATH: run this on a machine of the SLURM cluster")
    try:
        result = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", job, "-n", array.name, "-o", "%i|%T"],
                                capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"squeue -j {job} did not answer in 120 s") from None
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return {}  # purged: it ended more than MinJobAge ago
        raise ConfigError(f"squeue -j {job} failed: {(result.stderr.strip() or 'no message').splitlines()[-1]}")
    return dict(line.split("|") for line in result.stdout.split())


def result(array: Array, task: str) -> tuple[str, str | None] | None:
    """What the task returned: ("success", None or its unit's one-line error), ("error", the last line
    of a traceback outside the unit), or None if it wrote no result (still running, killed, cancelled)."""
    path = array.result_file(task)
    try:
        with open(path, "rb") as handle:
            kind, value = pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None
    if kind == "success":
        return kind, value
    return kind, [line for line in str(value).splitlines() if line.strip()][-1]


def outcome(array: Array, task: str, state: str | None) -> str | None:
    """None if the task ran its unit to the end, else why not, in one line."""
    returned = result(array, task)
    if returned is not None:
        return returned[1] if returned[0] == "success" else f"SLURM task {task}: {returned[1]}"
    try:
        lines = [line.strip() for line in array.log(task).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    ends = [line for line in lines if "***" in line]  # slurmstepd's "*** JOB .. CANCELLED AT .. ***", time limit
    why = ends[-1] if ends else lines[-1] if lines else f"no log at {array.log(task)}"
    return f"SLURM task {task} {state or 'ended'} without finishing: {why}"


class TaskLog(Display):
    """A task's progress in its log: a line when a run starts or resumes, then one every 5 minutes."""

    def __init__(self):
        super().__init__(sys.stderr, every=300.0)

    def start(self, label, total, done):
        super().start(label, total, done)
        begins = (f"resuming at sample {done:,} of {total:,}" if done else f"starting, {total:,} samples" if total
                  else "starting")  # total 0: a measurement after training (probe, K-Means)
        print(f"{label}: {begins}", file=self.stream, flush=True)


class Task:
    """What one array task runs: its unit, then None, or the unit's error in one line."""

    def __init__(self, unit):
        self.unit = unit

    def __call__(self) -> str | None:
        import torch

        from acai.reproduce.executors import one_line
        from acai.training.signals import Interrupted

        torch.set_num_threads(int(os.environ.get("SLURM_CPUS_PER_TASK", "1")))  # not every core of the node
        try:
            self.unit(TaskLog())
        except Interrupted as stop:  # the loop saved at a step boundary before raising
            handler = signal.getsignal(signal.SIGUSR2)
            if stop.signum != signal.SIGUSR2 or not callable(handler):
                raise SystemExit(f"acai: stopped by {signal.Signals(stop.signum).name} after saving a checkpoint")
            # SLURM's warning of a preemption or of the time limit. The loop restored submitit's handler
            # when it stopped: it dumps checkpoint() for the requeued task, requeues it and exits.
            handler(signal.SIGUSR2, None)
        except Exception as error:
            import traceback

            traceback.print_exc()
            return one_line(error)
        return None

    def checkpoint(self):
        """What submitit runs when the task is requeued: the same unit (it resumes). This is what
        submitit.helpers.Checkpointable does, written out so that this module imports without submitit."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


class Logged:
    """The samples that the sweep's runs have logged (at each evaluation), fed to its display as they grow."""

    def __init__(self, folders: list[Path], display):
        self.folders, self.display, self.count = folders, display, 0

    def update(self) -> None:
        now = sum(samples_logged(folder) for folder in self.folders)
        if now > self.count:
            self.display.sink("slurm", "advance", now - self.count, {})
            self.count = now


@dataclass
class Slurm:
    """Units as the tasks of one SLURM job array; `max_parallel` of them at once (default: all)."""

    partition: str | None = None
    gpus_per_task: int = 0
    time_limit: int = 240  # minutes per task; a task that reaches it is requeued and resumes
    max_parallel: int | None = None
    cpus_per_task: int | None = None  # default 1 per CPU task (the fastest per core here), 2 per GPU task
    poll: float = 5.0  # seconds between looks at squeue and the run folders

    def __post_init__(self):
        if self.gpus_per_task < 0:
            raise ConfigError(f"--gpus-per-task must be 0 or more, got {self.gpus_per_task}")
        for name in ("time_limit", "max_parallel", "cpus_per_task"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")

    def run(self, units, display):
        if not units:
            return {}
        out = Path(units[0].out)
        outcomes: dict[str, str | None] = {}
        logged = Logged([member.folder(out) for unit in units for member in unit.members], display)
        previous = read_record(out)
        if previous is not None and any(state in LIVE for state in squeue(previous).values()):
            display.write(f"re-attaching to {previous}, which still runs units of {out}")
            outcomes.update(self.wait(previous, display, logged))
        todo = [unit for unit in units if not unit.settled() and outcomes.get(unit.id, "not run") is not None]
        if todo:
            array = self.submit(todo, out)
            display.write(f"submitted {array}: {len(todo)} task{'s' if len(todo) > 1 else ''}, "
                          f"{self.gpus_per_task} GPU(s) and {self.cpus()} CPU(s) each, {self.time_limit} min, "
                          f"at most {self.max_parallel or len(todo)} at once; logs in {array.folder}")
            outcomes.update(self.wait(array, display, logged))
        return {unit.id: outcomes.get(unit.id) for unit in units}

    def cpus(self) -> int:
        return self.cpus_per_task or (2 if self.gpus_per_task else 1)

    def submit(self, units, out: Path) -> Array:
        try:
            import submitit
        except ImportError:
            raise ConfigError("--executor slurm needs submitit: pip install 'acai[slurm]'") from None
        if shutil.which("sbatch") is None:
            raise ConfigError("--executor slurm: sbatch is not on PATH; run reproduce on a machine of the cluster")
        devices = {member.config.device for unit in units for member in unit.members}
        if self.gpus_per_task and devices == {"cpu"}:
            raise ConfigError("--gpus-per-task with --device cpu would hold GPUs idle; add --device cuda")
        if not self.gpus_per_task and "cuda" in devices:
            raise ConfigError("--device cuda needs --gpus-per-task 1 (or more) with --executor slurm")
        executor = submitit.SlurmExecutor(out / FOLDER, max_num_timeout=TIMEOUTS)
        options = dict(partition=self.partition, gpus_per_task=self.gpus_per_task or None)
        name = f"acai-{out.name}-{uuid.uuid4().hex[:8]}"
        executor.update_parameters(job_name=name, time=self.time_limit, cpus_per_task=self.cpus(),
                                   array_parallelism=self.max_parallel or len(units),
                                   # idempotent units: a requeue after a node failure or preemption is always safe
                                   additional_parameters={"requeue": True},
                                   **{k: v for k, v in options.items() if v is not None})
        try:
            jobs = executor.submit_array([Task(unit) for unit in units])
        except submitit.core.utils.FailedJobError as error:
            raise ConfigError(f"sbatch refused the array: {str(error).strip().splitlines()[-1]}") from None
        tasks = tuple(job.job_id for job in jobs)
        array = Array(job=tasks[0].partition("_")[0], name=name, folder=out / FOLDER, tasks=tasks,
                      units=tuple(unit.id for unit in units),
                      runs=tuple(tuple(member.id for member in unit.members) for unit in units))
        ckpt.save_json(dict(job=array.job, name=name, tasks=list(tasks), units=list(array.units),
                            runs=[list(runs) for runs in array.runs], submitted=time.time()), out / RECORD)
        return array

    def wait(self, array: Array, display, logged: Logged) -> dict[str, str | None]:
        """Poll until no task of `array` can run any more, showing its tasks' states and the samples
        the runs have logged; -> {unit id: outcome}. squeue may fail for a while (slurmctld restarting)."""
        last, failing = "", None
        try:
            while True:
                try:
                    states = squeue(array)
                    failing = None
                except ConfigError as error:
                    failing = failing or time.time()
                    if time.time() - failing > 600:
                        raise
                    display.write(f"{error}; trying again")
                    time.sleep(self.poll)
                    continue
                logged.update()
                counts = Counter(states.get(task, "gone from squeue") for task in array.tasks)
                line = f"{array}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
                if line != last:
                    display.write(line)
                    display.sink("slurm", "start", line, 0, 0)  # what the progress line shows as running
                    last = line
                if not any(state in LIVE for state in states.values()):
                    return {unit: outcome(array, task, states.get(task)) for task, unit in zip(array.tasks, array.units)}
                time.sleep(self.poll)
        except KeyboardInterrupt:
            display.write(f"{array} keeps running: run the same command again to wait for it, "
                          f"or scancel {array.job} to stop it")
            raise
