"""`DivergencePruning` in a plain `model.fit`: when it prunes, what the logs then say."""

from __future__ import annotations

import copy
import math

import keras
import numpy as np
import pytest

pytest.importorskip("keras_tuner")

from keras_lr import data, models, schedules  # noqa: E402
from keras_lr.tuner import DivergencePruning  # noqa: E402
from keras_lr.tuner.pruning import penalty  # noqa: E402

pytest.importorskip("sklearn")  # the digits data


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", view="flat", limit=320)


class Batches(keras.callbacks.Callback):
    """Counts the batches and epochs that ran (independently of the pruning callback)."""

    def on_train_begin(self, logs=None):
        self.batches, self.epochs = 0, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def numpy_glorot(model, seed=0):
    """Glorot-uniform kernels and zero biases drawn by NumPy: the same start on every backend
    (Keras's initializers draw different numbers per backend)."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.ndim == 2:
            limit = math.sqrt(6.0 / sum(w.shape))
            weights.append(rng.uniform(-limit, limit, w.shape).astype(w.dtype))
        else:
            weights.append(np.zeros_like(w))
    model.set_weights(weights)
    return model


def train(ds, learning_rate, pruning, epochs=3, x=None):
    keras.utils.set_random_seed(0)
    model = numpy_glorot(models.mlp(ds.input_shape, ds.num_classes, hidden=(32,), seed=0))
    # Logits and from_logits=True: the loss is exact (unbounded) on every backend. With a
    # softmax output Keras's TensorFlow backend computes from the softmax's logits while JAX
    # and torch clip the probabilities at 1e-7 (a batch loss of at most ~16.1), so a spike of
    # 10x an untrained loss of ~2.3 could never be seen there.
    model.layers[-1].activation = keras.activations.linear
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    counter = Batches()
    history = model.fit(ds.x_train if x is None else x, ds.y_train, batch_size=32, shuffle=False,
                        epochs=epochs, validation_data=(ds.x_val, ds.y_val), verbose=0,
                        callbacks=[pruning, counter])
    return history, counter


def test_exploding_loss_is_pruned_inside_the_first_epoch(digits, clear_session):
    pruning = DivergencePruning(verbose=0)
    history, counter = train(digits, 3.0, pruning)
    assert pruning.pruned and pruning.pruned_at == (0, 1)  # the second batch
    assert (counter.epochs, counter.batches) == (1, 2)
    assert pruning.epochs_run == 1 and pruning.reason.startswith("smoothed loss")
    # The pruned epoch logs finite penalties, worse than any healthy value.
    first_loss = pruning.best
    assert history.history["pruned"] == [1.0]
    assert history.history["val_accuracy"] == [0.0] and history.history["accuracy"] == [0.0]
    assert history.history["val_loss"] == pytest.approx([10.0 * first_loss])
    assert history.history["loss"] == pytest.approx([10.0 * first_loss])
    assert first_loss == pytest.approx(math.log(10), rel=0.15)  # an untrained classifier
    assert pruning.raw_logs["loss"] > 10.0 * first_loss  # the raw value is kept


def test_healthy_training_is_not_pruned(digits, clear_session):
    pruning = DivergencePruning(verbose=0)
    history, counter = train(digits, 1e-2, pruning)
    assert not pruning.pruned and pruning.reason is None
    assert counter.epochs == 3 and history.history["pruned"] == [0.0, 0.0, 0.0]
    assert history.history["val_accuracy"][-1] > 0.7


def test_a_nan_loss_is_pruned_at_once(clear_session, capsys):
    x = np.ones((64, 4), "float32")
    x[20] = np.nan  # the third batch of 8: a linear model's loss is NaN from there on
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    pruning, counter = DivergencePruning(patience=5), Batches()
    history = model.fit(x, np.zeros(64), batch_size=8, epochs=3, shuffle=False, verbose=0,
                        callbacks=[pruning, counter])
    assert pruning.pruned and pruning.reason == "loss is nan" and pruning.pruned_at == (0, 2)
    assert (counter.epochs, counter.batches) == (1, 3)
    assert history.history["loss"] == [pytest.approx(10.0 * pruning._first_loss)]
    assert math.isnan(pruning.raw_logs["loss"])
    out = capsys.readouterr().out
    assert "DivergencePruning: trial pruned at epoch 1, batch 3: loss is nan" in out


def test_a_later_divergence_keeps_the_earlier_epochs(digits, clear_session):
    steps = len(digits.x_train) // 32
    jump = schedules.Sequence([schedules.Constant(1e-2), schedules.Constant(5.0)], [steps])
    pruning = DivergencePruning(verbose=0)
    history, counter = train(digits, jump, pruning, epochs=4)
    assert pruning.pruned and pruning.pruned_at[0] == 1 and counter.epochs == 2
    logs = history.history
    assert logs["pruned"] == [0.0, 1.0]
    assert math.isfinite(logs["val_loss"][0]) and logs["val_accuracy"][0] > 0.2
    # Penalties: below the worst earlier accuracy (0), 10x the worst earlier loss.
    assert logs["val_accuracy"][1] == 0.0
    worst = max(logs["val_loss"][0], pruning._first_loss)
    assert logs["val_loss"][1] == pytest.approx(10.0 * worst)


def test_penalties_follow_the_metric_direction():
    assert penalty("val_loss", None, 2.0, 10.0) == 20.0
    assert penalty("val_loss", 5.0, 2.0, 10.0) == 50.0
    assert penalty("mean_absolute_error", 0.5, 2.0, 4.0) == 8.0
    assert penalty("val_accuracy", 0.3, 2.0, 10.0) == 0.0
    assert penalty("val_auc", None, 2.0, 10.0) == 0.0


def test_a_deep_copy_is_a_fresh_callback(digits, clear_session):
    pruning = DivergencePruning(patience=2, spike_factor=4.0, verbose=0)
    train(digits, 3.0, pruning, epochs=1)
    assert pruning.pruned
    fresh = copy.deepcopy(pruning)
    assert (fresh.patience, fresh.spike_factor, fresh.pruned, fresh.model) == (2, 4.0, False,
                                                                              None)
