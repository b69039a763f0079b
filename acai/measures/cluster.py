"""Clustering metric of the paper's table 3 (SPEC 5).

Protocol (SPEC 5, "Clustering"):
  1. codes of the training set and of the test set;
  2. whiten with the training set: centre, project on the right singular
     vectors, divide by the singular values + 1e-5;
  3. K-Means with K = number of classes, random init, 1,000 restarts of at
     most 1,000 iterations, keep the restart with the best objective (inertia)
     on the training set;
  4. assign the test codes to the nearest centroid and report the accuracy
     under the best one-to-one cluster <-> class mapping (Hungarian).

Why K-Means is batched here. 1,000 restarts on 60,000 codes is ~10^5 Lloyd
iterations; one restart at a time (as scikit-learn runs them) that took
~8 minutes for D = 256 on the 2-core dev machine (benchmarks/cluster.py),
because each iteration's (N, D) @ (D, K) product with K = 10 is bound by
reading x, not by arithmetic. Here a pool of P restarts
runs side by side: their centroids form one (P·K, D) matrix, so one E-step
for all of them is a single wide matmul that BLAS runs near peak. Around it:

* the argmin over each restart's K distances is one integer `amin` over
  packed (distance, index) words instead of torch's slow small-axis argmin
  (see `_Pool.step`);
* the M-step is incremental: only points whose label changed move their row
  between two running float64 sums, so a nearly converged restart's M-step
  costs almost nothing;
* a restart leaves the pool as soon as its labels stop changing and the next
  restart takes its slot, so the matmul keeps its width until the last
  restarts drain;
* on a CPU, each core runs its own pool with single-threaded kernels (restart
  i goes to pool i mod W): whole pools in parallel scale better than many
  small multi-threaded kernels, which stall whenever a core is busy with
  something else.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

try:  # progress is a convenience, never a requirement
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    tqdm = None

# Added to the singular values before dividing (SPEC 5, as in the released
# code): keeps a direction of (near) zero variance from blowing up.
WHITEN_EPS = 1e-5
PAPER_RESTARTS, PAPER_ITERATIONS = 1000, 1000  # K-Means in the release's cluster.py (SPEC 5)


def _as_numpy_2d(codes) -> np.ndarray:
    """Codes of any shape (N, ...) as a float64 (N, D) array."""
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().numpy()
    codes = np.asarray(codes, dtype=np.float64)
    return codes.reshape(len(codes), -1)


# --------------------------------------------------------------------------
# Whitening (SPEC 5, step 2)
# --------------------------------------------------------------------------
def whiten_fit(train_codes) -> tuple[np.ndarray, np.ndarray]:
    """Fit the whitening on the training codes; returns (mean, projection).

    With U S Vᵀ = svd(train - mean) (thin SVD), the whitened codes are
    (x - mean) @ V / (S + 1e-5), i.e. `projection` = V / (S + 1e-5) of shape
    (D, min(N, D)). On the training set this gives ≈ U, whose columns are
    orthonormal: Σ_n x_n x_nᵀ ≈ I, i.e. the covariance is I / N, not I,
    because S rather than S / sqrt(N) is the divisor (as in the released
    code; K-Means is blind to that global scale). float64 throughout: the
    smallest singular values are the ones that get amplified.
    """
    x = _as_numpy_2d(train_codes)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    projection = vt.T / (s + WHITEN_EPS)
    return mean, projection


def whiten_apply(codes, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Whiten codes (train or test) with a fit from `whiten_fit`; float64 (N, D')."""
    return (_as_numpy_2d(codes) - mean) @ projection


# --------------------------------------------------------------------------
# Batched K-Means (SPEC 5, step 3)
# --------------------------------------------------------------------------
def _init_indices(n: int, k: int, restarts: int, seed: int) -> np.ndarray:
    """(restarts, k) distinct point indices: restart i starts from x[row i].

    Random init as scikit-learn's init='random': K distinct points of x. The
    draws come from one generator in restart order, so restart i starts from
    the same points whatever the total number of restarts: the restarts of a
    shorter run are a prefix of a longer run's.
    """
    if k > n:
        raise ValueError(f"k={k} clusters but only {n} points")
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(n, size=k, replace=False) for _ in range(restarts)])


class _Pool:
    """P restarts running side by side; slot p holds restart `rid[p]`.

    Tensors: centroids (P, K, D) in the matmul dtype; sums (P, K+1, D) and
    counts (P, K+1) in float64; labels (P, N). A fresh slot has every label at
    the sentinel K ("no cluster yet"), so its first E-step counts every point
    as changed and moves it out of bucket K, a bucket that is never read:
    the first M-step is the same incremental update as all later ones.
    """

    def __init__(self, xa, x64, k, slots, block_rows):
        self.xa, self.x64, self.k, self.block_rows = xa, x64, k, block_rows
        n, d = x64.shape
        dev = x64.device
        self.centroids64 = torch.zeros(slots, k, d, dtype=torch.float64, device=dev)
        self.centroids = torch.zeros(slots, k, d, dtype=xa.dtype, device=dev)
        self.sums = torch.zeros(slots, k + 1, d, dtype=torch.float64, device=dev)
        self.counts = torch.zeros(slots, k + 1, dtype=torch.float64, device=dev)
        self.label_dtype = torch.uint8 if k < 255 else torch.int32
        self.labels = torch.full((slots, n), k, dtype=self.label_dtype, device=dev)
        self.rid = [-1] * slots
        self.iters = [0] * slots
        # argmin by packing: the low `bits` bits of each distance's bit pattern
        # are overwritten with its centroid index k (see `step`).
        self.int_dtype = {torch.float32: torch.int32, torch.float64: torch.int64}[xa.dtype]
        self.bits = max(1, (k - 1).bit_length())
        self.k_col = torch.arange(k, dtype=self.int_dtype, device=dev).view(k, 1)

    def __len__(self):
        return len(self.rid)

    def start(self, p: int, rid: int, init_rows: np.ndarray):
        """Put restart `rid`, starting at the points `init_rows`, in slot p."""
        idx = torch.as_tensor(init_rows, device=self.x64.device)
        self.centroids64[p] = self.x64.index_select(0, idx)
        self.centroids[p] = self.centroids64[p]
        self.sums[p] = 0
        self.counts[p] = 0
        self.labels[p] = self.k
        self.rid[p], self.iters[p] = rid, 0

    def keep(self, slots: list[int]):
        """Drop every slot not in `slots` (once no restart is left to start)."""
        idx = torch.as_tensor(slots, dtype=torch.long, device=self.x64.device)
        self.centroids64 = self.centroids64.index_select(0, idx)
        self.centroids = self.centroids.index_select(0, idx)
        self.sums = self.sums.index_select(0, idx)
        self.counts = self.counts.index_select(0, idx)
        self.labels = self.labels.index_select(0, idx)
        self.rid = [self.rid[p] for p in slots]
        self.iters = [self.iters[p] for p in slots]

    def step(self) -> torch.Tensor:
        """One Lloyd iteration (E-step, then M-step) of every restart in the pool.

        Returns how many labels each restart changed; 0 means the centroids it
        just used are the means of their own clusters: a fixed point.

        E-step. With x augmented to [x, ||x||², 1] and the centroids to
        [-2c, 1, ||c||²], one matmul gives the squared distances
        ||x||² - 2x·c + ||c||², rows ordered (k, p) so that the K candidates
        of a (restart, point) pair sit K equal-sized slices apart. The argmin
        then packs: a float's bit pattern read as an integer is ordered like
        the float for non-negative values (all negative values, i.e. rounding
        noise around 0, sort below them), so replacing its lowest `bits` bits
        by k and taking the integer minimum over the K slices yields the
        nearest centroid's index in its low bits. The price: distances
        within 2^-(mantissa bits - bits) of each other (relative; 2e-6 for K = 10 in float32) count
        as tied and go to the lower index, a resolution of the same order as
        the float32 rounding of the distances themselves. Rows go in blocks
        so the (P·K, B) distances stay in cache.

        M-step, incremental (`_move`). sums[p, j] = Σ of the points that
        restart p labels j; a point whose label changed moves its row from
        the old sum to the new one. float64 sums, so that thousands of
        additions and subtractions leave no drift.
        """
        p_slots, k, d = self.centroids.shape
        n = self.x64.shape[0]
        dev = self.x64.device
        c = self.centroids.transpose(0, 1).reshape(k * p_slots, d)  # rows (k, p)
        ca = torch.zeros(k * p_slots, self.xa.shape[1], dtype=c.dtype, device=dev)
        ca[:, :d] = -2 * c
        ca[:, d] = 1
        ca[:, d + 1] = (c * c).sum(1)
        high = ~((1 << self.bits) - 1)
        low = (1 << self.bits) - 1
        n_changed = torch.zeros(p_slots, dtype=torch.long, device=dev)
        base = torch.arange(p_slots, device=dev) * (k + 1)
        fresh = torch.as_tensor([i == 0 for i in self.iters], device=dev)
        dests, srcs, rows = [], [], []
        for start in range(0, n, self.block_rows):
            stop = min(n, start + self.block_rows)
            dist = torch.mm(ca, self.xa[start:stop].t())  # (K·P, B)
            words = dist.view(self.int_dtype).view(k, -1)
            words.bitwise_and_(high).bitwise_or_(self.k_col)
            new = (words.amin(0) & low).to(self.label_dtype).view(p_slots, stop - start)
            old = self.labels[:, start:stop]
            changed = new != old
            slot, row = changed.nonzero(as_tuple=True)
            if len(slot):
                dests.append(base[slot] + new[slot, row].long())
                srcs.append(base[slot] + old[slot, row].long())
                rows.append(row + start)
                old.copy_(new)
        if dests:
            dest = torch.cat(dests)
            self._move(dest, torch.cat(srcs), torch.cat(rows), fresh)
            n_changed = torch.bincount(dest // (k + 1), minlength=p_slots)
        # Empty cluster: it keeps its previous centroid (no re-seeding). With
        # a random init from distinct points every cluster starts non-empty;
        # one that empties later waits where it was, which keeps the
        # iteration deterministic and cheap.
        counts = self.counts[:, :k]
        means = self.sums[:, :k] / counts.clamp_min(1).unsqueeze(2)
        self.centroids64 = torch.where((counts > 0).unsqueeze(2), means, self.centroids64)
        self.centroids = self.centroids64.to(self.centroids.dtype)
        self.iters = [i + 1 for i in self.iters]
        return n_changed.cpu()

    def _move(self, dest, src, rows, fresh):
        """M-step: row `rows[i]` of x leaves bucket src[i] and joins dest[i].

        One sparse (P·(K+1), N) matrix of +1 / -1 entries times x: the
        scattered adds of all changed points in one float64 kernel (much
        faster than gathering the rows and index_add-ing them). A fresh slot's
        points leave the sentinel bucket K, which is never read, so its -1
        entries are left out.
        """
        k1 = self.k + 1
        from_sentinel = fresh[src // k1]
        keep = ~from_sentinel
        src_rows = rows[keep]
        src = src[keep]
        index = torch.stack([torch.cat([dest, src]), torch.cat([rows, src_rows])])
        values = torch.ones(index.shape[1], dtype=torch.float64, device=dest.device)
        values[len(dest):] = -1
        delta = torch.sparse_coo_tensor(index, values, (self.sums.shape[0] * k1, len(self.x64)),
                                        check_invariants=False)
        self.sums.view(-1, self.sums.shape[2]).add_(torch.sparse.mm(delta, self.x64))
        size = self.counts.numel()
        self.counts.view(-1).add_(torch.bincount(dest, minlength=size).to(self.counts.dtype)
                                  - torch.bincount(src, minlength=size).to(self.counts.dtype))


def _run_pool(pool: _Pool, rids: list[int], init_idx: np.ndarray, iterations: int,
              total_sq: float, on_done) -> tuple:
    """Run restarts `rids` through `pool`; returns (inertia, restart, centroids) of its best.

    A restart is done when its E-step changed no label (its centroids are the
    means of their clusters: a fixed point) or when it has had `iterations`
    E-steps. The converged restart's inertia comes in closed form from the
    float64 sums: Σ_n ||x_n - c_l(n)||² = Σ_n ||x_n||² - Σ_j ||S_j||² / n_j
    for c_j = S_j / n_j. A restart stopped by the cap is scored for the
    centroids of its last E-step, directly.
    """
    queue = list(rids)[::-1]
    for p in range(len(pool)):
        r = queue.pop()
        pool.start(p, r, init_idx[r])
    best = (math.inf, -1, None)
    while len(pool):
        used = pool.centroids64  # the centroids of this E-step, float64
        n_changed = pool.step().tolist()
        finished = []
        for p, changed in enumerate(n_changed):
            if changed and pool.iters[p] < iterations:
                continue
            rid = pool.rid[p]
            if not changed:
                s, n_j = pool.sums[p, :pool.k], pool.counts[p, :pool.k]
                value = total_sq - float(((s * s).sum(1) / n_j.clamp_min(1)).sum())
            else:
                value = _objective64(pool.x64, used[p])
            if (value, rid) < best[:2]:
                best = (value, rid, used[p].clone())
            on_done(rid, value, pool.iters[p])
            finished.append(p)
        for p in finished:
            if queue:
                r = queue.pop()
                pool.start(p, r, init_idx[r])
        if finished and not queue:
            live = [p for p in range(len(pool)) if p not in finished or pool.iters[p] == 0]
            if len(live) < len(pool):
                pool.keep(live)
    return best


def kmeans(x, k: int, restarts: int = PAPER_RESTARTS, iterations: int = PAPER_ITERATIONS, seed: int = 0,
           device: str = "cpu", *, dtype: torch.dtype = torch.float32,
           workers: int | None = None, pool_columns: int | None = None,
           block_bytes: int | None = None,
           memory_mb: float = 1024, progress: bool | None = None,
           tick: Callable[[int, int], None] | None = None,
           info: dict | None = None) -> tuple[torch.Tensor, float]:
    """Best of `restarts` Lloyd K-Means runs on x (N, D); returns (centroids, inertia).

    Each restart starts from K distinct points of x (init='random') and stops
    once an E-step changes no label (a fixed point) or after `iterations`
    E-steps. The result is the restart with the lowest inertia
    Σ_n min_k ||x_n - c_k||² (ties: the lower restart index), SPEC 5's "best
    objective on the training set". The returned centroids are that
    restart's float64 cluster means; the returned inertia is recomputed for
    them in float64 on x.

    dtype: precision of the distance matmuls (float32 by default; the
    running sums are float64 either way). workers: independent pools, one
    per core on a CPU (default: torch.get_num_threads(); 1 on a GPU); while
    they run, torch's intra-op threads are set to 1 and restored after.
    pool_columns: P·K per pool (P = restarts side by side); block_bytes: size
    of one block of distances (both defaults depend on the device);
    memory_mb: budget that caps P, counting per restart its labels (N bytes),
    sums, and the ~100·N bytes of (restart, point) pairs its first M-step
    moves. Deterministic for a given seed, device and workers.

    progress: a tqdm bar over restarts (default: on a terminal); tick(done,
    restarts) as each restart ends (a sweep's display). `info`, if given, is
    filled with run statistics (every restart's inertia and iterations, the
    best restart, ...).
    """
    t0 = time.perf_counter()
    if restarts < 1 or iterations < 1:
        raise ValueError("restarts and iterations must be >= 1")
    x64 = torch.as_tensor(_as_numpy_2d(x), device=device)
    n, d = x64.shape
    init_idx = _init_indices(n, k, restarts, seed)
    # K-Means is blind to a translation; centring keeps ||x||² small, so the
    # float32 distances and the closed-form inertia below lose no digits to
    # an offset that the (whitened) codes of SPEC 5 do not have anyway.
    offset = x64.mean(0)
    x64 = x64 - offset
    # x augmented to [x, ||x||², 1, 0…] (width padded to a multiple of 8 for
    # the matmul kernels) so that the E-step matmul yields squared distances.
    sq = (x64 * x64).sum(1)
    width = -(-(d + 2) // 8) * 8
    xa = torch.zeros(n, width, dtype=dtype, device=device)
    xa[:, :d] = x64
    xa[:, d] = sq
    xa[:, d + 1] = 1
    total_sq = float(sq.sum())

    on_cpu = x64.device.type == "cpu"
    if workers is None:
        workers = torch.get_num_threads() if on_cpu else 1
    # CPU: 640 columns (P = 64 restarts for K = 10) keep the (P·K, D)
    # centroid matrix within a core's 1 MB L2 cache, measurably faster than
    # 1,280 or 2,560; 1 MB blocks of distances suit D = 256, while narrow
    # codes (a cheap matmul per row) gain from 4x longer blocks that cut the
    # per-block overhead (measured: D = 32, 1.34 vs 1.43 ms per restart
    # iteration). A GPU wants everything at once (untested: no GPU here).
    if pool_columns is None:
        pool_columns = 640 if on_cpu else 16384
    if block_bytes is None:
        block_bytes = (1 << 20) * min(4, max(1, 256 // width)) if on_cpu else 1 << 30
    workers = max(1, min(workers, restarts))
    per_restart = 101 * n + (k + 1) * (d + 1) * 8 * 2 + k * d * 4 * 3
    slots = max(1, min(pool_columns // k, int(memory_mb * 2**20 // (workers * per_restart)),
                       -(-restarts // workers)))
    block_rows = max(64, min(n, block_bytes // (4 * slots * k)))

    inertias = np.full(restarts, np.nan)
    n_iters = np.zeros(restarts, dtype=np.int64)
    total_iters, restarts_done = [0], [0]
    if progress is None:
        progress = sys.stderr.isatty()
    bar = tqdm(total=restarts, desc=f"k-means {n}x{d} k={k}", unit="restart",
               file=sys.stderr, disable=not progress) if tqdm else None
    lock = threading.Lock()

    def on_done(rid, value, iters):
        inertias[rid], n_iters[rid] = value, iters
        with lock:
            total_iters[0] += iters
            restarts_done[0] += 1
            if bar is not None:
                bar.update(1)
            if tick is not None:
                tick(restarts_done[0], restarts)

    def work(w):
        rids = list(range(w, restarts, workers))
        pool = _Pool(xa, x64, k, min(slots, len(rids)), block_rows)
        return _run_pool(pool, rids, init_idx, iterations, total_sq, on_done)

    threads_before = torch.get_num_threads()
    try:
        if workers == 1:
            results = [work(0)]
        else:
            torch.set_num_threads(1)
            with ThreadPoolExecutor(workers) as ex:
                results = list(ex.map(work, range(workers)))
    finally:
        torch.set_num_threads(threads_before)
        if bar is not None:
            bar.close()
    value, rid, centroids = min(results, key=lambda r: r[:2])
    inertia = _objective64(x64, centroids)
    centroids = centroids + offset
    if info is not None:
        info.update(best_restart=rid, best_iterations=int(n_iters[rid]), selection_inertia=value,
                    inertias=inertias, iterations=n_iters, total_iterations=total_iters[0],
                    workers=workers, pool_size=slots, block_rows=block_rows,
                    seconds=time.perf_counter() - t0)
    return centroids, inertia


def _sq_dist64(x64: torch.Tensor, centroids64: torch.Tensor) -> torch.Tensor:
    """(N, K) squared distances in float64 via ||x||² - 2x·c + ||c||².

    In float64 the expansion loses ~1e-16 of ||x||², far below anything the
    clustering can resolve, and costs one matmul instead of an (N, K, D)
    tensor of differences.
    """
    c = centroids64.to(x64.device)
    d2 = torch.addmm((c * c).sum(1), x64, c.t(), alpha=-2.0)
    return d2.add_((x64 * x64).sum(1, keepdim=True)).clamp_min_(0)


def _objective64(x64: torch.Tensor, centroids64: torch.Tensor) -> float:
    """Σ_n min_k ||x_n - c_k||² in float64."""
    return float(_sq_dist64(x64, centroids64).min(1).values.sum())


def assign(x, centroids) -> np.ndarray:
    """Index of the nearest centroid for each row of x, in float64."""
    x64 = torch.as_tensor(_as_numpy_2d(x))
    c = torch.as_tensor(centroids).detach().to(device="cpu", dtype=torch.float64)
    return _sq_dist64(x64, c).argmin(1).numpy()


# --------------------------------------------------------------------------
# Accuracy under the best one-to-one mapping (SPEC 5, step 4)
# --------------------------------------------------------------------------
def cluster_accuracy(pred, labels, k: int) -> float:
    """Accuracy in [0, 1] of cluster ids `pred` against classes `labels`.

    Builds the (k, k) contingency table and lets the Hungarian method
    (scipy.optimize.linear_sum_assignment) pick the one-to-one cluster ->
    class mapping with the most agreements, so cluster ids are free names.
    """
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if pred.shape != labels.shape or len(pred) == 0:
        raise ValueError(f"pred {pred.shape} and labels {labels.shape} must be equal and non-empty")
    if min(pred.min(), labels.min()) < 0 or max(pred.max(), labels.max()) >= k:
        raise ValueError(f"pred and labels must lie in [0, {k})")
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (pred, labels), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum()) / len(pred)


def evaluate_clustering(train_codes, test_codes, test_labels, k: int, restarts: int = PAPER_RESTARTS,
                        iterations: int = PAPER_ITERATIONS, seed: int = 0, *, device: str = "cpu",
                        progress: bool | None = None, tick: Callable[[int, int], None] | None = None,
                        **kmeans_options) -> dict:
    """The whole SPEC 5 clustering protocol; accuracy in percent.

    Whiten with the training codes, fit K-Means on them, label each test
    code with its nearest centroid, score under the Hungarian mapping.
    Returns dict(accuracy, inertia, seconds) plus `best_restart`,
    `best_iterations` and `mean_iterations` of the K-Means run.
    """
    t0 = time.perf_counter()
    mean, projection = whiten_fit(train_codes)
    train_white = whiten_apply(train_codes, mean, projection)
    test_white = whiten_apply(test_codes, mean, projection)
    info: dict = {}
    centroids, inertia = kmeans(train_white, k, restarts=restarts, iterations=iterations,
                                seed=seed, device=device, progress=progress, tick=tick, info=info,
                                **kmeans_options)
    pred = assign(test_white, centroids)
    accuracy = 100.0 * cluster_accuracy(pred, test_labels, k)
    return dict(accuracy=accuracy, inertia=inertia, seconds=time.perf_counter() - t0,
                best_restart=info["best_restart"], best_iterations=info["best_iterations"],
                mean_iterations=float(info["iterations"].mean()))
