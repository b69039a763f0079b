"""`acai reproduce table1`: the paper's Table 1 and Figure 3, with its numbers beside ours.

Every (model, seed) run lives in OUT/runs/MODEL/seedS; finished runs are
skipped and unfinished ones resumed, so the command can be stopped and rerun.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import ConfigError, TrainConfig
from .figures import grid_image, interpolation_rows, save_png
from .lines import LinesSource
from .models import MODELS
from .stacked import train_stacked
from .train import CHECKPOINT, LOG, METRICS, load_run, resolve_device, summarise, train

# Table 1 of the paper: Mean Distance (x10^-3) and Smoothness, mean ± std over 5 runs.
PAPER_TABLE1 = {
    "baseline": ((6.88, 0.21), (0.44, 0.04)),
    "dropout": ((2.85, 0.54), (0.74, 0.02)),
    "denoising": ((4.21, 0.32), (0.66, 0.02)),
    "vae": ((1.21, 0.17), (0.49, 0.13)),
    "aae": ((3.26, 0.19), (0.14, 0.02)),
    "vqvae": ((5.41, 0.49), (0.77, 0.02)),
    "acai": ((0.24, 0.01), (0.10, 0.01)),
}

# Budgets per run. `quick` fits all seven models in ~20 minutes on a 2-core CPU;
# `cpu` is long enough on that CPU for ACAI to rank first on both metrics;
# `paper` is the paper's protocol (2^24 samples, evaluation every 64 Ki).
# A short run spends its first ~100k samples drawing the mean image (smoothness
# undefined), so short presets report the median over the last quarter of
# training rather than over 20 evaluations that would span the whole run.
TABLE1_PRESETS = {
    "quick": dict(samples=65_536, eval_every=16_384, eval_window=1),
    "cpu": dict(samples=196_608, eval_every=16_384, eval_window=3),
    "paper": dict(samples=1 << 24, eval_every=1 << 16, eval_window=20),
}

FIGURE3_ANGLES = (0.3 * np.pi, 1.05 * np.pi)  # 135° apart: the short way round is the right answer


def finished(config: TrainConfig, out: Path) -> dict | None:
    """The metrics of a finished run in `out` (re-summarised with this preset's window), else None."""
    if not (out / METRICS).exists():
        return None
    metrics = json.loads((out / METRICS).read_text())
    if TrainConfig.from_dict(metrics["config"]).trained_fields() != config.trained_fields():
        raise ConfigError(f"{out} holds a finished run with other settings; use another --out or delete it")
    history = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    return {**metrics, **summarise(history, config.eval_window)}


def run_one(config: TrainConfig, out: Path, progress: bool) -> dict:
    """Train, resume or just read one run."""
    return finished(config, out) or train(config, out, resume=(out / CHECKPOINT).exists(), progress=progress)


def run_seeds(configs: list[TrainConfig], outs: list[Path], progress: bool, stack: bool | None = None) -> list[dict]:
    """Several seeds of one setting: the unfinished ones train together with stacked weights
    (acai/stacked.py) when `stack` (default: on a GPU, where it pays), else one after another."""
    done = [finished(config, out) for config, out in zip(configs, outs)]
    todo = [i for i, metrics in enumerate(done) if metrics is None]
    stack = resolve_device(configs[0].device).type == "cuda" if stack is None else stack
    if stack and len(todo) > 1:
        trained = train_stacked([configs[i] for i in todo], [outs[i] for i in todo], resume=True, progress=progress)
        for i, metrics in zip(todo, trained):
            done[i] = metrics
    return [metrics or run_one(config, out, progress) for metrics, config, out in zip(done, configs, outs)]


def mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(np.mean(values)), float(np.std(values))


def format_cell(mean: float, std: float, n: int, digits: int = 2) -> str:
    if np.isnan(mean):
        return "undefined"  # every interpolation started and ended on the same line (a collapsed model)
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def table1_rows(results: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for model, runs in results.items():
        md = mean_std([r["mean_distance"] * 1e3 for r in runs])
        sm = mean_std([r["smoothness"] for r in runs])
        (pmd, pmd_s), (psm, psm_s) = PAPER_TABLE1[model]
        rows.append(dict(model=model, runs=len(runs), samples=runs[0]["samples"],
                         mean_distance_e3=md[0], mean_distance_e3_std=md[1], smoothness=sm[0], smoothness_std=sm[1],
                         paper_mean_distance_e3=pmd, paper_mean_distance_e3_std=pmd_s,
                         paper_smoothness=psm, paper_smoothness_std=psm_s,
                         samples_per_second=float(np.mean([r["samples_per_second"] for r in runs]))))
    return rows


def table1_markdown(rows: list[dict], preset: str) -> str:
    n = rows[0]["runs"]
    best_md = np.nanmin([r["mean_distance_e3"] for r in rows])
    best_sm = np.nanmin([r["smoothness"] for r in rows]) if any(np.isfinite(r["smoothness"]) for r in rows) else None
    lines = [
        f"Table 1 (lines), preset `{preset}`: {rows[0]['samples']:,} samples per run, "
        f"{n} seed{'s' if n > 1 else ''}{' (mean ± std)' if n > 1 else ''}. Lower is better; **bold** = best of ours.",
        "",
        "| Model | Mean Distance (×10⁻³) | Smoothness | Paper: Mean Distance (×10⁻³) | Paper: Smoothness | samples/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        md = format_cell(r["mean_distance_e3"], r["mean_distance_e3_std"], n)
        sm = format_cell(r["smoothness"], r["smoothness_std"], n, 3)
        md = f"**{md}**" if r["mean_distance_e3"] == best_md else md
        sm = f"**{sm}**" if r["smoothness"] == best_sm else sm
        lines.append(f"| {r['model']} | {md} | {sm} | {r['paper_mean_distance_e3']:.2f} ± "
                     f"{r['paper_mean_distance_e3_std']:.2f} | {r['paper_smoothness']:.2f} ± "
                     f"{r['paper_smoothness_std']:.2f} | {r['samples_per_second']:.0f} |")
    ranks = [f"{name}: {min(rows, key=lambda r: np.nan_to_num(r[key], nan=np.inf))['model']}"
             for name, key in (("best Mean Distance", "mean_distance_e3"), ("best Smoothness", "smoothness"))]
    lines += ["", "; ".join(ranks) + " (paper: acai on both)."]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], markdown: str, out: Path, stem: str) -> None:
    ckpt.save_bytes(markdown.encode(), out / f"{stem}.md")
    ckpt.save_json(rows, out / f"{stem}.json")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    ckpt.save_bytes(buffer.getvalue().encode(), out / f"{stem}.csv")


def figure3(run_dirs: dict[str, Path], path: Path) -> Path:
    """One row per model: its interpolation between the same two lines (Figure 3)."""
    start, end = (LinesSource.batch_from_angles(np.array([a]))[0] for a in FIGURE3_ANGLES)
    ideal = LinesSource.batch_from_angles(np.linspace(*FIGURE3_ANGLES, 16))[0].numpy()  # (16, 1, 32, 32)
    rows, labels = [ideal[None]], ["ideal"]
    for model, run_dir in run_dirs.items():
        torch.manual_seed(0)  # the VAE samples its codes
        rows.append(interpolation_rows(load_run(run_dir).model, start, end))
        labels.append(model)
    return save_png(grid_image(np.concatenate(rows), labels), path)


def reproduce_table1(out, preset: str = "quick", seeds: int = 1, models=None, device: str = "cpu",
                     progress: bool = True, overrides: dict | None = None, stack: bool | None = None) -> list[dict]:
    """Train (or reuse) every model for `seeds` seeds; write table1.{md,csv,json} and figure3.png.

    `overrides` replaces TrainConfig fields of the preset (small models in tests, say)."""
    if preset not in TABLE1_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(TABLE1_PRESETS)}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    models = list(models or MODELS)
    out = Path(out)
    results: dict[str, list[dict]] = {}
    for model in models:
        settings = {**TABLE1_PRESETS[preset], **(overrides or {})}
        configs = [TrainConfig(model=model, data="lines", seed=seed, device=device, **settings) for seed in range(seeds)]
        results[model] = run_seeds(configs, [out / "runs" / model / f"seed{seed}" for seed in range(seeds)], progress,
                                   stack)
    rows = table1_rows(results)
    markdown = table1_markdown(rows, preset)
    write_table(rows, markdown, out, "table1")
    figure3({m: out / "runs" / m / "seed0" for m in models}, out / "figure3.png")
    print(markdown)
    print(f"wrote {out / 'table1.md'}, table1.csv, table1.json and {out / 'figure3.png'}")
    return rows
