"""Training throughput of each model through the real trainer vs a plain eager step (samples/s, batch 64 unless --batch),
or, with --stacked, of K seeds trained at once with stacked weights vs one run.

    python benchmarks/train_throughput.py [--settings lines|svhn] [--depth 16|64] [--device cpu|cuda]
        [--precision float32|bfloat16] [--compile] [--models acai baseline] [--batch 64] [--steps 8] [--rounds 5]
        [--warmup 3] [--stacked K [K ...]] [--out F]
    python benchmarks/train_throughput.py --models acai --stacked 2 4 8 --steps 20
    python benchmarks/train_throughput.py --models baseline --steps 2 --rounds 1 --warmup 1 --out /tmp/t.json  # smoke

"trainer" is `train_step` on a `build_run` Run (one forward pass, per-group
gradients, channels-last, in-place activations; with --precision bfloat16 the
forward under autocast, with --compile the whole step through torch.compile).
"plain" is the same model's step as a competent PyTorch user writes it:
float32, NCHW, nn.LeakyReLU, one forward pass, the autoencoder's and the
probe's losses summed into one backward; for the two models with an adversary
(AAE, ACAI) the decoder runs once for reconstructions and once for mixtures,
one backward for the autoencoder's loss through the critic, then the critic's
loss on detached inputs with one backward of its own (`competent_step`).
A composed model (BASE+acai, acai/core/models/regularizer.py) is timed on the
trainer side only; the critic's cost is its rate against BASE's trainer rate,
printed at the end when both are asked for (`--models vae vae+acai`).

GFLOP/s: each side's FLOPs per step are counted once with
torch.utils.flop_counter (convolutions and matrix products, forward and
backward) and multiplied by its steps/s; "of peak" divides by this device's
measured peak for the same precision, measured at the start of the same run
(`peaks`: a large 3x3 convolution, forward and backward, channels-last; FLOPs =
3 passes x 2 x N·H·W·Cin·Cout·9; the median of 7 timed passes after 2 untimed).
Settings: lines (Arch scales 4, depth 16, latent 16; VQ-VAE scales 3) or svhn
(3x32x32, scales 3, depth 64, latent 2, d_z 32) on random images in [-1, 1] and labels 0..9, since only shapes matter
for speed. Batches are made and moved to the device before timing.

Speed: both sides of a model run in one fresh subprocess and are timed in
alternating windows of --steps steps (the side that goes first alternates too);
each side's rate is the median over --rounds windows, "per-window" is the range
of the trainer/plain ratio over the rounds. Memory: each side once more in a
subprocess of its own, so that its peak is its own: on CUDA
torch.cuda.max_memory_allocated, on CPU the rise of the peak RSS (VmHWM)
from just after the imports. "compile s" is the warm-up time beyond what the
same steps take at the steady rate.

Stacked (--stacked K [K ...], instead of the trainer/plain table): one run's
`train_step` against `stacked_step` of K members (acai/training/stacked.py), each
member with batch --batch and every member given the same images (the cost is the
same), each step's noise draws timed as part of it. Both in float32: autocast does
not work under vmap, so stacked seeds train in float32 only. The single run and
every K are timed in one subprocess per model in alternating windows as above;
total samples/s counts all members; ratio = time of one stacked step / time of one
single step (below K means stacking pays).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

import acai.training.run as run_module
from acai.training.config import ConfigError, TrainConfig
from acai.core.data import describe_data
from acai.core.models import COMPOSED, MODELS, NAMES, WITH_ACAI
from acai.core.nets import LEAK, Leaky, to_device
from acai.training.machine import keep_freed_memory
from acai.training.run import build_run, train_step
from acai.training.stacked import stack_runs, stacked_noise, stacked_step

from timing import seconds_per_call

BATCH = 64  # the paper's; the quick preset trains lines at 16 (--batch 16)
PEAK_SHAPE = dict(batch=64, channels=128, size=32)  # large enough for every core; the trainer's widest layers


def competent_step(run, params: list, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step as a competent user writes it: one forward, one backward per optimiser family."""
    model, probe, opt = run.model, run.probe, run.optimizers
    noise = model.draw_noise(len(x), run.generator, run.device, x.dtype)
    for p in params:
        p.grad = None
    if "critic" not in run.groups:  # one loss for the autoencoder, one for the probe: sum, one backward
        out = model.training_losses(x, noise)
        (out.losses["ae"] + F.cross_entropy(probe(out.features.detach().flatten(1)), y)).backward()
        opt["ae"].step()
        opt["probe"].step()
        with torch.no_grad():  # VQ-VAE's codebook, as train_step stores it
            for buffer, value in out.buffers.items():
                model.get_buffer(buffer).copy_(value)
        return
    z = model.encode(x)
    if run.config.model == "acai":
        alpha = 0.5 - (noise["alpha"] - 0.5).abs()
        reconstruction = model.decode(z)
        x_mix = model.decode(alpha * z + (1 - alpha) * z.flip(0))
        ae = F.mse_loss(reconstruction, x) + model.hp.lam * model.critique(x_mix).pow(2).mean()
    else:  # aae
        reconstruction = model.decode(z)
        logit = model.critic(z)
        ae = F.mse_loss(reconstruction, x) + F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
    (ae + F.cross_entropy(probe(z.detach().flatten(1)), y)).backward()
    opt["ae"].step()
    opt["probe"].step()
    for p in run.groups["critic"]:
        p.grad = None  # the autoencoder's loss reached the critic's weights too
    if run.config.model == "acai":
        blend = model.hp.gamma * x + (1 - model.hp.gamma) * reconstruction.detach()
        d_mix, d_blend = model.critique(torch.cat([x_mix.detach(), blend])).split(len(x))
        critic = (d_mix - alpha.view(-1)).pow(2).mean() + d_blend.pow(2).mean()
    else:
        logits = model.critic(torch.cat([z.detach(), noise["prior"]]))
        labels = torch.cat([torch.zeros(len(x), 1), torch.ones(len(x), 1)]).to(logits)
        critic = F.binary_cross_entropy_with_logits(logits, labels) * 2  # = the mean of each half, summed
    critic.backward()
    opt["critic"].step()


def make_run(model: str, args, precision: str, seed: int = 0):
    config = TrainConfig(model=model, data=args.settings, depth=args.depth, device=args.device, batch=args.batch,
                         precision=precision, seed=seed)
    if not describe_data(args.settings).reads_files:
        return build_run(config)
    # SVHN's files are not needed to time it: build_run gets a stand-in with its shape and 10 classes.
    stand_in = SimpleNamespace(shape=(3, 32, 32), num_classes=10)
    with mock.patch.object(run_module, "get_source", lambda name, data_dir=None: stand_in):
        return build_run(config)


def make_batches(run, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batch = run.config.batch
    if not describe_data(run.config.data).reads_files:  # drawn: its own batches, as training draws them
        return [run.source.train_batch(0, s, batch) for s in range(count)]
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (batch,), generator=g))
            for _ in range(count)]  # x (B, 3, 32, 32) in [-1, 1], y (B,)


def out_of_place_activations(model: torch.nn.Module) -> None:
    """Swap acai's in-place Leaky modules for the nn.LeakyReLU one would write."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Leaky):
                setattr(parent, name, torch.nn.LeakyReLU(LEAK))


def plain_model(run) -> None:
    """The plain side's network: NCHW weights and out-of-place activations."""
    run.model.to(memory_format=torch.contiguous_format)
    out_of_place_activations(run.model)


def sides_of(model: str) -> tuple[str, ...]:
    """A composed model has no hand-written plain step: the trainer alone."""
    return ("trainer",) if model in COMPOSED else ("trainer", "plain")


def prepare(model: str, side: str, args):
    """-> (step(x, y), batches already on the device, run) for one side."""
    trainer = side == "trainer"
    run = make_run(model, args, args.precision if trainer else "float32")
    batches = make_batches(run, args.warmup + args.steps)
    if trainer:
        step_fn = torch.compile(train_step) if args.compile else train_step
        return (lambda x, y: step_fn(run, x, y)), [(to_device(x, run.device), y.to(run.device)) for x, y in batches], run
    plain_model(run)
    params = list(run.model.parameters()) + (list(run.probe.parameters()) if run.probe is not None else [])
    return (lambda x, y: competent_step(run, params, x, y)), [(x.to(run.device), y.to(run.device)) for x, y in batches], run


def flops_per_step(step, batches) -> float:
    """FLOPs of one step (convolutions and matrix products, forward and backward), counted once."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(*batches[0])
    return float(counter.get_total_flops())


def warm_up(step, batches, device: torch.device) -> float:
    """Seconds the untimed warm-up steps took (compilation happens here)."""
    return len(batches) * seconds_per_call(step, batches, device) if batches else 0.0


def alternating_rates(sides: dict, device: torch.device, args) -> dict[object, list[float]]:
    """{side: (step, batches, samples per step)} -> {side: samples/s of each of --rounds windows over
    batches[--warmup:]}, the sides taking turns window by window.

    This machine's speed drifts by tens of percent over minutes; alternating the
    sides (and which goes first) makes the ratios between them robust to it.
    """
    order = list(sides)
    rates = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side in (order if round_ % 2 == 0 else order[::-1]):
            step, batches, samples = sides[side]
            rates[side].append(samples / seconds_per_call(step, batches[args.warmup:], device))
    return rates


def measure_speed(model: str, args) -> dict:
    """Both sides in this process, timed in alternating windows -> median samples/s of each."""
    try:
        sides = {side: prepare(model, side, args) for side in sides_of(model)}
    except ConfigError as error:  # a precision the model refuses
        return dict(error=str(error))
    device = sides["trainer"][2].device
    # Warm-up first: the first calls of a compiled step compile it, and counting FLOPs is such a call.
    warm_s = {side: warm_up(step, batches[:args.warmup], device) for side, (step, batches, _) in sides.items()}
    flops = {side: flops_per_step(step, batches) for side, (step, batches, _) in sides.items()}
    rates = alternating_rates({side: (step, batches, args.batch) for side, (step, batches, _) in sides.items()},
                              device, args)
    result = {side: dict(samples_per_s=float(np.median(r)), rounds=r, gflop_per_step=flops[side] / 1e9,
                         gflops=flops[side] / 1e9 * float(np.median(r)) / args.batch) for side, r in rates.items()}
    if args.compile:  # warm-up time beyond what the same steps take at the steady rate
        result["trainer"]["compile_s"] = warm_s["trainer"] - args.warmup * args.batch / result["trainer"]["samples_per_s"]
    if "plain" not in result:
        return result
    per_round = [t / p for t, p in zip(rates["trainer"], rates["plain"])]
    result.update(ratio=result["trainer"]["samples_per_s"] / result["plain"]["samples_per_s"],
                  ratio_range=[min(per_round), max(per_round)])
    return result


def measure_stacked(model: str, args) -> dict:
    """One run's train_step and K members' stacked_step for each K in --stacked, in alternating windows
    -> median samples/s of each (all members counted) and the step-time ratio."""
    try:
        single = make_run(model, args, "float32")
        stacks = {k: stack_runs([make_run(model, args, "float32", seed) for seed in range(k)]) for k in args.stacked}
    except ConfigError as error:
        return dict(error=str(error))
    device = single.device
    batches = make_batches(single, args.warmup + args.steps)
    sides = {"single": ((lambda x, y: train_step(single, x, y)),
                        [(to_device(x, device), y.to(device)) for x, y in batches], args.batch)}
    for k, stack in stacks.items():
        def step(x, y, stack=stack):  # the members' noise is drawn in the step, as in training
            stacked_step(stack, x, y, stacked_noise(stack.members, x.dtype))

        sides[k] = step, [(to_device(torch.stack([x] * k), device), torch.stack([y] * k).to(device))
                          for x, y in batches], k * args.batch  # x (K, B, C, H, W), y (K, B)
    for step, side_batches, _ in sides.values():
        warm_up(step, side_batches[:args.warmup], device)
    rates = alternating_rates(sides, device, args)
    rate = {side: float(np.median(r)) for side, r in rates.items()}
    return dict(single=dict(samples_per_s=rate["single"], rounds=rates["single"]),
                stacked=[dict(seeds=k, samples_per_s=rate[k], rounds=rates[k], ratio=k * rate["single"] / rate[k])
                         for k in stacks])


def conv_gflops(dtype: torch.dtype, device: str = "cpu", repeats: int = 7) -> float:
    """GFLOP/s of one 3x3 convolution forward + backward (input and weight gradients) at PEAK_SHAPE."""
    n, c, s = PEAK_SHAPE["batch"], PEAK_SHAPE["channels"], PEAK_SHAPE["size"]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, s, s, generator=generator).to(device, dtype).to(memory_format=torch.channels_last)
    w = (torch.randn(c, c, 3, 3, generator=generator) / 24).to(device, dtype).to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w.requires_grad_(True)
    flops = 3 * 2 * n * s * s * c * c * 9

    def once() -> None:
        y = F.conv2d(x, w, padding=1)
        torch.autograd.grad(y, (x, w), torch.ones_like(y))

    for _ in range(2):  # the first passes choose kernels and allocate
        once()
    # The median of single passes: a busy machine slows a few of them, not the figure.
    return flops / float(np.median([seconds_per_call(once, 1, device) for _ in range(repeats)])) / 1e9


def peaks(device: str = "cpu") -> dict[str, float]:
    """This device's measured peak GFLOP/s for the work a training step is made of, per precision."""
    return {"float32": conv_gflops(torch.float32, device), "bfloat16": conv_gflops(torch.bfloat16, device)}


def peak_rss_kib() -> float:
    """This process's peak resident memory, KiB. Linux: VmHWM, the peak of this program's own memory.
    Not ru_maxrss: a child forked from a larger parent (this script, after the peak's large
    convolution) inherits the parent's peak there, so every rise read 0."""
    try:
        with open("/proc/self/status") as status:
            return float(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
    except (OSError, StopIteration):
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux, bytes on macOS


def measure_memory(model: str, side: str, args) -> dict:
    """Peak memory of one side alone, in a process of its own (warm-up plus two steps)."""
    rss_after_imports = peak_rss_kib()
    try:
        step, batches, run = prepare(model, side, args)
    except ConfigError as error:
        return dict(error=str(error))
    for x, y in batches[:args.warmup + 2]:
        step(x, y)
    if run.device.type == "cuda":
        return dict(peak_mib=torch.cuda.max_memory_allocated() / 2**20)
    return dict(peak_mib=(peak_rss_kib() - rss_after_imports) / 2**10)


def in_subprocess(*worker: str) -> dict:
    command = [sys.executable, __file__, *sys.argv[1:], "--worker", *worker]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return dict(error=(done.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def default_out(args) -> Path:
    name = f"train_throughput-{args.settings}-{args.device}" + (f"-d{args.depth}" if args.depth else "")
    name += ("-bf16" if args.precision == "bfloat16" else "") + ("-compile" if args.compile else "")
    name += f"-b{args.batch}" if args.batch != BATCH else ""
    name += "-stacked" if args.stacked else ""
    return Path("benchmarks/results") / f"{name}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(NAMES),
                        help="default: the seven; BASE+acai is timed trainer-only (the critic's cost vs BASE)")
    parser.add_argument("--settings", default="lines", choices=["lines", "svhn"])
    parser.add_argument("--depth", type=int, default=None, help="override the width (default: the setting's)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"], help="trainer side only")
    parser.add_argument("--compile", action="store_true", help="torch.compile the trainer's step")
    parser.add_argument("--batch", type=int, default=BATCH, help="samples per step (the quick preset's lines: 16)")
    parser.add_argument("--steps", type=int, default=8, help="steps per timed window")
    parser.add_argument("--rounds", type=int, default=5, help="timed windows per side, alternating sides")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--stacked", nargs="+", type=int, metavar="K",
                        help="instead of trainer vs plain: K seeds with stacked weights vs one run, for each K")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/train_throughput-...)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stacked and (args.precision != "float32" or args.compile):
        parser.error("--stacked times eager float32 steps only (autocast does not work under vmap)")
    if args.worker:
        # As acai.training.loop does on a CPU; in this one process the plain side gets it too, so the ratio
        # below is the trainer against a plain step that keeps its memory as well.
        keep_freed_memory()
        kind, *what = args.worker
        measure = dict(speed=measure_speed, stacked=measure_stacked, memory=measure_memory)[kind]
        print(json.dumps(measure(*what, args)))
        return
    if args.stacked:
        stacked_table(args)
        return
    memory = "peak CUDA MiB (max_memory_allocated)" if args.device == "cuda" else "peak RSS rise MiB (VmHWM)"
    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    print(f"samples/s at batch {args.batch}, {args.settings}, depth {args.depth or 'default'}, {args.device}{threads}; "
          f"trainer {args.precision}{' compiled' if args.compile else ''}, plain float32 eager; "
          f"median of {args.rounds} alternating windows of {args.steps} steps; memory: {memory}")
    peak = peaks(args.device)
    print(f"measured peak (3x3 conv fwd+bwd at {PEAK_SHAPE}): float32 {peak['float32']:.0f} GFLOP/s, "
          f"bfloat16 {peak['bfloat16']:.0f} GFLOP/s")
    print(f"{'model':14s} {'trainer':>8s} {'plain':>8s} {'ratio':>6s} {'per-window':>11s} {'GF/step tr/pl':>14s} "
          f"{'GFLOP/s tr':>10s} {'of peak':>7s} {'GFLOP/s pl':>10s} {'of peak':>7s} {'mem tr':>7s} {'mem pl':>7s}"
          + (f" {'compile s':>9s}" if args.compile else ""))
    rows = []
    for model in args.models:
        row = dict(model=model, **in_subprocess("speed", model))
        if "error" not in row:
            row["peak_mib"] = {side: in_subprocess("memory", model, side).get("peak_mib") for side in sides_of(model)}
        rows.append(row)
        if "error" in row:
            print(f"{model:14s} n/a: {row['error']}", flush=True)
            continue
        if "plain" not in row:
            tr = row["trainer"]
            tr["of_peak"] = tr["gflops"] / peak[args.precision]
            print(f"{model:14s} {tr['samples_per_s']:8.0f} {'—':>8s} {'—':>6s} {'—':>11s} "
                  f"{tr['gflop_per_step']:6.1f}/{'—':<7s} {tr['gflops']:10.0f} {tr['of_peak']:7.0%} {'—':>10s} "
                  f"{'—':>7s} {row['peak_mib']['trainer'] or 0:7.0f} {'—':>7s}"
                  + (f" {tr['compile_s']:9.1f}" if args.compile else ""), flush=True)
            continue
        low, high = row["ratio_range"]
        tr, pl = row["trainer"], row["plain"]
        tr["of_peak"], pl["of_peak"] = tr["gflops"] / peak[args.precision], pl["gflops"] / peak["float32"]
        print(f"{model:14s} {tr['samples_per_s']:8.0f} {pl['samples_per_s']:8.0f} "
              f"{row['ratio']:6.2f} {low:5.2f}-{high:<5.2f} {tr['gflop_per_step']:6.1f}/{pl['gflop_per_step']:<7.1f} "
              f"{tr['gflops']:10.0f} {tr['of_peak']:7.0%} {pl['gflops']:10.0f} {pl['of_peak']:7.0%} "
              f"{row['peak_mib']['trainer'] or 0:7.0f} {row['peak_mib']['plain'] or 0:7.0f}"
              + (f" {row['trainer']['compile_s']:9.1f}" if args.compile else ""), flush=True)
    rate = {row["model"]: row["trainer"]["samples_per_s"] for row in rows if "trainer" in row}
    for name, base in WITH_ACAI.items():
        if name in rate and base in rate:
            print(f"critic's cost: {base} {rate[base]:.0f} -> {name} {rate[name]:.0f} samples/s "
                  f"({rate[name] / rate[base]:.2f}x the rate, trainer side, separate subprocesses)")
    write(args, dict(memory=memory, peak_gflops=peak, rows=rows))


def stacked_table(args) -> None:
    """--stacked: each model's single run against K stacked seeds, one subprocess per model."""
    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    print(f"samples/s (all members) at batch {args.batch} per member, {args.settings}, depth "
          f"{args.depth or 'default'}, {args.device}{threads}, float32; median of {args.rounds} alternating windows "
          f"of {args.steps} steps; ratio = stacked step time / single step time (below K: stacking pays)")
    print(f"{'model':14s} {'K':>3s} {'single':>8s} {'stacked':>8s} {'ratio':>6s}")
    rows = []
    for model in args.models:
        row = dict(model=model, **in_subprocess("stacked", model))
        rows.append(row)
        if "error" in row:
            print(f"{model:14s} n/a: {row['error']}", flush=True)
            continue
        for stacked in row["stacked"]:
            print(f"{model:14s} {stacked['seeds']:3d} {row['single']['samples_per_s']:8.0f} "
                  f"{stacked['samples_per_s']:8.0f} {stacked['ratio']:6.2f}", flush=True)
    write(args, dict(seeds=args.stacked, rows=rows))


def write(args, result: dict) -> None:
    machine = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    out = Path(args.out) if args.out else default_out(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("settings", "depth", "device", "precision", "compile", "steps", "rounds",
                                              "warmup")}
    out.write_text(json.dumps(dict(machine=machine, torch=torch.__version__, threads=torch.get_num_threads(),
                                   batch=args.batch, **settings, **result), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
