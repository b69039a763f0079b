"""The one timer the benchmark scripts share: seconds per call of a step, after untimed warm-up calls.

    from timing import seconds_per_call
    seconds = seconds_per_call(lambda x, y: train_step(run, x, y), batches, run.device, warmup=3)

Not a script of its own; train_throughput.py, gpu_check.py and metric_speed.py time with it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch


def seconds_per_call(step: Callable, calls: Sequence[tuple] | int, device: torch.device | str = "cpu",
                     warmup: int = 0) -> float:
    """Mean wall-clock seconds of `step(*args)` over calls[warmup:], after untimed calls on calls[:warmup].

    `calls` is a list of argument tuples (e.g. (x, y) batches, already on the device, so that moving
    them is not timed), or a number of calls without arguments. CUDA kernels run asynchronously: the
    clock is read only after torch.cuda.synchronize(), or it would time how fast work is queued.
    """
    calls = [()] * calls if isinstance(calls, int) else calls
    if len(calls) <= warmup:
        raise ValueError(f"{len(calls)} calls leave none to time after {warmup} warm-up calls")
    cuda = torch.device(device).type == "cuda"
    for args in calls[:warmup]:
        step(*args)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for args in calls[warmup:]:
        step(*args)
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (len(calls) - warmup)
