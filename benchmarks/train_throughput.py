"""Training throughput of each model through the real trainer (samples/s, batch 64).

    python benchmarks/train_throughput.py [--models acai baseline] [--steps 30] [--out FILE.json]

Each model's `train_step` (one forward pass, per-group gradients, channels-last)
is timed next to a plain eager step written the obvious way in the same
process: NCHW tensors, and each loss with its own forward pass and backward.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from acai.config import TrainConfig
from acai.models import MODELS
from acai.train import build_run, to_device, train_step


def plain_step(run, x, y):
    """The obvious eager version: one forward and backward per loss, NCHW, no sharing."""
    for name, params in run.groups.items():
        out = run.model.training_losses(x)
        loss = out.losses[name] if name != "probe" else torch.nn.functional.cross_entropy(
            run.probe(out.features.detach().flatten(1)), y)
        for p in run.parameters_all:
            p.grad = None
        loss.backward()
        for p in run.parameters_all:
            if not any(p is q for q in params):
                p.grad = None
        run.optimizers[name].step()


def time_steps(step, batches, warmup: int = 3) -> float:
    for x, y in batches[:warmup]:
        step(x, y)
    start = time.perf_counter()
    for x, y in batches[warmup:]:
        step(x, y)
    return (len(batches) - warmup) * len(batches[0][0]) / (time.perf_counter() - start)


def measure(model: str, steps: int, data: str = "lines") -> dict:
    config = TrainConfig(model=model, data=data)
    fast = build_run(config)
    batches = [fast.source.train_batch(0, s, config.batch) for s in range(steps + 3)]
    fast_rate = time_steps(lambda x, y: train_step(fast, to_device(x, fast.device), y), batches)
    plain = build_run(config)
    plain.model.to(memory_format=torch.contiguous_format)
    plain.parameters_all = list(plain.model.parameters()) + (list(plain.probe.parameters()) if plain.probe else [])
    plain_rate = time_steps(lambda x, y: plain_step(plain, x, y), batches)
    return dict(model=model, data=data, trainer=fast_rate, plain=plain_rate, ratio=fast_rate / plain_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    rows = []
    print(f"{'model':10s} {'trainer':>10s} {'plain':>10s} {'ratio':>6s}   samples/s, batch 64, lines, "
          f"{torch.get_num_threads()} threads")
    for model in args.models:
        row = measure(model, args.steps)
        rows.append(row)
        print(f"{model:10s} {row['trainer']:10.0f} {row['plain']:10.0f} {row['ratio']:6.2f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(machine=platform.processor() or platform.machine(), torch=torch.__version__,
                                   threads=torch.get_num_threads(), rows=rows), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
