"""Deep-copy safety (KerasTuner copies callbacks per trial) and a KerasTuner smoke run."""

import copy

import keras
import pytest
from callback_helpers import regression_data, tiny_model

from keras_lr import guards
from keras_lr.callbacks import DivergenceGuard, LRMonitor, LRScheduler, ReduceLROnPlateau


def _callbacks(optimizer=None):
    return [
        LRMonitor(every="batch"),
        DivergenceGuard(lr_factor=0.25, snapshot_every=3),
        ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e3, threshold_mode="rel"),
        LRScheduler(lambda epoch: 0.01, optimizer=optimizer),
    ]


def test_deepcopy_of_used_callbacks_is_fresh_and_keeps_arguments():
    opt = guards.GradientGuard(keras.optimizers.SGD(0.01))
    callbacks = _callbacks()
    model = tiny_model(opt)
    model.fit(*regression_data(), batch_size=16, epochs=2, verbose=0, callbacks=callbacks)
    copies = copy.deepcopy(callbacks)
    for original, clone in zip(callbacks, copies, strict=True):
        assert type(clone) is type(original) and clone is not original
        assert clone.get_config() == original.get_config()
        assert clone.model is None  # the bound model is not copied
    assert copies[1].recoveries == [] and copies[1].snapshot_every == 3
    assert copies[2].best is None and copies[2].threshold_mode == "rel"
    # Optimizers given as arguments are shared, not copied.
    shared = LRScheduler(lambda epoch: 0.1, optimizer=opt)
    assert copy.deepcopy(shared).optimizer is opt
    # The copies work on a new model.
    tiny_model(guards.GradientGuard(keras.optimizers.SGD(0.01))).fit(
        *regression_data(), batch_size=16, epochs=1, verbose=0, callbacks=copies)


@pytest.mark.slow
def test_keras_tuner_search_with_all_callbacks(tmp_path):
    kt = pytest.importorskip("keras_tuner")

    def build(hp):
        rate = hp.Choice("rate", [0.01, 0.02])
        opt = guards.GradientGuard(keras.optimizers.SGD(rate), clip=guards.AdaptiveClip(0.1))
        return tiny_model(opt)

    tuner = kt.RandomSearch(build, objective="loss", max_trials=2, directory=str(tmp_path),
                            project_name="guards", overwrite=True, seed=0)
    tuner.search(*regression_data(), batch_size=16, epochs=2, verbose=0, callbacks=_callbacks())
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2
    assert all(t.status == "COMPLETED" for t in trials)
