"""What K-Means reads, before and after issue 12: the probe's input or the release's `ops.encode`.

Until d3f7bf1, `acai cluster` clustered `model.features` (the probe's input: the VAE's
pre-sampling encoder output h, the VQ-VAE's quantised bottleneck output). The release's
cluster.py clusters `ops.encode`: the VAE's sampled z = mu + sigma * eps, the VQ-VAE's
continuous encoder output. This script clusters both, on the same trained runs, with the
same restarts, iterations and seed, and prints one row per run:

    python benchmarks/cluster_codes.py RUN_DIR [RUN_DIR ...] [--restarts 1000] [--json out.json]

The "now" side is `acai cluster` itself (cached in the run's cluster.json, e.g. by
`reproduce table3`, when made with the same settings). Both sides use the first 60,000
training images in file order (for MNIST that is the whole training set, so item 2 of
the issue changes nothing there) and the whole test set.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from acai.cluster import evaluate_clustering
from acai.nets import in_chunks, to_device
from acai.represent import CLUSTER_TRAIN_IMAGES, cluster_run
from acai.run import load_run


@torch.no_grad()
def features(run, x: torch.Tensor) -> torch.Tensor:
    """What the old `acai cluster` clustered: the probe's input, flattened -> (N, d) float32."""
    run.model.eval()
    return in_chunks(lambda b: run.model.features(to_device(b, run.device)).flatten(1).float(), x, 1000).cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders of a labelled data set (e.g. mnist)")
    parser.add_argument("--restarts", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    print("| run | model | before: model.features, % | now: model.encode, % | what model.encode returns |")
    print("|---|---|---|---|---|")
    for run_dir in args.runs:
        run = load_run(run_dir)
        train_x, _ = run.source.train_set(limit=CLUSTER_TRAIN_IMAGES)
        test_x, test_y = run.source.test_set()
        options = dict(k=run.source.num_classes, restarts=args.restarts, iterations=args.iterations, seed=args.seed,
                       progress=False)
        start = time.perf_counter()
        before = evaluate_clustering(features(run, train_x).numpy(), features(run, test_x).numpy(),
                                     test_y.numpy(), **options)
        # `acai cluster`'s own result (its cluster.json when `reproduce table3` made it with these settings)
        now = cluster_run(run_dir, restarts=args.restarts, iterations=args.iterations, seed=args.seed)
        rows.append(dict(run=str(run_dir), model=run.config.model, before=before["accuracy"], now=now["accuracy"],
                         codes=run.model.CODES, seconds=time.perf_counter() - start, restarts=args.restarts))
        print(f"| {run_dir} | {run.config.model} | {before['accuracy']:.2f} | {now['accuracy']:.2f} | {run.model.CODES} |",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
