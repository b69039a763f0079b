"""Where one training step's time goes: torch.profiler over the real trainer's steps, grouped by kind of work,
each group's FLOP rate beside this CPU's measured peak.

    OMP_NUM_THREADS=1 python benchmarks/profile_step.py [--model acai] [--batch 16] [--steps 30] [--precision float32]
    OMP_NUM_THREADS=1 python benchmarks/profile_step.py --model baseline --steps 3 --warmup 1 --out /tmp/p.json  # smoke

The step is `train_step` on a `build_run` run of the lines data (the quick preset's batch of 16 unless
--batch), after --warmup untimed steps. Self CPU time of every aten operator is summed into groups:
convolution forward, convolution backward (input and weight gradients), dense layers (matrix products),
the optimiser (Adam's multi-tensor kernels), and the rest (activations, losses, additions, copies,
the noise draws: memory-bound elementwise work), and the self time outside aten operators (the autograd
engine's nodes, Python). FLOPs per group come from torch.utils.flop_counter on
one step; "of peak" divides a group's GFLOP/s by the peak of this script's own `conv_gflops` (a large
3x3 convolution, forward and backward, channels-last, measured at the start of the same run).
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from acai.core.models import MODELS
from acai.core.nets import to_device
from acai.training.config import TrainConfig
from acai.training.machine import cpu_model, keep_freed_memory
from acai.training.run import build_run, train_step

from train_throughput import conv_gflops

# aten operator -> group; the first pattern an operator's name contains decides (order matters:
# "convolution_backward" before "convolution").
GROUPS = (
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("conv2d", "convolution")),
    ("dense layers", ("addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("optimiser", ("_foreach_", "_fused_adam")),
)
REST = "the rest (elementwise, losses, copies, noise)"
OUTSIDE = "outside aten operators (autograd engine, Python)"
# FlopCounterMode's operator names -> the same groups
FLOP_GROUPS = {"convolution": "convolution forward", "convolution_backward": "convolution backward",
               "addmm": "dense layers", "mm": "dense layers", "bmm": "dense layers"}


def group_of(name: str) -> str:
    return next((group for group, patterns in GROUPS if any(p in name for p in patterns)), REST)


def step_flops(step, batch) -> dict[str, float]:
    """FLOPs of one step per group (convolutions and matrix products, forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step(*batch)
    flops: dict[str, float] = {}
    for op, count in counter.get_flop_counts()["Global"].items():
        group = FLOP_GROUPS.get(str(op).split(".")[1], REST)
        flops[group] = flops.get(group, 0.0) + float(count)
    return flops


def outermost_aten(event) -> str:
    """The name of the outermost aten operator that `event` runs inside (its own name if none): the cost of
    an operator's children is its own (e.g. the per-tensor additions of a foreach Adam kernel on a CPU)."""
    name = event.name
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            name = parent.name
        parent = parent.cpu_parent
    return name


def profile_steps(step, batches) -> tuple[dict[str, float], list[tuple[str, float]], float]:
    """-> (self seconds per step of each group, the 12 costliest operators (name, s per step), wall s per step)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            step(*batch)
    per_step = 1e-6 / len(batches)  # profiler times are µs over all steps
    seconds: dict[str, float] = {}
    by_operator: dict[str, float] = {}
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue  # autograd nodes and Python frames wrap aten operators; their self time is bookkeeping
        s = event.self_cpu_time_total * per_step
        group = group_of(outermost_aten(event))
        seconds[group] = seconds.get(group, 0.0) + s
        by_operator[event.name] = by_operator.get(event.name, 0.0) + s
    wall = sum(e.self_cpu_time_total for e in prof.events()) * per_step
    seconds[OUTSIDE] = wall - sum(seconds.values())  # the self time of autograd nodes and record_function frames
    return seconds, sorted(by_operator.items(), key=lambda item: -item[1])[:12], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="acai", choices=list(MODELS))
    parser.add_argument("--batch", type=int, default=16, help="the quick preset's lines batch")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=30, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--out", default=None, help="JSON file (default: in the results folder, named by model and batch)")
    args = parser.parse_args()
    keep_freed_memory()  # as training does on a CPU
    peak = conv_gflops(torch.float32 if args.precision == "float32" else torch.bfloat16)
    run = build_run(TrainConfig(model=args.model, data="lines", batch=args.batch, precision=args.precision, seed=0))
    batches = [run.source.train_batch(0, s, args.batch) for s in range(args.warmup + args.steps)]
    batches = [(to_device(x, run.device), y.to(run.device)) for x, y in batches]

    def step(x, y):
        train_step(run, x, y)
        run.step += 1

    for batch in batches[:args.warmup]:
        step(*batch)
    flops = step_flops(step, batches[args.warmup])
    seconds, operators, total = profile_steps(step, batches[args.warmup + 1:])
    print(f"{args.model}, batch {args.batch}, {args.precision}, {torch.get_num_threads()} thread(s), {cpu_model()}; "
          f"profiled {len(batches) - args.warmup - 1} steps; measured peak {peak:.0f} GFLOP/s ({args.precision} "
          f"3x3 conv fwd+bwd)")
    print(f"{'group':46s} {'ms/step':>8s} {'share':>6s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'of peak':>7s}")
    rows = []
    for group in [g for g, _ in GROUPS] + [REST, OUTSIDE]:
        s, f = seconds.get(group, 0.0), flops.get(group, 0.0)
        rate = f / s / 1e9 if s and f else None
        rows.append(dict(group=group, ms_per_step=s * 1e3, share=s / total, gflop_per_step=f / 1e9,
                         gflops=rate, of_peak=rate / peak if rate else None))
        print(f"{group:46s} {s * 1e3:8.2f} {s / total:6.1%} {f / 1e9:10.3f} "
              + (f"{rate:8.1f} {rate / peak:7.0%}" if rate else f"{'—':>8s} {'—':>7s}"))
    all_flops = sum(flops.values())
    print(f"{'whole step':46s} {total * 1e3:8.2f} {1:6.0%} {all_flops / 1e9:10.3f} {all_flops / total / 1e9:8.1f} "
          f"{all_flops / total / 1e9 / peak:7.0%}")
    print("costliest operators (self time, ms/step): "
          + ", ".join(f"{name.removeprefix('aten::')} {s * 1e3:.2f}" for name, s in operators))
    out = Path(args.out or Path(__file__).parent / "results" / f"profile_step-{args.model}-b{args.batch}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(model=args.model, batch=args.batch, precision=args.precision,
                                   threads=torch.get_num_threads(), cpu=cpu_model() or platform.machine(),
                                   torch=torch.__version__, peak_gflops=peak, ms_per_step=total * 1e3,
                                   groups=rows, operators=[dict(name=n, ms_per_step=s * 1e3) for n, s in operators]),
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
