"""The paper's tables as data, and the one writer that renders any of them (markdown, csv, json).

A `Table` names its data sets, what is measured per run (`Measure`s: a metric
of the training log, or a measurement made afterwards on the run's folder) and
the paper's numbers; `render` turns the results of a sweep into the table with
the paper beside ours, mean ± std over seeds, the number of seeds, and each
run's state (a collapsed or diverged run is marked, never shown as a plain
number). Adding a table is adding a `Table` to `TABLES`.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from acai.reproduce import figures
from acai.training import checkpoint as ckpt
from acai.core.data import Capability, describe_data
from acai.core.evaluations import UNRANKED
from acai.core.models import WITH_ACAI

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
# The latent sizes d_z of the paper per data set; lines has one architecture (VQ-VAE: d_z 256, as released).
LATENTS = {"lines": (64,), "mnist": (32, 256), "svhn": (32, 256), "celeba": (32, 256), "cifar10": (256, 1024)}


@dataclass(frozen=True, kw_only=True)
class After:
    """A measurement made on a finished run's folder after training, cached there against its checkpoint
    (acai/measures/represent.py): the probe on final codes (Table 2), K-Means (Table 3)."""

    name: str  # what the progress line shows while it runs
    unit: str  # what its progress counts
    measure: Callable  # (folder, options, tick=None, cached_only=False) -> its accuracy, or None if not cached
    options: Callable  # SweepSpec -> the keyword options it runs with (the preset's probe budget, restarts)
    departure: Callable  # SweepSpec -> a sentence when those options are not the preset's or the paper's, or ""


def _final_probe(folder, options: dict, tick=None, cached_only: bool = False):
    from acai.measures.represent import run_probe

    result = run_probe(folder, tick=tick, cached_only=cached_only, **options)
    return None if result is None else result["accuracy"]


def _clustering(folder, options: dict, tick=None, cached_only: bool = False):
    from acai.measures.represent import cluster_run

    result = cluster_run(folder, tick=tick, cached_only=cached_only, **options)
    return None if result is None else result["accuracy"]


def _probe_departure(spec) -> str:
    if spec.probe_samples and spec.probe_samples != spec.preset.probe_samples:
        return (f"Probe on final codes and pixel baseline: {spec.probe_samples:,} samples instead of the "
                f"preset's {spec.preset.probe_samples:,}.")
    return ""


def _clustering_departure(spec) -> str:
    from acai.measures.cluster import PAPER_ITERATIONS, PAPER_RESTARTS

    if (spec.restarts, spec.iterations) != (PAPER_RESTARTS, PAPER_ITERATIONS):
        return (f"K-Means: {spec.restarts:,} restarts of at most {spec.iterations:,} iterations instead of the "
                f"paper's {PAPER_RESTARTS:,} of at most {PAPER_ITERATIONS:,}.")
    return ""


def _probe_options(spec) -> dict:
    return spec.probe_options()


def _clustering_options(spec) -> dict:
    return dict(restarts=spec.restarts, iterations=spec.iterations)


# Module-level functions only: a unit that carries an After is pickled to its worker or SLURM task.
FINAL_PROBE = After(name="probe", unit="steps", measure=_final_probe, options=_probe_options,
                    departure=_probe_departure)
CLUSTERING = After(name="K-Means", unit="restarts", measure=_clustering, options=_clustering_options,
                   departure=_clustering_departure)


@dataclass(frozen=True)
class Measure:
    """One number per run: `key` of the run's reported metrics (metrics.json), or the result of a
    measurement made afterwards on its folder (`after`)."""

    key: str
    heading: str
    paper: dict  # (data, dz) -> {model: (mean, std) or value}
    lower_is_better: bool = False
    scale: float = 1.0  # shown value = scale * value
    digits: int = 2
    after: After | None = None


@dataclass(frozen=True)
class Table:
    """A table of the paper as data: what `acai reproduce NAME` trains, measures and draws."""

    name: str
    title: str
    datasets: tuple[str, ...]
    measures: tuple[Measure, ...]
    figures: tuple[Callable, ...] = ()  # (spec, seed-0 folders by block, folder) -> files (acai/reproduce/figures.py)
    figures_dir: str = "."  # where in OUT they go
    notes: tuple[str, ...] = ()  # printed under the table
    pixel_baseline: bool = False  # table 2's row for a dense layer on raw pixels
    seeds_drawn: int | None = None  # a table of pictures draws this many seeds (None: every seed, for mean ± std)

    @property
    def after(self) -> tuple[After, ...]:
        """The measurements its runs need after training, once each."""
        return tuple(dict.fromkeys(m.after for m in self.measures if m.after))


def _by_model(pairs: dict, index: int) -> dict:
    return {("lines", 64): {model: values[index] for model, values in pairs.items()}}


TABLES = {
    "table1": Table(
        "table1", "Table 1 (lines; lower is better)", ("lines",),
        (Measure("mean_distance", "Mean Distance (×10⁻³)", _by_model(PAPER_TABLE1, 0), lower_is_better=True,
                 scale=1e3),
         Measure("smoothness", "Smoothness", _by_model(PAPER_TABLE1, 1), lower_is_better=True, digits=3)),
        figures=(figures.interpolations, figures.learning_curves_of)),
    "table2": Table(
        "table2", "Table 2 (single-layer classifier accuracy, %; higher is better)", ("mnist", "svhn", "cifar10"),
        (Measure("probe_accuracy", "Tandem probe (%)", PAPER_TABLE2),
         Measure("final_probe", "Probe on final codes (%)", PAPER_TABLE2, after=FINAL_PROBE)),
        pixel_baseline=True),
    "table3": Table(
        "table3", "Table 3 (K-Means clustering accuracy, %; higher is better)", ("mnist", "svhn"),
        (Measure("cluster_accuracy", "K-Means (%)", PAPER_TABLE3, after=CLUSTERING),),
        notes=("Paper, other methods: K-Means on pixels 53.2 / 17.9, DEC 84.3 / 11.9, IMSAT 98.4 / 57.3 "
               "(MNIST / SVHN).",)),
    # No numbers: the interpolation grids (Figures 3, 5-10) and the prior samples (Figure 4) of seed 0.
    "figures": Table("figures", "Figures 3-10", ("lines", "mnist", "svhn", "celeba"), (),
                     figures=(figures.interpolations, figures.slerp_interpolations, figures.prior_samples_of),
                     figures_dir="figures",
                     seeds_drawn=1),
}


@dataclass
class Cell:
    """One (data, dz, model) cell of one measure: the value of every seed and each run's state."""

    values: list[float]
    states: list[str]
    missing: int = 0  # seeds with no value yet (a report of a sweep still running): never eligible

    @property
    def usable(self) -> list[float]:
        return [v for v, s in zip(self.values, self.states) if math.isfinite(v) and s not in UNRANKED]

    def eligible(self) -> bool:
        """May it be 'best'? Only if every seed gave a finite value from a model that draws lines (not
        the mean image) and none collapsed or diverged."""
        return bool(self.values) and not self.missing and len(self.usable) == len(self.values)

    def mean_std(self) -> tuple[float, float]:
        values = np.asarray([v for v in self.values if math.isfinite(v)], dtype=float)
        return (float(values.mean()), float(values.std())) if len(values) else (math.nan, math.nan)

    def text(self, scale: float, digits: int) -> str:
        mean, std = self.mean_std()
        n, defined = len(self.values), sum(math.isfinite(v) for v in self.values)
        if defined == 0:
            body = "undefined"
        else:
            body = f"{scale * mean:.{digits}f}" + (f" ± {scale * std:.{digits}f}" if defined > 1 else "")
        flags = []
        for state in UNRANKED:
            count = self.states.count(state)
            if count:
                flags.append(f"{count} of {n} {state}" if n > 1 else state)
        if 0 < defined < n:
            flags.append(f"{n - defined} of {n} undefined")
        return body + (f" ({'; '.join(flags)})" if flags else "")


def paper_text(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}" if isinstance(value, tuple) else f"{value:.{digits}f}"


def best_models(table: Table, by_model: dict) -> dict[str, str | None]:
    """{measure key: the model with the best mean among the eligible ones (Cell.eligible), or None} for
    one (data, d_z) block {model: {measure key: Cell}}. The markdown table and the HTML report both
    mark this one."""
    best = {}
    for m in table.measures:
        eligible = {model: c[m.key].mean_std()[0] for model, c in by_model.items() if c[m.key].eligible()}
        best[m.key] = (min if m.lower_is_better else max)(eligible, key=eligible.get) if eligible else None
    return best


def verdict(table: Table, data: str, dz: int, by_model: dict, m: Measure) -> str:
    """One line under the table: our best beside the paper's best, and where acai ranks."""
    eligible = {model: c[m.key].mean_std()[0] for model, c in by_model.items() if c[m.key].eligible()}
    best = best_models(table, by_model)[m.key]
    pick = min if m.lower_is_better else max
    paper = m.paper.get((data, dz), {})
    paper_best = pick(paper, key=lambda k: np.mean(paper[k])) if paper else None
    ranked = sorted(eligible, key=eligible.get, reverse=not m.lower_is_better)
    place = f"; acai ranks {ranked.index('acai') + 1} of {len(ranked)} eligible" if "acai" in ranked else ""
    tau = rank_agreement(eligible, paper)
    agreement = f"; Kendall's τ with the paper over those {tau[1]}: {tau[0]:.2f}" if tau else ""
    return (f"{data} d_z={dz}, {m.heading}: best {best or 'none (no model eligible)'}{place}{agreement} "
            f"(paper: best {paper_best or '—'}).")


def rank_agreement(ours: dict[str, float], paper: dict) -> tuple[float, int] | None:
    """Kendall's τ-b between our means and the paper's over the models both have (our eligible ones), and
    how many: 1 when both order them alike, -1 when reversed; None under 3 models, where it says little.
    Both in the same direction (lower or higher is better), so the sign needs no flip."""
    from scipy.stats import kendalltau

    common = [model for model in ours if model in paper]
    if len(common) < 3:
        return None
    theirs = [paper[model][0] if isinstance(paper[model], tuple) else paper[model] for model in common]
    tau = kendalltau([ours[model] for model in common], theirs).statistic
    return (float(tau), len(common)) if math.isfinite(tau) else None


def pixel_row(table: Table, data: str, accuracy: float | None) -> tuple[str, str, list[tuple[str, str]]]:
    """The row of the paper's baseline on `data`, a dense layer trained on its raw pixels (`accuracy`: ours,
    None while not measured), as the markdown table and the report both show it: the texts of its d_z and
    model columns, then (ours, paper) under each of the table's measures. It fills the columns of the
    probe on final codes, the other probe trained on fixed inputs; the others hold —."""
    measures = [("not measured" if accuracy is None else f"{accuracy:.{m.digits}f}",
                 paper_text(PAPER_PIXELS.get(data), m.digits)) if m.after is FINAL_PROBE else ("—", "—")
                for m in table.measures]
    return "pixels", "dense layer on pixels (classify_fc.py protocol)", measures


def render(table: Table, cells: dict, seeds: int, header: str, pixels: dict | None = None,
           rates: dict | None = None) -> tuple[str, list[dict]]:
    """cells: {(data, dz): {model: {measure key: Cell}}} -> (markdown, rows for csv/json); pixels: {data:
    the accuracy of the pixel baseline or None} for a table with its rows (Table.pixel_baseline).

    **bold** marks the best eligible model of each measure in each (data, d_z) block; the verdict
    lines under the table name it beside the paper's best."""
    headings = []
    for m in table.measures:
        headings += [m.heading, f"Paper: {m.heading}"]
    lines = [header, "", "| Data | d_z | Model | " + " | ".join(headings) + (" | samples/s |" if rates else " |"),
             "|---|---|---|" + "---|" * (len(headings) + (1 if rates else 0))]
    rows, verdicts = [], []
    for (data, dz), by_model in cells.items():
        best = best_models(table, by_model)
        verdicts += [verdict(table, data, dz, by_model, m) for m in table.measures]
        for model, by_measure in by_model.items():
            texts = []
            row = dict(data=data, dz=dz, model=model, seeds=0)
            for m in table.measures:
                cell = by_measure[m.key]
                text = cell.text(m.scale, m.digits)
                texts += [f"**{text}**" if best[m.key] == model else text,
                          paper_text(m.paper.get((data, dz), {}).get(model), m.digits)]
                mean, std = cell.mean_std()
                row.update({m.key: mean, f"{m.key}_std": std, f"{m.key}_values": cell.values,
                            f"{m.key}_states": cell.states, "seeds": len(cell.values)})
                paper = m.paper.get((data, dz), {}).get(model)
                if paper is not None:
                    row[f"paper_{m.key}"] = paper[0] if isinstance(paper, tuple) else paper
            rate = (rates or {}).get((data, dz, model))
            if rate is not None:
                row["samples_per_second"] = rate
            lines.append(f"| {data} | {dz} | {model} | " + " | ".join(texts) +
                         (f" | {'—' if rate is None else f'{rate:.0f}'} |" if rates else " |"))  # a failed run has no rate
            rows.append(row)
    for data, accuracy in (pixels or {}).items():
        dz, model, measures = pixel_row(table, data, accuracy)
        lines.append(f"| {data} | {dz} | {model} | " + " | ".join(text for pair in measures for text in pair) +
                     (" | — |" if rates else " |"))
    lines += regularizer_effect(table, cells, rates)
    draws = "that draws lines (not the mean image), " if any(describe_data(data).offers(Capability.LINES)
                                                              for data, _ in cells) else ""
    lines += [""] + verdicts + [f"{seeds} seed{'s' if seeds > 1 else ''} per model; cells are mean ± std over "
                                f"seeds; **bold** = best of ours among models whose every seed is defined and "
                                f"{draws}neither collapsed nor diverged."]
    lines += list(table.notes)
    return "\n".join(lines) + "\n", rows


def regularizer_effect(table: Table, cells: dict, rates: dict | None) -> list[str]:
    """A second table, for every BASE trained beside BASE+acai (or the baseline beside `acai`): each measure without and with the ACAI
    regulariser (the better mean in bold when both are eligible), and the critic's cost in samples/s."""
    pairs = [(data, dz, base, name) for (data, dz), by_model in cells.items()
             for name, base in WITH_ACAI.items() if name in by_model and base in by_model]
    if not pairs or not table.measures:
        return []
    headings = [f"{m.heading}: {side}" for m in table.measures for side in ("without", "with ACAI")]
    lines = ["", "With and without the ACAI regulariser (BASE vs BASE+acai, the same runs as above):", "",
             "| Data | d_z | Base model | " + " | ".join(headings) + " | samples/s: without → with ACAI |",
             "|---|---|---|" + "---|" * (len(headings) + 1)]
    for data, dz, base, name in pairs:
        texts = []
        for m in table.measures:
            cell = {model: cells[(data, dz)][model][m.key] for model in (base, name)}
            better = None
            if all(c.eligible() for c in cell.values()):
                means = {model: c.mean_std()[0] for model, c in cell.items()}
                if means[base] != means[name]:
                    better = (min if m.lower_is_better else max)(means, key=means.get)
            texts += [f"**{c.text(m.scale, m.digits)}**" if model == better else c.text(m.scale, m.digits)
                      for model, c in cell.items()]
        without, with_ = ((rates or {}).get((data, dz, model)) for model in (base, name))
        speed = f"{without:.0f} → {with_:.0f} ({with_ / without:.2f}×)" if without and with_ else "—"
        label = base if name == f"{base}+acai" else f"{base} (with ACAI: {name})"
        lines.append(f"| {data} | {dz} | {label} | " + " | ".join(texts) + f" | {speed} |")
    return lines


def write(markdown: str, rows: list[dict], out, stem: str) -> None:
    """The one table writer: OUT/STEM.md, .csv and .json, each written atomically."""
    ckpt.save_bytes(markdown.encode(), out / f"{stem}.md")
    ckpt.save_json(rows, out / f"{stem}.json")
    buffer = io.StringIO()
    fields = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    ckpt.save_bytes(buffer.getvalue().encode(), out / f"{stem}.csv")
