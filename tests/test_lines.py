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
