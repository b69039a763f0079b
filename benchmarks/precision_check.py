"""Does bfloat16 autocast keep a preset's Table 1 metrics within float32's seed-to-seed spread?

    python benchmarks/precision_check.py [--preset quick] [--samples 196608] [--seeds 3] [--models ...]
                                         [--workers 2] [--out results/precision]

Reproduces Table 1 with the preset's recipe (at --samples per run if given,
evaluated every --eval-every samples, reported as the median of the last
--window evaluations) twice, every model in
float32 and every model in bfloat16 (`acai reproduce table1 --precision ...`,
runs reused if present), then compares per model Mean Distance, Smoothness and
the tandem probe's accuracy: mean ± std over seeds per precision, and whether
the bfloat16 mean lies within float32's [min, max] over seeds widened by one
float32 std (a metric undefined in one precision and defined in the other, or
a collapse in one only, fails). Writes benchmarks/results/precision_check-PRESET.json.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from acai.reproduce.executors import Local
from acai.core.models import MODELS
from acai.reproduce.plan import SweepSpec, finished
from acai.reproduce.presets import PRESETS
from acai.reproduce.sweep import reproduce

METRICS = ("mean_distance", "smoothness", "probe_accuracy")


def within_spread(f32: np.ndarray, b16: np.ndarray) -> bool:
    defined32, defined16 = np.isfinite(f32), np.isfinite(b16)
    if not defined32.any() or not defined16.any():
        return bool(defined32.any() == defined16.any())
    if defined32.all() != defined16.all():
        return False  # undefined on some seeds in one precision only
    slack = np.nanstd(f32)
    return bool(np.nanmin(f32) - slack <= np.nanmean(b16) <= np.nanmax(f32) + slack)


def fmt(values: np.ndarray, scale: float, digits: int) -> str:
    defined = values[np.isfinite(values)]
    if not len(defined):
        return f"undefined ×{len(values)}"
    text = f"{scale * defined.mean():.{digits}f} ± {scale * defined.std():.{digits}f}"
    return text + (f" ({len(values) - len(defined)} undefined)" if len(defined) < len(values) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=list(PRESETS))
    parser.add_argument("--samples", type=int, default=None, help="per run (default: the preset's)")
    parser.add_argument("--eval-every", type=int, default=16_384)
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default="results/precision")
    args = parser.parse_args()
    runs = {}
    for precision in ("float32", "bfloat16"):
        overrides = dict(eval_every=args.eval_every, eval_window=args.window)
        if args.samples:
            overrides["samples"] = args.samples
            if PRESETS[args.preset].lines.lr_decay_over is not None:  # the cosine ends at the new budget
                overrides["lr_decay_over"] = args.samples
        name = f"{args.preset}-{args.samples or 'preset'}-{precision}"
        spec = SweepSpec(what="table1", out=Path(args.out) / name, preset=PRESETS[args.preset], seeds=args.seeds,
                         models=tuple(args.models), precision=precision, overrides=overrides)
        reproduce(spec, Local(args.workers))
        runs[precision] = {m: [finished(r, spec.out) for r in spec.runs() if r.model == m] for m in args.models}
    report = {}
    print(f"\n| model | Mean Distance ×10⁻³, float32 / bfloat16 | Smoothness, float32 / bfloat16 | probe %, float32 / "
          f"bfloat16 | within spread | samples/s float32 → bfloat16 |\n|---|---|---|---|---|---|")
    for model in args.models:
        summary = {}
        for key in METRICS:
            f32 = np.array([r.get(key, math.nan) for r in runs["float32"][model]], dtype=float)
            b16 = np.array([r.get(key, math.nan) for r in runs["bfloat16"][model]], dtype=float)
            states = {p: [r.get("state", "ok") for r in runs[p][model]] for p in runs}
            inside = within_spread(f32, b16) and (("collapsed" in states["float32"])
                                                 == ("collapsed" in states["bfloat16"]))
            summary[key] = dict(float32=f32.tolist(), bfloat16=b16.tolist(), within_spread=inside, states=states)
        summary["samples_per_second"] = {p: float(np.mean([r["samples_per_second"] for r in runs[p][model]]))
                                         for p in runs}
        summary["passes"] = all(summary[key]["within_spread"] for key in METRICS)
        report[model] = summary
        cells = [" / ".join(fmt(np.array(summary[key][p]), scale, digits) for p in ("float32", "bfloat16"))
                 for key, scale, digits in (("mean_distance", 1e3, 2), ("smoothness", 1, 3), ("probe_accuracy", 1, 1))]
        failing = [key for key in METRICS if not summary[key]["within_spread"]]
        verdict = "yes" if not failing else "**no**: " + ", ".join(failing)
        rate = summary["samples_per_second"]
        print(f"| {model} | " + " | ".join(cells) + f" | {verdict} | {rate['float32']:.0f} → {rate['bfloat16']:.0f} |")
    print("\npasses: " + ", ".join(m for m in args.models if report[m]["passes"]))
    path = Path(__file__).parent / "results" / f"precision_check-{args.preset}-{args.samples or 'preset'}.json"
    path.write_text(json.dumps(dict(preset=args.preset, samples=args.samples, seeds=args.seeds, models=report),
                               indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
