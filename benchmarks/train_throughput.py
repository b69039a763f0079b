"""Training throughput of each model through the real trainer vs a plain eager step (samples/s, batch 64).

    python benchmarks/train_throughput.py [--settings lines|svhn] [--depth 16|64] [--device cpu|cuda]
        [--precision float32|bfloat16] [--compile] [--models acai baseline] [--steps 30] [--warmup 3] [--out F]

"trainer" is `train_step` on a `build_run` Run (one forward pass, per-group
gradients, channels-last; with --precision bfloat16 the forward under autocast,
with --compile the whole step through torch.compile). "plain" is the same
model's step written the obvious way: float32, NCHW, each loss with its own
forward and backward, never compiled. Settings: lines (Arch scales 4, depth 16,
latent 16; VQ-VAE scales 3) or svhn (3x32x32, scales 3, depth 64, latent 2,
d_z 32) on random images in [-1, 1] and labels 0..9, since only shapes matter
for speed. Batches are made and moved to the device before timing.

Each (model, side) runs in a fresh subprocess so that its peak memory is its
own: on CUDA torch.cuda.max_memory_allocated, on CPU the rise of the peak RSS
(ru_maxrss) from just after the imports. "compile s" is the warm-up time beyond
what the same steps take at the steady rate.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch
import torch.nn.functional as F

import acai.train as training
from acai.config import ConfigError, TrainConfig
from acai.models import MODELS
from acai.train import build_run, to_device, train_step

BATCH = 64


def plain_step(run, params: list, x: torch.Tensor, y: torch.Tensor) -> None:
    """The obvious eager version: one forward and backward per loss, NCHW, no sharing."""
    noise = run.model.draw_noise(len(x), run.generator, run.device, x.dtype)
    for name, group in run.groups.items():
        out = run.model.training_losses(x, noise)
        loss = out.losses[name] if name != "probe" else F.cross_entropy(run.probe(out.features.detach().flatten(1)), y)
        for p in params:
            p.grad = None
        loss.backward()
        mine = {id(p) for p in group}
        for p in params:  # only this group's optimiser steps, on this loss's gradient
            if id(p) not in mine:
                p.grad = None
        run.optimizers[name].step()
    with torch.no_grad():  # VQ-VAE's codebook, as train_step stores it
        for buffer, value in out.buffers.items():
            run.model.get_buffer(buffer).copy_(value)


def make_run(model: str, args, precision: str):
    config = TrainConfig(model=model, data=args.settings, depth=args.depth, device=args.device, batch=BATCH,
                         precision=precision)
    if args.settings == "lines":
        return build_run(config)
    # SVHN's files are not needed to time it: build_run gets a stand-in with its shape and 10 classes.
    stand_in = SimpleNamespace(shape=(3, 32, 32), num_classes=10)
    with mock.patch.object(training, "get_source", lambda name, data_dir=None: stand_in):
        return build_run(config)


def make_batches(run, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if run.config.data == "lines":
        return [run.source.train_batch(0, s, BATCH) for s in range(count)]
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(BATCH, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (BATCH,), generator=g))
            for _ in range(count)]  # x (B, 3, 32, 32) in [-1, 1], y (B,)


def timed(step, batches, warmup: int, device: torch.device) -> tuple[float, float]:
    """-> (seconds of the warm-up steps, seconds per step after them)."""
    def clock() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    start = clock()
    for x, y in batches[:warmup]:
        step(x, y)
    middle = clock()
    for x, y in batches[warmup:]:
        step(x, y)
    return middle - start, (clock() - middle) / (len(batches) - warmup)


def measure(model: str, side: str, args) -> dict:
    """One (model, side) in this process -> samples/s, peak memory and compile time."""
    rss_after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    trainer = side == "trainer"
    try:
        run = make_run(model, args, args.precision if trainer else "float32")
    except ConfigError as error:  # e.g. vqvae in bfloat16
        return dict(error=str(error))
    batches = make_batches(run, args.warmup + args.steps)
    if trainer:
        batches = [(to_device(x, run.device), y.to(run.device)) for x, y in batches]
        step_fn = torch.compile(train_step) if args.compile else train_step
        warm_s, step_s = timed(lambda x, y: step_fn(run, x, y), batches, args.warmup, run.device)
    else:
        run.model.to(memory_format=torch.contiguous_format)
        params = list(run.model.parameters()) + (list(run.probe.parameters()) if run.probe is not None else [])
        batches = [(x.to(run.device), y.to(run.device)) for x, y in batches]
        warm_s, step_s = timed(lambda x, y: plain_step(run, params, x, y), batches, args.warmup, run.device)
    if run.device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_after_imports) / 2**10
    compile_s = warm_s - args.warmup * step_s if trainer and args.compile else None
    return dict(samples_per_s=BATCH / step_s, peak_mib=peak_mib, compile_s=compile_s)


def in_subprocess(model: str, side: str) -> dict:
    command = [sys.executable, __file__, *sys.argv[1:], "--worker", model, side]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return dict(error=(done.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def default_out(args) -> Path:
    name = f"train_throughput-{args.settings}-{args.device}" + (f"-d{args.depth}" if args.depth else "")
    name += ("-bf16" if args.precision == "bfloat16" else "") + ("-compile" if args.compile else "")
    return Path("benchmarks/results") / f"{name}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--settings", default="lines", choices=["lines", "svhn"])
    parser.add_argument("--depth", type=int, default=None, help="override the width (default: the setting's)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"], help="trainer side only")
    parser.add_argument("--compile", action="store_true", help="torch.compile the trainer's step")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/train_throughput-...)")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker, args)))
        return
    memory = "peak CUDA MiB (max_memory_allocated)" if args.device == "cuda" else "peak RSS rise MiB (ru_maxrss)"
    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    print(f"samples/s at batch {BATCH}, {args.settings}, depth {args.depth or 'default'}, {args.device}{threads}; "
          f"trainer {args.precision}{' compiled' if args.compile else ''}, plain float32 eager; memory: {memory}")
    print(f"{'model':10s} {'trainer':>9s} {'plain':>9s} {'ratio':>6s} {'mem tr':>8s} {'mem pl':>8s} {'compile s':>9s}")
    rows = []
    for model in args.models:
        trainer = in_subprocess(model, "trainer")
        plain = in_subprocess(model, "plain") if "error" not in trainer else {}
        row = dict(model=model, trainer=trainer, plain=plain)
        if "error" in trainer or "error" in plain:
            print(f"{model:10s} n/a: {trainer.get('error') or plain.get('error')}", flush=True)
        else:
            row["ratio"] = trainer["samples_per_s"] / plain["samples_per_s"]
            compiled = f"{trainer['compile_s']:9.1f}" if args.compile else f"{'-':>9s}"
            print(f"{model:10s} {trainer['samples_per_s']:9.0f} {plain['samples_per_s']:9.0f} {row['ratio']:6.2f} "
                  f"{trainer['peak_mib']:8.0f} {plain['peak_mib']:8.0f} {compiled}", flush=True)
        rows.append(row)
    machine = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    out = Path(args.out) if args.out else default_out(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("settings", "depth", "device", "precision", "compile", "steps", "warmup")}
    out.write_text(json.dumps(dict(machine=machine, torch=torch.__version__, threads=torch.get_num_threads(),
                                   batch=BATCH, memory=memory, **settings, rows=rows), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
