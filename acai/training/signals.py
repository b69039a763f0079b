"""Stop signals, in one place: Ctrl-C, a scheduler's SIGTERM and SLURM's SIGUSR2 warning.

* In a training loop (`stop_requests`) a signal only notes the request: the loop saves a
  checkpoint at the next step boundary, then raises `Interrupted`, so no checkpoint holds a
  half-applied step and a resumed run continues bit for bit.
* In the process that submitted a sweep (`raise_on_sigterm`) SIGTERM becomes `Interrupted`,
  as Ctrl-C becomes KeyboardInterrupt, so the executor can stop its workers.
* In an idle sweep worker (`on_stop`) a signal runs the executor's handler.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint at a step boundary."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StoppedUnsaved(KeyboardInterrupt):
    """Training stopped at once on a second Ctrl-C, without saving; the loop fills in the step (and
    samples) of the last checkpoint it saved, which is what the folder holds."""

    def __init__(self):
        super().__init__("SIGINT")
        self.signum = signal.SIGINT
        self.step: int | None = None
        self.samples: int | None = None


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)  # Ctrl-C; a scheduler's kill; SLURM's warning


@contextmanager
def stop_requests():
    """While training, Ctrl-C, SIGTERM and SIGUSR2 only note a request (-> the list yielded): the loop
    saves and stops at the next step boundary, so a checkpoint never holds a half-applied step.
    A second Ctrl-C stops at once, without saving. In another thread than the main one, signals
    are left alone."""
    requested: list[int] = []

    def handler(signum, frame):
        if signum == signal.SIGINT and signal.SIGINT in requested:
            raise StoppedUnsaved
        requested.append(signum)

    try:
        previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    except ValueError:  # not the main thread
        yield requested
        return
    try:
        yield requested
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def raise_on_sigterm():
    """SIGTERM to the submitting process -> Interrupted(SIGTERM), as Ctrl-C gives KeyboardInterrupt;
    -> the handler it replaced (None outside the main thread, where signals cannot be caught)."""

    def handler(signum, frame):
        raise Interrupted(signum)

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def on_stop(handler) -> None:
    """Run `handler(signum, frame)` on Ctrl-C and SIGTERM (a sweep's worker process, between units)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
