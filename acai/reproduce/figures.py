"""Pictures: interpolation grids like the paper's Figures 3 and 5-10, and learning curves.

Every picture goes through `save_png` (an atomic write)."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from acai.training.checkpoint import save_bytes
from acai.training.config import ConfigError
from acai.core.data import Capability, describe_data
from acai.core.lines import INTERPOLATIONS
from acai.core.models import COMPOSED
from acai.core.nets import in_chunks, to_device


@torch.no_grad()
def interpolation_rows(model, start: torch.Tensor, end: torch.Tensor, steps: int = 16, seed: int = 0,
                       mode: str = "linear") -> np.ndarray:
    """Decode `steps` mixtures of the codes of start[i] and end[i] -> (P, steps, C, H, W).
    `mode`: "linear" or "slerp" (spherical, the release's second grid; acai/core/lines.py).
    `seed` seeds the draws of a model whose codes are samples (the VAE)."""
    if mode not in INTERPOLATIONS:
        raise ConfigError(f"unknown interpolation mode {mode!r}; use {' or '.join(INTERPOLATIONS)}")
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    codes = (in_chunks(lambda b: model.encode(b, generator), to_device(x, device)) for x in (start, end))
    z = INTERPOLATIONS[mode](*codes, steps)  # (P, S, latent, h, w)
    images = in_chunks(model.decode, z.flatten(0, 1))  # (P·S, C, H, W)
    return images.view(len(start), steps, *images.shape[1:]).float().cpu().numpy()


def grid_image(rows: np.ndarray, labels: list[str] | None = None, scale: int = 2, gap: int = 2) -> Image.Image:
    """(R, S, C, H, W) images in [-1, 1] -> one picture, a row per R, with optional row labels."""
    n_rows, n_cols, colors, h, w = rows.shape
    pixels = np.clip((rows + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    pixels = pixels.transpose(0, 1, 3, 4, 2).repeat(scale, axis=2).repeat(scale, axis=3)  # (R, S, h, w, C)
    h, w = h * scale, w * scale
    margin = 8 + 7 * max((len(label) for label in labels), default=0) if labels else 0
    canvas = np.full((n_rows * (h + gap) + gap, margin + n_cols * (w + gap) + gap, colors), 255, np.uint8)
    for r in range(n_rows):
        for c in range(n_cols):
            top, left = gap + r * (h + gap), margin + gap + c * (w + gap)
            canvas[top:top + h, left:left + w] = pixels[r, c]
    image = Image.fromarray(canvas[..., 0] if colors == 1 else canvas).convert("RGB")
    if labels:
        draw = ImageDraw.Draw(image)
        for r, label in enumerate(labels):
            draw.text((4, gap + r * (h + gap) + h // 2 - 5), label, fill=(0, 0, 0))
    return image


def save_png(image: Image.Image, path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    save_bytes(buffer.getvalue(), path)
    return Path(path)


def save_figure(figure, path, dpi: int = 110) -> Path:
    """A matplotlib figure as a PNG at `path` (atomic, as every picture), then closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    save_bytes(buffer.getvalue(), path)
    return Path(path)


def learning_curves(histories: dict[str, list[list[dict]]], paper: dict[str, tuple], path, title: str) -> Path:
    """Mean Distance and Smoothness against samples: one line per model (the mean over seeds), a band
    from the lowest to the highest seed, the paper's value (after 2^24 samples) as a tick on the right
    edge, and a cross where an evaluation found the model collapsed.

    histories: {model: [log of each seed (log.jsonl entries)]}; paper: {model: (mean distance, smoothness)}.
    BASE+acai is drawn dashed in BASE's colour.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colours = plt.get_cmap("tab10").colors
    bases = list(dict.fromkeys(COMPOSED.get(model, model) for model in histories))
    for model, seeds in histories.items():
        colour = colours[bases.index(COMPOSED.get(model, model)) % len(colours)]
        style = "--" if model in COMPOSED else "-"
        samples = sorted({entry["samples"] for history in seeds for entry in history})
        for axis, key, scale in ((axes[0], "mean_distance", 1e3), (axes[1], "smoothness", 1.0)):
            table = np.full((len(seeds), len(samples)), np.nan)
            for row, history in enumerate(seeds):
                for entry in history:
                    table[row, samples.index(entry["samples"])] = scale * entry.get(key, np.nan)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a column of undefined smoothness
                mean, low, high = np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)
            axis.plot(samples, mean, style, color=colour, label=model if key == "mean_distance" else None, lw=1.6)
            if len(seeds) > 1:
                axis.fill_between(samples, low, high, color=colour, alpha=0.18, lw=0)
            collapsed = [(s, min(v, axis_cap(key))) for history in seeds for entry in history
                         if entry.get("state") == "collapsed"
                         for s, v in [(entry["samples"], scale * entry.get(key, np.nan))] if np.isfinite(v)]
            if collapsed:
                axis.scatter(*zip(*collapsed), marker="x", color=colour, s=30, zorder=3)
            if model in paper:
                value = paper[model][0 if key == "mean_distance" else 1]
                axis.annotate("", xy=(1.0, value), xycoords=("axes fraction", "data"), xytext=(1.04, value),
                              textcoords=("axes fraction", "data"),
                              arrowprops=dict(arrowstyle="-", color=colour, lw=2.5))
    axes[0].set_yscale("log")
    marks = [paper[model][0] for model in histories if model in paper]
    if marks:  # every paper tick inside the axis: ACAI's 0.24 lies far below any short run's curve
        low, high = axes[0].get_ylim()
        axes[0].set_ylim(min(low, min(marks) / 1.25), max(high, max(marks) * 1.25))
    axes[0].set_ylabel("Mean Distance (×10⁻³, log scale; lower is better)")
    # Smoothness has no upper bound: a run near the mean image, whose interpolation ends decode to
    # nearly the same angle, can score 100 and would flatten every other curve. Above 1 one step
    # jumps further than the whole interpolation spans, so the axis stops there.
    axes[1].set_ylabel(f"Smoothness (lower is better; axis cut at {axis_cap('smoothness'):g})")
    for axis in axes:
        axis.set_xlabel("training samples")
        axis.grid(alpha=0.3)
    axes[1].set_ylim(0, axis_cap("smoothness"))
    axes[0].legend(fontsize=8, ncol=2)
    figure.suptitle(title + "  (ticks on the right edge: the paper's values after 2²⁴ samples; ×: collapsed; "
                    "gaps: undefined)",
                    fontsize=9)
    return save_figure(figure, path)


def axis_cap(key: str) -> float:
    return 1e3 if key == "mean_distance" else 1.0


FIGURE3_ANGLES = (0.3 * np.pi, 1.05 * np.pi)  # 135° apart: the short way round is the right answer
FIGURE_NUMBERS = {("mnist", 32): 5, ("mnist", 256): 6, ("svhn", 32): 7, ("svhn", 256): 8,
                  ("celeba", 32): 9, ("celeba", 256): 10}


def figure3(folders: dict[str, Path], path, mode: str = "linear") -> Path:
    """One row per model: its interpolation between the same two lines (Figure 3; `mode` slerp:
    the same pair spherically interpolated)."""
    from acai.core.lines import LinesSource
    from acai.training.run import load_run

    start, end = (LinesSource.batch_from_angles(np.array([a]))[0] for a in FIGURE3_ANGLES)
    ideal = LinesSource.batch_from_angles(np.linspace(*FIGURE3_ANGLES, 16))[0].numpy()  # (16, 1, 32, 32)
    rows, labels = [ideal[None]], ["ideal"]
    for model, folder in folders.items():
        rows.append(interpolation_rows(load_run(folder).model, start, end, mode=mode))
        labels.append(model)
    return save_png(grid_image(np.concatenate(rows), labels), path)


def interpolation_figure(folders: dict[str, Path], pairs: int, path, mode: str = "linear") -> Path:
    """Rows: for each model, `pairs` interpolations between the same test images (16 steps, `mode`
    linear or slerp)."""
    from acai.training.run import load_run

    rows, labels = [], []
    for model, folder in folders.items():
        run = load_run(folder)
        x, _ = run.source.test_set()
        if len(x) < 2:
            raise ConfigError(f"the test split of {run.config.data} has {len(x)} image{'s' if len(x) != 1 else ''}; "
                              f"an interpolation needs 2 (its two ends)")
        pairs = min(pairs, len(x) // 2)  # a small test split: fewer rows, never an image used twice
        chosen = torch.from_numpy(np.random.default_rng(0).permutation(len(x))[:2 * pairs])  # same for every model
        rows.append(interpolation_rows(run.model, x[chosen[:pairs]], x[chosen[pairs:]], mode=mode))
        labels += [model] + [""] * (pairs - 1)
    return save_png(grid_image(np.concatenate(rows), labels), path)


@torch.no_grad()
def random_code_images(model, count: int = 64, seed: int = 0) -> np.ndarray:
    """Decode `count` codes z ~ N(0, I) (`model.random_codes`, drawn with a generator seeded by
    `seed`) -> (count, C, H, W). Samples of the model where `model.PRIOR` is N(0, I) (VAE, AAE);
    for the others, what the release's "samples" grid shows: random codes decoded."""
    model.eval()
    device = next(model.parameters()).device
    z = model.random_codes(count, torch.Generator(device).manual_seed(seed))
    return in_chunks(model.decode, z).float().cpu().numpy()


def samples_grid(images: np.ndarray) -> Image.Image:
    """(N, C, H, W) -> a square-ish grid, 8 images a row at most (Figure 4's 8 x 8 for 64)."""
    columns = min(8, len(images))
    rows = -(-len(images) // columns)
    padded = np.concatenate([images, np.ones((rows * columns - len(images), *images.shape[1:]), images.dtype)])
    return grid_image(padded.reshape(rows, columns, *images.shape[1:]))


def prior_samples(folder: Path, path, count: int = 64, seed: int = 0) -> Path:
    """Decode z ~ N(0, I) of a trained run: an 8 x 8 grid like Figure 4 (for the VAE)."""
    from acai.training.run import load_run

    return save_png(samples_grid(random_code_images(load_run(folder).model, count, seed)), path)


def vae_samples(folder: Path, path, count: int = 64) -> Path:
    """Figure 4: `prior_samples` of a trained VAE."""
    return prior_samples(folder, path, count)


# What a table draws (`Table.figures`): each takes the sweep, the seed-0 run folders of each (data, d_z)
# block {(data, dz): {model: folder}} and the folder to draw into -> the files written.

def interpolations(spec, blocks: dict, folder: Path, mode: str = "linear") -> list[Path]:
    """Figure 3 for lines (figure3.png), Figures 5-10 for image data sets (figureN-DATA-dzD.png): one row
    (lines) or `spec.pairs` rows (images) of interpolations per model; `-slerp` for spherical ones."""
    suffix = "" if mode == "linear" else f"-{mode}"
    written = []
    for (data, dz), folders in blocks.items():
        if describe_data(data).offers(Capability.LINES):
            written.append(figure3(folders, folder / f"figure3{suffix}.png", mode=mode))
        else:
            number = FIGURE_NUMBERS.get((data, dz))
            stem = f"{'figure%d-' % number if number else ''}{data}-dz{dz}"
            written.append(interpolation_figure(folders, spec.pairs, folder / f"{stem}{suffix}.png", mode=mode))
    return written


def slerp_interpolations(spec, blocks: dict, folder: Path) -> list[Path]:
    """The release's second grid: the same pairs, spherically interpolated."""
    return interpolations(spec, blocks, folder, mode="slerp")


def prior_samples_of(spec, blocks: dict, folder: Path) -> list[Path]:
    """Decoded N(0, I) codes of every model with that prior (VAE, AAE); Figure 4 is the VAE's on lines."""
    from acai.core.models import MODELS

    written = []
    for (data, dz), folders in blocks.items():
        for model, run in folders.items():
            if MODELS[model].PRIOR is not None:
                figure4 = model == "vae" and describe_data(data).offers(Capability.LINES)
                name = f"figure4-{data}" if figure4 else f"{data}-dz{dz}"
                written.append(prior_samples(run, folder / f"{name}-{model}-samples.png"))
    return written


def curves_title(spec) -> str:
    """The learning curves' title names the recipe too: `--recipe paper` curves look nothing like the
    short recipe's at the same preset."""
    from acai.reproduce.presets import PAPER_RECIPE_TEXT

    recipe = PAPER_RECIPE_TEXT if spec.recipe_for("lines").is_papers else "its short recipe"
    return f"Table 1 runs, preset {spec.preset.name} with {recipe}, {spec.seeds} seed{'s' if spec.seeds > 1 else ''}"


def learning_curves_of(spec, blocks: dict, folder: Path) -> list[Path]:
    """curves.png: Mean Distance and Smoothness of every run of the sweep against samples."""
    from acai.training.run_folder import LOG, read_log

    histories = {}
    for run in spec.runs():
        log = run.folder(spec.out) / LOG
        if log.exists():
            histories.setdefault(run.model, []).append(read_log(log))
    if not histories:
        return []
    by_key = {m.key: m.paper.get(("lines", 64), {}) for m in spec.table.measures}
    paper = {model: (by_key["mean_distance"][model][0], by_key["smoothness"][model][0])
             for model in by_key.get("mean_distance", {}) if model in by_key.get("smoothness", {})}
    return [learning_curves(histories, paper, spec.out / "curves.png", curves_title(spec))]

