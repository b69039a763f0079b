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

import contextlib
import functools
import math

import numpy as np
import torch

from acai.core.data.base import DRAWN_LINES

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


# Every float64 cosine computed below (the sparse form of `_ReferenceIndex.cosines`,
# a float64 matrix product in the fallback) is within ~1e-12 of the exact value for
# references of norm >= 1 (|rounding| <= ~1024 u (sum|x| + |x||ink|) / (|x||r|),
# u = 2^-53); SLOP bounds that error with a wide margin yet stays far below the gap
# between distinct references (neighbouring lines differ by ~1e-6 in cosine).
_SLOP = 1e-10
_FLOAT32_U = 2.0 ** -24


def _first_best(query: torch.Tensor, ref: torch.Tensor, score: torch.Tensor, n: int):
    """Per query, the highest score and, among equal highest, the lowest ref index.

    query, ref, score: (P,) pairs; every query 0..n-1 appears at least once.
    """
    best = torch.full((n,), -math.inf, dtype=score.dtype).scatter_reduce(0, query, score, "amax")
    winner = torch.where(score == best[query], ref, torch.iinfo(torch.int64).max)
    index = torch.full((n,), torch.iinfo(torch.int64).max).scatter_reduce(0, query, winner, "amin")
    return best, index


def _nonzero(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mask.nonzero(as_tuple=True) for a sparse (C, N) bool mask with N % 8 == 0, faster:
    scan it as int64 words of 8 flags first, then expand only the words that are set."""
    if mask.shape[1] % 8:
        return mask.nonzero(as_tuple=True)
    word_row, word = mask.view(torch.int64).nonzero(as_tuple=True)
    pick, bit = mask.view(len(mask), -1, 8)[word_row, word].nonzero(as_tuple=True)
    return word_row[pick], word[pick] * 8 + bit  # sorted by row, then column


def _ieee_float32_matmul() -> bool:
    """Whether float32 products are plain float32 (not bf16/tf32, see set_float32_matmul_precision)."""
    mkldnn = getattr(torch.backends.mkldnn, "matmul", None)
    return (torch.get_float32_matmul_precision() == "highest"
            and (mkldnn is None or mkldnn.fp32_precision in ("none", "ieee")))


def _argmax(ub: torch.Tensor, stride: int = 16) -> torch.Tensor:
    """ub.argmax(dim=1) of a (C, N) matrix, cheaper: a vectorised amax over `stride`
    strided slices picks a column j, then the argmax over j, j + N/stride, ... (C,)."""
    if ub.shape[1] % stride:
        return ub.argmax(dim=1)
    width = ub.shape[1] // stride
    column = ub.view(len(ub), stride, width).amax(dim=1).argmax(dim=1)  # (C,)
    members = column[:, None] + width * torch.arange(stride)  # (C, stride)
    return members.gather(1, ub.gather(1, members).argmax(dim=1, keepdim=True))[:, 0]


class _ReferenceIndex:
    """Exact nearest-cosine search over fixed reference images (rows of `raw`).

    The answer is the first argmax, over ALL references, of the float64 cosine
    x·r / (|x| |r|) computed by `cosines` (the release's formula).  Lines are
    background (-1) plus a little ink, so x·r = x·ink_r - sum(x) takes ~45
    multiply-adds instead of 1024.  Scoring all 10,000 references even so is
    too slow; a certified filter skips those that provably cannot win:

    In a k-dimensional PCA basis B of the unit references, a unit query
    q = B c_q + q_res and a unit reference r = B c_r + r_res (orthogonal
    parts) satisfy q·r = c_q·c_r + q_res·r_res <= c_q·c_r + |q_res| |r_res|, so
    one float32 product of the (k+1)-vectors (c_q, |q_res|) and (c_r, |r_res|)
    bounds every cosine from above (`ub`, up to float32 rounding `err32`).  The
    reference with the highest ub is scored exactly, giving a lower bound L on
    the best cosine; only references with ub + err32 >= L are scored (~65 per
    noisy line, fewer for clean or blurry images).

    A query with more than `max_candidates` candidates (pure noise) falls back
    to one float64 product against all references, and scores exactly those
    within 4 SLOP of its best: a reference further below can lose to it under
    `cosines` too, as both computations are within SLOP of the exact cosine.
    """

    def __init__(self, raw: torch.Tensor, basis_dim: int = 96, max_candidates: int = 1024):
        raw = raw.double()  # (N, D) images, background -1
        self.norms = raw.norm(dim=1)  # (N,)
        self.max_candidates = max_candidates
        self._build_sparse(raw + 1.0)  # exact: float32 pixels + 1 fit in float64
        self._build_basis(raw / self.norms[:, None], basis_dim)

    def _build_sparse(self, ink: torch.Tensor) -> None:
        # ELL layout: (N, M) column indices and values, padded with (0, 0.0).
        nonzero = ink != 0
        width = max(1, int(nonzero.sum(dim=1).max()))
        order = nonzero.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :width]  # (N, M)
        self.ink_index = order.contiguous()
        self.ink_value = ink.gather(1, order).contiguous()  # zeros where padded

    def _build_basis(self, unit: torch.Tensor, k: int) -> None:
        k = min(k, unit.shape[1])
        _, vectors = torch.linalg.eigh(unit.T @ unit)  # ascending eigenvalues
        self.basis = vectors[:, -k:].flip(1).contiguous()  # (D, k) orthonormal, top-k PCA directions
        coeff = unit @ self.basis  # (N, k)
        residual = (unit - coeff @ self.basis.T).norm(dim=1) + 1e-9  # (N,) |r_res|, rounded up
        self.keys = torch.cat([coeff, residual[:, None]], dim=1).float().contiguous()  # (N, k+1)
        self.unit = unit  # (N, D) float64, for the fallback
        # float32 rounding of a (k+1)-term product of vectors of norm <= 1, plus the
        # rounding of both inputs to float32: |error| <= (k+3) u; 1% and SLOP spare.
        self.err32 = 1.01 * (k + 4) * _FLOAT32_U + _SLOP

    def cosines(self, images: torch.Tensor, stats: tuple, query: torch.Tensor, ref: torch.Tensor,
                chunk: int = 1 << 16) -> torch.Tensor:
        """float64 cosines of pairs (images[query[p]], reference ref[p]): (P,) -> (P,).

        images: (Q, D) float64; stats: their (sum, norm), each (Q,).
        """
        total, norm = stats
        flat, width = images.reshape(-1), images.shape[1]
        out = torch.empty(len(query), dtype=torch.float64)
        for s in range(0, len(query), chunk):
            q, r = query[s:s + chunk], ref[s:s + chunk]
            ink = flat.take(self.ink_index.index_select(0, r).add_(q[:, None] * width))  # (p, M) pixels on ink
            dot = torch.bmm(ink[:, None, :], self.ink_value.index_select(0, r)[:, :, None])[:, 0, 0]  # (p,)
            out[s:s + chunk] = (dot - total[q]) / (norm[q] * self.norms[r])
        return out

    def nearest(self, images: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (Q, D) float64 with nonzero norms -> (best cosine, index, fell back), each (Q,)."""
        stats = images.sum(dim=1), images.norm(dim=1)  # what `cosines` needs, (Q,) each
        lookup, keys, err = self._lookup(images, stats[1]), self.keys, self.err32  # (Q, k+1), (N, k+1)
        if not _ieee_float32_matmul():  # bf16 products would void err32: bound in float64
            lookup, keys, err = lookup.double(), keys.double(), 2 * _SLOP
        query, ref, dense = [], [], []
        for start in range(0, len(images), chunk):
            rows = torch.arange(start, min(start + chunk, len(images)))
            ub = lookup[rows] @ keys.T  # (C, N) upper bounds on the cosines, up to err
            # L = cosine of the top reference - 2 SLOP: every reference ruled out has
            # a computed cosine < L + SLOP <= the best one, so it can neither win nor tie.
            threshold = self.cosines(images, stats, rows, _argmax(ub)) - 2 * _SLOP - err
            row, col = _nonzero(ub >= (threshold - 2.0 ** -22).to(ub.dtype)[:, None])  # rounded down
            few = torch.bincount(row, minlength=len(rows)) <= self.max_candidates  # (C,)
            query.append(rows[row[few[row]]])
            ref.append(col[few[row]])
            dense.append(rows[~few])
        dense = torch.cat(dense)
        dense_query, dense_ref = self._fallback(images, stats, dense)
        query, ref = torch.cat(query + [dense_query]), torch.cat(ref + [dense_ref])
        cosine, index = _first_best(query, ref, self.cosines(images, stats, query, ref), len(images))
        fell_back = torch.zeros(len(images), dtype=torch.bool)
        fell_back[dense] = True
        return cosine, index, fell_back

    def _lookup(self, images: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """(c_q, |q_res|) of the unit queries in float32: (Q, D) -> (Q, k+1)."""
        coeff = (images @ self.basis) / norm[:, None]  # (Q, k) float64
        # |q_res| = sqrt(|q|^2 - |c_q|^2) with |q| = 1, rounded up to cover cancellation.
        residual = (1.0 - coeff.square().sum(dim=1)).clamp_min(0).sqrt() + 1e-7
        return torch.cat([coeff, residual[:, None]], dim=1).float()

    def _fallback(self, images, stats, rows):
        """(query, ref) pairs that may win for `rows`, from a float64 product with all references."""
        if not len(rows):
            return rows, rows
        full = (images[rows] / stats[1][rows, None]) @ self.unit.T  # (F, N), within SLOP of `cosines`
        row, ref = (full >= full.amax(dim=1, keepdim=True) - 4 * _SLOP).nonzero(as_tuple=True)
        return rows[row], ref


@contextlib.contextmanager
def _one_thread():
    """The search is a chain of a few hundred small tensor ops; on a busy machine every
    parallel region waits for a starved worker thread (0.3 s on one thread became 3 s
    on two while the other core trained), so it runs on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=1)
def _reference_index() -> _ReferenceIndex:
    return _ReferenceIndex(torch.from_numpy(render(reference_angles())).reshape(NUM_REFERENCES, -1))


def nearest_references(images) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance to the nearest reference line (eq. 5-6) and its index.

    The release's float64 `cdist` + `argmin` (first index wins), without
    scoring every reference: see `_ReferenceIndex`.  A blank (all-zero) image
    is at distance 1 from every line, one with NaN or inf at distance NaN;
    both get index 0.
    """
    index = _reference_index()
    with _one_thread():
        images = torch.as_tensor(np.asarray(images)).reshape(len(images), -1).double()  # (Q, D)
        norm = images.norm(dim=1)
        valid = (norm > 0) & norm.isfinite()
        if valid.all():
            cosine, nearest, _ = index.nearest(images)
        else:  # rare: search the others only
            cosine = torch.where(norm == 0, 0.0, math.nan).double()
            nearest = torch.zeros(len(images), dtype=torch.int64)
            if valid.any():
                cosine[valid], nearest[valid], _ = index.nearest(images[valid])
    return (1.0 - cosine).numpy(), nearest.numpy()


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
    capabilities = DRAWN_LINES.capabilities  # no fixed training set: every batch is new
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


def slerp_codes(z_a: torch.Tensor, z_b: torch.Tensor, steps: int = 16) -> torch.Tensor:
    """(P, ...) codes -> (P, steps, ...): spherical interpolation of each pair of flattened codes.

    The release's formula (lib/train.py): with ω = arccos(a·b / (|a| |b|)) and t = n/(steps-1),
    z_t = sin((1-t)ω)/sin ω · a + sin(tω)/sin ω · b. It goes from a to b; for codes of equal
    norm it keeps that norm all the way. Computed in float64, the cosine clipped to [-1, 1].
    Where the formula is 0/0 (a zero code, or parallel or opposite codes: sin ω < 1e-7), the
    release's NumPy gives NaN; here that pair is interpolated linearly, the formula's limit
    as ω → 0 (for opposite codes the great circle is not defined, and linear is a choice).
    """
    pairs = len(z_a)
    a, b = z_a.reshape(pairs, -1).double(), z_b.reshape(pairs, -1).double()
    t = (torch.arange(steps, dtype=torch.float64, device=z_a.device) / (steps - 1)).view(1, steps)
    norms = a.norm(dim=1) * b.norm(dim=1)
    cosine = ((a * b).sum(1) / norms.clamp_min(1e-300)).clamp(-1.0, 1.0)
    omega = torch.arccos(cosine).view(pairs, 1)
    sine = torch.sin(omega)
    defined = (norms.view(pairs, 1) > 0) & (sine > 1e-7)
    safe = torch.where(defined, sine, torch.ones_like(sine))
    weight_a = torch.where(defined, torch.sin((1 - t) * omega) / safe, 1 - t)  # (P, S)
    weight_b = torch.where(defined, torch.sin(t * omega) / safe, t.expand(pairs, steps))
    mixed = weight_a[..., None] * a[:, None] + weight_b[..., None] * b[:, None]  # (P, S, D)
    return mixed.to(z_a.dtype).view(pairs, steps, *z_a.shape[1:])


INTERPOLATIONS = {"linear": interpolate_codes, "slerp": slerp_codes}  # --mode of `acai interpolate`
