"""The synthetic lines benchmark (paper section 3.1, appendix A; SPEC 1-2).

`render(angles)` draws 32x32 anti-aliased lines from the centre to the border,
vectorised over images; `evaluate(interpolations)` scores decoded
interpolations with the paper's Mean Distance (eq. 7) and Smoothness (eq. 8).
Both follow the authors' released code where it differs from the prose:
coordinates truncate toward zero like Python's int(), and a contribution for
row index a and column b lands at canvas[a, b] without the transpose, as the
release does (the reference vectors in shared/reference confirm both).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

SIZE = 32
LINE_WIDTH = 2.0
NUM_CLASSES = 10
NUM_REFERENCES = 10_000
_MAX_ROWS = SIZE // 2 + 2  # a line spans at most r0 - 1 = 15 rows, plus partial ends


def render(angles, size: int = SIZE) -> np.ndarray:
    """Lines at `angles` (radians, 1-D) -> float32 images (N, size, size) in [-1, 1]."""
    angles = np.asarray(angles, dtype=np.float64).reshape(-1)
    n, t, c = len(angles), LINE_WIDTH, size * 0.5
    # Step 1: start at the centre, end at radius c - 1 in direction -angle.
    x0, y0 = np.full(n, c), np.full(n, c)
    x1 = c + (c - 1) * np.cos(-angles)
    y1 = c + (c - 1) * np.sin(-angles)
    # Step 2: walk along the longer axis ("y"); remember to transpose.
    flip = np.abs(y0 - y1) < np.abs(x0 - x1)
    x0, y0, x1, y1 = np.where(flip, y0, x0), np.where(flip, x0, y0), np.where(flip, y1, x1), np.where(flip, x1, y1)
    # Step 3: walk upwards; centre the line's thickness on the ideal line.
    back = y1 < y0
    x0, y0, x1, y1 = np.where(back, x1, x0), np.where(back, y1, y0), np.where(back, x0, x1), np.where(back, y0, y1)
    x0, x1 = x0 - t / 2, x1 - t / 2
    dy = y1 - y0
    slope = np.divide(x1 - x0, dy, out=np.zeros(n), where=dy != 0)  # step 4

    # Step 5, for all rows of all lines at once: (n, R) with R = _MAX_ROWS.
    y = np.trunc(y0)[:, None] + np.arange(_MAX_ROWS)[None, :]
    row_valid = y < np.ceil(y1)[:, None]
    first_full, last_full = np.ceil(y0)[:, None], np.trunc(y1)[:, None]
    weight = np.where(y < first_full, first_full - y0[:, None],
                      np.where(y > last_full, (y1 - np.trunc(y1))[:, None], 1.0))
    xs = x0[:, None] + (y - y0[:, None] - 0.5) * slope[:, None]
    xe = xs + t
    full_lo, full_hi = np.ceil(xs), np.trunc(xe)  # full cells [full_lo, full_hi)
    # Candidate cells per row: partial left, up to two full cells, partial right.
    cells = np.stack([np.trunc(xs), full_lo, full_lo + 1, full_hi], axis=-1)  # (n, R, 4)
    values = np.stack([
        np.where(full_lo != xs, weight * (full_lo - xs), 0.0),
        np.where(full_lo < full_hi, weight, 0.0),
        np.where(full_lo + 1 < full_hi, weight, 0.0),
        np.where(full_hi != xe, weight * (xe - full_hi), 0.0),
    ], axis=-1) * row_valid[..., None]

    rows = np.broadcast_to(y[..., None], cells.shape)
    first, second = np.where(flip[:, None, None], cells, rows), np.where(flip[:, None, None], rows, cells)
    keep = values != 0
    image_index = np.broadcast_to(np.arange(n)[:, None, None], cells.shape)[keep]
    flat = (image_index * size + first[keep].astype(np.int64)) * size + second[keep].astype(np.int64)
    canvas = np.bincount(flat, weights=2.0 * values[keep], minlength=n * size * size)  # step 6
    return np.clip(canvas.reshape(n, size, size) - 1.0, -1.0, 1.0).astype(np.float32)


def angle_labels(angles) -> np.ndarray:
    """The 10 angle bins used as classes for the linear probe on lines (SPEC 1)."""
    return (10 * np.asarray(angles) / (2 * np.pi - 1e-6)).astype(np.int64)


def reference_angles() -> np.ndarray:
    """D of appendix A: 10,000 angles 2πq/10,000."""
    return 2 * np.pi * np.arange(NUM_REFERENCES) / NUM_REFERENCES


@functools.lru_cache(maxsize=1)
def _unit_references() -> tuple[torch.Tensor, torch.Tensor]:
    refs = torch.from_numpy(render(reference_angles())).reshape(NUM_REFERENCES, -1).double()
    refs = refs / refs.norm(dim=1, keepdim=True)
    return refs.float().contiguous(), refs  # (10000, 1024) in float32 and float64


def nearest_references(images, candidates: int = 4, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance to the nearest reference line (eq. 5-6) and its index.

    A float32 matrix product against the 10,000 references ranks them; the
    `candidates` best are re-scored in float64 so that distances and ties
    resolve as the release's float64 `cdist` + `argmin` (first index wins).
    """
    refs32, refs64 = _unit_references()
    queries = torch.as_tensor(np.asarray(images)).reshape(-1, refs32.shape[1]).double()
    queries = queries / queries.norm(dim=1, keepdim=True).clamp_min(1e-300)
    distance = np.empty(len(queries))
    index = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]  # (C, 1024)
        top = (q.float() @ refs32.T).topk(candidates, dim=1).indices.sort(dim=1).values  # (C, k)
        exact = torch.einsum("cd,ckd->ck", q, refs64[top])  # (C, k) float64 cosine similarity
        best = exact.argmax(dim=1)  # first maximum among index-sorted candidates
        distance[start:start + chunk] = (1.0 - exact.gather(1, best[:, None])[:, 0]).numpy()
        index[start:start + chunk] = top.gather(1, best[:, None])[:, 0].numpy()
    return distance, index


def smoothness_scores(angles: np.ndarray) -> np.ndarray:
    """Eq. 8 per interpolation (rows of `angles`), NaN where start and end coincide."""
    angles = np.unwrap(np.atleast_2d(angles), axis=-1)
    steps = np.abs(np.diff(angles, axis=-1))  # the release takes |step|
    total = np.abs(angles[:, 0] - angles[:, -1])
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (steps / total[:, None]).max(axis=-1) - 1.0 / (angles.shape[1] - 1)
    scores[total < 1e-4] = np.nan
    return scores


def evaluate(interpolations) -> tuple[float, float]:
    """(Mean Distance, Smoothness) of interpolations (pairs, steps, 32, 32) in [-1, 1].

    Mean Distance is eq. 7 over every image. Smoothness follows the release:
    the sum of the defined per-pair scores divided by the number of ALL pairs,
    NaN only if no score is defined.
    """
    interpolations = np.asarray(interpolations)
    if interpolations.ndim == 5 and interpolations.shape[2] == 1:
        interpolations = interpolations[:, :, 0]  # (P, S, 1, H, W) -> (P, S, H, W)
    if interpolations.ndim != 4 or interpolations.shape[2:] != (SIZE, SIZE):
        raise ValueError(f"interpolations must be (pairs, steps, {SIZE}, {SIZE}); got {interpolations.shape}")
    pairs, steps = interpolations.shape[:2]
    distance, index = nearest_references(interpolations.reshape(pairs * steps, -1))
    scores = smoothness_scores(reference_angles()[index].reshape(pairs, steps))
    defined = ~np.isnan(scores)
    smoothness = scores[defined].sum() / pairs if defined.any() else float("nan")
    return float(distance.mean()), float(smoothness)


class LinesSource:
    """Endless fresh lines for training; batch (seed, step) is always the same."""

    name = "lines"
    shape = (1, SIZE, SIZE)
    num_classes = NUM_CLASSES
    TEST_SEED = 20180606  # fixed test set for the probe (the release draws 5,000 test lines)

    def __init__(self, test_size: int = 5000):
        self.test_size = test_size

    @staticmethod
    def batch_from_angles(angles: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(render(angles))[:, None]  # (B, 1, 32, 32)
        return x, torch.from_numpy(angle_labels(angles))

    def train_batch(self, seed: int, step: int, batch_size: int):
        angles = np.random.default_rng([seed, step]).uniform(0, 2 * np.pi, batch_size)
        return self.batch_from_angles(angles)

    def test_set(self):
        angles = np.random.default_rng(self.TEST_SEED).uniform(0, 2 * np.pi, self.test_size)
        return self.batch_from_angles(angles)

    def evaluation_lines(self, seed: int, evaluation: int, count: int = 512) -> torch.Tensor:
        """The fresh random test lines of one evaluation (SPEC 2 protocol)."""
        angles = np.random.default_rng([seed, evaluation, 0x11E5]).uniform(0, 2 * np.pi, count)
        return self.batch_from_angles(angles)[0]


def interpolate_codes(z_a: torch.Tensor, z_b: torch.Tensor, steps: int = 16) -> torch.Tensor:
    """(P, ...) codes -> (P, steps, ...) with α = n/(steps-1), from z_a to z_b."""
    alpha = torch.arange(steps, dtype=z_a.dtype, device=z_a.device) / (steps - 1)
    alpha = alpha.view(1, steps, *([1] * (z_a.dim() - 1)))
    return (1 - alpha) * z_a[:, None] + alpha * z_b[:, None]
