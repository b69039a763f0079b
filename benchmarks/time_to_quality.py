"""Wall time to a given interpolation quality on lines: this trainer against the authors' release.

    python benchmarks/time_to_quality.py [--mean-distance 5e-3] [--smoothness 0.15] [--seeds 0 1]
        [--threads 1] [--eval-every 4096] [--precision float32|bfloat16] [--samples N]
        [--out benchmarks/results/time_to_quality.json]

Ours: ACAI trained as the quick preset trains it (acai/reproduce/presets.py: the short recipe, float32
unless --precision bfloat16; --samples N trains N samples with the cosine over all of them), pinned to
--threads threads, evaluated every --eval-every samples with the
release's protocol (256 pairs of fresh lines, appendix A). The time to quality is the training
time (no evaluation) up to the first evaluation at which Mean Distance <= --mean-distance and
Smoothness <= --smoothness, read from the run's clock.jsonl.

The release: its ACAI curves in shared/reference/release-curves/ (the authors' TensorFlow code under
TF 2.21, one thread, the paper's recipe, an evaluation every 16,384 samples). Those files were made on
another day, on the machine named in their README (a 2-core AMD EPYC); this script reads them, it does
not run the release. Its time to quality is the sum of `train_seconds_since_last` up to the first
evaluation that meets both thresholds (an undefined Smoothness never does).

Prints, per seed, the samples and seconds each side needed, and the ratio release / ours of the means over
seeds; the ratio is undefined (exit code 1) when any seed of either side never reaches the thresholds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from acai.cli import positive_int
from acai.training.config import ConfigError
from acai.training.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT.parent / "shared" / "reference" / "release-curves"


def project_relative(path: Path) -> str:
    """`path` as seen from the project's root (e.g. ../shared/reference/release-curves): a result file
    names no folder of the machine it was made on."""
    return os.path.relpath(os.path.abspath(path), ROOT)  # abspath: a shared/ that is a link stays ../shared


def first_reaching(entries: list[dict], mean_distance: float, smoothness: float) -> dict | None:
    for entry in entries:
        sm = entry.get("smoothness", entry.get("mean_smoothness"))
        if sm is not None and entry["mean_distance"] <= mean_distance and sm <= smoothness:
            return entry
    return None


def release_time(path: Path, mean_distance: float, smoothness: float) -> dict:
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    seconds = 0.0
    for entry in entries:
        seconds += entry["train_seconds_since_last"]
        entry["train_seconds"] = seconds
    hit = first_reaching(entries, mean_distance, smoothness)
    return dict(file=path.name, seed=entries[0]["seed"], threads=entries[0]["threads"],
                samples=hit and hit["samples"], train_seconds=hit and hit["train_seconds"],
                mean_distance=hit and hit["mean_distance"], smoothness=hit and hit["mean_smoothness"],
                last_samples=entries[-1]["samples"], samples_per_s=entries[-1]["samples"] / seconds)


def our_config(seed: int, args):
    """ACAI as the quick preset trains it, with this script's evaluations, precision and budget."""
    from acai.reproduce.presets import PRESETS
    from acai.training.config import TrainConfig
    from acai.training.machine import native_bfloat16

    values = PRESETS["quick"].lines.config("acai", bfloat16_here=native_bfloat16(torch.device("cpu")))
    values.update(eval_every=args.eval_every, eval_window=1, progress_pairs=None)
    if args.precision:
        values["precision"] = args.precision
    if args.samples:  # a longer run with its cosine stretched over it, as the long preset does
        values.update(samples=args.samples, lr_decay_over=args.samples)
    return TrainConfig(model="acai", data="lines", seed=seed, **values)


def our_time(config, mean_distance: float, smoothness: float) -> dict:
    from acai.training.loop import train

    seed = config.seed
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        train([config], [folder], progress=False)
        elapsed = time.perf_counter() - start
        log = [json.loads(line) for line in (Path(folder) / "log.jsonl").read_text().splitlines()]
        clock = [json.loads(line) for line in (Path(folder) / "clock.jsonl").read_text().splitlines()]
    for entry, tick in zip(log, clock):
        entry["train_seconds"] = tick["train_seconds"]
    hit = first_reaching(log, mean_distance, smoothness)
    return dict(seed=seed, precision=config.precision, samples=hit and hit["samples"],
                train_seconds=hit and hit["train_seconds"], mean_distance=hit and hit["mean_distance"],
                smoothness=hit and hit["smoothness"], last_samples=log[-1]["samples"],
                samples_per_s=log[-1]["samples"] / clock[-1]["train_seconds"], elapsed_seconds=elapsed,
                curve=[{k: e[k] for k in ("samples", "mean_distance", "smoothness", "train_seconds")} for e in log])


def speedup(release: list[dict], ours: list[dict]) -> tuple[float | None, list[str]]:
    """Release / ours, the mean training time over seeds of each side, and the seeds that never reached the
    thresholds. A seed without a time makes the ratio undefined: a mean over the others would flatter its side."""
    missed = [f"{side} seed {r['seed']}" for side, rows in (("release", release), ("ours", ours))
              for r in rows if r["train_seconds"] is None]
    if missed or not release or not ours:
        return None, missed
    theirs, mine = (statistics.mean(r["train_seconds"] for r in rows) for rows in (release, ours))
    return theirs / mine, missed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mean-distance", type=float, default=5e-3)
    parser.add_argument("--smoothness", type=float, default=0.15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=positive_int, default=1, help="the release's curves ran on one thread")
    parser.add_argument("--eval-every", type=positive_int, default=4096)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default=None,
                        help="default: the quick preset's (float32)")
    parser.add_argument("--samples", type=positive_int, default=None,
                        help="train this many samples, the cosine over all of them (default: the quick preset's "
                             "40,960 of a 49,152-sample cosine)")
    parser.add_argument("--release", type=Path, default=RELEASE)
    parser.add_argument("--out", default="benchmarks/results/time_to_quality.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    release = [release_time(path, args.mean_distance, args.smoothness)
               for path in sorted(args.release.glob("curve_acai_*.jsonl"))]
    if not release:
        print(f"time_to_quality: no curve_acai_*.jsonl in {args.release}", file=sys.stderr)
        return 2
    try:  # every setting checked before any training time is spent
        configs = [our_config(seed, args) for seed in args.seeds]
        if configs[0].samples < configs[0].eval_every:
            raise ConfigError(f"{configs[0].samples:,} samples hold no evaluation every {configs[0].eval_every:,}; "
                              f"pass --samples at least --eval-every")
    except ConfigError as error:
        print(f"time_to_quality: {error}", file=sys.stderr)
        return 2
    ours = [our_time(config, args.mean_distance, args.smoothness) for config in configs]
    print(f"time to Mean Distance <= {args.mean_distance:g} and Smoothness <= {args.smoothness:g} on lines, "
          f"ACAI, training time only, {args.threads} thread(s); ours on {cpu_model()}, "
          f"{time.strftime('%Y-%m-%d')}; the release read from {args.release.name}/ (another day and CPU)")
    print(f"{'side':8s} {'seed':>4s} {'samples':>9s} {'seconds':>9s} {'MD e-3':>7s} {'smooth':>7s} {'samples/s':>10s}")
    for side, rows in (("release", release), ("ours", ours)):
        for row in rows:
            reached = row["samples"] is not None
            print(f"{side:8s} {row['seed']:>4d} {row['samples'] or 0:>9,} {row['train_seconds'] or float('nan'):>9.1f} "
                  f"{1e3 * (row['mean_distance'] or float('nan')):>7.2f} {row['smoothness'] or float('nan'):>7.3f} "
                  f"{row['samples_per_s']:>10.0f}" + ("" if reached else
                                                     f"   not reached in {row['last_samples']:,} samples"))
    ratio, missed = speedup(release, ours)
    print(f"ratio, release / ours (means over seeds): {ratio:.1f}x" if ratio else
          f"ratio: undefined, {', '.join(missed)} did not reach the threshold")
    result = dict(date=time.strftime("%Y-%m-%d"), cpu=cpu_model(), torch=torch.__version__, threads=args.threads,
                  thresholds=dict(mean_distance=args.mean_distance, smoothness=args.smoothness),
                  command=" ".join(["python benchmarks/time_to_quality.py", *(argv or sys.argv[1:])]),
                  release_source=project_relative(args.release), release=release, ours=ours, ratio=ratio, missed=missed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if ratio else 1


if __name__ == "__main__":
    sys.exit(main())
