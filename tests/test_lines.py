import math

import numpy as np
import pytest
import torch

from acai import lines


def spec_render(angle, size=32, t=2.0):
    """SPEC 1 written out one image at a time, with the release's int() truncation."""
    m = np.zeros((size, size))
    x0 = y0 = size / 2
    x1, y1 = x0 + (x0 - 1) * math.cos(-angle), y0 + (y0 - 1) * math.sin(-angle)
    flip = abs(y0 - y1) < abs(x0 - x1)
    if flip:
        x0, x1, y0, y1 = y0, y1, x0, x1
    if y1 < y0:
        x0, x1, y0, y1 = x1, x0, y1, y0
    x0, x1 = x0 - t / 2, x1 - t / 2
    s = (x1 - x0) / (y1 - y0) if y1 != y0 else 0
    for y in range(int(y0), math.ceil(y1)):
        w = math.ceil(y0) - y0 if y < math.ceil(y0) else (y1 - int(y1) if y > int(y1) else 1)
        xs = x0 + (y - y0 - 0.5) * s
        xe = xs + t
        cells = [(x, w) for x in range(math.ceil(xs), int(xe))]
        if math.ceil(xs) != xs:
            cells.append((int(xs), w * (math.ceil(xs) - xs)))
        if int(xe) != xe:
            cells.append((int(xe), w * (xe - int(xe))))
        for x, v in cells:
            m[(x, y) if flip else (y, x)] += 2 * v
    return np.clip(m - 1, -1, 1)


def test_render_matches_reference(reference):
    images = lines.render(reference["angles"])
    assert images.shape == (64, 32, 32) and images.dtype == np.float32
    np.testing.assert_allclose(images, reference["images"], atol=1e-6, rtol=0)


def test_render_matches_spec_on_random_angles():
    angles = np.concatenate([np.random.default_rng(1).uniform(0, 2 * np.pi, 500), np.arange(16) * np.pi / 8])
    expected = np.stack([spec_render(a) for a in angles])
    np.testing.assert_allclose(lines.render(angles), expected, atol=1e-6, rtol=0)


def test_render_range_and_ink():
    images = lines.render(np.linspace(0, 2 * np.pi, 50, endpoint=False))
    assert images.min() == -1 and images.max() == 1
    ink = (images + 1).sum(axis=(1, 2)) / 2  # the line's area: about length 15 x width 2, less where it leaves the canvas
    assert np.all((ink > 20) & (ink < 32))


def test_labels_are_ten_angle_bins():
    angles = np.array([0.0, 0.62, 0.63, np.pi - 0.01, 2 * np.pi - 1e-5])
    np.testing.assert_array_equal(lines.angle_labels(angles), [0, 0, 1, 4, 9])


@pytest.mark.parametrize("case", ["perfect", "data_space", "abrupt", "long_way", "noisy_path", "random"])
def test_evaluate_matches_reference(reference, case):
    mean_distance, smoothness = lines.evaluate(reference[f"interp_{case}"])
    expected = reference[f"expect_{case}"]
    assert mean_distance == pytest.approx(expected[0], abs=1e-6)
    assert smoothness == pytest.approx(expected[1], abs=1e-4)


def test_perfect_interpolation_scores_near_zero():
    angles = np.linspace(0.5, 2.0, 16)
    interp = lines.render(angles)[None]  # one pair, 16 steps
    mean_distance, smoothness = lines.evaluate(interp)
    assert mean_distance < 1e-6
    assert smoothness < 0.01


def test_nan_rule_counts_undefined_pairs_in_denominator():
    constant = np.repeat(lines.render([1.0]), 16, axis=0)  # start = end: smoothness undefined
    moving = lines.render(np.concatenate([np.full(8, 1.0), np.full(8, 2.0)]))  # one jump: 1 - 1/15
    _, both = lines.evaluate(np.stack([constant, moving]))
    assert both == pytest.approx((1 - 1 / 15) / 2, abs=1e-4)
    _, only_undefined = lines.evaluate(constant[None])
    assert math.isnan(only_undefined)


def test_smoothness_unwraps_across_zero():
    # 6.0 rad -> 0.3 rad the short way across 2π is a smooth path, not a jump.
    angles = np.unwrap(np.linspace(6.0, 6.0 + 0.58, 16)) % (2 * np.pi)
    scores = lines.smoothness_scores(angles[None])
    assert scores[0] == pytest.approx(0.0, abs=1e-9)


def test_evaluate_rejects_wrong_shape():
    with pytest.raises(ValueError, match="pairs, steps, 32, 32"):
        lines.evaluate(np.zeros((4, 32, 32)))


def test_source_is_deterministic_per_seed_and_step():
    source = lines.LinesSource()
    x1, y1 = source.train_batch(seed=3, step=7, batch_size=16)
    x2, y2 = source.train_batch(seed=3, step=7, batch_size=16)
    x3, _ = source.train_batch(seed=3, step=8, batch_size=16)
    assert x1.shape == (16, 1, 32, 32) and y1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)


def test_interpolate_codes_endpoints():
    a, b = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    path = lines.interpolate_codes(a, b, 16)
    assert path.shape == (3, 16, 4, 2, 2)
    torch.testing.assert_close(path[:, 0], a)
    torch.testing.assert_close(path[:, -1], b)
    torch.testing.assert_close(path[:, 5], a + (b - a) * 5 / 15)


# --- nearest_references: the certified search must equal brute-force float64 ---

def brute_force_nearest(images, refs):
    """float64 cosine against every reference, first index on ties (the release's cdist + argmin)."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    r = np.asarray(refs, dtype=np.float64).reshape(len(refs), -1)
    cosine = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (r / np.linalg.norm(r, axis=1, keepdims=True)).T
    index = cosine.argmax(axis=1)
    return 1.0 - cosine[np.arange(len(x)), index], index


def lines_with_noise(rng, count, noise):
    images = lines.render(rng.uniform(0, 2 * np.pi, count))
    return np.clip(images + rng.normal(0, noise, images.shape), -1, 1).astype(np.float32)


def blurred_lines(rng, count):
    """Decoder-like blurry images: the mean of 2-300 lines, some noise; near the mean image."""
    means = [lines.render(rng.uniform(0, 2 * np.pi, rng.integers(2, 300))).mean(axis=0) for _ in range(count)]
    return np.clip(np.stack(means) + rng.normal(0, 0.05, (count, 32, 32)), -1, 1).astype(np.float32)


INPUTS = {
    "noisy_lines": lambda rng, ref: lines_with_noise(rng, 512, 0.2),
    "very_noisy_lines": lambda rng, ref: lines_with_noise(rng, 256, 0.6),
    "blurred": lambda rng, ref: blurred_lines(rng, 256),
    "exact_references": lambda rng, ref: lines.render(lines.reference_angles()[rng.integers(0, 10_000, 256)]),
    "uniform_noise": lambda rng, ref: rng.uniform(-1, 1, (64, 32, 32)).astype(np.float32),
    "reference_random": lambda rng, ref: ref["interp_random"].reshape(-1, 32, 32),
    "reference_noisy_path": lambda rng, ref: ref["interp_noisy_path"].reshape(-1, 32, 32),
    "reference_data_space": lambda rng, ref: ref["interp_data_space"].reshape(-1, 32, 32),
}


@pytest.mark.parametrize("case", sorted(INPUTS))
def test_nearest_references_equal_brute_force(reference, case):
    images = INPUTS[case](np.random.default_rng(7), reference)
    distance, index = lines.nearest_references(images)
    expected_distance, expected_index = brute_force_nearest(images, lines.render(lines.reference_angles()))
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_allclose(distance, expected_distance, atol=1e-12, rtol=0)


def test_nearest_references_rarely_fall_back_on_realistic_inputs():
    rng = np.random.default_rng(3)
    search = lines._reference_index()
    for images in (lines_with_noise(rng, 256, 0.2), blurred_lines(rng, 64)):
        *_, fell_back = search.nearest(torch.from_numpy(images.reshape(len(images), -1)).double())
        assert fell_back.double().mean() < 0.01


@pytest.mark.parametrize("copies", [3, 16])  # 16 x 16 references: also the N % 16 == 0 fast paths
def test_duplicate_references_first_index_wins(copies):
    rng = np.random.default_rng(5)
    angles = np.repeat(rng.uniform(0, 2 * np.pi, 16), copies)  # each line `copies` times
    order = rng.permutation(len(angles))
    refs = lines.render(angles[order]).reshape(len(angles), -1)
    images = np.concatenate([refs[:40], lines_with_noise(rng, 40, 0.3).reshape(40, -1)])
    for max_candidates in (1024, 0):  # 0: every query takes the float64 fallback
        search = lines._ReferenceIndex(torch.from_numpy(refs), basis_dim=8, max_candidates=max_candidates)
        cosine, index, fell_back = search.nearest(torch.from_numpy(images).double())
        expected_distance, expected_index = brute_force_nearest(images, refs)
        np.testing.assert_array_equal(index.numpy(), expected_index)
        np.testing.assert_allclose(1 - cosine.numpy(), expected_distance, atol=1e-12, rtol=0)
        assert bool(fell_back.all()) == (max_candidates == 0)
        first_copy = {tuple(r): i for i, r in reversed(list(enumerate(refs)))}  # lowest index per image
        assert all(first_copy[tuple(refs[i])] == i for i in index.numpy())


def test_nearest_references_with_reduced_precision_matmul(reference):
    images = reference["interp_noisy_path"].reshape(-1, 32, 32)[:64]
    expected = lines.nearest_references(images)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # bf16 products: the search must bound in float64
    try:
        got = lines.nearest_references(images)
    finally:
        torch.set_float32_matmul_precision(previous)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])


def test_nearest_references_blank_and_non_finite_images():
    images = lines.render([0.5, 0.5, 0.5])
    images[1] = 0
    images[2, 0, 0] = np.nan
    distance, index = lines.nearest_references(images)
    assert distance[0] < 1e-3 and distance[1] == 1.0 and np.isnan(distance[2])
    assert index[1] == 0 and index[2] == 0


# --- spherical interpolation (the release's slerp grid) ---------------------------

def release_slerp(a, b, steps):
    """The release's slerp formula (lib/train.py) written out in NumPy for one pair of flattened codes."""
    omega = np.arccos(a @ b / np.sqrt((a @ a) * (b @ b)))
    return np.stack([np.sin((1 - t) * omega) / np.sin(omega) * a + np.sin(t * omega) / np.sin(omega) * b
                     for t in np.arange(steps) / (steps - 1)])


def test_slerp_matches_the_release_formula_and_keeps_shapes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g) * 3
    path = lines.slerp_codes(a, b, 7)
    assert path.shape == (3, 7, 4, 2, 2) and path.dtype == a.dtype
    for p in range(3):
        expected = release_slerp(a[p].flatten().double().numpy(), b[p].flatten().double().numpy(), 7)
        np.testing.assert_allclose(path[p].flatten(1).numpy(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(path[:, 0], a)  # from a ...
    torch.testing.assert_close(path[:, -1], b)  # ... to b


def test_slerp_stays_on_the_sphere_between_unit_codes():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 64, generator=g), torch.randn(5, 64, generator=g)
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    norms = lines.slerp_codes(a, b, 16).norm(dim=2)
    torch.testing.assert_close(norms, torch.ones(5, 16))
    # linear mixtures cut through the ball instead
    assert lines.interpolate_codes(a, b, 16).norm(dim=2)[:, 8].max() < 0.9
    # orthogonal unit codes: the midpoint is (a + b) / sqrt(2), not (a + b) / 2
    e = torch.eye(2)
    torch.testing.assert_close(lines.slerp_codes(e[:1], e[1:], 3)[0, 1], torch.tensor([1.0, 1.0]) / math.sqrt(2))


def test_slerp_is_linear_where_the_release_divides_by_zero():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(2, 8, generator=g)
    # identical (and parallel) codes: the formula is 0/0; its limit, the linear path, is used
    for b in (a.clone(), 2.5 * a):
        path = lines.slerp_codes(a, b, 5)
        assert torch.isfinite(path).all()
        torch.testing.assert_close(path, lines.interpolate_codes(a, b, 5))
    # a zero code has no direction: linear too
    zero = torch.zeros(2, 8)
    torch.testing.assert_close(lines.slerp_codes(zero, a, 5), lines.interpolate_codes(zero, a, 5))
    # opposite codes: no great circle is defined; linear (through 0) is the documented choice
    torch.testing.assert_close(lines.slerp_codes(a, -a, 5), lines.interpolate_codes(a, -a, 5))
