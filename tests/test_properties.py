"""Property-based tests (hypothesis): the hyper-parameter parser and the lines metrics."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acai import lines
from acai.training.config import TrainConfig
from acai.core.models import MODELS, ConfigError, make_hparams
from acai.core.models.hparams import _parse_bool, _parse_float, _parse_int, _parse_int_tuple, declared

# derandomize: the same examples on every run, so CI never meets a new one by chance.
FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
PARAMS = [(model, name) for model in MODELS for name in declared(MODELS[model].Hparams)]


def bounds_of(spec):
    _, bounds, _ = spec
    low = bounds.ge if bounds.ge is not None else bounds.gt
    high = bounds.le if bounds.le is not None else bounds.lt
    return bounds, low, high


def valid_values(spec):
    """Values of the declared type inside the declared range."""
    kind, _, _ = spec
    bounds, low, high = bounds_of(spec)
    if kind.parse is _parse_bool:
        values = st.booleans()
    elif kind.parse is _parse_float:
        values = st.floats(min_value=low, max_value=high if high is not None else 1e12, allow_nan=False,
                           allow_infinity=False, exclude_min=bounds.gt is not None, exclude_max=bounds.lt is not None)
    else:
        integers = st.integers(min_value=int(low) if low is not None else -10**6,
                               max_value=int(high) if high is not None else 10**6)
        values = st.lists(integers, max_size=4).map(tuple) if kind.parse is _parse_int_tuple else integers
    return st.none() | values if kind.optional else values


def as_text(value, draw):
    """How a user might type `value` on the command line."""
    if value is None:
        return draw(st.sampled_from(["none", "None", "null"]))
    if isinstance(value, bool):
        return draw(st.sampled_from([["false", "False", "0"], ["true", "TRUE", "1"]][value]))
    if isinstance(value, tuple):
        body = ",".join(str(v) for v in value) + ("," if len(value) == 1 and draw(st.booleans()) else "")
        return draw(st.sampled_from([body, f"({body})", f"[{body}]"]))
    return repr(value) if isinstance(value, float) else str(value)


@FAST
@given(st.sampled_from(PARAMS), st.data())
def test_valid_values_round_trip_through_text_and_config(param, data):
    model, name = param
    spec = declared(MODELS[model].Hparams)[name]
    value = data.draw(valid_values(spec))
    text = as_text(value, data.draw)
    assert getattr(make_hparams(model, {name: text}), name) == value
    # A config keeps the parsed value, and reading it back (JSON turns tuples into lists) gives the same config.
    config = TrainConfig(model=model, hparams={name: text})
    assert config.hparams == {name: value}
    stored = {name: list(value) if isinstance(value, tuple) else value}
    assert TrainConfig.from_dict({**config.to_dict(), "hparams": stored}) == config


@FAST
@given(st.sampled_from(PARAMS), st.one_of(st.text(max_size=12), st.floats(), st.integers(), st.booleans(),
                                          st.none(), st.lists(st.integers(-3, 3), max_size=3)))
def test_any_value_is_parsed_or_a_one_line_config_error(param, value):
    model, name = param
    spec = declared(MODELS[model].Hparams)[name]
    try:
        parsed = getattr(make_hparams(model, {name: value}), name)
    except ConfigError as error:  # never another exception
        assert "\n" not in str(error) and name in str(error) and "must be" in str(error)
        return
    bounds, _, _ = bounds_of(spec)
    numbers = () if parsed is None or isinstance(parsed, bool) else parsed if isinstance(parsed, tuple) else (parsed,)
    assert all(isinstance(n, (int, float)) and math.isfinite(n) and n in bounds for n in numbers)


def outside_values(spec):
    """Numbers of the declared kind outside the declared range, and what is never a number of it."""
    kind, _, default = spec
    bounds, low, high = bounds_of(spec)
    integer = kind.parse in (_parse_int, _parse_int_tuple) or isinstance(default, int)
    gap = st.integers(0, 10**6) if integer else st.floats(0, 1e6, allow_nan=False)
    outside = [st.sampled_from(["1.5", "x", "1e3"] if integer else ["nan", "inf", "-inf", "x"])]
    if low is not None:  # ge: anything below low; gt: low itself too
        outside.append(gap.map(lambda d: low - d - (1 if integer else 1e-9) * (bounds.ge is not None)))
    if high is not None:
        outside.append(gap.map(lambda d: high + d + (1 if integer else 1e-9) * (bounds.le is not None)))
    return st.one_of(outside)


NUMERIC = [p for p in PARAMS if declared(MODELS[p[0]].Hparams)[p[1]][0].numeric]


@FAST
@given(st.sampled_from(NUMERIC), st.data())
def test_out_of_range_and_non_finite_numbers_are_rejected(param, data):
    model, name = param
    spec = declared(MODELS[model].Hparams)[name]
    value = data.draw(outside_values(spec))
    text = f"(1,{value})" if spec[0].parse is _parse_int_tuple else str(value)
    with pytest.raises(ConfigError, match=f"{name}=.* is not allowed: {name} must be"):
        make_hparams(model, {name: text})


@pytest.mark.parametrize("text", ["yes", "maybe", "2", "", "tru"])
def test_bool_accepts_true_false_1_0_only(text):
    with pytest.raises(ConfigError, match="interpolate_mean"):
        make_hparams("vae", {"interpolate_mean": text})


# ---- lines metrics -------------------------------------------------------------------------------------------

def noisy_lines(angles, noise, seed):
    images = lines.render(angles).astype(np.float64)
    return images + noise * np.random.default_rng(seed).standard_normal(images.shape)


@FAST
@given(st.lists(st.floats(0, 2 * np.pi, exclude_max=True), min_size=1, max_size=6),
       st.floats(1e-3, 1e3), st.floats(0, 0.3), st.integers(0, 2**31))
def test_nearest_reference_is_invariant_to_scaling_an_image(angles, factor, noise, seed):
    images = noisy_lines(angles, noise, seed)
    distance, index = lines.nearest_references(images)
    scaled_distance, scaled_index = lines.nearest_references(factor * images)
    np.testing.assert_array_equal(scaled_index, index)
    np.testing.assert_allclose(scaled_distance, distance, rtol=0, atol=1e-9)


@FAST
@given(st.integers(2, 5), st.integers(2, 5), st.floats(0, 0.3), st.integers(0, 2**31), st.randoms())
def test_per_interpolation_results_are_invariant_to_permuting_the_batch(pairs, steps, noise, seed, random):
    rng = np.random.default_rng(seed)
    # Some interpolations start and end on the same line (undefined), the others move.
    starts = rng.uniform(0, 2 * np.pi, pairs)
    ends = np.where(rng.random(pairs) < 0.3, starts, rng.uniform(0, 2 * np.pi, pairs))
    angles = starts[:, None] + (ends - starts)[:, None] * np.linspace(0, 1, steps)
    images = noisy_lines(angles.ravel(), noise, seed).reshape(pairs, steps, 32, 32)
    order = list(range(pairs))
    random.shuffle(order)
    distance, index = lines.nearest_references(images.reshape(pairs * steps, -1))
    p_distance, p_index = lines.nearest_references(images[order].reshape(pairs * steps, -1))
    np.testing.assert_array_equal(p_index.reshape(pairs, steps), index.reshape(pairs, steps)[order])
    np.testing.assert_array_equal(p_distance.reshape(pairs, steps), distance.reshape(pairs, steps)[order])
    scores = lines.smoothness_scores(lines.reference_angles()[index].reshape(pairs, steps))
    p_scores = lines.smoothness_scores(lines.reference_angles()[p_index].reshape(pairs, steps))
    np.testing.assert_array_equal(p_scores, scores[order])
    mean_distance, smoothness = lines.evaluate(images)
    p_mean_distance, p_smoothness = lines.evaluate(images[order])
    assert p_mean_distance == pytest.approx(mean_distance, rel=1e-12)
    assert p_smoothness == pytest.approx(smoothness, rel=1e-12, nan_ok=True)


@FAST
@given(st.lists(st.tuples(st.integers(0, 9_999), st.booleans(), st.integers(50, 4_000), st.booleans()),
                min_size=1, max_size=5), st.integers(2, 6))
def test_smoothness_nan_rule(rows, steps):
    """An interpolation whose start and end map to the same reference (without a full turn in between)
    is undefined; Smoothness is the sum of the defined scores over ALL pairs, NaN only if none is defined."""
    index = []
    for start, same, span, backwards in rows:
        end = start if same else start + (-span if backwards else span)
        # Steps between the ends: the short way, so the unwrapped angles never turn round.
        index.append(np.round(np.linspace(start, end, steps)).astype(int) % lines.NUM_REFERENCES)
    index = np.array(index)
    images = lines.render(lines.reference_angles()[index.ravel()]).reshape(len(rows), steps, 32, 32)
    _, nearest = lines.nearest_references(images.reshape(len(rows) * steps, -1))
    nearest = nearest.reshape(len(rows), steps)
    same = np.array([s for _, s, _, _ in rows])
    np.testing.assert_array_equal(nearest[:, 0] == nearest[:, -1], same)  # the references the ends map to
    scores = lines.smoothness_scores(lines.reference_angles()[nearest])
    np.testing.assert_array_equal(np.isnan(scores), same)
    _, smoothness = lines.evaluate(images)
    if same.all():
        assert math.isnan(smoothness)
    else:
        assert smoothness == pytest.approx(np.nansum(scores) / len(rows), rel=1e-12)
