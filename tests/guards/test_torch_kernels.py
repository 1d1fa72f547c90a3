"""torch: the guard's own kernels (`keras_lr.guards._torch`) are bit-identical to `keras.ops`.

On torch the guard skips `keras.ops` dispatch for its per-step arithmetic (global norm, AGC)
and branches with a Python ``if`` instead of `ops.cond`. Both must give exactly what the
portable code gives on the same backend: the gradients, the norm, the clip flag, and after a
run of steps (a NaN step and a clipped one among them) every variable, slot and counter.
"""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lr import guards
from keras_lr.guards import clipping

pytestmark = pytest.mark.backends("torch", reason="the torch backend's own kernels")

# Dense, Conv2D, LSTM kernels, a bias, a GRU bias (2, 3u), a scalar.
SHAPES = [(5, 7), (3, 3, 4, 6), (6, 16), (16,), (2, 12), ()]


def _numpy(values):
    return [None if v is None else np.array(keras.ops.convert_to_numpy(v)) for v in values]


def _assert_identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            assert x is None and y is None
            continue
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)  # NaN where NaN, bit for bit elsewhere


def _case(seed, scale, special):
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(s) * scale).astype("float32") for s in SHAPES]
    params = [rng.standard_normal(s).astype("float32") * 0.1 for s in SHAPES]
    params[3][:] = 0.0  # a zero-initialised bias: the eps floor
    if special == "nan":
        grads[1][0, 0, 0, 0] = np.nan
    elif special == "inf":
        grads[0][1, 2] = -np.inf
    elif special == "overflow":
        grads[2][:] = 1e30  # finite, but the squares overflow float32
    tensors = [keras.ops.convert_to_tensor(g) for g in grads]
    tensors.insert(2, None)  # a variable without a gradient
    variables = [keras.Variable(p) for p in params]
    variables.insert(2, keras.Variable(np.ones((3,), "float32")))
    return tensors, variables


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([1e-6, 1e-2, 1.0, 1e3]),
       special=st.sampled_from(["none", "nan", "inf", "overflow"]),
       clip_factor=st.sampled_from([0.001, 0.01, 0.3]))
def test_unit_clip_and_global_norm_are_bit_identical_to_keras_ops(seed, scale, special,
                                                                 clip_factor):
    from keras_lr.guards import _torch

    grads, variables = _case(seed, scale, special)
    rule = guards.AdaptiveClip(clip_factor)
    g_fast, out_fast, clipped_fast = _torch.unit_clip(grads, variables, clip_factor, rule.eps)
    g_ops, out_ops, clipped_ops = rule._ops_unit_clip(grads, variables)
    _assert_identical(_numpy([g_fast]), _numpy([g_ops]))
    _assert_identical(_numpy(out_fast), _numpy(out_ops))
    assert bool(clipped_fast) == bool(clipped_ops)
    _assert_identical(_numpy([_torch.global_norm(grads)]),
                      _numpy([clipping._ops_global_norm(grads)]))


def test_no_gradient_at_all():
    from keras_lr.guards import _torch

    variables = [keras.Variable(np.ones((2, 3), "float32"))]
    g_flat, out, clipped = _torch.unit_clip([None], variables, 0.01, 1e-3)
    assert tuple(g_flat.shape) == (0,) and out == [None] and not bool(clipped)
    assert float(_torch.global_norm([None])) == 0.0


class _OpsGuard(guards.GradientGuard):
    """The portable step (`ops.cond`, `keras.ops` arithmetic), as TensorFlow runs it."""

    def _torch_apply(self, grads, trainable_variables):
        self._common_apply(grads, trainable_variables)
        self._assert_not_stuck()


def _ops_rule(rule):
    """`rule` computed through `keras.ops` (AdaptiveClip's portable path)."""
    if isinstance(rule, guards.AdaptiveClip):
        rule._unit_clip = rule._ops_unit_clip
    return rule


@pytest.mark.parametrize("rule", ["agc", "global_norm", "none"])
def test_a_run_of_steps_equals_the_portable_step(rule, monkeypatch):
    make = {"agc": lambda: guards.AdaptiveClip(0.02), "global_norm": lambda: guards.GlobalNorm(0.5),
            "none": lambda: None}[rule]
    rng = np.random.default_rng(0)
    shapes = [(6, 8), (8,), (8, 3), (3,)]
    init = [rng.standard_normal(s).astype("float32") for s in shapes]
    steps = [[rng.standard_normal(s).astype("float32") * (5.0 if i == 2 else 0.1)
              for s in shapes] for i in range(6)]
    steps[3][1][0] = np.nan  # skipped
    results = []
    for portable in (False, True):
        variables = [keras.Variable(v) for v in init]
        if portable:
            monkeypatch.setattr(clipping, "global_norm", clipping._ops_global_norm)
            opt = _OpsGuard(keras.optimizers.Adam(1e-2), clip=_ops_rule(make()))
        else:
            opt = guards.GradientGuard(keras.optimizers.Adam(1e-2), clip=make())
        for grads in steps:
            opt.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        results.append(_numpy(variables + list(opt.variables)))
        assert opt.stats()["skipped_steps"] == 1 and int(opt.iterations) == 5
    _assert_identical(*results)


def test_the_step_that_reaches_the_limit_raises_and_changes_nothing():
    variables = [keras.Variable(np.ones((2, 2), "float32"))]
    opt = guards.GradientGuard(keras.optimizers.SGD(0.1), max_consecutive_skips=2)
    nan = [keras.ops.convert_to_tensor(np.full((2, 2), np.nan, "float32"))]
    opt.apply(nan, variables)
    with pytest.raises(guards.NonFiniteGradientsError, match="skipped 2 consecutive"):
        opt.apply(nan, variables)
    assert opt.stats()["consecutive_skips"] == 2 and int(opt.iterations) == 0
    np.testing.assert_array_equal(_numpy(variables)[0], np.ones((2, 2)))
