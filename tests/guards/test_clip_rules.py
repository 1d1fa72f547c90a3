"""The clipping rules against independent NumPy (and torch/timm-layout) references."""

import guard_oracles as oracles
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lr import guards

# Keras layouts: Dense (in, out), Conv2D (h, w, in, out), LSTM kernel (in, 4u), recurrent
# (u, 4u), bias (4u,), GRU reset_after bias (2, 3u), a scalar.
SHAPES = [(5, 7), (3, 3, 4, 6), (6, 16), (4, 16), (16,), (2, 12), ()]


def _random(shape, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype("float32")


def _clip(rule, grads, params):
    variables = [keras.Variable(p) for p in params]
    tensors = [keras.ops.convert_to_tensor(g) for g in grads]
    norm = guards.global_norm(tensors)
    out, clipped = rule.clip(tensors, variables, norm)
    return [keras.ops.convert_to_numpy(g) for g in out], bool(keras.ops.convert_to_numpy(clipped))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("clip_factor", [0.01, 0.3])
def test_agc_matches_numpy_reference(shape, clip_factor):
    param = _random(shape, 0)
    grad = _random(shape, 1, scale=0.05)
    (out,), clipped = _clip(guards.AdaptiveClip(clip_factor), [grad], [param])
    expected = oracles.agc(grad, param, clip_factor)
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=1e-7)
    assert clipped == bool(np.any(oracles.unitwise_norm(grad)
                                  >= np.maximum(oracles.unitwise_norm(param), 1e-3)
                                  * clip_factor))


@pytest.mark.torch
@pytest.mark.parametrize("shape", [(5, 7), (3, 3, 4, 6), (6, 16), (16,)], ids=str)
def test_agc_matches_timm_formula_in_torch_layout(shape):
    pytest.importorskip("torch")
    param = _random(shape, 2)
    grad = _random(shape, 3, scale=0.05)
    (out,), _ = _clip(guards.AdaptiveClip(0.02), [grad], [param])
    np.testing.assert_allclose(out, oracles.agc_torch_layout(grad, param, 0.02),
                               rtol=2e-5, atol=1e-7)


def test_agc_reduces_over_all_axes_but_last():
    # One output unit with a huge gradient is clipped; the others are untouched.
    param = np.ones((4, 3), "float32")
    grad = np.full((4, 3), 1e-3, "float32")
    grad[:, 1] = 10.0
    (out,), clipped = _clip(guards.AdaptiveClip(0.01), [grad], [param])
    assert clipped
    np.testing.assert_array_equal(out[:, [0, 2]], grad[:, [0, 2]])
    np.testing.assert_allclose(np.linalg.norm(out[:, 1]), 0.01 * 2.0, rtol=1e-5)


def test_agc_zero_bias_uses_eps():
    param = np.zeros((8,), "float32")
    grad = np.ones((8,), "float32")
    (out,), _ = _clip(guards.AdaptiveClip(0.1, eps=1e-3), [grad], [param])
    np.testing.assert_allclose(np.linalg.norm(out), 1e-4, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 20.0))
def test_global_norm_matches_reference(seed, max_norm):
    grads = [_random(s, seed + i) for i, s in enumerate([(3, 4), (4,), (2, 2, 3)])]
    out, clipped = _clip(guards.GlobalNorm(max_norm), grads, grads)
    for a, b in zip(out, oracles.clip_global(grads, max_norm), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)
    assert clipped == (oracles.global_norm(grads) > max_norm)


def test_value_clip():
    grads = [np.array([-3.0, 0.5, 2.0], "float32")]
    (out,), clipped = _clip(guards.ValueClip(1.0), grads, grads)
    np.testing.assert_array_equal(out, [-1.0, 0.5, 1.0])
    assert clipped
    (_,), clipped = _clip(guards.ValueClip(5.0), grads, grads)
    assert not clipped


def test_per_layer_norm_groups_by_layer_path():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    variables = model.trainable_variables
    grads = [keras.ops.convert_to_tensor(_random(tuple(v.shape), i) * 10)
             for i, v in enumerate(variables)]
    out, clipped = guards.PerLayerNorm(1.0).clip(grads, variables, None)
    assert bool(clipped)
    out = [keras.ops.convert_to_numpy(g) for g in out]
    grads = [keras.ops.convert_to_numpy(g) for g in grads]
    for layer in (slice(0, 2), slice(2, 4)):
        expected = oracles.clip_global(grads[layer], 1.0)
        for a, b in zip(out[layer], expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5)
        assert oracles.global_norm(out[layer]) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("percentile,history", [(10, 1000), (50, 4), (100, 3), (0.5, 7)])
def test_autoclip_matches_reference_over_steps(percentile, history):
    rule = guards.AutoClip(percentile, history)
    optimizer = keras.optimizers.SGD()
    rule.build(optimizer, [])
    reference = oracles.AutoClipRef(percentile, history)
    rng = np.random.default_rng(0)
    for step in range(12):
        grads = [(rng.standard_normal(s) * rng.uniform(0.1, 10)).astype("float32")
                 for s in [(4, 3), (3,)]]
        out, _ = _clip(rule, grads, grads)
        expected, threshold = reference(grads)
        assert float(keras.ops.convert_to_numpy(rule.threshold())) == pytest.approx(
            threshold, rel=1e-5)
        for a, b in zip(out, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7, err_msg=f"step {step}")


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: guards.GlobalNorm(0), "max_norm"),
        (lambda: guards.GlobalNorm(-1.0), "max_norm"),
        (lambda: guards.ValueClip(0.0), "limit"),
        (lambda: guards.PerLayerNorm(float("nan")), "max_norm"),
        (lambda: guards.AdaptiveClip(clip_factor=0), "clip_factor"),
        (lambda: guards.AdaptiveClip(eps=-1e-3), "eps"),
        (lambda: guards.AutoClip(percentile=0), "percentile"),
        (lambda: guards.AutoClip(percentile=101), "percentile"),
        (lambda: guards.AutoClip(history=0), "history"),
        (lambda: guards.get("unknown_rule"), "clip"),
        (lambda: guards.get("global_norm"), "GlobalNorm"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_type_errors():
    with pytest.raises(TypeError, match="clip"):
        guards.get(3.0)
    with pytest.raises(TypeError, match="history"):
        guards.AutoClip(history=2.5)


@pytest.mark.parametrize(
    "rule",
    [guards.GlobalNorm(2.0), guards.ValueClip(0.5), guards.PerLayerNorm(1.5),
     guards.AdaptiveClip(0.02, 1e-4), guards.AutoClip(25, 50)],
    ids=lambda r: type(r).__name__,
)
def test_serialization_round_trip(rule):
    config = keras.saving.serialize_keras_object(rule)
    again = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert again == rule and again is not rule
    assert guards.get(config) == rule
    copy = guards.get(rule)
    assert copy == rule and copy is not rule


def test_string_aliases():
    assert isinstance(guards.get("agc"), guards.AdaptiveClip)
    assert isinstance(guards.get("AutoClip"), guards.AutoClip)
    assert guards.get(None) is None
