"""`acai reproduce table2 | table3 | figures`: the paper's real-data results (sections 3.3, 4).

Every (data set, d_z, model, seed) run lives in OUT/runs/DATA-dzD/MODEL/seedS and
is shared by the three commands: with the same --out and preset, table3 and the
figures reuse what table2 trained (finished runs are read, unfinished ones resumed).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import ConfigError, TrainConfig
from .figures import grid_image, interpolation_rows, save_png
from .models import MODELS
from .represent import cached_result, cluster_run, pixel_probe, run_probe
from .reproduce import TABLE1_PRESETS, format_cell, mean_std, run_one, run_seeds, write_table
from .train import load_run

# Table 2 of the paper: linear-probe test accuracy (%), mean ± std over runs.
PAPER_TABLE2 = {
    ("mnist", 32): dict(baseline=(94.90, 0.14), dropout=(96.45, 0.42), denoising=(96.00, 0.27),
                        vae=(96.56, 0.31), aae=(70.74, 3.27), vqvae=(97.50, 0.18), acai=(98.25, 0.11)),
    ("mnist", 256): dict(baseline=(93.94, 0.13), dropout=(94.50, 0.29), denoising=(98.51, 0.04),
                         vae=(98.74, 0.14), aae=(90.03, 0.54), vqvae=(97.25, 1.42), acai=(99.00, 0.08)),
    ("svhn", 32): dict(baseline=(26.21, 0.42), dropout=(26.09, 1.48), denoising=(25.15, 0.78),
                       vae=(29.58, 3.22), aae=(23.43, 0.79), vqvae=(24.53, 1.33), acai=(34.47, 1.14)),
    ("svhn", 256): dict(baseline=(22.74, 0.05), dropout=(25.12, 1.05), denoising=(77.89, 0.35),
                        vae=(66.30, 1.06), aae=(22.81, 0.24), vqvae=(44.94, 20.42), acai=(85.14, 0.20)),
    ("cifar10", 256): dict(baseline=(47.92, 0.20), dropout=(40.99, 0.41), denoising=(53.78, 0.36),
                           vae=(47.49, 0.22), aae=(40.65, 1.45), vqvae=(42.80, 0.44), acai=(52.77, 0.45)),
    ("cifar10", 1024): dict(baseline=(51.62, 0.25), dropout=(49.38, 0.77), denoising=(60.65, 0.14),
                            vae=(51.39, 0.46), aae=(42.86, 0.88), vqvae=(16.22, 12.44), acai=(63.99, 0.47)),
}
PAPER_PIXELS = {"mnist": 92.31, "svhn": 23.48, "cifar10": 39.70}  # a dense layer on raw pixels (section 4.1)

# Table 3 of the paper: K-Means clustering accuracy (%), one number per cell.
PAPER_TABLE3 = {
    ("mnist", 32): dict(baseline=77.56, dropout=82.67, denoising=82.59, vae=75.74, aae=79.19, vqvae=82.39,
                        acai=94.38),
    ("mnist", 256): dict(baseline=53.70, dropout=61.35, denoising=70.89, vae=83.44, aae=81.00, vqvae=96.80,
                         acai=96.17),
    ("svhn", 32): dict(baseline=19.38, dropout=21.42, denoising=17.91, vae=16.83, aae=17.35, vqvae=15.19,
                       acai=20.86),
    ("svhn", 256): dict(baseline=15.62, dropout=15.19, denoising=31.49, vae=11.36, aae=13.59, vqvae=18.84,
                        acai=24.98),
}
PAPER_TABLE3_OTHERS = "Paper, other methods: K-Means on pixels 53.2 / 17.9, DEC 84.3 / 11.9, IMSAT 98.4 / 57.3 (MNIST / SVHN)."

LATENTS = {"mnist": (32, 256), "svhn": (32, 256), "celeba": (32, 256), "cifar10": (256, 1024)}
DATASETS = {"table2": ("mnist", "svhn", "cifar10"), "table3": ("mnist", "svhn"),
            "figures": ("lines", "mnist", "svhn", "celeba")}
FIGURE_NUMBERS = {("mnist", 32): 5, ("mnist", 256): 6, ("svhn", 32): 7, ("svhn", 256): 8,
                  ("celeba", 32): 9, ("celeba", 256): 10}

# Budgets per run. `quick` trains the first latent size only and fits table 2 and
# table 3 on MNIST (seven models) within an hour on one core of the 2-core CPU;
# `paper` is the paper's protocol for a GPU. Clustering always uses the paper's
# 1,000 restarts. `probe_samples`: budget of the probe trained after training on
# the frozen codes (and of the pixel baseline). A short run's tandem probe (Adam
# 1e-4, as the paper) is far from converged, so table 2 shows both.
PRESETS = {
    "quick": dict(samples=98_304, eval_every=16_384, eval_window=3, all_latents=False, probe_samples=1 << 22),
    "cpu": dict(samples=524_288, eval_every=32_768, eval_window=5, all_latents=True, probe_samples=1 << 22),
    "paper": dict(samples=1 << 24, eval_every=1 << 16, eval_window=20, all_latents=True, probe_samples=1 << 24),
}


def settings(preset: str) -> tuple[dict, dict]:
    """-> (TrainConfig fields, {all_latents, probe_samples}) of a preset."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    return values, {key: values.pop(key) for key in ("all_latents", "probe_samples")}


def latent_sizes(dataset: str, preset: str, latents) -> tuple[int, ...]:
    if dataset not in LATENTS:
        return ()  # lines: its own architecture
    if latents:
        return tuple(latents)
    return LATENTS[dataset] if settings(preset)[1]["all_latents"] else LATENTS[dataset][:1]


def check_datasets(what: str, datasets) -> list[str]:
    datasets = list(datasets or DATASETS[what])
    unknown = [d for d in datasets if d not in DATASETS[what]]
    if unknown:
        raise ConfigError(f"{what} covers {', '.join(DATASETS[what])}; got {', '.join(unknown)}")
    return datasets


def run_dir(out: Path, dataset: str, dz: int, model: str, seed: int) -> Path:
    return out / "runs" / f"{dataset}-dz{dz}" / model / f"seed{seed}"


def train_runs(out: Path, datasets, preset: str, latents=None, models=None, seeds: int = 1, device: str = "cpu",
               data_dir=None, progress: bool = True, overrides: dict | None = None, stack: bool | None = None) -> dict:
    """Train (or reuse) every run; -> {(dataset, dz): {model: [metrics per seed]}}."""
    base, _ = settings(preset)
    results = {}
    for dataset in datasets:
        for dz in latent_sizes(dataset, preset, latents):
            for model in models or MODELS:
                configs = [TrainConfig(model=model, data=dataset, dz=dz, seed=seed, device=device, data_dir=data_dir,
                                       **{**base, **(overrides or {})}) for seed in range(seeds)]
                outs = [run_dir(out, dataset, dz, model, seed) for seed in range(seeds)]
                results.setdefault((dataset, dz), {})[model] = run_seeds(configs, outs, progress, stack)
    return results


def accuracy_markdown(title: str, columns: dict[str, dict], paper: dict, extra_rows=()) -> str:
    """columns: {heading: {(dataset, dz): {model: [accuracy per seed]}}} -> one markdown table,
    the paper's number beside ours; **bold** marks the best model of each column."""
    headings = list(columns)
    lines = [title, "", "| Data | d_z | Model | " + " | ".join(headings) + " | Paper (%) |",
             "|---|---|---|" + "---|" * (len(headings) + 1)]
    verdicts = []
    for key in columns[headings[0]]:
        means = {h: {m: mean_std(v) for m, v in columns[h][key].items()} for h in headings}
        best = {h: max(means[h], key=lambda m: means[h][m][0]) for h in headings}
        for model in means[headings[0]]:
            cells = []
            for h in headings:
                text = format_cell(*means[h][model], len(columns[h][key][model]))
                cells.append(f"**{text}**" if model == best[h] else text)
            ref = paper.get(key, {}).get(model)
            ref = "—" if ref is None else (f"{ref[0]:.2f} ± {ref[1]:.2f}" if isinstance(ref, tuple) else f"{ref:.2f}")
            lines.append(f"| {key[0]} | {key[1]} | {model} | " + " | ".join(cells) + f" | {ref} |")
        paper_best = max(paper[key], key=lambda m: np.mean(paper[key][m])) if key in paper else "—"
        for h in headings:
            ranking = sorted(means[h], key=lambda m: -means[h][m][0])
            place = f"; acai ranks {ranking.index('acai') + 1} of {len(ranking)}" if "acai" in ranking else ""
            verdicts.append(f"{key[0]} d_z={key[1]}, {h.split(' (')[0].lower()}: best {best[h]}{place} "
                            f"(paper: best {paper_best}).")
    lines += list(extra_rows)
    lines += [""] + verdicts
    return "\n".join(lines) + "\n"


def reproduce_table2(out, preset: str = "quick", datasets=None, latents=None, models=None, seeds: int = 1,
                     device: str = "cpu", data_dir=None, progress: bool = True, overrides=None,
                     probe_samples: int | None = None, stack: bool | None = None) -> str:
    """Linear-probe accuracy of every model: the tandem probe (median of the preset's last
    evaluations) and a probe trained on the final frozen codes, with the pixel baseline."""
    start, out = time.perf_counter(), Path(out)
    datasets = check_datasets("table2", datasets)
    results = train_runs(out, datasets, preset, latents, models, seeds, device, data_dir, progress, overrides,
                         stack)
    base, extra = settings(preset)
    probe_samples = probe_samples or extra["probe_samples"]
    probe = dict(samples=probe_samples, window=3, eval_every=max(1 << 16, probe_samples // 16))
    tandem, final = {}, {}
    for (dataset, dz), by_model in results.items():
        for model, runs in by_model.items():
            tandem.setdefault((dataset, dz), {})[model] = [r["probe_accuracy"] for r in runs]
            final.setdefault((dataset, dz), {})[model] = [
                run_probe(run_dir(out, dataset, dz, model, seed), progress=progress, **probe)["accuracy"]
                for seed in range(len(runs))]
    pixel_rows = []
    for dataset in datasets:  # the pixel baseline, with the final-codes probe's protocol
        path = out / f"pixels-{dataset}.json"
        result = cached_result(path, probe)
        if result is None:
            result = {**probe, **pixel_probe(dataset, data_dir, progress=progress, **probe)}
            ckpt.save_json(result, path)
        pixel_rows.append(f"| {dataset} | pixels | dense layer on pixels | — | {result['accuracy']:.2f} | "
                          f"{PAPER_PIXELS[dataset]:.2f} |")
    samples = (overrides or {}).get("samples", base["samples"])
    title = (f"Table 2 (single-layer classifier accuracy, higher is better), preset `{preset}`: {samples:,} samples "
             f"per run, {seeds} seed{'s' if seeds > 1 else ''}; **bold** = best of ours. Tandem: the paper's probe, "
             f"trained with the autoencoder (median of the last {base['eval_window']} evaluations); final codes: "
             f"a probe trained afterwards on the frozen codes for {probe['samples']:,} samples.")
    markdown = accuracy_markdown(title, {"Tandem probe (%)": tandem, "Probe on final codes (%)": final},
                                 PAPER_TABLE2, pixel_rows)
    return finish(markdown, results, out, "table2", start)


def reproduce_table3(out, preset: str = "quick", datasets=None, latents=None, models=None, seeds: int = 1,
                     device: str = "cpu", data_dir=None, progress: bool = True, overrides=None,
                     restarts: int = 1000, iterations: int = 1000, stack: bool | None = None) -> str:
    """K-Means clustering accuracy of every model's codes (SPEC 5), training what is missing."""
    start, out = time.perf_counter(), Path(out)
    datasets = check_datasets("table3", datasets)
    results = train_runs(out, datasets, preset, latents, models, seeds, device, data_dir, progress, overrides,
                         stack)
    cells = {}
    for (dataset, dz), by_model in results.items():
        for model, runs in by_model.items():
            for seed in range(len(runs)):
                folder = run_dir(out, dataset, dz, model, seed)
                if progress:
                    print(f"clustering {folder} ({restarts} restarts)", flush=True)
                result = cluster_run(folder, restarts, iterations, seed=seed, progress=progress)
                runs[seed]["cluster_accuracy"], runs[seed]["cluster_seconds"] = result["accuracy"], result["seconds"]
                cells.setdefault((dataset, dz), {}).setdefault(model, []).append(result["accuracy"])
    samples = (overrides or {}).get("samples", settings(preset)[0]["samples"])  # for the title
    title = (f"Table 3 (K-Means clustering accuracy, {restarts} restarts, higher is better), preset `{preset}`: "
             f"{samples:,} samples per run, {seeds} seed{'s' if seeds > 1 else ''}; **bold** = best of ours.")
    markdown = accuracy_markdown(title, {"Ours (%)": cells}, PAPER_TABLE3) + PAPER_TABLE3_OTHERS + "\n"
    return finish(markdown, results, out, "table3", start)


def finish(markdown: str, results: dict, out: Path, stem: str, start: float) -> str:
    rows = [{"data": dataset, "dz": dz, "model": model, "seed": seed,
             **{k: v for k, v in run.items() if isinstance(v, (int, float, str))}}
            for (dataset, dz), by_model in results.items() for model, runs in by_model.items()
            for seed, run in enumerate(runs)]
    markdown += f"\nWall time of this command: {time.perf_counter() - start:.0f} s.\n"
    write_table(rows, markdown, out, stem)
    print(markdown)
    print(f"wrote {out / (stem + '.md')}, {stem}.csv and {stem}.json")
    return markdown


def reproduce_figures(out, preset: str = "quick", datasets=None, latents=None, models=None, device: str = "cpu",
                      data_dir=None, progress: bool = True, overrides=None, pairs: int = 3) -> list[Path]:
    """Figures 5-10 (interpolations of every model between the same test images) and
    VAE samples like Figure 4 (lines, with the Table 1 preset of the same name)."""
    out, written = Path(out), []
    for dataset in check_datasets("figures", datasets):
        if dataset == "lines":
            config = TrainConfig(model="vae", data="lines", device=device,
                                 **{**TABLE1_PRESETS[preset], **(overrides or {})})
            run_one(config, out / "runs" / "lines" / "vae" / "seed0", progress)
            written.append(vae_samples(out / "runs" / "lines" / "vae" / "seed0", out / "figures" / "figure4-lines-vae-samples.png"))
            continue
        results = train_runs(out, [dataset], preset, latents, models, 1, device, data_dir, progress, overrides)
        for dz in {dz for _, dz in results}:
            folders = {model: run_dir(out, dataset, dz, model, 0) for model in results[(dataset, dz)]}
            number = FIGURE_NUMBERS.get((dataset, dz))
            name = f"figure{number}-" if number else ""
            written.append(interpolation_figure(folders, pairs, out / "figures" / f"{name}{dataset}-dz{dz}.png"))
            if "vae" in folders:
                written.append(vae_samples(folders["vae"], out / "figures" / f"{dataset}-dz{dz}-vae-samples.png"))
    for path in written:
        print(f"wrote {path}")
    return written


def interpolation_figure(folders: dict[str, Path], pairs: int, path: Path) -> Path:
    """Rows: for each model, `pairs` interpolations between the same test images (16 steps)."""
    rows, labels = [], []
    for model, folder in folders.items():
        run = load_run(folder)
        x, _ = run.source.test_set()
        chosen = torch.from_numpy(np.random.default_rng(0).permutation(len(x))[:2 * pairs])  # same for every model
        torch.manual_seed(0)  # the VAE samples its codes
        rows.append(interpolation_rows(run.model, x[chosen[:pairs]], x[chosen[pairs:]]))
        labels += [model] + [""] * (pairs - 1)
    return save_png(grid_image(np.concatenate(rows), labels), path)


@torch.no_grad()
def vae_samples(folder: Path, path: Path, count: int = 64) -> Path:
    """Decode z ~ N(0, I) of a trained VAE: an 8 x 8 grid like Figure 4."""
    run = load_run(folder)
    run.model.eval()
    z = torch.randn(count, *run.model.arch.latent_shape, generator=torch.Generator().manual_seed(0))
    images = run.model.decode(z.to(run.device)).float().cpu().numpy()  # (count, C, H, W)
    side = int(np.sqrt(count))
    return save_png(grid_image(images[:side * side].reshape(side, side, *images.shape[1:])), path)
