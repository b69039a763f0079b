"""Two cores, two ways: one worker of 2 threads against 2 workers of 1 thread, on the quick preset's lines runs.

    python benchmarks/worker_split.py [--models baseline acai] [--seconds 40] [--cores 2] [--precision preset]

`acai reproduce` trains a table's independent runs in --workers processes of --threads torch
threads each. This times what the table's wall time is made of, for each model: the quick preset's
lines training step (its batch, rate schedule and per-model settings; acai/sweep.py), run by the
real trainer (`acai.run.train_step`) for --seconds in each configuration:

  1 x N   one process with N threads (--workers 1 --threads N)
  N x 1   N processes with one thread each, at the same time (--workers N, the default)

and prints the total samples/s each configuration gets out of the machine, and their ratio. A
table of many runs takes about (its samples / that rate), plus the last runs' tail when fewer
runs than workers are left.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time


def steps_for(model: str, seconds: float, threads: int, precision: str, start, queue) -> None:
    import torch

    from acai.config import TrainConfig
    from acai.run import build_run, keep_freed_memory, native_bfloat16
    from acai.sweep import PRESETS
    from acai.train import SingleStepper

    torch.set_num_threads(threads)
    keep_freed_memory()  # as the trainer does on a CPU
    # "preset": the step `reproduce` would train here (bfloat16 for the preset's bfloat16 models on a CPU
    # that computes it natively); or one precision for every model
    values = PRESETS["quick"].lines.config(model, bfloat16_here=native_bfloat16(torch.device("cpu")))
    if precision != "preset":
        values["precision"] = precision
    config = TrainConfig.from_dict({**values, "model": model, "data": "lines"})
    stepper = SingleStepper(build_run(config))  # the trainer's step: render the batch, then train_step
    for _ in range(2):  # warm-up: oneDNN picks its kernels
        stepper.step()
    start.wait()
    begin, steps = time.perf_counter(), 0
    while time.perf_counter() - begin < seconds:
        stepper.step()
        steps += 1
    queue.put(steps * config.batch / (time.perf_counter() - begin))


def total_rate(model: str, seconds: float, workers: int, threads: int, precision: str) -> float:
    context = multiprocessing.get_context("spawn")
    start, queue = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=steps_for, args=(model, seconds, threads, precision, start, queue)) for _ in range(workers)]
    for process in processes:
        process.start()
    rates = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["baseline", "acai"])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--precision", default="preset", choices=["preset", "float32", "bfloat16"],
                        help="preset: as `reproduce --preset quick` trains each model on this CPU")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    n = args.cores
    print(f"| model | 1 x {n} threads (samples/s) | {n} x 1 thread (samples/s, total) | {n} x 1 / 1 x {n} |")
    print("|---|---|---|---|")
    results = {}
    for model in args.models:
        one = total_rate(model, args.seconds, 1, n, args.precision)
        many = total_rate(model, args.seconds, n, 1, args.precision)
        results[model] = {"1x%d" % n: one, "%dx1" % n: many}
        print(f"| {model} | {one:.1f} | {many:.1f} | {many / one:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
