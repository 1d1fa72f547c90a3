"""Argument errors, `SweepResult` helpers and the replicated layers on their own."""

import json

import keras
import matplotlib
import numpy as np
import pytest

from keras_lr import data, models
from keras_lr.sweep import SweepResult, parallel_fit, replicate

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def ds():
    return data.load("digits", view="flat", limit=80)


def _build(ds, seed=0):
    return models.mlp(ds.input_shape, 10, hidden=(8,), seed=seed)


@pytest.mark.parametrize(
    "rates, error, match",
    [
        ([], ValueError, "must not be empty"),
        ([1e-3, 0.0], ValueError, r"learning_rates\[1\]` must be > 0"),
        ([-1e-3], ValueError, "must be > 0"),
        ([float("nan")], ValueError, "must be finite"),
        (1e-3, TypeError, "must be a sequence"),
    ],
)
def test_bad_rates(ds, rates, error, match):
    with pytest.raises(error, match=match):
        parallel_fit(lambda: _build(ds), rates, ds.x_train, ds.y_train)


def test_mismatched_seeds(ds):
    with pytest.raises(ValueError, match=r"len\(seeds\) == len\(learning_rates\)"):
        parallel_fit(lambda s: _build(ds, s), [1e-3, 1e-2], ds.x_train, ds.y_train, seeds=[0])
    with pytest.raises(ValueError, match=r"seeds\[0\]` must be >= 0"):
        parallel_fit(lambda s: _build(ds, s), [1e-3], ds.x_train, ds.y_train, seeds=[-1])


def test_compiled_model_is_refused(ds):
    def build():
        model = _build(ds)
        model.compile("adam", "mse")
        return model

    with pytest.raises(ValueError, match="uncompiled"):
        parallel_fit(build, [1e-3], ds.x_train, ds.y_train)


def test_shared_model_is_refused(ds):
    shared = _build(ds)
    with pytest.raises(ValueError, match="new model on every call"):
        parallel_fit(lambda: shared, [1e-3, 1e-2], ds.x_train, ds.y_train)
    layer = keras.layers.Dense(10, activation="softmax")

    def shared_layer():
        return keras.Sequential([keras.Input((64,)), layer])

    with pytest.raises(ValueError, match="sharing weights"):
        parallel_fit(shared_layer, [1e-3, 1e-2], ds.x_train, ds.y_train)


def test_other_bad_builders(ds):
    with pytest.raises(TypeError, match="build_model"):
        parallel_fit("mlp", [1e-3], ds.x_train, ds.y_train)
    with pytest.raises(TypeError, match="must return a keras.Model"):
        parallel_fit(lambda: 3, [1e-3], ds.x_train, ds.y_train)
    with pytest.raises(ValueError, match="built model"):
        parallel_fit(lambda: keras.Sequential([keras.layers.Dense(2)]), [1e-3],
                     ds.x_train, ds.y_train)


def test_unsupported_layer_is_named(ds):
    def build():
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(8),
                                 keras.layers.BatchNormalization(name="bn"),
                                 keras.layers.Dense(10, activation="softmax")])

    with pytest.raises(ValueError, match="'bn' \\(BatchNormalization\\)"):
        parallel_fit(build, [1e-3], ds.x_train, ds.y_train)


def test_bad_optimizer_and_schedule(ds):
    with pytest.raises(TypeError, match="plain Keras optimizer"):
        parallel_fit(lambda: _build(ds), [1e-3], ds.x_train, ds.y_train,
                     optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()))
    with pytest.raises(ValueError, match="Argument `jit_compile` must be True, False or"):
        parallel_fit(lambda: _build(ds), [1e-3], ds.x_train, ds.y_train, jit_compile="yes")
    with pytest.raises(TypeError, match="schedule"):
        parallel_fit(lambda: _build(ds), [1e-3], ds.x_train, ds.y_train, schedule=lambda t: 1.0)


def test_replicate_keeps_each_models_function(ds):
    nets = [_build(ds, s) for s in range(3)]
    stacked = keras.ops.convert_to_numpy(replicate(nets).predict(ds.x_val, verbose=0))
    for i, net in enumerate(nets):
        np.testing.assert_allclose(stacked[:, i], net.predict(ds.x_val, verbose=0),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implementation", ["grouped", "patches", "split"])
@pytest.mark.parametrize("padding, strides", [("same", 1), ("valid", 2)])
def test_replicated_conv_matches_conv2d(padding, strides, implementation):
    nets = [
        keras.Sequential([
            keras.Input((7, 7, 2)),
            keras.layers.Conv2D(3, 3, strides=strides, padding=padding, activation="relu"),
            keras.layers.Conv2D(2, 2, padding="same", dilation_rate=2),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
        ])
        for _ in range(2)
    ]
    x = np.random.default_rng(0).normal(size=(5, 7, 7, 2)).astype("float32")
    model = replicate(nets)
    for layer in model.stack:
        if hasattr(layer, "implementation"):
            layer.implementation = implementation
    stacked = model.predict(x, verbose=0)
    for i, net in enumerate(nets):
        np.testing.assert_allclose(stacked[:, i], net.predict(x, verbose=0), rtol=1e-5,
                                   atol=1e-5)


def test_configure_resolves_auto_per_architecture(ds):
    from keras_lr.sweep.convert import CONV_IMPLEMENTATION, XLA_MIN_STEPS, grouped_conv_available

    backend = keras.backend.backend()
    if backend != "tensorflow":  # jax.jit on JAX, eager on torch; their own convolutions
        convs = replicate([models.cnn((8, 8, 1), 10, filters=(2, 2), dense=4, seed=s)
                           for s in range(2)])
        for model in (replicate([_build(ds, s) for s in range(2)]), convs):
            assert model.configure("auto", steps=XLA_MIN_STEPS) is (backend == "jax")
            assert model.configure(False) is False and model.configure(True) is True
        assert convs.stack[2].implementation == CONV_IMPLEMENTATION[backend]
        return
    assert replicate([_build(ds, s) for s in range(2)]).configure("auto") is False
    rnns = replicate([models.rnn((8, 8), 10, cell="gru", units=4, seed=s) for s in range(2)])
    assert rnns.configure("auto") is False  # unknown length: a plain graph
    assert rnns.configure("auto", steps=XLA_MIN_STEPS - 1) is False
    assert rnns.configure("auto", steps=XLA_MIN_STEPS) is True
    dropout = [keras.Sequential([keras.Input((8, 8)), keras.layers.GRU(4, seed=s),
                                 keras.layers.Dropout(0.5), keras.layers.Dense(10)])
               for s in range(2)]
    assert replicate(dropout).configure("auto", steps=XLA_MIN_STEPS) is False
    convs = [models.cnn((8, 8, 1), 10, filters=(2, 2), dense=4, seed=s) for s in range(2)]
    model = replicate(convs)
    assert model.configure("auto") is not grouped_conv_available()
    assert model.configure(True) is True
    assert model.stack[2].implementation == "patches"


def test_train_steps_counts_batches_of_arrays_and_datasets():
    import tensorflow as tf

    from keras_lr.sweep.fit import _train_steps

    assert _train_steps(np.zeros((100, 3)), 32, 5) == 5 * 4  # a last, partial batch
    assert _train_steps(np.zeros((96, 3)), 32, 2) == 2 * 3
    assert _train_steps(np.zeros((100, 3)), None, 1) == 4  # Keras's default batch of 32
    batched = tf.data.Dataset.from_tensor_slices(np.zeros((100, 3))).batch(10)
    assert _train_steps(batched, None, 3) == 30
    assert _train_steps(batched.repeat(), None, 3) is None
    assert _train_steps(batched.filter(lambda x: True), None, 3) is None
    assert _train_steps(iter([np.zeros((4, 3))]), None, 3) is None


def _result():
    history = {
        "loss": np.array([[1.0, 0.8, np.nan], [0.9, 0.5, np.nan]]),
        "val_loss": np.array([[1.1, 0.7, np.nan], [1.0, 0.6, np.nan]]),
        "val_accuracy": np.array([[0.3, 0.6, 0.1], [0.4, 0.7, 0.1]]),
    }
    return SweepResult([1e-3, 1e-2, 1e-1], [0, 1, 2], history, [False, False, True],
                       [-1, -1, 5])


def test_result_best_and_exports():
    result = _result()
    assert result.best() == {"index": 1, "learning_rate": 1e-2, "seed": 1,
                             "metric": "val_loss", "value": 0.6}
    assert result.best("val_accuracy")["index"] == 1
    assert result.best("loss", mode="max")["index"] == 0
    with pytest.raises(ValueError, match="must be one of"):
        result.best("nope")
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["history"]["loss"][2] == [None, None]
    assert payload["diverged"] == [False, False, True]
    frame = result.to_frame()
    assert len(frame) == 6 and set(frame["replica"]) == {0, 1, 2}
    assert frame.query("replica == 1 and epoch == 2")["val_loss"].item() == 0.6
    ax = result.plot("val_loss")
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="holds no models"):
        result.model(0)
    with pytest.raises(ValueError, match="must be < 3"):
        result.model(3)


def test_all_diverged_has_no_best():
    result = SweepResult([1.0], None, {"loss": np.array([[np.nan]])}, [True], [0])
    with pytest.raises(ValueError, match="No replica"):
        result.best()
