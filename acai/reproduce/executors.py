"""Who runs a sweep's units: this process, N local worker processes, or a SLURM job array.

Every executor runs the same idempotent units (acai/reproduce/plan.py) and reports,
per unit, None or the one-line reason it failed; the results themselves are
read back from the run folders. A unit that fails does not stop the others.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol

from acai.training.machine import cores
from acai.training.progress import QueueProgress, SweepDisplay, WorkerProgress
from acai.training.signals import Interrupted, on_stop, raise_on_sigterm


class Executor(Protocol):
    def run(self, units: list, display: SweepDisplay) -> dict[str, str | None]:
        """Run every unit; -> {unit id: None if it finished, else why not (one line)}."""


def one_line(error: BaseException) -> str:
    from acai.training.config import ConfigError
    from acai.core.data import DataError
    from acai.training.run import RunFailed

    if isinstance(error, (ConfigError, DataError, RunFailed)):
        return str(error)
    return f"{type(error).__name__}: {error}".splitlines()[0]


class Inline:
    """Each unit in this process, one after another (the tests' default)."""

    def run(self, units, display):
        failures = {}
        for unit in units:
            try:
                unit(WorkerProgress(display.sink, "main"))
                failures[unit.id] = None
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:
                failures[unit.id] = one_line(error)
                display.write(f"{unit.id}: failed: {failures[unit.id]}")
        return failures


def _start_worker(threads: int, queue, stop) -> None:
    import torch

    torch.set_num_threads(threads)
    global _QUEUE, _STOP
    _QUEUE, _STOP = queue, stop
    # Between units a stop request only marks the worker stopped (a unit's training loop handles it
    # itself: it saves, then stops). Without this an idle worker dies on Ctrl-C and breaks the pool.
    on_stop(_note_stop)


_QUEUE = None
_STOP = None  # an Event shared by the sweep's workers: once set, no worker starts a unit
_RUNNING = False  # a unit is running in this worker


def _note_stop(signum, frame) -> None:
    _STOP.set()
    # A training loop installs its own handler (signals.stop_requests: save, then stop at a step boundary), so
    # this one runs when the worker is idle or in an evaluation (K-Means, a probe, figures). Those write their
    # result once, atomically, at the end: stopping now loses only their own work, where finishing first
    # kept a stopped sweep running for up to 40 minutes (1,000 K-Means restarts at d_z 256 on one core).
    if _RUNNING:
        raise Interrupted(signum)


def _run_in_worker(unit) -> str | None:
    global _RUNNING
    if _STOP.is_set():  # a unit the pool had already handed over before the sweep was stopped
        return "not started: the sweep was stopped"
    _RUNNING = True
    try:
        unit(QueueProgress(_QUEUE, f"worker{os.getpid()}"))
        return None
    except KeyboardInterrupt:  # Ctrl-C to the process group or SIGTERM from the submitter
        _STOP.set()
        return "interrupted (a training run saves its checkpoint first; an evaluation starts over)"
    except Exception as error:
        if not isinstance(error, (ValueError, RuntimeError)):
            traceback.print_exc()
        return one_line(error)
    finally:
        _RUNNING = False


@dataclass
class Local:
    """Units in `workers` processes of `threads` threads each, the longest first.

    By default each core gets its own worker of one thread, and spare cores go to the workers
    when units are fewer: batch-16 convolutions use one core well and two less well (docs/speed.md,
    "Workers and threads"). Each unit runs in a fresh worker process (Python 3.11+), so that its
    memory goes back whole when it ends (docs/cluster.md, "Memory")."""

    workers: int | None = None
    threads: int | None = None

    def plan(self, units: int) -> tuple[int, int]:
        workers = self.workers or max(1, min(cores(), units))
        threads = self.threads or max(1, cores() // workers)
        return workers, threads

    def run(self, units, display):
        workers, threads = self.plan(len(units))
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited torch threads
        queue = context.Queue()
        listener = threading.Thread(target=_forward, args=(queue, display), daemon=True)
        listener.start()
        failures = {}
        stop = context.Event()
        fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}  # 3.10: long-lived workers
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                   initargs=(threads, queue, stop), **fresh)
        previous = raise_on_sigterm()
        try:
            futures = {pool.submit(_run_in_worker, unit): unit for unit in units}
            for future in as_completed(futures):
                unit = futures[future]
                failures[unit.id] = future.result()
                if failures[unit.id]:
                    display.write(f"{unit.id}: failed: {failures[unit.id]}")
        except KeyboardInterrupt:  # the running units save at their next step; start no others
            # Ctrl-C at a terminal reaches the whole process group, but `kill` (SIGTERM or SIGINT) or a
            # scheduler reaches only this process, and workers left running would go on taking queued
            # units with no one to report to. A worker that got Ctrl-C too only hears the request again.
            # The pool replaces each worker that ends, even now: `stop` keeps the new ones from starting.
            stop.set()
            for worker in multiprocessing.active_children():
                os.kill(worker.pid, signal.SIGTERM)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            pool.shutdown(wait=True)
            queue.put(None)
            listener.join(timeout=5)
        return failures


def _forward(queue, display: SweepDisplay) -> None:
    while (event := queue.get()) is not None:
        display.sink(*event)
