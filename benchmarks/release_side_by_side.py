"""acai beside the authors' release, seed for seed, with the paper's recipe: curves, a table and a figure.

    python benchmarks/release_side_by_side.py collect --release DIR [DIR ...] --acai DIR [DIR ...]
    python benchmarks/release_side_by_side.py draw [--out docs/release-side-by-side.png]

`collect` normalises both sides' curves into benchmarks/results/release/<side>-<model>-s<seed>.jsonl, one
line per evaluation with `samples`, `mean_distance`, `smoothness` (and the side's own fields beside them):
- the release's curves as shared/release-harness/run_lines.sh writes them (`curve_<model>_s<seed>*.jsonl` or
  `<model>_s<seed>.jsonl`; the harness's `mean_smoothness` counts an undefined interpolation as 0, its
  `smoothness_defined` says how many were defined);
- acai's run folders (log.jsonl), trained with the paper's recipe and init, one thread each:
  `acai train --model M --seed S --samples 196608 --eval-every 16384 --eval-window 3 --out DIR`.
`draw` reads every file there, draws Mean Distance and Smoothness against samples, one panel per model
(each seed a line, release dashed), and prints a markdown table: per run, the samples at which Mean
Distance first falls below 20e-3 (leaving the mean image, whose Mean Distance is ~30e-3) and its values at
the last evaluation; per model and side, mean ± std over seeds (np.std, as the tables).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "release"
MODELS = ("baseline", "dropout", "denoising", "vae", "aae", "vqvae", "acai")
SIDES = ("release", "acai")
LEFT_MEAN_IMAGE = 20e-3  # Mean Distance below this: the decoded interpolants are no longer the mean image
RELEASE_CLASS = {"AEBaseline": "baseline", "ACAI": "acai", "AEDropout": "dropout", "AEDenoising": "denoising",
                 "VAE": "vae", "AAE": "aae", "AEVQVAE": "vqvae"}


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_lines(path: Path, entries: list[dict]) -> None:
    from acai.training.checkpoint import save_bytes  # atomic

    save_bytes("".join(json.dumps(entry) + "\n" for entry in entries).encode(), path)


def release_curve(path: Path) -> tuple[str, int, list[dict]]:
    entries = read_lines(path)
    model = RELEASE_CLASS.get(entries[0].get("model"))
    match = re.search(r"(?:curve_)?(\w+?)_s(\d+)", path.stem)
    if model is None and match:
        model = match.group(1)
    seed = entries[0].get("seed", int(match.group(2)) if match else -1)
    out = [{"samples": e["samples"], "mean_distance": e["mean_distance"], "smoothness": e["mean_smoothness"],
            "smoothness_defined": e.get("smoothness_defined"), "latent_accuracy": e.get("latent_accuracy")}
           for e in entries]
    return model, int(seed), out


def acai_curve(folder: Path) -> tuple[str, int, list[dict]]:
    checkpoint_config = json.loads((folder / "metrics.json").read_text())["config"] if (
        folder / "metrics.json").exists() else None
    if checkpoint_config is None:  # a run still training: its config is in the checkpoint
        import torch

        checkpoint_config = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)["config"]
    entries = read_lines(folder / "log.jsonl")
    out = [{"samples": e["samples"], "mean_distance": e["mean_distance"],
            "smoothness": None if e.get("smoothness") is None or math.isnan(e["smoothness"]) else e["smoothness"],
            "probe_accuracy": e.get("probe_accuracy")} for e in entries]
    return checkpoint_config["model"], int(checkpoint_config["seed"]), out


def collect(release: list[Path], acai: list[Path], results: Path) -> None:
    for path in release:
        model, seed, entries = release_curve(path)
        write_lines(results / f"release-{model}-s{seed}.jsonl", entries)
        print(f"release {model} seed {seed}: {len(entries)} evaluations <- {path}")
    for folder in acai:
        model, seed, entries = acai_curve(folder)
        write_lines(results / f"acai-{model}-s{seed}.jsonl", entries)
        print(f"acai {model} seed {seed}: {len(entries)} evaluations <- {folder}")


def curves(results: Path) -> dict[tuple[str, str], dict[int, list[dict]]]:
    found: dict = {}
    for path in sorted(results.glob("*.jsonl")):
        side, model, seed = re.fullmatch(r"(release|acai)-(\w+)-s(\d+)", path.stem).groups()
        found.setdefault((side, model), {})[int(seed)] = read_lines(path)
    return found


def left_at(log: list[dict]) -> int | None:
    return next((e["samples"] for e in log if e["mean_distance"] < LEFT_MEAN_IMAGE), None)


def spread(values: list[float], fmt: str) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.pstdev(values), fmt)}"


def table(found: dict) -> str:
    rows = ["| model | side | seeds | left the mean image at (samples, per seed) | Mean Distance ×10⁻³ at the last "
            "evaluation | Smoothness at the last evaluation | samples |", "|---|---|---|---|---|---|---|"]
    for model in MODELS:
        for side in SIDES:
            runs = found.get((side, model), {})
            if not runs:
                continue
            left = [left_at(log) for log in runs.values()]
            left_text = ", ".join(f"{k // 1024}k" if k else f"not by {log[-1]['samples'] // 1024}k"
                                  for k, log in zip(left, runs.values()))
            md = [1e3 * log[-1]["mean_distance"] for log in runs.values()]
            sm = [log[-1]["smoothness"] for log in runs.values() if log[-1]["smoothness"] is not None]
            last = sorted({log[-1]["samples"] for log in runs.values()})
            rows.append(f"| {model} | {side} | {', '.join(map(str, runs))} | {left_text} | {spread(md, '.2f')} | "
                        f"{spread(sm, '.3f')} | {', '.join(f'{s:,}' for s in last)} |")
    return "\n".join(rows)


def figure(found: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from acai.reproduce.figures import save_figure

    fig, axes = plt.subplots(2, len(MODELS), figsize=(3.0 * len(MODELS), 5.6), sharex=True, constrained_layout=True)
    colours = {"release": "#7f7f7f", "acai": "#d62728"}
    for column, model in enumerate(MODELS):
        for side in SIDES:
            for seed, log in found.get((side, model), {}).items():
                xs = [e["samples"] / 1024 for e in log]
                style = dict(color=colours[side], ls="--" if side == "release" else "-", lw=1.2, alpha=0.85,
                             label=side if seed == min(found[(side, model)]) else None)
                axes[0, column].plot(xs, [1e3 * e["mean_distance"] for e in log], **style)
                points = [(x, e["smoothness"]) for x, e in zip(xs, log) if e["smoothness"] is not None]
                if points:
                    axes[1, column].plot(*zip(*points), **style)
        axes[0, column].axhline(1e3 * LEFT_MEAN_IMAGE, color="k", lw=0.6, ls=":")
        axes[0, column].set_title(model, fontsize=10)
        axes[0, column].set_ylim(0, 40)
        axes[1, column].set_ylim(0, 1)
        axes[1, column].set_xlabel("samples (×1024)")
        for axis in axes[:, column]:
            axis.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Mean Distance ×10⁻³")
    axes[1, 0].set_ylabel("Smoothness")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("The paper's recipe (Adam 1e-4, batch 64), the release's init, one thread per run: the release "
                 "(dashed) and acai (solid), one line per seed; dotted: 20e-3, below which a model has left the "
                 "mean image", fontsize=9)
    save_figure(fig, path, dpi=100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("collect", help="normalise curves into benchmarks/results/release/")
    gather.add_argument("--release", type=Path, nargs="*", default=[], help="the harness's curve files")
    gather.add_argument("--acai", type=Path, nargs="*", default=[], help="acai run folders")
    gather.add_argument("--results", type=Path, default=RESULTS)
    draw = commands.add_parser("draw", help="the figure and the table")
    draw.add_argument("--out", type=Path, default=ROOT / "docs" / "release-side-by-side.png")
    draw.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.command == "collect":
        missing = [str(p) for p in args.release if not p.is_file()] + [
            str(p) for p in args.acai if not (p / "log.jsonl").is_file()]
        if missing:
            print(f"release_side_by_side: not a curve file or a run folder with log.jsonl: {', '.join(missing)}",
                  file=sys.stderr)
            return 2
        collect(args.release, args.acai, args.results)
        return 0
    found = curves(args.results)
    if not found:
        print(f"release_side_by_side: no curves in {args.results}; run collect first", file=sys.stderr)
        return 2
    figure(found, args.out)
    print(table(found))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
