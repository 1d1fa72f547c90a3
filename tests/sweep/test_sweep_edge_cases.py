"""Edge cases of `parallel_fit`: frozen optimizer state, sample weights, refused layers and
optimizers, target shapes, and argument errors (each against a separate `model.fit`)."""

import keras
import numpy as np
import pytest

from keras_lr.sweep import parallel_fit, replicated_optimizer

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 8)).astype("float32")
Y = RNG.integers(0, 3, size=40)


def _mlp(seed=0, out=3, activation="softmax", **dense_kwargs):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8,)),
                             keras.layers.Dense(6, activation="relu", **dense_kwargs),
                             keras.layers.Dense(out, activation=activation)])


def _single(build, rate, x, y, optimizer="adam", loss="sparse_categorical_crossentropy",
            metrics=("accuracy",), **fit_kwargs):
    model = build(0)
    opt = keras.optimizers.get(optimizer)
    opt = type(opt).from_config(dict(opt.get_config(), learning_rate=rate))
    model.compile(opt, loss, metrics=list(metrics))
    history = model.fit(x, y, shuffle=False, verbose=0, **fit_kwargs)
    return model, history.history


def _assert_matches(result, model, history, keys):
    for ref, got in zip(model.weights, result.model(0).weights, strict=True):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-4, atol=2e-5)
    for key in keys:
        np.testing.assert_allclose(result.history[key][:, 0], history[key], rtol=1e-4,
                                   atol=2e-5, err_msg=key)


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.SGD(momentum=0.9),
    lambda: keras.optimizers.RMSprop(momentum=0.9),
    keras.optimizers.Adam,
    keras.optimizers.Ftrl,
])
def test_frozen_replica_keeps_its_weights(optimizer, clear_session):
    variable = keras.Variable(np.ones((2, 3), "float32"))
    opt = replicated_optimizer(optimizer(), [0.1, 0.1])
    opt.build([variable])
    good = np.ones((2, 3), "float32")
    bad = np.array([[1.0, 1, 1], [np.nan, 1, 1]], "float32")

    def step(g):
        opt.apply([keras.ops.convert_to_tensor(g)], [variable])

    def replica_1():  # its weights (its optimizer slots may move; they never reach them)
        return [keras.ops.convert_to_numpy(variable)[1].copy()]

    step(good)
    step(bad)
    frozen = replica_1()
    replica_0 = keras.ops.convert_to_numpy(variable)[0].copy()
    step(good)
    step(good)
    for a, b in zip(frozen, replica_1(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(frozen).all()
    assert not np.array_equal(keras.ops.convert_to_numpy(variable)[0], replica_0)
    assert keras.ops.convert_to_numpy(opt.replica_alive).tolist() == [1.0, 0.0]
    assert keras.ops.convert_to_numpy(opt.replica_diverged_step).tolist() == [-1.0, 1.0]


def test_an_overflowing_update_freezes_the_replica_at_finite_weights(clear_session):
    variable = keras.Variable(np.full((2, 1), 3e38, "float32"))
    opt = replicated_optimizer("sgd", [1e-3, 10.0])
    opt.build([variable])
    opt.apply([keras.ops.full((2, 1), -1e38)], [variable])
    assert np.isfinite(keras.ops.convert_to_numpy(variable)).all()
    assert keras.ops.convert_to_numpy(variable)[1, 0] == np.float32(3e38)
    assert keras.ops.convert_to_numpy(opt.replica_alive).tolist() == [1.0, 0.0]


def test_sample_weights_weigh_the_loss_as_keras_does(clear_session):
    tf = pytest.importorskip("tensorflow")  # a weighted tf.data pipeline, fit on any backend
    weights = np.linspace(0.1, 3.0, 40).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((X, Y, weights)).batch(16)
    val = (X[:20], Y[:20], weights[:20])
    result = parallel_fit(_mlp, [1e-2], train, seeds=[0], epochs=1, shuffle=False,
                          batch_size=None, validation_data=val)
    model, history = _single(_mlp, 1e-2, train, None, epochs=1, validation_data=val)
    _assert_matches(result, model, history, ("loss", "accuracy", "val_loss", "val_accuracy"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_regularizer=keras.regularizers.L2(0.5)), "kernel_regularizer"),
    (dict(activity_regularizer="l1"), "activity_regularizer"),
    (dict(kernel_constraint=keras.constraints.MaxNorm(0.1)), "kernel_constraint"),
])
def test_regularizers_and_constraints_are_refused(kwargs, match, clear_session):
    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((8,)),
                                 keras.layers.Dense(6, name="penalised", **kwargs),
                                 keras.layers.Dense(3, activation="softmax")])

    with pytest.raises(ValueError, match=f"'penalised' \\(Dense\\).*{match}"):
        parallel_fit(build, [1e-2], X, Y)


def test_recurrent_regularizer_is_refused(clear_session):
    def build():
        return keras.Sequential([keras.Input((4, 2)), keras.layers.GRU(
            3, recurrent_regularizer="l2", name="rec"), keras.layers.Dense(3)])

    with pytest.raises(ValueError, match="'rec' \\(GRU\\).*recurrent_regularizer"):
        parallel_fit(build, [1e-2], np.zeros((8, 4, 2), "float32"), np.zeros(8, "int64"))


@pytest.mark.parametrize("optimizer", ["adafactor", keras.optimizers.Lamb(),
                                       keras.optimizers.Muon()])
def test_optimizers_that_mix_replicas_are_refused(optimizer, clear_session):
    with pytest.raises(ValueError, match="Argument `optimizer` must be an element-wise"):
        parallel_fit(_mlp, [1e-2, 1e-1], X, Y, seeds=[0, 0], optimizer=optimizer)


@pytest.mark.parametrize("name", ["SGD", "Adamax", "Nadam", "Adagrad", "Adadelta", "Ftrl", "Lion"])
def test_elementwise_optimizers_match_a_separate_fit(name, clear_session):
    optimizer = keras.optimizers.get(name.lower() if name != "SGD" else "sgd")
    result = parallel_fit(_mlp, [1e-2, 3e-2], X, Y, seeds=[0, 0], epochs=1, shuffle=False,
                          optimizer=optimizer, batch_size=16)
    model, history = _single(_mlp, 1e-2, X, Y, optimizer=name.lower(), epochs=1,
                             batch_size=16)
    _assert_matches(result, model, history, ("loss", "accuracy"))


@pytest.mark.parametrize("layer", [
    lambda: keras.layers.RandomFlip("horizontal", seed=1, name="aug"),
    lambda: keras.layers.RandomContrast(0.2, seed=1, name="aug"),
])
def test_random_augmentation_layers_are_refused(layer, clear_session):
    def build():
        return keras.Sequential([keras.Input((6, 6, 1)), layer(),
                                 keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                                 keras.layers.Dense(3, activation="softmax")])

    with pytest.raises(ValueError, match="'aug'.*share their noise"):
        parallel_fit(build, [1e-2, 1e-2], np.zeros((8, 6, 6, 1), "float32"),
                     np.zeros(8, "int64"))


@pytest.mark.parametrize("loss, metrics, activation", [
    ("mse", ["mae"], None),
    ("binary_crossentropy", ["accuracy"], "sigmoid"),
])
def test_one_dimensional_targets_for_a_one_unit_output(loss, metrics, activation,
                                                       clear_session):
    y = (RNG.random(40) > 0.5).astype("float32")

    def build(seed=0):
        return _mlp(seed, out=1, activation=activation)

    result = parallel_fit(build, [1e-2], X, y, seeds=[0], epochs=1, shuffle=False, loss=loss,
                          metrics=metrics, batch_size=16)
    model, history = _single(build, 1e-2, X, y, loss=loss, metrics=metrics, epochs=1,
                             batch_size=16)
    _assert_matches(result, model, history, ["loss"] + metrics)


def _sequences(first):
    def build():
        return keras.Sequential([keras.Input((None, 3) if first is None else (5, 3))]
                                + ([first] if first is not None else [])
                                + [keras.layers.GRU(4, name="rec"), keras.layers.Dense(3)])
    return build


@pytest.mark.parametrize("first, match", [
    (keras.layers.Masking(0.0, name="mask"), "'mask' \\(Masking\\).*masks"),
    (None, "'rec' \\(GRU\\).*unknown dimension"),
])
def test_masks_and_variable_length_sequences_are_refused(first, match, clear_session):
    with pytest.raises(ValueError, match=match):
        parallel_fit(_sequences(first), [1e-2], np.zeros((8, 5, 3), "float32"),
                     np.zeros(8, "int64"))


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-4, ValueError),
                                               ("32", TypeError), (2.5, TypeError)])
def test_bad_batch_size(batch_size, error):
    with pytest.raises(error, match="Argument `batch_size` must be"):
        parallel_fit(_mlp, [1e-2], X, Y, batch_size=batch_size)


def _one_hot_loss(y_true, y_pred):
    return keras.losses.categorical_crossentropy(y_true, y_pred)


@pytest.mark.parametrize("loss", [_one_hot_loss, "kld"])
def test_accuracy_follows_the_target_shapes_not_the_loss_name(loss, clear_session):
    onehot = keras.utils.to_categorical(Y, 3)
    result = parallel_fit(_mlp, [1e-2], X, onehot, seeds=[0], epochs=1, shuffle=False,
                          loss=loss, batch_size=16)
    model, history = _single(_mlp, 1e-2, X, onehot, loss=loss, epochs=1, batch_size=16)
    _assert_matches(result, model, history, ("loss", "accuracy"))


@pytest.mark.parametrize("reduction", ["sum", "none", "mean_with_sample_weight"])
def test_loss_with_another_reduction_is_refused(reduction):
    loss = keras.losses.SparseCategoricalCrossentropy(reduction=reduction)
    with pytest.raises(ValueError, match=f"Argument `loss` must use the default reduction.*"
                                         f"reduction='{reduction}'"):
        parallel_fit(_mlp, [1e-2], X, Y, loss=loss)


def test_loss_instance_with_the_default_reduction_matches(clear_session):
    loss = keras.losses.SparseCategoricalCrossentropy()
    result = parallel_fit(_mlp, [1e-2], X, Y, seeds=[0], epochs=1, shuffle=False, loss=loss,
                          batch_size=16)
    model, history = _single(_mlp, 1e-2, X, Y, loss=loss, epochs=1, batch_size=16)
    _assert_matches(result, model, history, ("loss", "accuracy"))


@pytest.mark.parametrize("activation", ["relu", "softmax"])
def test_activation_after_a_convolution_matches(activation, clear_session):
    images = RNG.normal(size=(16, 6, 6, 1)).astype("float32")

    def build(seed=0):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3),
                                 keras.layers.Activation(activation),
                                 keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                                 keras.layers.Dense(3, activation="softmax")])

    result = parallel_fit(build, [1e-2, 3e-2], images, Y[:16], seeds=[0, 0], epochs=1,
                          shuffle=False, batch_size=8)
    model, history = _single(build, 1e-2, images, Y[:16], epochs=1, batch_size=8)
    _assert_matches(result, model, history, ("loss", "accuracy"))


# ---------------------------------------------------------------------- the default loss
def test_logits_with_integer_labels_ask_for_the_loss_in_one_line(clear_session):
    with pytest.raises(ValueError, match=r"output layer `dense_\d+` has 3 unit\(s\) and "
                       r"activation 'linear' and targets of shape \(40,\) \(integer labels\): "
                       r"pass loss=, e.g. loss=keras.losses.SparseCategoricalCrossentropy"
                       r"\(from_logits=True\)") as info:
        parallel_fit(lambda: _mlp(activation=None), [1e-2, 1e-1], X, Y)
    assert "\n" not in str(info.value)
    logits = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    result = parallel_fit(lambda: _mlp(activation=None), [1e-2, 1e-1], X, Y, loss=logits,
                          shuffle=False, batch_size=8)
    model, history = _single(lambda s: _mlp(s, activation=None), 1e-2, X, Y, loss=logits,
                             batch_size=8)
    np.testing.assert_allclose(result.history["loss"][:, 0], history["loss"], rtol=1e-5)


@pytest.mark.parametrize("activation, out, y", [
    ("sigmoid", 1, (Y > 0).astype("float32")),  # mse or binary crossentropy: the user says
    ("softmax", 3, RNG.normal(size=(40,)).astype("float32")),  # non-integral targets
    ("softmax", 3, np.eye(4, dtype="float32")[Y]),  # one-hot of another width
])
def test_heads_and_targets_that_tell_no_loss_are_refused(activation, out, y, clear_session):
    with pytest.raises(ValueError, match="parallel_fit cannot tell the loss .* pass loss="):
        parallel_fit(lambda: _mlp(out=out, activation=activation), [1e-2], X, y)


@pytest.mark.parametrize("y, loss", [
    (np.eye(3, dtype="float32")[Y], "categorical_crossentropy"),  # one-hot
    (Y.astype("float32"), "sparse_categorical_crossentropy"),  # integral floats
    (keras.ops.convert_to_tensor(Y.astype("int32")), "sparse_categorical_crossentropy"),  # a tensor
])
def test_default_loss_follows_the_targets(y, loss, clear_session):
    default = parallel_fit(lambda: _mlp(), [1e-2], X, y, shuffle=False, batch_size=8)
    named = parallel_fit(lambda: _mlp(), [1e-2], X, y, loss=loss, shuffle=False, batch_size=8)
    np.testing.assert_array_equal(default.history["loss"], named.history["loss"])
