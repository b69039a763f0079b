"""How long work shows its progress: one display per command, whatever runs underneath.

`Progress` is what the training loop reports to: samples done, a short status
(losses, samples/s, a flag such as "collapsed") and one line per evaluation.
`Display` draws it as a tqdm bar on a terminal and, when stderr is a file or a
pipe (a log, a cluster job), as a plain line every `every` seconds instead of
a stream of carriage returns. `SweepDisplay` is one display for a whole sweep,
whose units may train in several worker processes (acai/reproduce/executors.py).
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Protocol

from tqdm import tqdm


class Progress(Protocol):
    def start(self, label: str, total: int, done: int) -> None:
        """A new piece of work of `total` samples, `done` of them already (a resumed run)."""

    def advance(self, samples: int, status: dict[str, str]) -> None:
        """`samples` more are done; `status` is shown beside the count."""

    def note(self, text: str) -> None:
        """A line to keep (an evaluation's result)."""

    def close(self) -> None: ...


# How a measurement made after training (a probe's steps, K-Means's restarts) reports how far it
# is: tick(done, total). It has no samples to add to a sweep's count, only a state to show.
Tick = Callable[[int, int], None]


class Silent:
    def start(self, label, total, done): pass

    def advance(self, samples, status): pass

    def note(self, text): pass

    def close(self): pass


class Display:
    """tqdm on a terminal; elsewhere a line every `every` seconds and at the end."""

    def __init__(self, stream=None, every: float = 30.0):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.every = every
        self.bar = None

    def start(self, label, total, done):
        self.close()
        self.label, self.total, self.done, self.status = label, total, done, {}
        self.last = time.perf_counter()
        if self.terminal:
            self.bar = tqdm(total=total, initial=done, unit="sample", unit_scale=True, desc=label,
                            dynamic_ncols=True, file=self.stream)

    def advance(self, samples, status):
        self.done += samples
        self.status = status or self.status
        if self.bar is not None:
            self.bar.update(samples)
            if status:
                self.bar.set_postfix(status, refresh=False)
        elif time.perf_counter() - self.last >= self.every:
            self._line()

    def _line(self):
        self.last = time.perf_counter()
        fields = " ".join(f"{k}={v}" for k, v in self.status.items())
        count = f"{self.done:,}/{self.total:,} samples ({100 * self.done / self.total:.0f}%) " if self.total else ""
        print(f"{self.label}: {count}{fields}".rstrip(), file=self.stream, flush=True)

    def note(self, text):
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif getattr(self, "total", None) is not None and self.done > getattr(self, "reported", -1):
            self._line()
            self.reported = self.done


class SweepDisplay:
    """One display for a whole sweep: a bar over the samples of every unit, whichever process
    trains them. Workers report through `sink(worker, event, *args)` (WorkerProgress in the same
    process, QueueProgress from another one)."""

    def __init__(self, total: int, label: str, stream=None, every: float = 30.0, enabled: bool = True,
                 done: int = 0):
        """`done`: the samples of runs that finished before this sweep started (they send no events)."""
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.terminal = enabled and self.stream.isatty()
        self.total, self.done, self.every, self.label = total, done, every, label
        self.active: dict[str, str] = {}  # worker -> "label rate"
        self.started = self.last = time.perf_counter()
        self.bar = tqdm(total=total, initial=done, unit="sample", unit_scale=True, desc=label, dynamic_ncols=True,
                        file=self.stream) if self.terminal else None

    def sink(self, worker: str, event: str, *args) -> None:
        if not self.enabled:
            return
        if event == "start":
            label, _total, done = args
            self.active[worker] = label
            self._add(done)
        elif event == "advance":
            samples, status = args
            run = self.active.get(worker, "").split(" ")[0]
            if status.get("samples/s"):
                self.active[worker] = f"{run} {status['samples/s']}/s" + (
                    f" {status['state']}" if status.get("state") else "")
            elif status.get("measuring"):  # a probe or K-Means after training: no samples, a state
                self.active[worker] = f"{run} {status['measuring']}"
            self._add(samples)
        elif event == "note":
            self.write(args[0])
        elif event == "close":
            self.active.pop(worker, None)

    def _add(self, samples: int) -> None:
        self.done += samples
        if self.bar is not None:
            self.bar.update(samples)
            self.bar.set_postfix_str("; ".join(self.active.values()), refresh=samples == 0)  # 0: a measurement
        elif time.perf_counter() - self.last >= self.every:
            self.line()

    def line(self) -> None:
        self.last = time.perf_counter()
        elapsed = self.last - self.started
        print(f"{self.label}: {self.done:,}/{self.total:,} samples ({100 * self.done / max(self.total, 1):.0f}%), "
              f"{elapsed / 60:.1f} min; running: {'; '.join(self.active.values()) or '-'}", file=self.stream,
              flush=True)

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled:
            self.line()


class WorkerProgress:
    """The Progress a training loop reports to, forwarding every event to `sink` as `worker`."""

    def __init__(self, sink, worker: str, notes: bool = False):
        self.sink, self.worker, self.notes = sink, worker, notes

    def start(self, label, total, done):
        self.sink(self.worker, "start", label, total, done)

    def advance(self, samples, status):
        self.sink(self.worker, "advance", samples, status)

    def note(self, text):
        if self.notes:
            self.sink(self.worker, "note", text)

    def close(self):
        self.sink(self.worker, "close")


class QueueProgress(WorkerProgress):
    """WorkerProgress across processes: events go through a multiprocessing queue, the samples of
    `advance` gathered for `every` seconds so that the queue carries a few messages a second."""

    def __init__(self, queue, worker: str, every: float = 0.5):
        super().__init__(lambda *event: queue.put(event), worker)
        self.every, self.pending, self.status, self.last = every, 0, {}, time.perf_counter()

    def advance(self, samples, status):
        self.pending += samples
        self.status = status or self.status
        if time.perf_counter() - self.last >= self.every:
            self.flush()

    def flush(self):
        if self.pending or self.status:
            self.sink(self.worker, "advance", self.pending, self.status)
        self.pending, self.status, self.last = 0, {}, time.perf_counter()

    def close(self):
        self.flush()
        super().close()
