"""Everything the GPU path promises, checked by one command (a few minutes on one GPU):

    python benchmarks/gpu_check.py [--device cuda] [--out benchmarks/results/gpu_check.json]
    python benchmarks/gpu_check.py --device cpu --small     # CI: the script runs and its JSON is sane

On the lines settings of Table 1 (the paper's network, batch 64), for every model:
1. match: `--match-steps` steps on the device and on the CPU from the same initial weights,
   batches and noise (drawn once, on the CPU, since a CUDA generator draws other numbers).
   Passes when every loss of every step agrees within rtol 1e-3 and at most 0.1 % of the final
   weights differ by more than 1e-5 + 1e-3 |w|: Adam's first updates are about ±lr wherever a
   gradient's sign is clear, so only weights whose gradient is almost 0 may go another way.
   TF32 is off for this part only (PyTorch lets cuDNN use it by default, and training does).
2. throughput: samples/s of `train_step` (batches made beforehand) and its peak device memory.
3. stacked: K = 1, 2, 4, 8 seeds in one vmapped step (acai/training/stacked.py): samples/s of all K.
4. projection: a 2^24-sample ACAI run = 2^24 samples at the measured rate + one evaluation
   every 2^16 samples at the measured time of one (the second; the first builds the metric's index).
5. peak: the device's GFLOP/s on a large 3x3 convolution (`peaks` in benchmarks/train_throughput.py).
Writes everything as JSON; exits 1 if a model's match fails. --small is for a CPU: a tiny
network, batch 16, 2 steps, K = 1, 2 and no conv peak; its speeds mean nothing.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from acai.core.models import MODELS
from acai.core.nets import to_device
from acai.training.config import ConfigError, TrainConfig
from acai.training.machine import resolve_device
from acai.training.run import build_run, evaluate, set_schedule, step_losses, train_step, update_groups
from acai.training.stacked import stack_runs, stacked_noise, stacked_step

from timing import seconds_per_call
from train_throughput import peaks

SAMPLES, EVAL_EVERY = 1 << 24, 1 << 16  # the paper's budget and evaluation interval
SMALL = dict(scales=2, depth=4, latent=4, eval_pairs=8)  # tests/conftest.py's tiny network
SMALL_HPARAMS = {"vqvae": {"codebook_log2": 6}}


def config(model: str, device: str, args, seed: int = 0) -> TrainConfig:
    small = dict(SMALL, hparams=SMALL_HPARAMS.get(model, {})) if args.small else {}
    return TrainConfig(model=model, data="lines", batch=args.batch, device=device, seed=seed, **small)


def step_with_noise(run, x, y, noise: dict) -> dict[str, torch.Tensor]:
    """acai.training.loop.train_step with the noise given instead of drawn (the test checks they agree)."""
    losses, out = step_losses(run.model, run.probe, x, y, noise, run.config.precision)
    set_schedule(run.optimizers, run.base_lr, run.config, run.step)
    update_groups(losses, run.groups, run.optimizers)
    with torch.no_grad():
        for name, value in out.buffers.items():
            run.model.get_buffer(name).copy_(value)
    run.step += 1
    return {name: loss.detach() for name, loss in losses.items()}


def weights(run) -> dict[str, torch.Tensor]:
    state = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    return state | ({f"probe.{k}": v for k, v in run.probe.state_dict().items()} if run.probe is not None else {})


def match(model: str, device: torch.device, args) -> dict:
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        cpu, dev = build_run(config(model, "cpu", args)), build_run(config(model, device.type, args))
        draws = torch.Generator().manual_seed(0)
        worst = 0.0
        for step in range(args.match_steps):
            x, y = cpu.source.train_batch(0, step, args.batch)
            noise = cpu.model.draw_noise(args.batch, draws, torch.device("cpu"), x.dtype)
            on_cpu = step_with_noise(cpu, to_device(x, cpu.device), y, noise)
            on_dev = step_with_noise(dev, to_device(x, device), y.to(device), {k: v.to(device) for k, v in noise.items()})
            for name, value in on_cpu.items():
                worst = max(worst, abs(on_dev[name].item() - value.item()) / max(abs(value.item()), 1e-12))
        a, b = weights(cpu), {k: v.cpu() for k, v in weights(dev).items()}
        floats = [k for k in a if a[k].is_floating_point()]
        differ = sum(int((~torch.isclose(b[k], a[k], rtol=1e-3, atol=1e-5)).sum()) for k in floats)
        total = sum(a[k].numel() for k in floats)
        max_abs = max(float((b[k] - a[k]).abs().max()) for k in floats)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return dict(steps=args.match_steps, loss_max_rel_diff=worst, weights_differing=differ / total,
                weight_max_abs_diff=max_abs, ok=worst <= 1e-3 and differ <= 1e-3 * total)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None  # CPU: the process's RSS


def throughput(model: str, device: torch.device, args) -> tuple[dict, object]:
    reset_peak(device)
    run = build_run(config(model, device.type, args))
    batches = [tuple(to_device(t, device) for t in run.source.train_batch(0, s, args.batch))
               for s in range(args.warmup + args.steps)]
    seconds = seconds_per_call(lambda x, y: train_step(run, x, y), batches, device, args.warmup)
    return dict(samples_per_second=args.batch / seconds, peak_mib=peak_mib(device)), run


def stacked(model: str, k: int, device: torch.device, args) -> dict:
    reset_peak(device)
    stack = stack_runs([build_run(config(model, device.type, args, seed)) for seed in range(k)])
    source = stack.members[0].source
    batches = []
    for s in range(args.warmup + args.steps):  # the same images for every member: the cost is the same
        x, y = source.train_batch(0, s, args.batch)
        batches.append((to_device(torch.stack([x] * k), device), torch.stack([y] * k).to(device)))
    seconds = seconds_per_call(lambda x, y: stacked_step(stack, x, y, stacked_noise(stack.members, x.dtype)), batches,
                               device, args.warmup)
    return dict(seeds=k, samples_per_second=k * args.batch / seconds, peak_mib=peak_mib(device))


def evaluation_seconds(run) -> float:
    # The second evaluation: the first builds the metric's reference index, once per process.
    return seconds_per_call(lambda: evaluate(run), 2, run.device, warmup=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--small", action="store_true", help="tiny network and few steps (a CPU, CI)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    args = parser.parse_args(argv)
    args.batch, args.steps, args.warmup, args.match_steps = (16, 2, 1, 2) if args.small else (64, 20, 3, 3)
    if args.small:
        torch.set_num_threads(1)  # tiny steps: a second thread only waits, and on a busy CI machine for long
    seeds = (1, 2) if args.small else (1, 2, 4, 8)
    try:
        device = resolve_device(args.device)
    except ConfigError as error:
        print(f"gpu_check: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    result = dict(device=device.type, name=torch.cuda.get_device_name() if device.type == "cuda" else
                  platform.processor() or platform.machine(), torch=torch.__version__, small=args.small,
                  batch=args.batch, steps=args.steps, settings="lines, " + ("tiny network" if args.small else
                                                                             "the paper's network (Table 1)"),
                  cudnn_tf32=torch.backends.cudnn.allow_tf32, match={}, throughput={}, stacked={})
    print(f"{'model':10s} {'match':>5s} {'loss rel':>9s} {'w differ':>9s} {'samples/s':>10s} {'MiB':>7s}   "
          f"stacked samples/s, K = {' / '.join(map(str, seeds))}", flush=True)
    acai_run = None
    for model in args.models:
        result["match"][model] = m = match(model, device, args)
        result["throughput"][model], run = throughput(model, device, args)
        acai_run = run if model == "acai" else acai_run
        result["stacked"][model] = [stacked(model, k, device, args) for k in seeds]
        t = result["throughput"][model]
        print(f"{model:10s} {'ok' if m['ok'] else 'FAIL':>5s} {m['loss_max_rel_diff']:9.1e} "
              f"{m['weights_differing']:9.1e} {t['samples_per_second']:10.0f} {t['peak_mib'] or 0:7.0f}   "
              + " / ".join(f"{row['samples_per_second']:.0f}" for row in result["stacked"][model]), flush=True)
    if acai_run is not None:
        rate, evaluation = result["throughput"]["acai"]["samples_per_second"], evaluation_seconds(acai_run)
        evaluations = SAMPLES // EVAL_EVERY
        result["projection"] = dict(
            model="acai", samples=SAMPLES, evaluation_seconds=evaluation,
            hours=(SAMPLES / rate + evaluations * evaluation) / 3600,
            hours_per_seed_stacked={row["seeds"]: (SAMPLES * row["seeds"] / row["samples_per_second"]
                                                   + evaluations * row["seeds"] * evaluation) / 3600 / row["seeds"]
                                    for row in result["stacked"]["acai"]})
        print(f"projected 2^24-sample ACAI run: {result['projection']['hours']:.2f} h ({rate:.0f} samples/s, "
              f"{evaluations} evaluations of {evaluation:.2f} s)")
    if not args.small:
        result["peak_gflops"] = peaks(device.type)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    result["ok"] = all(m["ok"] for m in result["match"].values())
    result["seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'all models match' if result['ok'] else 'MISMATCH'}; {result['seconds']:.0f} s; wrote {out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
