"""Training throughput of K seeds stacked in one process vs one ordinary run (lines settings).

    python benchmarks/stacked_throughput.py [--models acai] [--seeds 2 4 8] [--device cpu|cuda]
                                            [--steps 20] [--batch 64] [--out FILE.json]

"single" times `train_step` of one run; "stacked" times `stacked_step` of K
members (acai/stacked.py), each with batch --batch. Batches are rendered before
timing, as in train_throughput.py; each step's noise draws are timed (they are
part of the step). total samples/s counts all members; ratio = time of one
stacked step / time of one single step (below K means stacking pays).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from acai.config import TrainConfig
from acai.models import MODELS, NAMES
from acai.stacked import stack_runs, stacked_noise, stacked_step
from acai.nets import to_device
from acai.run import build_run, train_step


def seconds_per_step(step, batches, warmup: int, device: torch.device) -> float:
    for batch in batches[:warmup]:
        step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches[warmup:]:
        step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (len(batches) - warmup)


def measure(model: str, seeds: list[int], steps: int, batch: int, device: str, warmup: int = 3) -> list[dict]:
    config = TrainConfig(model=model, data="lines", batch=batch, device=device)
    run = build_run(config)
    batches = [tuple(to_device(t, run.device) for t in run.source.train_batch(0, s, batch))
               for s in range(steps + warmup)]
    single = seconds_per_step(lambda x, y: train_step(run, x, y), batches, warmup, run.device)
    rows = []
    for k in seeds:
        stack = stack_runs([build_run(TrainConfig(**{**config.to_dict(), "seed": s})) for s in range(k)])
        stacked_batches = [(to_device(torch.stack([x] * k), run.device), to_device(torch.stack([y] * k), run.device))
                           for x, y in batches]  # (K, B, ...); the same images for all: the cost is the same
        stacked = seconds_per_step(lambda x, y: stacked_step(stack, x, y, stacked_noise(stack.members, x.dtype)),
                                   stacked_batches, warmup, run.device)
        rows.append(dict(model=model, seeds=k, batch=batch, device=device, single=batch / single,
                         stacked_total=k * batch / stacked, ratio=stacked / single))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["acai"], choices=list(NAMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[2, 4, 8], help="stack sizes K to time")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64, help="batch per member")
    parser.add_argument("--out", default="benchmarks/results/stacked_throughput.json")
    args = parser.parse_args()
    print(f"{'model':10s} {'K':>3s} {'single':>10s} {'stacked':>10s} {'ratio':>6s}   samples/s, batch {args.batch} "
          f"per member, lines, {args.device}" + (f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""))
    rows = []
    for model in args.models:
        for row in measure(model, args.seeds, args.steps, args.batch, args.device):
            rows.append(row)
            print(f"{model:10s} {row['seeds']:3d} {row['single']:10.0f} {row['stacked_total']:10.0f} "
                  f"{row['ratio']:6.2f}", flush=True)
    machine = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(machine=machine, torch=torch.__version__, threads=torch.get_num_threads(),
                                   steps=args.steps, rows=rows), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
