"""This CPU's (or GPU's) measured peak for the work a training step is made of: a large 3x3
convolution, forward and backward (input and weight gradients), channels-last.

    python benchmarks/conv_peak.py [--device cpu|cuda] [--threads N]

Prints GFLOP/s in float32 and bfloat16 (FLOPs = 3 passes x 2 x N·H·W·Cin·Cout·9), the
median of --repeats timed passes. train_throughput.py divides each step's achieved
GFLOP/s by these figures.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

SHAPE = dict(batch=64, channels=128, size=32)  # large enough for every core; the trainer's widest layers


def measure(dtype: torch.dtype, device: str = "cpu", repeats: int = 7) -> float:
    """GFLOP/s of one 3x3 conv forward + backward at SHAPE, in `dtype`."""
    n, c, s = SHAPE["batch"], SHAPE["channels"], SHAPE["size"]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, s, s, generator=generator).to(device, dtype).to(memory_format=torch.channels_last)
    w = (torch.randn(c, c, 3, 3, generator=generator) / 24).to(device, dtype).to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w.requires_grad_(True)
    flops = 3 * 2 * n * s * s * c * c * 9

    def once() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        y = F.conv2d(x, w, padding=1)
        torch.autograd.grad(y, (x, w), torch.ones_like(y))
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    once()
    return flops / np.median([once() for _ in range(repeats)]) / 1e9


def peaks(device: str = "cpu") -> dict[str, float]:
    return {"float32": measure(torch.float32, device), "bfloat16": measure(torch.bfloat16, device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = dict(device=args.device, threads=torch.get_num_threads(), shape=SHAPE, gflops=peaks(args.device))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
