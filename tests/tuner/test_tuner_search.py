"""Whole KerasTuner searches over `LRHyperModel` on the digits MLP (small, but real)."""

from __future__ import annotations

import math

import keras
import pytest

kt = pytest.importorskip("keras_tuner")
pytest.importorskip("sklearn")  # the digits data

from keras_lr import data  # noqa: E402
from keras_lr.optimizers import current_learning_rate  # noqa: E402
from keras_lr.tuner import LRHyperModel  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:Skipping variable loading")]  # optimizer slots
BATCH = 32



@pytest.fixture(scope="module")
def digits():
    return data.load("digits", view="flat", limit=400)


class Runs(keras.callbacks.Callback):
    """Records, per trial, the starting rate and the epochs and batches that ran.

    KerasTuner deep-copies search callbacks for every trial; the copies share one list."""

    def __init__(self, rows=None):
        super().__init__()
        self.rows = [] if rows is None else rows

    def __deepcopy__(self, memo):
        return Runs(self.rows)

    def on_train_begin(self, logs=None):
        self.rows.append({"lr": current_learning_rate(self.model.optimizer), "epochs": 0,
                          "batches": 0})

    def on_train_batch_end(self, batch, logs=None):
        self.rows[-1]["batches"] += 1

    def on_epoch_end(self, epoch, logs=None):
        self.rows[-1]["epochs"] += 1


def hypermodel(ds, epochs, **kwargs):
    arguments = dict(epochs=epochs, steps_per_epoch=math.ceil(len(ds.x_train) / BATCH),
                     input_shape=ds.input_shape, num_classes=ds.num_classes,
                     model_kwargs={"hidden": (32,)}, learning_rate=(1e-3, 0.1),
                     optimizers=("adam",), clip=("none",))
    arguments.update(kwargs)
    return LRHyperModel("mlp", **arguments)


def search(tuner, ds, callbacks=()):
    tuner.search(ds.x_train, ds.y_train, batch_size=BATCH, validation_data=(ds.x_val, ds.y_val),
                 callbacks=list(callbacks), verbose=0)


def check_best_model_reaches_its_score(tuner, ds):
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.status == "COMPLETED" and best.score > 0.5
    model = tuner.get_best_models(1)[0]  # rebuilt from the hyperparameters + checkpoint
    scores = model.evaluate(ds.x_val, ds.y_val, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(best.score, abs=1e-6)
    return best


def test_random_search_with_diverging_rates(digits, tmp_path, clear_session):
    model = hypermodel(digits, epochs=2, learning_rate=(1e-3, 10.0), schedules=("constant",))
    tuner = kt.RandomSearch(model, objective="val_accuracy", max_trials=6, seed=3,
                            directory=tmp_path, project_name="random")
    runs = Runs()
    search(tuner, digits, [runs])
    trials = [tuner.oracle.trials[i] for i in tuner.oracle.start_order]
    assert len(trials) == len(runs.rows) == 6 and all(t.status == "COMPLETED" for t in trials)
    rates = [t.hyperparameters["learning_rate"] for t in trials]
    assert [row["lr"] for row in runs.rows] == pytest.approx(rates, rel=1e-6)
    diverging = [row for row in runs.rows if row["lr"] >= 1.0]
    healthy = [row for row in runs.rows if row["lr"] <= 0.03]
    assert diverging and healthy, rates  # the seed draws both kinds
    steps = math.ceil(len(digits.x_train) / BATCH)
    for row in diverging:  # pruned inside the first epoch, within a few batches
        assert row["epochs"] == 1 and row["batches"] <= 3, row
    for row in healthy:
        assert (row["epochs"], row["batches"]) == (2, 2 * steps), row
    pruned = [t for t, row in zip(trials, runs.rows) if row["lr"] >= 1.0]
    assert all(t.score == 0.0 and t.metrics.get_last_value("pruned") == 1.0 for t in pruned)

    best = check_best_model_reaches_its_score(tuner, digits)
    # The best hyperparameters rebuild and retrain the same model (seeded build and fit).
    retrained = model.build(best.hyperparameters)
    history = model.fit(best.hyperparameters, retrained, digits.x_train, digits.y_train,
                        batch_size=BATCH, validation_data=(digits.x_val, digits.y_val),
                        verbose=0)
    assert max(history.history["val_accuracy"]) == pytest.approx(best.score, abs=1e-6)


def test_many_diverging_trials_do_not_stop_the_search(digits, tmp_path, clear_session):
    """Every rate diverges; the default max_consecutive_failed_trials=3 is never reached."""
    model = hypermodel(digits, epochs=3, learning_rate=(1.0, 10.0), schedules=("constant",))
    tuner = kt.RandomSearch(model, objective="val_accuracy", max_trials=4, seed=0,
                            directory=tmp_path, project_name="diverging")
    assert tuner.oracle.max_consecutive_failed_trials == 3
    runs = Runs()
    search(tuner, digits, [runs])
    assert [t.status for t in tuner.oracle.trials.values()] == ["COMPLETED"] * 4
    assert [row["epochs"] for row in runs.rows] == [1, 1, 1, 1]
    assert all(record["pruned"] for record in model.records)


def test_bayesian_search(digits, tmp_path, clear_session):
    model = hypermodel(digits, epochs=2, schedules=("cosine",))  # one dimension: a cheap GP
    tuner = kt.BayesianOptimization(model, objective="val_accuracy", max_trials=4,
                                    num_initial_points=2, seed=0, directory=tmp_path,
                                    project_name="bayesian")
    search(tuner, digits)
    assert len(tuner.oracle.trials) == 4
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    check_best_model_reaches_its_score(tuner, digits)


def test_hyperband_search(digits, tmp_path, clear_session):
    model = hypermodel(digits, epochs=3, schedules=("cosine", "onecycle"))
    tuner = kt.Hyperband(model, objective="val_accuracy", max_epochs=3, factor=3, seed=0,
                         directory=tmp_path, project_name="hyperband")
    runs = Runs()
    search(tuner, digits, [runs])
    trials = list(tuner.oracle.trials.values())
    assert len(trials) >= 4 and all(t.status == "COMPLETED" for t in trials)
    resumed = [t for t in trials if t.hyperparameters.values.get("tuner/initial_epoch", 0) > 0]
    assert resumed  # a promoted trial continued from its parent's checkpoint
    check_best_model_reaches_its_score(tuner, digits)
