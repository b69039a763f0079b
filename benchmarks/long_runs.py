"""The long lines runs beside the authors' release and the paper: one figure and one table.

    python benchmarks/long_runs.py [--runs benchmarks/results/long] [--out docs/long-run.png]

Reads every run folder under --runs that holds log.jsonl (each evaluation) and clock.jsonl (training
seconds at each evaluation), as `acai reproduce table1 --preset long` writes them and as they are kept
in benchmarks/results/long/; folders named gpu-* hold logs of runs on a GPU (no clock). Reads the
release's curves from shared/reference/release-curves/ (the authors' TensorFlow code, the paper's
recipe, one thread of a 2-core CPU, made on another day).

Draws Mean Distance and Smoothness against training samples (log axes) for ours and the release's,
with the paper's values after 2^24 samples as horizontal lines, and prints a markdown table: each
run's last reported value, its best evaluation, when it first reached the release's quality at
196,608 samples (samples and training time) and the ratio of its best to the paper's value.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from release_side_by_side import RELEASE_CLASS  # the release's class name of each model

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT.parent / "shared" / "reference" / "release-curves"
# Table 1 of the paper (Mean Distance, Smoothness after 2^24 samples); acai/reproduce/tables.py has them all.
COLOURS = {"acai": "#d62728", "baseline": "#1f77b4", "vae": "#2ca02c"}


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def our_runs(folder: Path) -> dict[str, dict]:
    """{name: {model, log (with train_seconds where a clock was kept), config}} of every run under `folder`."""
    runs = {}
    for log in sorted(folder.glob("*/log.jsonl")):
        entries = read_lines(log)
        clock = log.parent / "clock.jsonl"
        if clock.exists():
            by_samples = {tick["samples"]: tick["train_seconds"] for tick in read_lines(clock)}
            for entry in entries:
                entry["train_seconds"] = by_samples.get(entry["samples"])
        metrics = log.parent / "metrics.json"
        config = json.loads(metrics.read_text())["config"] if metrics.exists() else {}
        model = config.get("model") or log.parent.name.split("-")[-2 if log.parent.name.startswith("gpu") else 0]
        runs[log.parent.name] = dict(model=model, log=entries, config=config, gpu=log.parent.name.startswith("gpu"))
    return runs


def release_runs(folder: Path) -> dict[str, dict]:
    runs = {}
    for path in sorted(folder.glob("curve_*.jsonl")):
        entries, seconds = read_lines(path), 0.0
        for entry in entries:
            seconds += entry["train_seconds_since_last"]
            entry["train_seconds"], entry["smoothness"] = seconds, entry["mean_smoothness"]
        model = RELEASE_CLASS.get(entries[0]["model"])
        if model in COLOURS:  # the models of the long runs; the others' release curves are release_side_by_side.py's
            runs[path.stem] = dict(model=model, log=entries, seed=entries[0]["seed"])
    return runs


def release_quality(release: dict, model: str) -> tuple[float, float] | None:
    """The release's mean Mean Distance and Smoothness over its seeds at its last evaluation (196,608 samples)."""
    last = [run["log"][-1] for run in release.values() if run["model"] == model]
    if not last:
        return None
    return float(np.mean([e["mean_distance"] for e in last])), float(np.mean([e["smoothness"] for e in last]))


def first_reaching(log: list[dict], quality: tuple[float, float] | None) -> dict | None:
    if quality is None:
        return None
    return next((e for e in log if e["mean_distance"] <= quality[0] and e.get("smoothness") is not None
                 and e["smoothness"] <= quality[1]), None)


def defined(value) -> bool:
    return value is not None and bool(np.isfinite(value))


def hours(seconds) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 3600:.2f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def table(runs: dict, release: dict, paper: dict) -> str:
    rows = ["| Run | samples | Mean Distance (×10⁻³), last 4 | Smoothness, last 4 | best Mean Distance (at samples) "
            "| best Smoothness | × paper (best MD / best Sm.) | first at the release's 196,608-sample quality "
            "(samples, training time) | training time, whole run |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        log, model = run["log"], run["model"]
        last = log[-4:]
        md = float(np.median([e["mean_distance"] for e in last]))
        sm = float(np.median([e["smoothness"] for e in last]))  # an undefined one makes it undefined, as the tables
        best = min(log, key=lambda e: e["mean_distance"])
        best_sm = min(e["smoothness"] for e in log if defined(e.get("smoothness")))
        ratio = "—"
        if model in paper:
            ratio = f"{1e3 * best['mean_distance'] / paper[model][0]:.1f}× / {best_sm / paper[model][1]:.2f}×"
        hit = first_reaching(log, release_quality(release, model))
        reached = f"{hit['samples']:,}, {hours(hit.get('train_seconds'))}" if hit else (
            "—" if release_quality(release, model) is None else "not reached")
        rows.append(f"| {name} | {log[-1]['samples']:,} | {1e3 * md:.3f} | {sm:.3f} | {1e3 * best['mean_distance']:.3f} "
                    f"({best['samples']:,}) | {best_sm:.3f} | {ratio} | {reached} | "
                    f"{hours(log[-1].get('train_seconds'))} |")
    for model in ("acai", "baseline"):
        quality = release_quality(release, model)
        if quality:
            seconds = np.mean([run["log"][-1]["train_seconds"] for run in release.values() if run["model"] == model])
            rows.append(f"| release {model} (mean of its seeds) | 196,608 | {1e3 * quality[0]:.3f} | {quality[1]:.3f} "
                        f"| — | — | — | 196,608, {hours(seconds)} | {hours(seconds)} |")
    return "\n".join(rows) + "\n"


def figure(runs: dict, release: dict, paper: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from acai.reproduce.figures import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), constrained_layout=True)
    for axis, key, scale in ((axes[0], "mean_distance", 1e3), (axes[1], "smoothness", 1.0)):
        for name, run in runs.items():
            xs = [e["samples"] for e in run["log"] if defined(e.get(key))]
            ys = [scale * e[key] for e in run["log"] if defined(e.get(key))]
            style = ":" if run["gpu"] else "-"
            label = f"ours, {name}" + (" (GPU, paper's recipe)" if run["gpu"] else "")
            axis.plot(xs, ys, style, color=COLOURS.get(run["model"], "k"), lw=1.8, label=label)
        for name, run in release.items():
            xs = [e["samples"] for e in run["log"] if defined(e.get(key))]
            ys = [scale * e[key] for e in run["log"] if defined(e.get(key))]
            axis.plot(xs, ys, "--", color=COLOURS[run["model"]], lw=1.0, alpha=0.7,
                      label=f"release, {run['model']} seed {run['seed']}")
        for model, values in paper.items():
            if model in {run["model"] for run in runs.values()}:
                value = scale * values[0 if key == "mean_distance" else 1] / (1e3 if key == "mean_distance" else 1)
                axis.axhline(value, color=COLOURS.get(model, "k"), lw=0.9, alpha=0.8)
                axis.annotate(f"paper, {model}", (1.0, value), xycoords=("axes fraction", "data"), fontsize=7,
                              ha="right", va="bottom", color=COLOURS.get(model, "k"))
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("training samples (log scale)")
        axis.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("Mean Distance (×10⁻³, lower is better)")
    axes[1].set_ylabel("Smoothness (lower is better)")
    axes[1].set_ylim(top=1.0)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=7)
    fig.suptitle("Lines: long runs (solid: this trainer, preset long; dotted: GPU, paper's recipe), the release "
                 "(dashed) and the paper after 2²⁴ samples (horizontal lines)", fontsize=9)
    save_figure(fig, path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "benchmarks" / "results" / "long")
    parser.add_argument("--release", type=Path, default=RELEASE)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "long-run.png")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from acai.reproduce.tables import PAPER_TABLE1

    paper = {model: (md[0], sm[0]) for model, (md, sm) in PAPER_TABLE1.items()}
    runs, release = our_runs(args.runs), release_runs(args.release)
    if not runs:
        print(f"long_runs: no run folder with log.jsonl under {args.runs}", file=sys.stderr)
        return 2
    figure(runs, release, paper, args.out)
    print(table(runs, release, paper))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
