"""Pictures: interpolation grids like the paper's Figures 3 and 5-10."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .checkpoint import save_bytes
from .lines import interpolate_codes
from .train import in_chunks, to_device


@torch.no_grad()
def interpolation_rows(model, start: torch.Tensor, end: torch.Tensor, steps: int = 16) -> np.ndarray:
    """Decode `steps` mixtures of the codes of start[i] and end[i] -> (P, steps, C, H, W)."""
    model.eval()
    device = next(model.parameters()).device
    z = interpolate_codes(*(in_chunks(model.encode, to_device(x, device)) for x in (start, end)), steps)  # (P, S, ...)
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
