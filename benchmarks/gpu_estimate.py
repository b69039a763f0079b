"""An estimate, made without a GPU, of the GPU time of the paper preset's sweeps (README, SLURM section).

    python benchmarks/gpu_estimate.py [--out benchmarks/results/gpu_estimate.json]

No GPU was lent to this project, so this ESTIMATES; benchmarks/gpu_check.py MEASURES (run it on
one of the cluster's GPUs first, a few minutes). Each unit of `acai reproduce TABLE --preset paper
--device cuda` trains the 5 seeds of one model stacked in one vmapped step (acai/stacked.py), for
2^24 samples per seed at batch 64. One such step takes the larger of two times:

* compute: this CPU's measured float32 samples/s of the model (benchmarks/results/train_throughput-*.json,
  the trainer at batch 64; lines at depth 16 for lines, SVHN at depth 16 for MNIST, SVHN at depth 64
  for SVHN, CIFAR-10 and CelebA), corrected by the ratio of FLOPs between the measured network and the
  unit's (torch.utils.flop_counter), times 5 seeds, divided by H100 / CPU float32 peak: 67 TFLOP/s
  (NVIDIA's H100 SXM figure without tensor cores) / 190 GFLOP/s (this CPU's two cores of AVX-512 FMA,
  README "Speed"). That assumes the GPU reaches the same fraction of its peak as the CPU did.
* launch: the aten operations of one stacked step, counted here (Adam with foreach, as on CUDA), times
  8 µs, eager PyTorch's cost per operation when the tensors are small: a bound the compute
  figure alone would miss, since the lines networks are tiny for an H100.

Not counted: evaluations (one every 2^16 samples), the probe on final codes and the pixel
baselines (Table 2), K-Means (Table 3), queueing and start-up.
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import acai.run as run_module
from acai.config import TrainConfig
from acai.models import MODELS
from acai.stacked import next_batch, stack_runs, stacked_step
from acai.sweep import PRESETS, SweepSpec
from acai.nets import to_device
from acai.run import build_run, train_step

GPU_PEAK, CPU_PEAK, PER_OP = 67e12, 190e9, 8e-6  # FLOP/s, FLOP/s, seconds (see the docstring)
BATCH, SEEDS, SAMPLES = 64, 5, 1 << 24
RESULTS = Path(__file__).resolve().parent / "results"
MEASURED = {"lines": ("lines", 16), "mnist": ("svhn", 16), "svhn": ("svhn", 64), "cifar10": ("svhn", 64),
            "celeba": ("svhn", 64)}  # data set -> (settings, depth) of the CPU measurement used
SHAPES = {"lines": (1, 32, 32), "mnist": (1, 32, 32), "svhn": (3, 32, 32), "cifar10": (3, 32, 32),
          "celeba": (3, 32, 32)}


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


COUNT_BATCH = 2  # counting needs no real batch: the operations are the same, and FLOPs grow with the batch


def make_run(model: str, data: str, dz: int | None, depth: int | None, seed: int = 0):
    """A Run at batch COUNT_BATCH on a stand-in data set of the right shape: only shapes matter here."""
    shape = SHAPES[data]
    config = TrainConfig(model=model, data=data, dz=dz, depth=depth, batch=COUNT_BATCH, seed=seed)
    if data == "lines":
        return build_run(config)
    stand_in = SimpleNamespace(shape=shape, num_classes=10, train_batch=lambda seed, step, batch: (
        torch.rand(batch, *shape) * 2 - 1, torch.randint(0, 10, (batch,))))
    with mock.patch.object(run_module, "get_source", lambda name, data_dir=None: stand_in):
        return build_run(config)


@functools.lru_cache(maxsize=None)
def flops_per_sample(model: str, data: str, dz: int | None, depth: int | None = None) -> float:
    """FLOPs of one training step (convolutions and matrix products) per sample."""
    run = make_run(model, data, dz, depth)
    x, y = run.source.train_batch(0, 0, COUNT_BATCH)
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(run, to_device(x, run.device), y)
    return counter.get_total_flops() / COUNT_BATCH


@functools.lru_cache(maxsize=None)
def stacked_ops(model: str, data: str, dz: int | None) -> int:
    """aten operations of one step of SEEDS stacked seeds (each one a kernel launch or more on CUDA)."""
    stack = stack_runs([make_run(model, data, dz, None, seed) for seed in range(SEEDS)])
    for group, optimizer in stack.optimizers.items():  # CUDA's default; CPU tensors default to a loop
        stack.optimizers[group] = torch.optim.Adam(stack.groups[group], lr=optimizer.param_groups[0]["lr"],
                                                   foreach=True)
    stacked_step(stack, *next_batch(stack.members))  # Adam's state exists from here on
    counter = CountOps()
    with counter:
        stacked_step(stack, *next_batch(stack.members))
    return counter.count


def cpu_rate(settings: str, depth: int, model: str) -> float:
    rows = json.loads((RESULTS / f"train_throughput-{settings}-cpu-d{depth}.json").read_text())["rows"]
    return next(row["trainer"]["samples_per_s"] for row in rows if row["model"] == model)


def unit_estimate(data: str, dz: int, model: str) -> dict:
    settings, depth = MEASURED[data]
    latent = None if data == "lines" else dz  # lines: the network's own d_z 64
    flops = flops_per_sample(model, data, latent)
    reference = flops_per_sample(model, settings, None, depth)  # the network the CPU rate was measured on
    compute = SEEDS * BATCH / cpu_rate(settings, depth, model) * flops / reference * CPU_PEAK / GPU_PEAK
    ops = stacked_ops(model, data, latent)
    launch = ops * PER_OP
    step = max(compute, launch)
    return dict(data=data, dz=dz, model=model, gflop_per_seed_step=flops * BATCH / 1e9, ops_per_stacked_step=ops,
                compute_ms=compute * 1e3, launch_ms=launch * 1e3, bound="compute" if compute >= launch else "launch",
                hours=SAMPLES / BATCH * step / 3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "gpu_estimate.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    tables = {}
    for what in ("table1", "table2", "table3"):
        spec = SweepSpec(what, "/tmp/unused", PRESETS["paper"], SEEDS, device="cuda", stack=True)
        units = sorted({(run.data, run.dz, run.model) for run in spec.runs()},
                       key=lambda u: (spec.datasets.index(u[0]), u[1], list(MODELS).index(u[2])))
        rows = [unit_estimate(*unit) for unit in units]
        tables[what] = dict(units=len(rows), runs=len(spec.runs()), gpu_hours=sum(r["hours"] for r in rows),
                            longest_unit_hours=max(r["hours"] for r in rows), rows=rows)
        print(f"{what}: {len(rows)} units ({len(spec.runs())} runs), {tables[what]['gpu_hours']:.1f} GPU-hours, "
              f"longest unit {tables[what]['longest_unit_hours']:.2f} h", flush=True)
        for r in rows:
            print(f"  {r['data']:8s} dz {r['dz']:5d} {r['model']:10s} {r['gflop_per_seed_step']:7.1f} GFLOP "
                  f"{r['ops_per_stacked_step']:5d} ops  compute {r['compute_ms']:6.2f} ms  launch {r['launch_ms']:5.2f} ms"
                  f"  -> {r['hours']:5.2f} h ({r['bound']})")
    out = Path(args.out)
    out.write_text(json.dumps(dict(estimate=True, gpu_peak_flops=GPU_PEAK, cpu_peak_flops=CPU_PEAK,
                                   seconds_per_op=PER_OP, seeds_per_unit=SEEDS, batch=BATCH,
                                   samples_per_seed=SAMPLES, tables=tables), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
