"""`DivergencePruning` penalties are the worst values in the direction of the tuner's objective.

A pruned trial must get the worst score of the search whatever the objective: a custom metric
to maximize (its name tells KerasTuner nothing), a loss that is negative (cosine similarity),
or several objectives at once.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

kt = pytest.importorskip("keras_tuner")

from keras_lr.tuner import DivergencePruning, LRHyperModel  # noqa: E402
from keras_lr.tuner.pruning import loss_ceiling, objective_directions, penalty  # noqa: E402


def my_score(y_true, y_pred):
    """An accuracy under a name KerasTuner cannot guess a direction for."""
    return keras.metrics.sparse_categorical_accuracy(y_true, y_pred)


def blobs(n=48, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, features)).astype("float32"), rng.integers(0, classes, n)


@pytest.mark.parametrize("first, worst", [(2.0, None), (-0.5, None), (-0.5, -0.2), (0.3, 4.0),
                                          (-3.0, 1.5), (0.0, None)])
def test_the_penalty_is_worse_than_every_reference_whatever_the_sign(first, worst):
    known = [v for v in (first, worst) if v is not None]
    low = penalty("val_loss", worst, first, 10.0)
    assert low >= max(known) and (low > max(known) or max(known) == 0)
    high = penalty("val_score", worst, first, 10.0, direction="max")
    assert high <= min(known) and high <= 0.0


def test_penalties_for_negative_values():
    assert penalty("val_loss", None, -0.5, 10.0) == 4.0  # was 10 * -0.5 = -5, the best
    assert penalty("val_loss", None, 2.0, 10.0) == 20.0  # positive losses: unchanged
    assert penalty("val_r2", None, -1.2, 10.0, direction="max") == -12.0
    assert penalty("val_r2", -2.0, -1.2, 10.0, direction="max") == -20.0
    assert penalty("val_accuracy", 0.4, 0.1, 10.0) == 0.0  # accuracies: unchanged
    assert penalty("val_f1_score", None, 0.3, 10.0, direction="max") == 0.0
    with pytest.raises(ValueError, match="Argument `direction` must be one of"):
        penalty("val_loss", None, 1.0, 10.0, direction="up")


def test_objective_directions():
    assert objective_directions(None) == {}
    assert objective_directions("val_accuracy") == {"val_accuracy": "max"}
    assert objective_directions([kt.Objective("val_my_score", "max"), "val_loss"]) == {
        "val_my_score": "max", "val_loss": "min"}
    with pytest.raises(ValueError, match="Argument `objective` must give the direction of a "
                                         "custom metric.*Received: objective='val_my_score'"):
        DivergencePruning(objective="val_my_score")
    with pytest.raises(ValueError, match="Argument `objective` must have direction"):
        DivergencePruning(objective=kt.Objective("val_my_score", "up"))
    with pytest.raises(TypeError, match="Argument `objective` must be a metric name"):
        DivergencePruning(objective=3)


def test_a_custom_metric_to_maximize_gets_its_worst_value_in_a_plain_fit(clear_session):
    x, y = blobs()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(1e4), "sparse_categorical_crossentropy",
                  metrics=[my_score])
    pruning = DivergencePruning(verbose=0, objective=kt.Objective("val_my_score", "max"))
    history = model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0,
                        callbacks=[pruning])
    assert pruning.pruned and pruning.pruned_at[0] == 0
    assert pruning.directions == {"val_my_score": "max"}
    assert history.history["val_my_score"] == [0.0]  # was 10 x the first loss, the best
    assert history.history["my_score"] == [0.0]  # the training counterpart, too
    assert history.history["val_loss"] == pytest.approx([10.0 * pruning._first_loss])


def test_a_negative_loss_gets_a_penalty_above_it(clear_session):
    x = np.abs(np.random.default_rng(0).normal(size=(64, 4))).astype("float32") + 0.1
    x[20] = np.nan  # the third batch of 8: the loss is NaN from there on
    y = np.ones((64, 2), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="ones")])
    model.compile(keras.optimizers.SGD(1e-3), "cosine_similarity")  # a loss in [-1, 1]
    pruning = DivergencePruning(verbose=0)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                        callbacks=[pruning])
    first = pruning._first_loss
    assert pruning.reason == "loss is nan" and first < -0.9
    assert history.history["loss"] == [pytest.approx(first + 9.0 * abs(first))]
    assert history.history["loss"][0] > 1.0  # worse than any cosine-similarity loss


@pytest.mark.slow
def test_a_pruned_trial_scores_worst_for_a_custom_objective(tmp_path, clear_session):
    """The auditor's case: `LRHyperModel`, a custom metric to maximize, every rate diverging."""
    x, y = blobs()
    hypermodel = LRHyperModel("mlp", epochs=1, steps_per_epoch=12, input_shape=(8,),
                              num_classes=3, schedules=("constant",), optimizers=("sgd",),
                              clip=("none",), learning_rate=(1e3, 1e4), metrics=[my_score],
                              model_kwargs={"hidden": (16,)})
    tuner = kt.RandomSearch(hypermodel, objective=kt.Objective("val_my_score", "max"),
                            max_trials=1, seed=0, directory=tmp_path, project_name="custom")
    tuner.search(x, y, batch_size=4, validation_data=(x, y), verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    assert hypermodel.records[-1]["pruned"]
    assert trial.status == "COMPLETED" and trial.score == 0.0  # was 10 x the first loss


@pytest.mark.slow
def test_the_tuner_objective_is_found_for_a_custom_hypermodel(tmp_path, clear_session):
    """A plain build function, the callback given to `search`, two objectives at once."""
    x, y = blobs()

    def build(hp):
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.SGD(hp.Choice("lr", [1e-2, 1e4])),
                      "sparse_categorical_crossentropy", metrics=[my_score])
        return model

    keras.utils.set_random_seed(0)
    tuner = kt.GridSearch(build, objective=[kt.Objective("val_my_score", "max"), "val_loss"],
                          max_trials=2, directory=tmp_path, project_name="multi")
    tuner.search(x, y, batch_size=4, epochs=1, validation_data=(x, y), verbose=0,
                 callbacks=[DivergencePruning(verbose=0)])
    trials = {t.hyperparameters.get("lr"): t for t in tuner.oracle.trials.values()}
    healthy, pruned = trials[1e-2], trials[1e4]
    assert healthy.metrics.get_last_value("pruned") == 0.0
    assert pruned.metrics.get_last_value("pruned") == 1.0
    assert pruned.metrics.get_last_value("val_my_score") == 0.0
    # The score is val_loss - val_my_score: the pruned trial's is the worse (the larger).
    assert pruned.status == "COMPLETED" and pruned.score > healthy.score
    assert tuner.oracle.get_best_trials(1)[0].trial_id == healthy.trial_id


@pytest.mark.parametrize("loss, ceiling", [
    ("sparse_categorical_crossentropy", True), ("categorical_crossentropy", True),
    ("binary_crossentropy", True), (keras.losses.SparseCategoricalCrossentropy(), True),
    (keras.losses.BinaryCrossentropy(label_smoothing=0.1), True),
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), False),
    (keras.losses.CategoricalCrossentropy(from_logits=True), False),
    ("mse", False), (keras.losses.MeanSquaredError(), False), (None, False),
    ({"out": "sparse_categorical_crossentropy"}, False),  # several outputs: no single ceiling
])
def test_loss_ceiling_of_clipped_crossentropies(loss, ceiling):
    expected = -math.log(keras.config.epsilon()) if ceiling else None
    assert loss_ceiling(loss) == expected


class _Model:
    """What the callback reads of a model: the loss and stop_training."""

    def __init__(self, loss):
        self.loss, self.stop_training = loss, False


def _feed(loss, batch_losses):
    pruning = DivergencePruning(verbose=0, smoothing=0.0)
    pruning.set_model(_Model(loss))
    pruning.on_train_begin()
    pruning.on_epoch_begin(0)
    total = 0.0
    for batch, value in enumerate(batch_losses):
        total += value
        pruning.on_train_batch_end(batch, {"loss": total / (batch + 1)})
    return pruning


def test_a_saturated_crossentropy_is_pruned_below_ten_times_its_best():
    """A dead softmax settles at a finite plateau (clipped probabilities): a third of the way
    from the best to the ceiling prunes it; the same losses of an unbounded loss do not."""
    plateau = [1.1, 7.0, 7.0]
    third = 1.1 + (-math.log(keras.config.epsilon()) - 1.1) / 3  # 6.1
    assert third < 7.0 < 10 * 1.1
    pruned = _feed("sparse_categorical_crossentropy", plateau)
    assert pruned.pruned and pruned.pruned_at == (0, 1)
    assert "ceiling" in pruned.reason and "saturated" in pruned.reason
    for loss in (keras.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"):
        assert not _feed(loss, plateau).pruned
    # below a third of the way: a rise, not a saturated model
    assert not _feed("sparse_categorical_crossentropy", [1.1, 6.0, 6.0]).pruned
    # a 10x spike still prunes where it comes first (a best of 0.1: 1.0 < 0.1 + 16/3)
    assert _feed("sparse_categorical_crossentropy", [0.1, 1.2]).reason.startswith(
        "smoothed loss 1.2 > 10 x best")
