"""keras_lr.mup.coord_check: flat under μP, growing under the standard parametrization.

Runs on every backend; needs no mup package (the theory is the reference: Tensor Programs V,
Figure 5). Measured on the digits MLP (widths 64-1024, Adam 1e-3, 3 steps on 128 digits):
under μP every slope within +-0.08 (JAX 0.077, TensorFlow 0.072, torch 0.050 at most);
under SP the logits' slope 0.67-0.88 and the second hidden layer's 0.27-0.47.
"""

import keras
import matplotlib
import numpy as np
import pytest

from keras_lr import data, models
from keras_lr.mup import CoordCheck, activations, coord_check

matplotlib.use("Agg")

WIDTHS = [64, 128, 256, 512, 1024]


def _digits_check(parametrization):
    ds = data.load("digits", view="mlp")
    (x, y), _ = ds
    fn = lambda w: models.mlp(ds.input_shape, ds.num_classes, width=w, depth=2, seed=0)  # noqa: E731
    return coord_check(fn, WIDTHS, x[:128], y[:128], keras.optimizers.Adam(1e-3), steps=3,
                       parametrization=parametrization)


def test_mup_is_flat_and_the_standard_parametrization_grows_with_width():
    mu, sp = _digits_check("mup"), _digits_check("standard")
    assert mu.layers == sp.layers == ["dense_0", "dense_1", "output:logits"]
    for step in (1, 2, 3):
        flat = mu.slopes(step)
        assert all(abs(s) <= 0.1 for s in flat.values()), (step, flat)
        grown = sp.slopes(step)
        assert grown["output:logits"] >= 0.5 and grown["dense_1"] >= 0.2, (step, grown)
    # At the base width the two parametrizations are the same model, step for step.
    for key in mu.changes:
        assert mu.changes[key][0] == pytest.approx(sp.changes[key][0], rel=1e-6)
    # The sizes (mup's l1): μP's hidden layers are flat from the start; its logits start at
    # about width**-0.5 (the readout's initialization), which is why the changes are checked.
    # Measured at step 0: hidden slopes within +-0.1 (TensorFlow's dense_1 0.097), logits
    # -0.32 (TensorFlow) to -0.55 (JAX).
    start = mu.slopes(0, of="size")
    assert abs(start["dense_0"]) <= 0.15 and abs(start["dense_1"]) <= 0.15
    assert -0.75 <= start["output:logits"] <= -0.25


def _tiny():
    model = models.mlp((8,), 3, width=4, depth=2, seed=0)
    x = np.random.default_rng(0).normal(size=(5, 8)).astype("float32")
    return model, x


def test_activations_give_the_heads_logits_and_restore_every_layer():
    model, x = _tiny()
    found = activations(model, x)
    assert list(found) == ["dense_0", "dense_1", "output:logits"]
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in model.get_layer("output").weights)
    logits = found["dense_1"] @ kernel + bias  # NumPy: the head before its softmax
    np.testing.assert_allclose(found["output:logits"], logits, rtol=1e-5, atol=1e-6)
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), probabilities, rtol=1e-5)
    assert not [layer.name for layer in model.layers if "call" in vars(layer)]
    assert model.get_layer("output").activation is keras.activations.softmax


def test_activations_restore_the_layers_when_the_forward_pass_fails():
    model, x = _tiny()
    with pytest.raises(Exception):  # noqa: B017 -- whatever the backend raises on a bad shape
        activations(model, x[:, :3])
    assert not [layer.name for layer in model.layers if "call" in vars(layer)]
    assert keras.ops.convert_to_numpy(model(x)).shape == (5, 3)


def test_slopes_equal_the_exponent_of_a_power_law():
    widths = [16, 32, 64, 128]
    changes = {("a", 1): [w**0.5 for w in widths], ("b", 1): [3.0 * w**-1.0 for w in widths],
               ("c", 1): [0.0] * 4}
    sizes = {(layer, step): [2.0 * w**0.25 for w in widths]
             for layer in "abc" for step in (0, 1)}
    check = CoordCheck(widths, 1, "mup", changes, sizes)
    assert check.layers == ["a", "b", "c"]
    slopes = check.slopes()
    assert slopes["a"] == pytest.approx(0.5) and slopes["b"] == pytest.approx(-1.0)
    assert np.isnan(slopes["c"])  # a layer that did not move has no slope
    assert check.slopes(0, of="size")["c"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="Argument `step` must be <= steps=1"):
        check.slopes(2)
    with pytest.raises(ValueError, match="Argument `step` must be >= 1"):
        check.slopes(0)  # no change at step 0
    with pytest.raises(ValueError, match="Argument `of` must be one of"):
        check.slopes(of="l2")


def test_table_and_plot(tmp_path):
    model_fn = lambda w: models.mlp((8,), 3, width=w, depth=1, seed=0)  # noqa: E731
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    check = coord_check(model_fn, [8, 16], x, np.arange(16) % 3,
                        keras.optimizers.SGD(0.1), steps=2, parametrization="standard")
    table = check.table()
    assert "dense_0" in table and "output:logits" in table and "n=16" in table
    assert len(table.splitlines()) == 2 + 2 * len(check.layers)
    path = tmp_path / "coord.png"
    fig = check.plot(path)
    assert path.stat().st_size > 0 and len(fig.axes[0].lines) == len(check.layers)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"widths": [64]}, ValueError, "Argument `widths` must hold at least two"),
        ({"widths": [64, 64]}, ValueError, "Argument `widths` must hold at least two"),
        ({"widths": [0, 64]}, ValueError, "Argument `widths` must be >= 1"),
        ({"steps": 0}, ValueError, "Argument `steps` must be >= 1"),
        ({"parametrization": "sp"}, ValueError, "Argument `parametrization` must be one of"),
        ({"optimizer": "adam"}, TypeError, "Argument `optimizer` must be a keras.optimizers"),
        ({"build_fn": 3}, TypeError, "Argument `build_fn` must be a function"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"build_fn": lambda w: models.mlp((8,), 3, width=w, seed=0), "widths": [8, 16],
            "x": np.zeros((4, 8), "float32"), "y": np.zeros(4, "int64"),
            "optimizer": keras.optimizers.Adam(), **kwargs}
    with pytest.raises(error, match=match):
        coord_check(**args)
