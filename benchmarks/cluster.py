"""Benchmark of the SPEC 5 clustering protocol (acai.measures.cluster) on synthetic codes.

Not a test: it times `evaluate_clustering` (whitening + batched K-Means with
--restarts restarts of at most 1,000 iterations + Hungarian accuracy) on
60,000 synthetic training codes of each dimension in --dims, and, when
scikit-learn is importable, times sklearn's KMeans(init='random') on the same
whitened codes with a few restarts and compares the cost per restart. It
also checks that the float32 distance matmuls choose the same inertia as
float64 ones (to ~1e-4 relative, the target) on a few restarts.

    .venv/bin/python benchmarks/cluster.py                  # 1,000 restarts, d = 256 and 32
    .venv/bin/python benchmarks/cluster.py --restarts 50 --dims 32

The synthetic codes: 10 classes with means drawn N(0, s² I_d), a point is its
class mean plus N(0, I_d) noise, then the whole set goes through a fixed
random linear map with singular values spread over e^±2 so that the
whitening has work to do. s = 0.8 · d^(-1/4) keeps the classes overlapping
(accuracy well below 100 %) at both sizes, so K-Means needs tens of
iterations, as it does on real codes, rather than converging in a handful.

Timings are wall clock on whatever else the machine runs; the JSON records
the process CPU time and the load average next to them, so a busy machine
shows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from acai.measures import cluster  # noqa: E402


def synthetic_codes(n_train: int, n_test: int, d: int, k: int = 10, seed: int = 0):
    """(train, train_labels, test, test_labels), float32 codes; see the module doc."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * (0.8 * d ** -0.25)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    mix = q * np.exp(rng.uniform(-2, 2, size=d))

    def draw(m):
        y = rng.integers(0, k, size=m)
        return ((means[y] + rng.normal(size=(m, d))) @ mix).astype(np.float32), y

    train, train_labels = draw(n_train)
    test, test_labels = draw(n_test)
    return train, train_labels, test, test_labels


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def run_ours(train, test, test_labels, k, restarts, seed):
    load0, cpu0 = _load(), time.process_time()
    result = cluster.evaluate_clustering(train, test, test_labels, k, restarts=restarts,
                                         seed=seed)
    result.update(cpu_seconds=time.process_time() - cpu0, load_before=load0, load_after=_load(),
                  seconds_per_restart=result["seconds"] / restarts)
    return result


def run_sklearn(train_white, test_white, test_labels, k, restarts, seed, tol):
    """sklearn's KMeans on the same whitened codes; None if sklearn is missing."""
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        return None
    t0, cpu0 = time.perf_counter(), time.process_time()
    km = KMeans(n_clusters=k, init="random", n_init=restarts, max_iter=1000, tol=tol,
                random_state=seed).fit(train_white.astype(np.float32))
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    accuracy = 100 * cluster.cluster_accuracy(km.predict(test_white.astype(np.float32)),
                                              test_labels, k)
    # sklearn's inertia_ is summed in the input's float32 and is off by
    # ~1e-6 relative here; score its centres in float64 as ours are.
    return dict(restarts=restarts, tol=tol, seconds=seconds, cpu_seconds=cpu,
                seconds_per_restart=seconds / restarts, inertia_sklearn=float(km.inertia_),
                inertia=exact_inertia(train_white, km.cluster_centers_),
                best_iterations=int(km.n_iter_), accuracy=accuracy)


def exact_inertia(x, centroids) -> float:
    """Σ_n min_k ||x_n - c_k||² in float64."""
    x, c = np.asarray(x, np.float64), np.asarray(centroids, np.float64)
    return float(sum(((x[s:s + 4096, None, :] - c[None]) ** 2).sum(2).min(1).sum()
                     for s in range(0, len(x), 4096)))


def precision_check(train_white, k, restarts, seed):
    """Chosen inertia with float32 vs float64 distance matmuls, same seed."""
    out = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        info = {}
        t0 = time.perf_counter()
        _, inertia = cluster.kmeans(train_white, k, restarts=restarts, seed=seed, dtype=dtype,
                                    progress=False, info=info)
        out[name] = dict(inertia=inertia, best_restart=info["best_restart"],
                         seconds=time.perf_counter() - t0)
    out["relative_difference"] = abs(out["float32"]["inertia"] - out["float64"]["inertia"]) / \
        out["float64"]["inertia"]
    out["restarts"] = restarts
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=1000)
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 32])
    parser.add_argument("--out", default="benchmarks/results/cluster.json")
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sklearn-restarts", type=int, default=10,
                        help="restarts for the scikit-learn reference (0: skip it)")
    parser.add_argument("--precision-restarts", type=int, default=10,
                        help="restarts for the float32-vs-float64 check (0: skip it)")
    args = parser.parse_args(argv)

    rows = []
    for d in args.dims:
        train, _, test, test_labels = synthetic_codes(args.n_train, args.n_test, d, args.k, args.seed)
        print(f"d={d}: batched K-Means, {args.restarts} restarts ...", file=sys.stderr)
        ours = run_ours(train, test, test_labels, args.k, args.restarts, args.seed)
        mean, projection = cluster.whiten_fit(train)
        train_white = cluster.whiten_apply(train, mean, projection)
        test_white = cluster.whiten_apply(test, mean, projection)
        reference = {}
        if args.sklearn_restarts > 0:
            # tol=0: the same stopping rule as ours (labels unchanged); tol=1e-4
            # is sklearn's default (stop when the centres move less than that).
            for tol in (0.0, 1e-4):
                print(f"d={d}: scikit-learn, {args.sklearn_restarts} restarts, tol={tol} ...",
                      file=sys.stderr)
                reference[str(tol)] = run_sklearn(train_white, test_white, test_labels, args.k,
                                                  args.sklearn_restarts, args.seed, tol)
        precision = None
        if args.precision_restarts > 0:
            print(f"d={d}: float32 vs float64, {args.precision_restarts} restarts ...", file=sys.stderr)
            precision = precision_check(train_white, args.k, args.precision_restarts, args.seed)
        rows.append(dict(d=d, n_train=args.n_train, n_test=args.n_test, k=args.k,
                         restarts=args.restarts, ours=ours, sklearn=reference,
                         precision=precision))

    header = (f"{'d':>4} {'restarts':>8} {'seconds':>8} {'s/restart':>9} {'acc %':>6} "
              f"{'mean it':>7} {'inertia':>11} {'sk s/restart':>12} {'sk acc %':>8} "
              f"{'sk inertia':>11} {'ratio':>6} {'f32-f64':>8}")
    print(header)
    for row in rows:
        ours = row["ours"]
        sk = row["sklearn"].get("0.0") if row["sklearn"] else None
        ratio = sk["seconds_per_restart"] / ours["seconds_per_restart"] if sk else float("nan")
        prec = row["precision"]["relative_difference"] if row["precision"] else float("nan")
        print(f"{row['d']:>4} {row['restarts']:>8} {ours['seconds']:>8.1f} "
              f"{ours['seconds_per_restart']:>9.4f} {ours['accuracy']:>6.2f} "
              f"{ours['mean_iterations']:>7.1f} {ours['inertia']:>11.6f} "
              f"{(sk['seconds_per_restart'] if sk else float('nan')):>12.3f} "
              f"{(sk['accuracy'] if sk else float('nan')):>8.2f} "
              f"{(sk['inertia'] if sk else float('nan')):>11.6f} {ratio:>6.1f} {prec:>8.1e}")
        row["speedup_per_restart_vs_sklearn_tol0"] = ratio
    if any(row["sklearn"] for row in rows):
        print("sk = scikit-learn KMeans(init='random', tol=0: the same stopping rule) on "
              "--sklearn-restarts restarts; ratio = its seconds per restart / ours; "
              "inertias in float64")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(torch=torch.__version__, numpy=np.__version__, python=platform.python_version(),
               machine=platform.machine(), cpus=os.cpu_count(), torch_threads=torch.get_num_threads(),
               command=" ".join([Path(sys.executable).name, *sys.argv]))
    try:
        import sklearn
        env["sklearn"] = sklearn.__version__
    except ImportError:
        env["sklearn"] = None
    out.write_text(json.dumps(dict(environment=env, results=rows), indent=2,
                              default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
