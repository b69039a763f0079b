"""The SPEC 5 clustering metric: whitening, batched K-Means, Hungarian accuracy."""
import numpy as np
import pytest
import torch

from acai.measures import cluster


def blobs(n_per=200, d=5, k=4, spread=0.3, seed=0):
    """k well-separated Gaussian blobs (centres 10 apart, noise `spread`)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 10
    labels = np.repeat(np.arange(k), n_per)
    x = centres[labels] + rng.normal(size=(len(labels), d)) * spread
    order = rng.permutation(len(labels))
    return x[order], labels[order]


def brute_inertia(x, centroids):
    x, c = np.asarray(x, np.float64), np.asarray(centroids, np.float64)
    return ((x[:, None, :] - c[None]) ** 2).sum(2).min(1).sum()


def lloyd_reference(x, init_rows, iterations):
    """Plain float64 Lloyd with the same conventions as cluster.kmeans:
    stop when an E-step changes no label or after `iterations` E-steps; the
    score is that E-step's objective; an empty cluster keeps its centroid."""
    c = x[init_rows].copy()
    labels = None
    for it in range(1, iterations + 1):
        dist = ((x[:, None, :] - c[None]) ** 2).sum(2)
        new = dist.argmin(1)
        value = dist.min(1).sum()
        if (labels is not None and (new == labels).all()) or it == iterations:
            return value, it
        labels = new
        for j in range(len(c)):
            if (labels == j).any():
                c[j] = x[labels == j].mean(0)


# ---------------------------------------------------------------- accuracy
def test_accuracy_relabelled_clusters_is_perfect():
    assert cluster.cluster_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 2, 2, 0, 0], 3) == 1.0


def test_accuracy_partial_cases():
    # cluster 0 = {class 0, class 0, class 1}, cluster 1 = {class 1} x3: 5 of 6
    assert cluster.cluster_accuracy([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1], 2) == pytest.approx(5 / 6)
    # one cluster for two balanced classes: half
    assert cluster.cluster_accuracy([0, 0, 0, 0], [0, 1, 0, 1], 2) == 0.5
    # contingency [[3, 2], [3, 0]]: greedy (0->0) gets 3, the Hungarian
    # mapping (0->1, 1->0) gets 2 + 3 = 5 of 8
    pred = [0, 0, 0, 0, 0, 1, 1, 1]
    labels = [0, 0, 0, 1, 1, 0, 0, 0]
    assert cluster.cluster_accuracy(pred, labels, 2) == pytest.approx(5 / 8)


def test_accuracy_rejects_bad_input():
    with pytest.raises(ValueError):
        cluster.cluster_accuracy([0, 1], [0], 2)
    with pytest.raises(ValueError):
        cluster.cluster_accuracy([0, 2], [0, 1], 2)


# --------------------------------------------------------------- whitening
def test_whitening_gives_orthonormal_training_codes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8)) @ (rng.normal(size=(8, 8)) * np.exp(rng.uniform(-2, 2, 8))) + 3
    mean, projection = cluster.whiten_fit(x)
    w = cluster.whiten_apply(x, mean, projection)
    assert np.abs(w.mean(0)).max() < 1e-12
    # divided by S (not S / sqrt(N)): Σ_n w wᵀ = I, the covariance is I / N
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-4)
    # the same affine map applies to other codes, any input shape / type
    y = torch.as_tensor(rng.normal(size=(5, 2, 4)))
    np.testing.assert_allclose(cluster.whiten_apply(y, mean, projection),
                               (y.reshape(5, 8).numpy() - mean) @ projection)


# ------------------------------------------------------------------ kmeans
def test_kmeans_finds_hand_computed_optimum():
    x = np.array([[0.0], [1.0], [10.0], [11.0], [20.0], [21.0]])
    centroids, inertia = cluster.kmeans(x, 3, restarts=20, iterations=50, seed=0)
    assert inertia == pytest.approx(6 * 0.25)
    np.testing.assert_allclose(np.sort(centroids.numpy().ravel()), [0.5, 10.5, 20.5])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kmeans_matches_plain_lloyd_restart_by_restart(dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6))
    k, restarts, iterations = 5, 6, 100
    info = {}
    centroids, inertia = cluster.kmeans(x, k, restarts=restarts, iterations=iterations, seed=3,
                                        dtype=dtype, info=info)
    init = cluster._init_indices(len(x), k, restarts, 3)
    for r in range(restarts):
        value, its = lloyd_reference(x, init[r], iterations)
        assert info["iterations"][r] == its
        assert info["inertias"][r] == pytest.approx(value, rel=1e-9)
    best = int(np.argmin(info["inertias"]))
    assert info["best_restart"] == best
    # the returned inertia is that of the returned centroids, computed afresh
    assert inertia == pytest.approx(brute_inertia(x, centroids), rel=1e-12)
    assert inertia == pytest.approx(info["inertias"][best], rel=1e-9)


def test_kmeans_iteration_cap_scores_last_centroids():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3))
    info = {}
    cluster.kmeans(x, 4, restarts=3, iterations=1, seed=0, info=info)
    init = cluster._init_indices(len(x), 4, 3, 0)
    assert (info["iterations"] == 1).all()
    for r in range(3):  # one E-step: the objective of the initial points
        assert info["inertias"][r] == pytest.approx(brute_inertia(x, x[init[r]]), rel=1e-9)


def test_kmeans_survives_duplicate_points_and_empty_clusters():
    # 6 copies of one point and 2 others: an init may pick two identical
    # points, whose clusters then tie; one of them stays empty.
    x = np.array([[0.0, 0.0]] * 6 + [[5.0, 0.0], [0.0, 5.0]])
    centroids, inertia = cluster.kmeans(x, 3, restarts=10, iterations=20, seed=0)
    assert inertia == pytest.approx(brute_inertia(x, centroids), abs=1e-12)
    assert inertia == pytest.approx(0.0, abs=1e-12)


def test_kmeans_is_deterministic():
    x, _ = blobs(n_per=150, d=4, k=3, spread=2.0, seed=5)
    a = cluster.kmeans(x, 3, restarts=12, iterations=100, seed=7)
    b = cluster.kmeans(x, 3, restarts=12, iterations=100, seed=7)
    assert a[1] == b[1]
    assert torch.equal(a[0], b[0])


def test_more_restarts_never_worse():
    # Restart i's init depends only on (seed, i), so a longer run contains
    # the shorter one's restarts (same results up to float rounding).
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 5))
    short, long_ = {}, {}
    cluster.kmeans(x, 6, restarts=4, iterations=200, seed=11, info=short)
    cluster.kmeans(x, 6, restarts=16, iterations=200, seed=11, info=long_)
    np.testing.assert_allclose(long_["inertias"][:4], short["inertias"], rtol=1e-9)
    assert long_["selection_inertia"] <= short["selection_inertia"] * (1 + 1e-12)


def test_kmeans_workers_agree():
    x, _ = blobs(n_per=100, d=3, k=3, spread=1.0, seed=8)
    one, two = {}, {}
    c1, i1 = cluster.kmeans(x, 3, restarts=6, iterations=100, seed=2, workers=1, info=one)
    c2, i2 = cluster.kmeans(x, 3, restarts=6, iterations=100, seed=2, workers=2, info=two)
    np.testing.assert_allclose(one["inertias"], two["inertias"], rtol=1e-9)
    assert i1 == pytest.approx(i2, rel=1e-12)


# --------------------------------------------------------------- protocol
def test_evaluate_clustering_on_blobs():
    x, y = blobs(n_per=250, d=6, k=4, seed=0)
    train, test = x[:600], x[600:]
    result = cluster.evaluate_clustering(train, test, y[600:], 4, restarts=8, iterations=100)
    assert result["accuracy"] == pytest.approx(100.0)
    assert result["inertia"] > 0 and result["seconds"] > 0
    # class ids are arbitrary names: relabelling them changes nothing
    perm = np.array([2, 0, 3, 1])
    again = cluster.evaluate_clustering(train, test, perm[y[600:]], 4, restarts=8, iterations=100)
    assert again["accuracy"] == result["accuracy"]
    assert again["inertia"] == result["inertia"]
