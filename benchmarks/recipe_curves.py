"""How the quick preset's per-model learning rates were chosen: lines learning curves at several rates.

    python benchmarks/recipe_curves.py --models baseline aae vqvae --lrs 3e-4 1e-3 3e-3 --seeds 0 1 \
        [--samples N] [--eval-every N] [--workers 2] [--out results/recipe-curves]

Each run is the `quick` preset's lines run of that model and seed (budget, batch, warm-up, cosine
decay, the model's other departures: acai/sweep.py SHORT_RECIPE and SHORT_PER_MODEL) with its Adam
rate replaced by one of --lrs. Runs train in --workers processes of one thread each, into
OUT/MODEL/lr{LR}/seed{S}/; a finished run of the same settings is reused, a killed one resumes.
Writes OUT/curves-MODEL.png (Mean Distance and Smoothness against samples, one line per rate, the
band over seeds) and prints one row per (model, rate): the last evaluation's Mean Distance and
Smoothness, mean ± std over seeds, and how many seeds still draw the mean image or collapsed.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import signal
import sys
from pathlib import Path

import numpy as np

from acai import checkpoint as ckpt
from acai.config import TrainConfig
from acai.run import LOG, METRICS
from acai.sweep import PRESETS
from acai.tables import PAPER_TABLE1


def config(model: str, lr: float, seed: int, budget: dict) -> TrainConfig:
    """The quick preset's lines run of `model` and `seed`, at Adam rate `lr`; `budget` overrides
    its samples / eval_every when given (the cosine decay then ends at the new budget)."""
    values = PRESETS["quick"].lines.config(model)
    if "samples" in budget:
        values["lr_decay_over"] = budget["samples"]
    return TrainConfig.from_dict({**values, **budget, "model": model, "data": "lines", "seed": seed, "lr": lr})


def folder(out: Path, model: str, lr: float, seed: int) -> Path:
    return out / model / f"lr{lr:g}" / f"seed{seed}"


def is_finished(cfg: TrainConfig, run_dir: Path) -> bool:
    if not (run_dir / METRICS).exists():
        return False
    done = TrainConfig.from_dict(ckpt.read_json(run_dir / METRICS)["config"])
    if done.trained_fields() != cfg.trained_fields():
        raise SystemExit(f"{run_dir} holds a run of other settings; use another --out")
    return True


def train_one(job: tuple[TrainConfig, Path]) -> Path:
    import torch

    from acai.run import CHECKPOINT
    from acai.train import train

    torch.set_num_threads(1)  # one run per core: the measured faster split on 2 cores (README, Speed)
    cfg, run_dir = job
    train(cfg, run_dir, resume=(run_dir / CHECKPOINT).exists(), progress=False)
    return run_dir


def summary(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "undefined"
    text = f"{np.mean(finite):.3f}" + (f" ± {np.std(finite):.3f}" if len(finite) > 1 else "")
    return text + (f" ({len(values) - len(finite)} undefined)" if len(finite) < len(values) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["baseline", "aae", "vqvae"])
    parser.add_argument("--lrs", nargs="+", type=float, default=[3e-4, 1e-3, 3e-3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=None, help="budget per run (default: the quick preset's)")
    parser.add_argument("--eval-every", type=int, default=None, help="samples between evaluations (default: the preset's)")
    parser.add_argument("--out", type=Path, default=Path("results/recipe-curves"))
    args = parser.parse_args()
    budget = {k: v for k, v in (("samples", args.samples), ("eval_every", args.eval_every)) if v is not None}

    jobs = [(config(m, lr, s, budget), folder(args.out, m, lr, s)) for m in args.models for lr in args.lrs for s in args.seeds]
    todo = [job for job in jobs if not is_finished(*job)]
    print(f"{len(jobs)} runs, {len(todo)} to train, {args.workers} workers", flush=True)
    if todo:
        # A stopped script stops its workers too: SIGTERM becomes SystemExit, so the pool's exit
        # terminates them (they were left training, orphaned, when SIGTERM killed this process outright).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            for run_dir in pool.imap_unordered(train_one, todo):
                print(f"finished {run_dir}", flush=True)

    from acai.figures import learning_curves

    print("| model | lr | Mean Distance (×10⁻³) | Smoothness | mean image / collapsed | seconds per run |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        histories = {}
        for lr in args.lrs:
            label = f"{model} lr={lr:g}"
            logs = [ckpt.read_json_lines(folder(args.out, model, lr, s) / LOG) for s in args.seeds]
            histories[label] = logs
            last = [log[-1] for log in logs]
            stuck = sum(entry.get("state") == "mean image" for entry in last)
            collapsed = sum(entry.get("state") == "collapsed" for entry in last)
            seconds = [ckpt.read_json(folder(args.out, model, lr, s) / METRICS)["seconds"] for s in args.seeds]
            print(f"| {model} | {lr:g} | {summary([1e3 * e['mean_distance'] for e in last])} "
                  f"| {summary([e['smoothness'] for e in last])} | {stuck} / {collapsed} of {len(last)} "
                  f"| {np.mean(seconds):.0f} |")
        paper = {f"{model} lr={args.lrs[0]:g}": (PAPER_TABLE1[model][0][0], PAPER_TABLE1[model][1][0])}
        path = learning_curves(histories, paper, args.out / f"curves-{model}.png",
                               f"{model}, quick preset on lines at Adam rates {', '.join(f'{lr:g}' for lr in args.lrs)}, "
                               f"seeds {', '.join(map(str, args.seeds))}")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
