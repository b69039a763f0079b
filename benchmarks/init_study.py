"""The initialisation study: how soon each model leaves the mean image, and what it reaches, per init.

    python benchmarks/init_study.py release=results/table1-quick-init-release he=results/table1-quick \
        [--at 40960 196608] [--json benchmarks/results/init-study.json]

Each argument is LABEL=FOLDER: a sweep folder of `acai reproduce table1` (runs/lines-dz64/<model>/seed<N>/)
or a folder of `acai train` run folders (anything holding log.jsonl; a log kept without metrics.json or
checkpoint.pt names its run by its folder, <model>-s<seed> or <model>-seed<seed>). For every model,
label and seed it reads log.jsonl and prints: the samples at which Mean Distance first fell below 20e-3
(the mean image scores ~30e-3 there), and Mean Distance and Smoothness at each --at budget (the
evaluation at that sample count; runs that did not reach it are left out), mean ± std over seeds (np.std, as the tables), with the
number of seeds still at the mean image (the evaluation's own state).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

MODELS = ("baseline", "dropout", "denoising", "vae", "aae", "vqvae", "acai")
LEFT_MEAN_IMAGE = 20e-3


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def runs_under(folder: Path) -> dict[str, dict[int, list[dict]]]:
    """{model: {seed: log}} of every run folder under `folder` whose config names the model and seed."""
    import torch

    found: dict = {}
    for log in sorted(folder.rglob("log.jsonl")):
        metrics, checkpoint = log.parent / "metrics.json", log.parent / "checkpoint.pt"
        named = re.fullmatch(r"(\w+?)-s(?:eed)?(\d+)", log.parent.name)  # <model>-s<seed> or <model>-seed<seed>
        if metrics.exists():
            config = json.loads(metrics.read_text())["config"]
        elif checkpoint.exists():  # still training: the checkpoint holds the config
            config = torch.load(checkpoint, map_location="cpu", weights_only=False)["config"]
        elif named:  # a log kept without its run folder
            config = {"model": named.group(1), "seed": int(named.group(2))}
        else:
            raise ValueError(f"init_study: {log.parent} has no metrics.json or checkpoint.pt, and its name is not "
                             f"<model>-s<seed>; rename it so")
        found.setdefault(config["model"], {})[config["seed"]] = read_lines(log)
    return found


def spread(values: list[float], fmt: str) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "—"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.pstdev(values), fmt)}"


def summary(logs: dict[int, list[dict]], budgets: list[int]) -> dict:
    row = {"seeds": sorted(logs), "left_at": {}, "at": {}}
    for seed, log in logs.items():
        row["left_at"][seed] = next((e["samples"] for e in log if e["mean_distance"] < LEFT_MEAN_IMAGE), None)
    for budget in budgets:
        points = [next((e for e in log if e["samples"] == budget), None) for log in logs.values()]
        points = [p for p in points if p is not None]
        if points:
            row["at"][budget] = {
                "seeds": len(points),
                "mean_distance": [p["mean_distance"] for p in points],
                "smoothness": [p["smoothness"] for p in points],
                "mean_image": sum(p.get("state") == "mean image" for p in points),
            }
    return row


def table(study: dict, budgets: list[int]) -> str:
    head = "| model | init | seeds | left the mean image at (per seed) |"
    rule = "|---|---|---|---|"
    for budget in budgets:
        head += f" Mean Distance ×10⁻³ at {budget:,} | Smoothness at {budget:,} |"
        rule += "---|---|"
    rows = [head, rule]
    for model in MODELS:
        for label, per_model in study.items():
            if model not in per_model:
                continue
            row = per_model[model]
            left = ", ".join(f"{k // 1024}k" if k else "not yet" for k in row["left_at"].values())
            line = f"| {model} | {label} | {len(row['seeds'])} | {left} |"
            for budget in budgets:
                at = row["at"].get(budget)
                if at is None:
                    line += " — | — |"
                    continue
                flag = f" ({at['mean_image']} of {at['seeds']} mean image)" if at["mean_image"] else ""
                line += (f" {spread([1e3 * v for v in at['mean_distance']], '.2f')}{flag} |"
                         f" {spread(at['smoothness'], '.3f')} |")
            rows.append(line)
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="LABEL=FOLDER")
    parser.add_argument("--at", type=int, nargs="*", default=[40_960], help="sample counts to report")
    parser.add_argument("--json", type=Path, default=None, help="also write the study here")
    args = parser.parse_args(argv)
    study = {}
    for item in args.folders:
        label, _, folder = item.partition("=")
        if not folder or not Path(folder).is_dir():
            print(f"init_study: {item!r} is not LABEL=FOLDER with an existing folder", file=sys.stderr)
            return 2
        try:
            found = runs_under(Path(folder))
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        study[label] = {model: summary(logs, args.at) for model, logs in found.items()}
    print(table(study, args.at))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(study, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
