"""ScheduleFreeAdamW / ScheduleFreeSGD against `schedulefree` 1.4.1, and the evaluation point."""

import copy
import math

import keras
import numpy as np
import pytest
from backend_utils import JIT_MODES
from lrfree_oracles import (
    PROBLEMS,
    assert_close,
    keras_model,
    numpy_params,
    train_keras,
    train_torch,
)

import keras_lr
from keras_lr.callbacks import (
    ScheduleFreeEval,
    recompute_batchnorm_statistics,
    schedule_free_eval,
    schedule_free_mode,
    schedule_free_train,
)
from keras_lr.optimizers import ScheduleFreeAdamW, ScheduleFreeSGD

schedulefree = pytest.importorskip("schedulefree")

STEPS = 200
LR = {"adamw": 0.01, "sgd": 0.1}


def _pair(kind, lr=None, **options):
    """(Keras optimizer, torch factory) with the same arguments."""
    lr = LR[kind] if lr is None else lr
    torch_options = dict(options)
    if kind == "adamw":
        keras_opt = ScheduleFreeAdamW(lr, **options)
        if "beta_1" in options:
            torch_options["betas"] = (torch_options.pop("beta_1"), 0.999)

        def make(params):
            return schedulefree.AdamWScheduleFree(params, lr=lr if isinstance(lr, float) else 0.0,
                                                  **torch_options)
    else:
        keras_opt = ScheduleFreeSGD(lr, **options)

        def make(params):
            return schedulefree.SGDScheduleFree(params, lr=lr if isinstance(lr, float) else 0.0,
                                                **torch_options)
    return keras_opt, make


def _compare(model, optimizer, params):
    """The model holds x: compare with the reference's eval(); then y with train()."""
    assert schedule_free_mode(model) == "eval"
    optimizer.eval()
    assert_close(model.get_weights(), numpy_params(params))
    assert schedule_free_train(model)
    optimizer.train()
    assert_close(model.get_weights(), numpy_params(params))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["adamw", "sgd"])
@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("weight_decay,warmup_steps", [(0.0, 0), (0.01, 20)])
def test_trajectory_equals_reference(kind, problem, weight_decay, warmup_steps):
    keras_opt, make = _pair(kind, weight_decay=weight_decay, warmup_steps=warmup_steps)
    model = train_keras(problem, keras_opt, STEPS, callbacks=[ScheduleFreeEval()])
    reference, params = train_torch(problem, make, STEPS)
    _compare(model, reference, params)


@pytest.mark.parametrize("jit_compile", JIT_MODES)
@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_jit_modes_equal_reference(kind, jit_compile):
    keras_opt, make = _pair(kind, weight_decay=0.01, warmup_steps=10, r=1.0,
                            weight_lr_power=1.0)
    model = train_keras("dense", keras_opt, 60, jit_compile=jit_compile,
                        callbacks=[ScheduleFreeEval()])
    reference, params = train_torch("dense", make, 60)
    _compare(model, reference, params)


def test_non_default_betas_equal_reference():
    keras_opt, make = _pair("adamw", beta_1=0.95, warmup_steps=5)
    model = train_keras("lstm", keras_opt, 40, callbacks=[ScheduleFreeEval()])
    reference, params = train_torch("lstm", make, 40)
    _compare(model, reference, params)
    keras_opt, make = _pair("sgd", momentum=0.5)
    model = train_keras("dense", keras_opt, 40, callbacks=[ScheduleFreeEval()])
    reference, params = train_torch("dense", make, 40)
    _compare(model, reference, params)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_schedules_as_learning_rate(kind):
    """A keras-lr schedule and a Keras schedule: the reference gets the same rate per step."""
    peak = LR[kind]
    for schedule in (keras_lr.schedules.CosineDecay(peak, 60, min_learning_rate=peak / 10),
                     keras.optimizers.schedules.CosineDecay(peak, 60, alpha=0.1)):
        keras_opt, make = _pair(kind, lr=schedule, warmup_steps=5)
        model = train_keras("dense", keras_opt, 60, callbacks=[ScheduleFreeEval()])

        def rate(step):
            return peak * 0.1 + (peak - peak * 0.1) * (1 + math.cos(math.pi * step / 60)) / 2

        reference, params = train_torch("dense", make, 60, schedule=rate)
        _compare(model, reference, params)


def test_validation_evaluate_and_end_of_fit_use_x(tmp_path):
    """val_loss is measured at x, training goes on at y, checkpoints and the result hold x,
    and a run resumed from a checkpoint continues exactly."""
    from lrfree_oracles import _data

    x, y = _data("dense", 100)
    xv, yv = x[:16] + 0.5, y[:16]
    path = str(tmp_path / "sf.keras")

    model = keras_model("dense")
    model.compile(optimizer=ScheduleFreeAdamW(0.01, warmup_steps=10), loss="mse")
    history = model.fit(
        x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv),
        callbacks=[ScheduleFreeEval(), keras.callbacks.ModelCheckpoint(path)])
    reference, params = train_torch(
        "dense", lambda p: schedulefree.AdamWScheduleFree(p, lr=0.01, warmup_steps=10), 200,
        data=(np.concatenate([x, x]), np.concatenate([y, y])))
    reference.eval()
    x_ref = numpy_params(params)
    assert_close(model.get_weights(), x_ref)
    # The last validation loss is the loss at x after 200 steps.
    val = model.evaluate(xv, yv, verbose=0, callbacks=[ScheduleFreeEval()])
    np.testing.assert_allclose(history.history["val_loss"][-1], val, rtol=1e-5)
    assert schedule_free_mode(model) == "eval"   # evaluate put back what the model held

    # The checkpoint of the last epoch holds x, and says so.
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert_close(loaded.get_weights(), x_ref)
    assert schedule_free_mode(loaded) == "eval"

    # Resume: checkpoint after epoch 1 (100 steps), then 100 more steps = 200 uninterrupted.
    half = keras_model("dense")
    half.compile(optimizer=ScheduleFreeAdamW(0.01, warmup_steps=10), loss="mse")
    half.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
             callbacks=[ScheduleFreeEval(), keras.callbacks.ModelCheckpoint(path)])
    resumed = keras.saving.load_model(path, safe_mode=True)
    assert schedule_free_mode(resumed) == "eval"
    resumed.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                callbacks=[ScheduleFreeEval()])
    assert_close(resumed.get_weights(), x_ref)
    assert_close([keras.ops.convert_to_numpy(v) for v in resumed.optimizer.variables],
                 [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])


def test_manual_swaps_are_idempotent_and_inverse():
    model = train_keras("dense", ScheduleFreeSGD(0.1), 20)
    y = model.get_weights()
    assert schedule_free_mode(model) == "train"
    assert schedule_free_eval(model) is True
    x = model.get_weights()
    assert schedule_free_eval(model) is False
    assert_close(model.get_weights(), x, rtol=0, atol=0)
    assert schedule_free_train(model) is True
    assert_close(model.get_weights(), y, rtol=1e-5)
    # x = (y - (1 - beta) z) / beta, from the optimizer's own z.
    zs = [keras.ops.convert_to_numpy(z) for _, z in model.optimizer.z_variables()]
    for xi, yi, zi in zip(x, y, zs):
        np.testing.assert_allclose(xi, (yi - 0.1 * zi) / 0.9, rtol=1e-5, atol=1e-7)


def test_keras_schedule_free_adamw_gets_x():
    """Keras's own optimizer: the callback leaves x = (y - (1 - beta_1) momentum) / beta_1."""
    plain = keras_model("dense")
    plain.compile(optimizer=keras.optimizers.ScheduleFreeAdamW(0.01), loss="mse")
    # Built eagerly, as the callback does (inside TensorFlow's first traced step, Keras's
    # optimizer loses the assign that starts z at the weights).
    plain.optimizer.build(plain.trainable_variables)
    plain = train_keras("dense", plain.optimizer, 30, model=plain)
    y = plain.get_weights()
    momenta = [keras.ops.convert_to_numpy(m) for m in plain.optimizer._momentums]
    expected = [(yi - 0.1 * mi) / 0.9 for yi, mi in zip(y, momenta)]
    swapped = train_keras("dense", keras.optimizers.ScheduleFreeAdamW(0.01), 30,
                          callbacks=[ScheduleFreeEval()])
    assert_close(swapped.get_weights(), expected, rtol=1e-5)
    assert schedule_free_mode(swapped) == "eval"
    assert schedule_free_train(swapped)
    assert_close(swapped.get_weights(), y, rtol=1e-5)


def test_wrapped_optimizer_is_found():
    opt = keras_lr.optimizers.LRWrapper(ScheduleFreeSGD(0.1))
    model = train_keras("dense", opt, 10, callbacks=[ScheduleFreeEval()])
    assert schedule_free_mode(model) == "eval"


def test_not_schedule_free_is_refused():
    model = keras_model("dense")
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="schedule-free optimizer"):
        schedule_free_eval(model)


def test_batchnorm_statistics_are_the_mean_of_batch_statistics():
    rng = np.random.default_rng(0)
    data = rng.normal(loc=2.0, size=(96, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(),
                              keras.layers.Dense(1)])
    bn = model.layers[0]
    used = recompute_batchnorm_statistics(model, data, steps=2)
    assert used == 2
    batches = [data[:32], data[32:64]]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean),
                               np.mean([b.mean(0) for b in batches], 0), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance),
                               np.mean([b.var(0) for b in batches], 0), rtol=1e-5)
    assert bn.momentum == 0.99


@pytest.mark.parametrize("cls", [ScheduleFreeAdamW, ScheduleFreeSGD])
def test_config_round_trip_and_save(cls, tmp_path):
    opt = cls(keras_lr.schedules.CosineDecay(0.01, 100), weight_decay=0.1, warmup_steps=3,
              r=0.5, weight_lr_power=1.5, clipnorm=1.0)
    config = opt.get_config()
    clone = cls.from_config(copy.deepcopy(config))  # Keras edits the dict in place
    assert clone.get_config() == config
    for key in ("weight_decay", "warmup_steps", "r", "weight_lr_power", "clipnorm"):
        assert key in config
    model = train_keras("dense", opt, 10)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.optimizer) is cls
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


@pytest.mark.parametrize(
    "cls,kwargs,message",
    [
        (ScheduleFreeAdamW, {"warmup_steps": -1},
         "Argument `warmup_steps` must be >= 0. Received: warmup_steps=-1"),
        (ScheduleFreeAdamW, {"weight_lr_power": -1.0},
         "Argument `weight_lr_power` must be >= 0. Received: weight_lr_power=-1.0"),
        (ScheduleFreeAdamW, {"r": -0.5}, "Argument `r` must be >= 0. Received: r=-0.5"),
        (ScheduleFreeAdamW, {"beta_1": 1.0}, "Argument `beta_1` must be in the open interval"),
        (ScheduleFreeAdamW, {"beta_1": 0.0}, "Argument `beta_1` must be in the open interval"),
        (ScheduleFreeAdamW, {"beta_2": 1.5}, "Argument `beta_2` must be in the open interval"),
        (ScheduleFreeAdamW, {"epsilon": 0.0}, "Argument `epsilon` must be > 0"),
        (ScheduleFreeAdamW, {"weight_decay": -0.1}, "Argument `weight_decay` must be >= 0"),
        (ScheduleFreeSGD, {"momentum": 1.0}, "Argument `momentum` must be in the open interval"),
        (ScheduleFreeSGD, {"momentum": -0.1},
         "Argument `momentum` must be in the open interval"),
        (ScheduleFreeSGD, {"warmup_steps": 1.5}, "Argument `warmup_steps` must be an integer"),
    ],
)
def test_bad_arguments(cls, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[")):
        cls(**kwargs)
