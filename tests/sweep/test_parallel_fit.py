"""`parallel_fit` against separate `model.fit` runs (the independent reference)."""

import keras
import numpy as np
import pytest

from keras_lr import data, models
from keras_lr.schedules import CosineDecay, Warmup
from keras_lr.sweep import parallel_fit

RATES = [3e-3, 3e-2]
SEEDS = [0, 1]
EPOCHS = 2


def _dataset(family):
    view = data.view_for("lstm" if family == "lstm2" else family)
    return data.load("digits", view=view, limit=120)


def _builder(family, ds):
    def build(seed=0):
        if family == "mlp":
            return models.mlp(ds.input_shape, 10, hidden=(16,), seed=seed)
        if family == "cnn":
            return models.cnn(ds.input_shape, 10, filters=(4, 8), dense=16, seed=seed)
        if family == "lstm2":
            return models.rnn(ds.input_shape, 10, cell="lstm", units=8, layers=2, seed=seed)
        return models.build(family, ds.input_shape, 10, units=8, seed=seed)

    return build


def _optimizer(name, rate, **kwargs):
    return keras.optimizers.get({"class_name": name, "config": dict(learning_rate=rate, **kwargs)})


def _reference(build, ds, rate, seed, optimizer, **fit_kwargs):
    model = build(seed)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=fit_kwargs.pop("jit_compile", "auto"))
    history = model.fit(ds.x_train, ds.y_train, epochs=EPOCHS, batch_size=32, shuffle=False,
                        verbose=0, validation_data=(ds.x_val, ds.y_val), **fit_kwargs)
    return model, history.history


def _assert_matches(result, i, model, history, atol=2e-5):
    extracted = result.model(i)
    for ref, got in zip(model.weights, extracted.weights, strict=True):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-4, atol=atol,
                                   err_msg=ref.path)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(result.history[key][:, i], history[key], rtol=1e-4,
                                   atol=atol, err_msg=key)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "family", ["mlp"] + [pytest.param(f, marks=[pytest.mark.slow, pytest.mark.every_backend])
                         for f in ("cnn", "lstm", "gru")]
)
def test_each_replica_equals_a_separate_fit(family, optimizer, clear_session):
    ds = _dataset(family)
    build = _builder(family, ds)
    result = parallel_fit(build, RATES, ds.x_train, ds.y_train, optimizer=optimizer,
                          epochs=EPOCHS, seeds=SEEDS, shuffle=False,
                          validation_data=(ds.x_val, ds.y_val))
    assert result.history["loss"].shape == (EPOCHS, len(RATES))
    assert not result.diverged.any()
    for i, (rate, seed) in enumerate(zip(RATES, SEEDS, strict=True)):
        model, history = _reference(build, ds, rate, seed, _optimizer(optimizer, rate))
        _assert_matches(result, i, model, history)


@pytest.mark.parametrize("jit_compile", ["auto", pytest.param(True, marks=pytest.mark.slow)])
def test_dropout_replicas_draw_their_own_models_masks(jit_compile, clear_session):
    """Masks equal those of a fit compiled the same way ("auto": no XLA, as an ordinary fit;
    XLA draws other masks from the same seeds)."""
    ds = _dataset("mlp")

    def build(seed=0):
        return models.mlp(ds.input_shape, 10, hidden=(16, 8), dropout=0.3, seed=seed)

    result = parallel_fit(build, RATES, ds.x_train, ds.y_train, optimizer="sgd",
                          epochs=EPOCHS, seeds=SEEDS, shuffle=False, jit_compile=jit_compile,
                          validation_data=(ds.x_val, ds.y_val))
    for i, (rate, seed) in enumerate(zip(RATES, SEEDS, strict=True)):
        model, history = _reference(build, ds, rate, seed, _optimizer("sgd", rate),
                                    jit_compile=jit_compile)
        _assert_matches(result, i, model, history)


def test_random_layers_that_would_share_noise_are_refused(clear_session):
    def build():
        return keras.Sequential([keras.Input((64,)), keras.layers.Dropout(0.2, name="drop_in"),
                                 keras.layers.Dense(10, activation="softmax")])

    ds = _dataset("mlp")
    with pytest.raises(ValueError, match="'drop_in'.*shared input"):
        parallel_fit(build, RATES, ds.x_train, ds.y_train)

    def noisy():
        return keras.Sequential([keras.Input((64,)), keras.layers.GaussianNoise(0.1, name="gn"),
                                 keras.layers.Dense(10, activation="softmax")])

    with pytest.raises(ValueError, match="'gn'.*share their noise"):
        parallel_fit(noisy, RATES, ds.x_train, ds.y_train)


@pytest.mark.slow
@pytest.mark.every_backend
@pytest.mark.parametrize("jit_compile", ["auto", True])  # "auto": a plain graph at this size
def test_stacked_recurrent_layers_match(jit_compile, clear_session):
    ds = _dataset("lstm2")
    build = _builder("lstm2", ds)
    result = parallel_fit(build, RATES, ds.x_train, ds.y_train, optimizer="adam",
                          epochs=EPOCHS, seeds=SEEDS, shuffle=False,
                          validation_data=(ds.x_val, ds.y_val), jit_compile=jit_compile)
    model, history = _reference(build, ds, RATES[1], SEEDS[1], _optimizer("adam", RATES[1]))
    _assert_matches(result, 1, model, history)


@pytest.mark.slow
def test_simple_rnn_replicas_match(clear_session):
    ds = _dataset("lstm")

    def build(seed=0):
        return models.rnn(ds.input_shape, 10, cell="simple", units=6, seed=seed)

    result = parallel_fit(build, RATES, ds.x_train, ds.y_train, optimizer="adam",
                          epochs=EPOCHS, seeds=SEEDS, shuffle=False,
                          validation_data=(ds.x_val, ds.y_val))
    for i, (rate, seed) in enumerate(zip(RATES, SEEDS, strict=True)):
        model, history = _reference(build, ds, rate, seed, _optimizer("adam", rate))
        _assert_matches(result, i, model, history)


def test_per_replica_global_clipnorm_and_momentum(clear_session):
    """Keras clips by the global norm of one model: the sweep must clip each replica alone."""
    ds = _dataset("mlp")
    build = _builder("mlp", ds)
    kwargs = dict(momentum=0.9, global_clipnorm=0.05)
    result = parallel_fit(build, RATES, ds.x_train, ds.y_train,
                          optimizer=_optimizer("sgd", 1.0, **kwargs), epochs=EPOCHS,
                          seeds=SEEDS, shuffle=False, validation_data=(ds.x_val, ds.y_val))
    for i, (rate, seed) in enumerate(zip(RATES, SEEDS, strict=True)):
        model, history = _reference(build, ds, rate, seed, _optimizer("sgd", rate, **kwargs))
        _assert_matches(result, i, model, history)


@pytest.mark.slow
def test_schedule_scaled_per_replica_under_xla(clear_session):
    ds = _dataset("mlp")
    build = _builder("mlp", ds)
    steps = EPOCHS * 3  # 96 samples / batch 32

    def shape(peak):
        return Warmup(CosineDecay(peak, decay_steps=steps - 2), warmup_steps=2)

    result = parallel_fit(build, RATES, ds.x_train, ds.y_train, optimizer="adam",
                          schedule=shape(1.0), epochs=EPOCHS, seeds=SEEDS, shuffle=False,
                          validation_data=(ds.x_val, ds.y_val), jit_compile=True)
    rate, seed = RATES[1], SEEDS[1]
    model, history = _reference(build, ds, rate, seed, keras.optimizers.Adam(shape(rate)),
                                jit_compile=True)
    _assert_matches(result, 1, model, history)


def test_a_diverging_replica_is_frozen_and_leaves_the_others_bit_identical(clear_session):
    ds = _dataset("mlp")
    build = _builder("mlp", ds)

    def run(rates):
        keras.backend.clear_session()
        return parallel_fit(build, rates, ds.x_train, ds.y_train, optimizer="sgd",
                            epochs=EPOCHS, seeds=[0, 1, 2], shuffle=False,
                            validation_data=(ds.x_val, ds.y_val))

    sane = run([1e-2, 3e-2, 5e-2])
    wild = run([1e-2, 1e30, 5e-2])
    assert wild.diverged.tolist() == [False, True, False]
    assert wild.diverged_step[1] >= 0 and wild.diverged_step[0] == -1
    frozen = wild.model(1)
    assert all(np.isfinite(w.numpy()).all() for w in frozen.weights)
    for i in (0, 2):
        for a, b in zip(sane.model(i).weights, wild.model(i).weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        for key in sane.history:
            np.testing.assert_array_equal(sane.history[key][:, i], wild.history[key][:, i])
    assert wild.best()["index"] != 1


def test_extracted_replica_saves_and_loads(tmp_path, clear_session):
    ds = _dataset("cnn")
    result = parallel_fit(_builder("cnn", ds), RATES, ds.x_train, ds.y_train, epochs=1)
    model = result.model(1)
    path = str(tmp_path / "replica.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(ds.x_val, verbose=0),
                               model.predict(ds.x_val, verbose=0), rtol=1e-6, atol=1e-7)
    assert loaded.evaluate(ds.x_val, ds.y_val, verbose=0, return_dict=True)["accuracy"] >= 0


def test_logs_are_per_replica_for_callbacks(clear_session):
    ds = _dataset("mlp")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(logs))

    parallel_fit(_builder("mlp", ds), RATES, ds.x_train, ds.y_train, epochs=1,
                 validation_data=(ds.x_val, ds.y_val), callbacks=[Record()])
    assert {"loss[0]", "loss[1]", "accuracy[1]", "val_loss[1]", "val_accuracy[0]"} <= set(
        seen[0])
