"""Does bfloat16 autocast keep the quick-preset lines metrics within float32's seed-to-seed spread?

    python benchmarks/precision_check.py [--models acai baseline] [--seeds 2] [--out results/precision]

Trains each model at the `quick` Table 1 preset for every seed in float32 and in
bfloat16 (runs are reused if present), then prints, per model and precision,
Mean Distance / Smoothness / probe accuracy as mean ± std over seeds, the
samples/s, and whether the bfloat16 mean lies within float32's [min, max] over
seeds widened by one float32 std. Writes benchmarks/results/precision_check.json.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from acai.config import TrainConfig
from acai.reproduce import TABLE1_PRESETS, run_one

METRICS = ("mean_distance", "smoothness", "probe_accuracy")


def main() -> None:
    warnings.filterwarnings("ignore", "Mean of empty slice|Degrees of freedom")  # all-undefined smoothness is expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["acai", "baseline"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default="results/precision")
    args = parser.parse_args()
    report = {}
    for model in args.models:
        runs = {}
        for precision in ("float32", "bfloat16"):
            runs[precision] = [run_one(TrainConfig(model=model, seed=seed, precision=precision,
                                                   **TABLE1_PRESETS["quick"]),
                                       Path(args.out) / model / precision / f"seed{seed}", progress=False)
                               for seed in range(args.seeds)]
        report[model] = summary = {}
        for key in METRICS:
            f32 = np.array([r[key] for r in runs["float32"]], dtype=float)
            b16 = np.array([r[key] for r in runs["bfloat16"]], dtype=float)
            slack = np.nanstd(f32) if np.isfinite(f32).any() else 0.0
            inside = bool(np.nanmin(f32) - slack <= np.nanmean(b16) <= np.nanmax(f32) + slack) \
                if np.isfinite(b16).any() and np.isfinite(f32).any() else bool(np.isnan(b16).all() == np.isnan(f32).all())
            summary[key] = dict(float32=f32.tolist(), bfloat16=b16.tolist(), within_spread=inside)
        summary["samples_per_second"] = {p: float(np.mean([r["samples_per_second"] for r in runs[p]])) for p in runs}
        rate = summary["samples_per_second"]
        print(f"{model}: samples/s float32 {rate['float32']:.0f}, bfloat16 {rate['bfloat16']:.0f} "
              f"({rate['bfloat16'] / rate['float32']:.2f}x)")
        for key in METRICS:
            s = summary[key]
            print(f"  {key:15s} float32 {np.nanmean(s['float32']):.5g} ± {np.nanstd(s['float32']):.2g}   "
                  f"bfloat16 {np.nanmean(s['bfloat16']):.5g} ± {np.nanstd(s['bfloat16']):.2g}   "
                  f"within spread: {s['within_spread']}")
    path = Path(__file__).parent / "results" / "precision_check.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
