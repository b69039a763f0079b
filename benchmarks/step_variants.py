"""One trainer speed-up before and after, in one process (samples/s of `train_step`, batch 64).

    python benchmarks/step_variants.py --change inplace [--model baseline] [--settings lines|svhn] [--depth 64]
    python benchmarks/step_variants.py --change vq-search [--settings lines]

"before" is the trainer with the change undone on its model only; "after" is
the trainer as it is. Both runs live in one process and are timed in
alternating windows (which one goes first alternates too), so the machine's
drift cancels; each side's figure is its median window.

Changes:
  inplace    Leaky ReLU in place (acai.nets.Leaky) vs out of place (nn.LeakyReLU)
  vq-search  VQ-VAE nearest entry from one fused addmm under no_grad vs the
             three-term distance ‖v‖² - 2v·c + ‖c‖² with autograd recording
"""
from __future__ import annotations

import argparse
import json
import types
from pathlib import Path

import numpy as np
import torch

from acai.nets import to_device
from acai.run import train_step
from train_throughput import BATCH, make_batches, make_run, out_of_place_activations, window


def distance_argmin(self, vectors):
    """The VQ-VAE's nearest-entry search as it was: the full three-term distance, recorded by autograd."""
    distance = vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ self.codebook.T + self.codebook.pow(2).sum(1)
    return distance.argmin(dim=1)


def old_vq_search(run) -> None:
    run.model.nearest_entries = types.MethodType(distance_argmin, run.model)


CHANGES = {"inplace": lambda run: out_of_place_activations(run.model), "vq-search": old_vq_search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--change", required=True, choices=list(CHANGES))
    parser.add_argument("--model", default=None, help="default: baseline (inplace), vqvae (vq-search)")
    parser.add_argument("--settings", default="lines", choices=["lines", "svhn"])
    parser.add_argument("--depth", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=8, help="steps per timed window")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.model = args.model or ("vqvae" if args.change == "vq-search" else "baseline")
    runs = {side: make_run(args.model, args, args.precision) for side in ("before", "after")}
    CHANGES[args.change](runs["before"])
    batches = [(to_device(x, runs["after"].device), y.to(runs["after"].device))
               for x, y in make_batches(runs["after"], args.warmup + args.steps)]
    steps = {side: (lambda x, y, run=run: train_step(run, x, y)) for side, run in runs.items()}
    for side, step in steps.items():
        window(step, batches[:args.warmup], runs[side].device)
    rates = {side: [] for side in runs}
    for round_ in range(args.rounds):
        for side in (("before", "after") if round_ % 2 == 0 else ("after", "before")):
            seconds = window(steps[side], batches[args.warmup:], runs[side].device)
            rates[side].append(BATCH * args.steps / seconds)
    before, after = (float(np.median(rates[side])) for side in ("before", "after"))
    print(f"{args.change} on {args.model}, {args.settings} depth {args.depth or 'default'}, {args.precision}: "
          f"before {before:.0f}, after {after:.0f} samples/s ({after / before:.2f}x; median of {args.rounds} windows "
          f"of {args.steps} steps)")
    out = Path(args.out or f"benchmarks/results/step_variants-{args.change}-{args.model}-{args.settings}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(vars(args), before=before, after=after, ratio=after / before, rounds_samples_per_s=rates,
                                   torch=torch.__version__, threads=torch.get_num_threads()), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
