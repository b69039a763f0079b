"""Does bfloat16 autocast change a preset's metrics by more than float32's own seed-to-seed spread?

    python benchmarks/precision_check.py [--preset quick] [--data lines|mnist] [--latents 32] [--samples N] [--seeds 3]
                                         [--models ...] [--workers 2] [--out results/precision]

Reproduces the preset's table (Table 1 on lines, Table 2 on MNIST; at --samples per run if given) twice
with the same seeds, every model in float32 and every model in bfloat16 (`acai reproduce ... --precision`,
runs reused if present, so the float32 side of `--preset quick` can be the runs of `make quick`), then asks
per model and metric (Mean Distance, Smoothness and the tandem probe on lines; the tandem probe on MNIST):

- the pairs: seed s in float32 and seed s in bfloat16 start from the same weights and see the same batches
  and noise, so their difference is the precision's effect plus the chaos of training;
- the margin: float32's standard deviation over its seeds (ddof 1): what changing the seed does;
- the test: a paired t-test of the differences. bfloat16 **fails** a metric when the mean difference is
  both significant (p < 0.05, two-sided) and larger than the margin: a shift that the seeds cannot
  explain and that matters at their scale. With 3 pairs the test finds only large shifts; the mean
  difference in margins is printed beside it so that a reader sees the size too;
- the states: a seed whose bfloat16 run is at the mean image, collapsed or diverged while its float32
  run is not fails the model outright (the harm that matters most); the reverse is reported.

Writes benchmarks/results/precision_check-DATA-PRESET.json.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel

from acai.core.data import Capability, describe_data
from acai.core.evaluations import UNRANKED
from acai.reproduce.executors import Local
from acai.core.models import MODELS
from acai.reproduce.plan import SweepSpec, finished
from acai.reproduce.presets import PRESETS
from acai.reproduce.sweep import reproduce

LINES_METRICS = ("mean_distance", "smoothness", "probe_accuracy")  # Table 1's two and the tandem probe
IMAGE_METRICS = ("probe_accuracy",)  # Table 2's tandem probe


def what_to_check(data: str) -> tuple[str, tuple[str, ...]]:
    """-> (the table that trains `data`, the metrics to test), from what the data set offers."""
    return ("table1", LINES_METRICS) if describe_data(data).offers(Capability.LINES) else ("table2", IMAGE_METRICS)
SIGNIFICANCE = 0.05


def paired_check(f32: list[float], b16: list[float], f32_states: list[str], b16_states: list[str]) -> dict:
    """One metric of one model over paired seeds -> the test's numbers and whether bfloat16 fails it."""
    ranked = [i for i, (a, b) in enumerate(zip(f32_states, b16_states)) if a not in UNRANKED and b not in UNRANKED
              and math.isfinite(f32[i]) and math.isfinite(b16[i])]
    worse = [i for i, (a, b) in enumerate(zip(f32_states, b16_states)) if a not in UNRANKED and b in UNRANKED]
    better = [i for i, (a, b) in enumerate(zip(f32_states, b16_states)) if a in UNRANKED and b not in UNRANKED]
    result = dict(pairs=len(ranked), unranked_in_bfloat16_only=worse, unranked_in_float32_only=better,
                  mean_difference=None, margin=None, p=None, fails=bool(worse))
    if len(ranked) < 2:
        return result  # nothing to test: too few seeds ranked in both precisions
    a, b = np.asarray(f32)[ranked], np.asarray(b16)[ranked]
    difference, margin = float(np.mean(b - a)), float(np.std(a, ddof=1))
    p = float(ttest_rel(b, a).pvalue) if np.any(b != a) else 1.0
    result.update(mean_difference=difference, margin=margin, p=p if math.isfinite(p) else 1.0)
    result["fails"] = bool(worse) or (result["p"] < SIGNIFICANCE and abs(difference) > margin)
    return result


def fmt(values: np.ndarray, scale: float, digits: int) -> str:
    defined = values[np.isfinite(values)]
    if not len(defined):
        return f"undefined ×{len(values)}"
    text = f"{scale * defined.mean():.{digits}f} ± {scale * defined.std():.{digits}f}"
    return text + (f" ({len(values) - len(defined)} undefined)" if len(defined) < len(values) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=list(PRESETS))
    parser.add_argument("--data", default="lines", help="lines, or an image data set of Table 2 (mnist, svhn, cifar10)")
    parser.add_argument("--latents", nargs="+", type=int, default=[], help="d_z of image runs (default: the preset's)")
    parser.add_argument("--samples", type=int, default=None, help="per run (default: the preset's)")
    parser.add_argument("--eval-every", type=int, default=None, help="default: the preset's")
    parser.add_argument("--window", type=int, default=None, help="evaluations in the reported median (default: the preset's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default="results/precision")
    args = parser.parse_args()
    table, metrics = what_to_check(args.data)
    overrides = {key: value for key, value in (("eval_every", args.eval_every), ("eval_window", args.window),
                                                ("samples", args.samples)) if value is not None}
    if args.samples and PRESETS[args.preset].lines.lr_decay_over is not None:  # the cosine ends at the new budget
        overrides["lr_decay_over"] = args.samples
    runs = {}
    for precision in ("float32", "bfloat16"):
        name = f"{args.data}-{args.preset}-{args.samples or 'preset'}-{precision}"
        spec = SweepSpec(what=table, out=Path(args.out) / name, preset=PRESETS[args.preset],
                         seeds=args.seeds, models=tuple(args.models), precision=precision, overrides=overrides,
                         datasets=(args.data,), latents=tuple(args.latents))
        reproduce(spec, Local(args.workers))
        runs[precision] = {m: sorted((r.seed, finished(r, spec.out)) for r in spec.runs() if r.model == m)
                           for m in args.models}
    report = {}
    print(f"\n{args.data}, preset {args.preset}, {args.seeds} paired seeds; per metric: float32 / bfloat16 (mean ± "
          f"std), then the mean paired difference in float32 seed stds and the paired t-test's p\n")
    print("| model | " + " | ".join(metrics) + " | verdict | samples/s float32 → bfloat16 |")
    print("|---|" + "---|" * (len(metrics) + 2))
    for model in args.models:
        done = {p: [metrics_ for _, metrics_ in runs[p][model]] for p in runs}
        states = {p: [r.get("state", "ok") for r in done[p]] for p in done}
        summary = {}
        for key in metrics:
            values = {p: [float(r.get(key, math.nan)) for r in done[p]] for p in done}
            summary[key] = dict(float32=values["float32"], bfloat16=values["bfloat16"], states=states,
                                **paired_check(values["float32"], values["bfloat16"], states["float32"],
                                               states["bfloat16"]))
        summary["samples_per_second"] = {p: float(np.mean([r["samples_per_second"] for r in done[p]])) for p in done}
        summary["passes"] = not any(summary[key]["fails"] for key in metrics)
        summary["tested"] = all(summary[key]["pairs"] >= 2 for key in metrics)
        report[model] = summary
        cells = []
        for key in metrics:
            scale, digits = {"mean_distance": (1e3, 2), "smoothness": (1, 3)}.get(key, (1, 1))
            check = summary[key]
            size = ("" if check["mean_difference"] is None else
                    f"; Δ = {check['mean_difference'] / check['margin'] if check['margin'] else math.inf:+.2f} std, "
                    f"p = {check['p']:.2f}")
            cells.append(" / ".join(fmt(np.array(check[p]), scale, digits) for p in ("float32", "bfloat16")) + size)
        failing = [key for key in metrics if summary[key]["fails"]]
        verdict = ("**fails**: " + ", ".join(failing) if failing else
                   "passes" if summary["tested"] else "not tested (under 2 seeds ranked in both)")
        rate = summary["samples_per_second"]
        print(f"| {model} | " + " | ".join(cells) + f" | {verdict} | {rate['float32']:.0f} → {rate['bfloat16']:.0f} |")
    print("\npass: " + (", ".join(m for m in args.models if report[m]["passes"] and report[m]["tested"]) or "none"))
    path = Path(__file__).parent / "results" / f"precision_check-{args.data}-{args.preset}-{args.samples or 'preset'}.json"
    path.write_text(json.dumps(dict(data=args.data, preset=args.preset, samples=args.samples, seeds=args.seeds,
                                    significance=SIGNIFICANCE, models=report), indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
