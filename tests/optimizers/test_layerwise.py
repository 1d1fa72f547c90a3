"""LayerwiseLR in training: model.fit, XLA, schedules, callbacks, wrappers, save/load, errors."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from backend_utils import JIT_MODES, assert_same
from keras import ops

from keras_lr.optimizers import LayerwiseLR, LayerwiseRow, LRWrapper, Paths, gate_multipliers

A, B = 0.5, 4.0
RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 6)).astype("float32")
Y = RNG.normal(size=(64, 3)).astype("float32")
XS = RNG.normal(size=(64, 5, 3)).astype("float32")


class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    """Oracle helper: `schedule(step) * factor`, for one MultiOptimizer member per group."""

    def __init__(self, schedule, factor):
        self.schedule, self.factor = schedule, factor

    def __call__(self, step):
        return ops.multiply(ops.cast(self.schedule(step), "float32"), self.factor)


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(5, activation="tanh", name="body")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(hidden), name="mlp")


def lstm_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5, 3), name="seq")
    hidden = keras.layers.LSTM(4, name="lstm")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(hidden), name="rnn")


def fit(model, optimizer, epochs=2, jit=False, x=X, **kwargs):
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit)
    model.fit(x, Y, batch_size=16, epochs=epochs, verbose=0, shuffle=False, **kwargs)
    return model.get_weights()


def oracle(factory, lr):
    """MultiOptimizer with one optimizer per group (`lr` may be a schedule)."""

    def scaled(factor):
        if isinstance(lr, float):
            return factory(lr * factor)
        return factory(Scaled(lr, factor))

    return keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(
            scaled(1.0), {"body/.*": scaled(A), "head/kernel": scaled(B)}
        )
    )


RULES = [("^body/", A), ("head/kernel", B)]


@pytest.mark.slow
@pytest.mark.parametrize("jit", JIT_MODES)
def test_fit_matches_multi_optimizer(jit):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 3, 0.7)

    def factory(lr):
        return keras.optimizers.AdamW(lr, weight_decay=0.1)

    expected = fit(mlp(), oracle(factory, schedule), jit=jit)
    got = fit(mlp(), LayerwiseLR(factory(schedule), RULES), jit=jit)
    plain = fit(mlp(), factory(schedule), jit=jit)
    # Different graphs may round a product of the schedule differently (one ulp seen).
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-8)
    assert not np.allclose(got[0], plain[0])
    assert not np.allclose(got[2], plain[2])


def _keras_lr_schedules():
    schedules = pytest.importorskip("keras_lr.schedules")
    return {
        "cosine": lambda: schedules.CosineDecay(0.02, 6, min_learning_rate=0.001),
        "warmup_cosine": lambda: schedules.Warmup(schedules.CosineDecay(0.02, 6), 3),
        "one_cycle": lambda: schedules.OneCycle(0.02, 8),
    }


@pytest.mark.parametrize("kind", ["cosine", "warmup_cosine", "one_cycle"])
def test_keras_lr_schedules_drive_all_groups(kind):
    make = _keras_lr_schedules()[kind]
    expected = fit(mlp(), oracle(keras.optimizers.Adam, make()))
    got = fit(mlp(), LayerwiseLR(keras.optimizers.Adam(make()), RULES))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


def test_learning_rate_scheduler_callback_drives_all_groups():
    rates = [0.05, 0.02, 0.01]
    callback = keras.callbacks.LearningRateScheduler(lambda epoch: rates[epoch])
    got = fit(mlp(), LayerwiseLR(keras.optimizers.SGD(0.1, momentum=0.9), RULES),
              epochs=3, callbacks=[callback])
    # Oracle: MultiOptimizer cannot be driven by the callback; set each member by hand.
    model = mlp()
    members = {f: keras.optimizers.SGD(0.1 * f, momentum=0.9) for f in (1.0, A, B)}
    multi = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(
        members[1.0], {"body/.*": members[A], "head/kernel": members[B]}))
    model.compile(optimizer=multi, loss="mse")
    for rate in rates:
        for factor, member in members.items():
            member.learning_rate = rate * factor
        model.fit(X, Y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for g, e in zip(got, model.get_weights()):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


def test_reduce_lr_on_plateau_sets_the_shared_rate():
    opt = LayerwiseLR(keras.optimizers.SGD(0.1), RULES)
    # min_delta huge: every epoch after the first is a plateau, so the rate halves twice.
    callback = keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e9)
    fit(mlp(), opt, epochs=3, callbacks=[callback])
    assert float(opt.learning_rate) == pytest.approx(0.025)
    assert float(opt.inner_optimizer.learning_rate) == pytest.approx(0.025)


def test_gradient_accumulation_matches_multi_optimizer():
    def factory(lr):
        return keras.optimizers.Adam(lr, gradient_accumulation_steps=2)

    expected = fit(mlp(), oracle(factory, 0.01))
    got = fit(mlp(), LayerwiseLR(factory(0.01), RULES))
    assert_same(got, expected)


def test_inside_loss_scale_optimizer_mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        expected = fit(mlp(), oracle(keras.optimizers.Adam, 0.01), epochs=1)
        opt = LayerwiseLR(keras.optimizers.Adam(0.01), RULES)
        model = mlp()
        got = fit(model, opt, epochs=1)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        keras.config.set_dtype_policy("float32")
    assert_same(got, expected)


def test_inside_explicit_loss_scale_optimizer_float32():
    expected = fit(mlp(), keras.optimizers.LossScaleOptimizer(oracle(keras.optimizers.Adam, 0.01)))
    got = fit(mlp(), keras.optimizers.LossScaleOptimizer(
        LayerwiseLR(keras.optimizers.Adam(0.01), RULES)))
    assert_same(got, expected)


@pytest.mark.parametrize("order", ["layerwise_outside", "layerwise_inside"])
def test_composes_with_other_wrappers(order):
    guards = pytest.importorskip("keras_lr.guards")
    expected = fit(mlp(), oracle(keras.optimizers.Adam, 0.01))
    for wrapper in (LRWrapper, guards.GradientGuard):
        if order == "layerwise_outside":
            opt = LayerwiseLR(wrapper(keras.optimizers.Adam(0.01)), RULES)
        else:
            opt = wrapper(LayerwiseLR(keras.optimizers.Adam(0.01), RULES))
        assert_same(fit(mlp(), opt), expected)


def test_lr_scale_multiplies_every_group():
    opt = LayerwiseLR(keras.optimizers.SGD(0.02), RULES)
    opt.lr_scale.assign(0.5)
    got = fit(mlp(), opt)
    assert_same(got, fit(mlp(), oracle(keras.optimizers.SGD, 0.01)))


# ---------------------------------------------------------------------- freezing
def test_zero_multiplier_freezes_variable_slots_and_weight_decay():
    model = mlp()
    before = model.get_weights()
    opt = LayerwiseLR(keras.optimizers.AdamW(0.01, weight_decay=0.5), {"body/kernel": 0.0})
    after = fit(model, opt)
    np.testing.assert_array_equal(after[0], before[0])
    for i in (1, 2, 3):
        assert not np.allclose(after[i], before[i])
    inner = opt.inner_optimizer
    index = inner._get_variable_index(model.get_layer("body").kernel)
    np.testing.assert_array_equal(inner._momentums[index].numpy(), 0.0)
    np.testing.assert_array_equal(inner._velocities[index].numpy(), 0.0)


def test_weight_decay_exclusions_are_honoured():
    decayed = keras.optimizers.AdamW(0.01, weight_decay=0.5)
    decayed.exclude_from_weight_decay(var_names=["kernel", "bias"])
    got = fit(mlp(), LayerwiseLR(decayed, RULES), epochs=1)
    expected = fit(mlp(), LayerwiseLR(keras.optimizers.Adam(0.01), RULES), epochs=1)
    assert_same(got, expected)


def test_default_zero_trains_only_selected():
    model = mlp()
    before = model.get_weights()
    after = fit(model, LayerwiseLR(keras.optimizers.SGD(0.1, weight_decay=0.1),
                                   [(model.get_layer("head"), 1.0)], default=0.0))
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.allclose(after[2], before[2])


def test_per_unit_array_multiplier():
    model = mlp()
    before = model.get_weights()
    column = np.array([0.0, 1.0, 2.0], "float32")  # broadcasts over head/kernel (5, 3)
    after = fit(model, LayerwiseLR(keras.optimizers.SGD(0.05, weight_decay=0.1),
                                   {"head/kernel": column}))
    np.testing.assert_array_equal(after[2][:, 0], before[2][:, 0])
    assert not np.allclose(after[2][:, 1:], before[2][:, 1:])


# ---------------------------------------------------------------------- selectors, describe
def test_selectors_first_match_wins_and_describe(capsys):
    model = mlp()
    body = model.get_layer("body")
    opt = LayerwiseLR(
        keras.optimizers.Adam(0.01),
        [(body.bias, 3.0), (keras.layers.Dense, 2.0), ("kernel", 9.0)],
    ).bind(model)
    rows = opt.describe()
    printed = capsys.readouterr().out
    assert rows == [
        LayerwiseRow("body/kernel", (6, 5), 2.0, "Dense layers"),
        LayerwiseRow("body/bias", (5,), 3.0, "variable 'body/bias'"),
        LayerwiseRow("head/kernel", (5, 3), 2.0, "Dense layers"),
        LayerwiseRow("head/bias", (3,), 2.0, "Dense layers"),
    ]
    assert "body/kernel" in printed and "Dense layers" in printed
    fit(model, opt, epochs=1)
    assert opt.describe(print_fn=None) == rows


def test_model_instance_selector_for_a_backbone():
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, name="b1"), keras.layers.Dense(4, name="b2")],
        name="backbone",
    )
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="new_head")(backbone(inputs)))
    opt = LayerwiseLR(keras.optimizers.Adam(0.01), {backbone: 0.1})
    rules = [row.multiplier for row in opt.bind(model).describe(print_fn=None)]
    assert rules == [0.1, 0.1, 0.1, 0.1, 1.0, 1.0]


def test_unbuilt_layer_selector_resolves_at_build():
    keras.utils.set_random_seed(0)
    first = keras.layers.Dense(5, name="first")
    opt = LayerwiseLR(keras.optimizers.SGD(0.1), {first: 0.0})  # no variables yet
    model = keras.Sequential([keras.Input((6,)), first, keras.layers.Dense(3, name="second")])
    before = first.kernel.numpy()
    fit(model, opt, epochs=1)
    np.testing.assert_array_equal(first.kernel.numpy(), before)
    assert [r.rule for r in opt.describe(None)][:2] == ["layer 'first'"] * 2


def test_regex_is_search_not_fullmatch():
    rows = LayerwiseLR(keras.optimizers.SGD(0.1), {"kernel": 0.5}).bind(mlp()).describe(None)
    assert [r.multiplier for r in rows] == [0.5, 1.0, 0.5, 1.0]


# ---------------------------------------------------------------------- save / load
@pytest.mark.slow
def test_save_load_resumes_identically(tmp_path):
    def make(model):
        rules = gate_multipliers(model.get_layer("lstm"), f=0.5, o=0.0)
        rules += [(keras.layers.Dense, B), ("lstm", A)]
        return LayerwiseLR(keras.optimizers.AdamW(0.01, weight_decay=0.1), rules).bind(model)

    reference = lstm_model()
    expected = fit(reference, make(reference), epochs=2, x=XS)

    model = lstm_model()
    opt = make(model)
    fit(model, opt, epochs=1, x=XS)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    restored = loaded.optimizer
    assert isinstance(restored, LayerwiseLR)
    assert int(restored.iterations) == 4
    for a, b in zip(restored.variables, opt.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert [(r.path, r.rule) for r in restored.describe(None)] == [
        (r.path, r.rule) for r in opt.describe(None)
    ]
    assert isinstance(restored.get_config()["multipliers"][0][0], dict)
    loaded.fit(XS, Y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert_same(loaded.get_weights(), expected)


def test_sequential_model_loads_with_exact_selectors(tmp_path):
    """A Sequential model names its variables `sequential_N/a/kernel` in the session that built
    it but `a/kernel` after load_model: layer and variable rules must still match."""
    keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])  # takes the name `sequential`
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, name="a"), keras.layers.Dense(3, name="head")])
    assert model.weights[0].path.startswith("sequential_")
    opt = LayerwiseLR(keras.optimizers.SGD(0.1), [(model.get_layer("a"), A),
                                                  (model.get_layer("head").bias, B)])
    model.compile(optimizer=opt, loss="mse")
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "sequential.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert [v.path for v in loaded.weights] == ["a/kernel", "a/bias", "head/kernel", "head/bias"]
    loaded.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    rows = loaded.optimizer.describe(None)
    assert [(r.path, r.multiplier) for r in rows] == [
        ("a/kernel", A), ("a/bias", A), ("head/kernel", 1.0), ("head/bias", B)]
    # saved again from the loaded model, the rules name the new paths
    loaded.save(path)
    again = keras.models.load_model(path, safe_mode=True).optimizer.get_config()["multipliers"]
    assert again[0][0]["config"]["paths"] == ["a/kernel", "a/bias"]


def test_paths_align_only_unambiguous_suffixes():
    rule = Paths(["sequential/a/kernel", "b/bias", "c/kernel"])
    aligned = rule.align(["a/kernel", "m/b/bias", "x/c/kernel", "y/c/kernel"])
    # a/kernel and m/b/bias are unique matches; c/kernel fits two variables and stays
    assert aligned.paths == ("a/kernel", "m/b/bias", "c/kernel")
    assert rule.align(["sequential/a/kernel", "b/bias", "c/kernel"]) is rule


def test_config_round_trip_without_model():
    opt = LayerwiseLR(keras.optimizers.Adam(0.01), [("body", 0.5), (Paths(["head/bias"]), 0.0)],
                      default=2.0, name="lw")
    config = keras.saving.serialize_keras_object(opt)
    clone = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert clone.get_config() == opt.get_config()
    assert clone.default == 2.0 and clone.name == "lw"


# ---------------------------------------------------------------------- errors
def test_bad_multiplier_values():
    adam = keras.optimizers.Adam
    with pytest.raises(ValueError, match=r"must be >= 0. Received: multipliers\[0\]=-1"):
        LayerwiseLR(adam(), {"a": -1})
    with pytest.raises(ValueError, match="finite"):
        LayerwiseLR(adam(), {"a": float("nan")})
    with pytest.raises(ValueError, match="values >= 0"):
        LayerwiseLR(adam(), {"a": np.array([1.0, -0.5])})
    with pytest.raises(TypeError, match="non-negative float"):
        LayerwiseLR(adam(), {"a": "big"})
    with pytest.raises(ValueError, match=r"`default` must be >= 0"):
        LayerwiseLR(adam(), {}, default=-0.1)


def test_bad_selectors_and_structure():
    adam = keras.optimizers.Adam
    with pytest.raises(TypeError, match="selector"):
        LayerwiseLR(adam(), {3: 1.0})
    with pytest.raises(TypeError, match="selector"):
        LayerwiseLR(adam(), {dict: 1.0})
    with pytest.raises(ValueError, match="invalid regular expression"):
        LayerwiseLR(adam(), {"dense[": 1.0})
    with pytest.raises(TypeError, match="pairs"):
        LayerwiseLR(adam(), "dense")
    with pytest.raises(TypeError, match=r"multipliers\[0\]` must be a \(selector, value\)"):
        LayerwiseLR(adam(), [("a", 1.0, 2.0)])


def test_rule_matching_nothing_lists_paths():
    opt = LayerwiseLR(keras.optimizers.Adam(), {"body": 0.5, "decoder": 2.0})
    with pytest.raises(ValueError, match=r"\[\"regex 'decoder'\"\].*head/kernel"):
        fit(mlp(), opt, epochs=1)


def test_wrong_shaped_array():
    opt = LayerwiseLR(keras.optimizers.Adam(), {"head/kernel": np.ones(4, "float32")})
    with pytest.raises(ValueError, match=r"shape \(4,\).*\(5, 3\).*head/kernel"):
        fit(mlp(), opt, epochs=1)


def test_class_selector_needs_bind():
    opt = LayerwiseLR(keras.optimizers.Adam(), {keras.layers.Dense: 0.5})
    with pytest.raises(ValueError, match=r"bind\(model\)"):
        fit(mlp(), opt, epochs=1)
    with pytest.raises(ValueError, match=r"bind\(model\)"):
        opt.get_config()
    with pytest.raises(ValueError, match=r"bind\(model\)"):
        opt.describe()


def test_wrapping_refusals():
    with pytest.raises(TypeError, match="must be a `keras.optimizers.Optimizer` instance"):
        LayerwiseLR("adam", {"a": 1.0})
    inner = LayerwiseLR(keras.optimizers.Adam(), {"a": 1.0})
    with pytest.raises(ValueError, match="cannot wrap another LayerwiseLR"):
        LayerwiseLR(inner, {"b": 1.0})
    with pytest.raises(ValueError, match="cannot wrap another LayerwiseLR"):
        LayerwiseLR(LRWrapper(LayerwiseLR(keras.optimizers.Adam(), {})), {})
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    with pytest.raises(TypeError, match="LossScaleOptimizer outside"):
        LayerwiseLR(lso, {})
    with pytest.raises(ValueError, match="does not support `clipnorm`"):
        LayerwiseLR(keras.optimizers.Adam(), {}, clipnorm=1.0)


# ---------------------------------------------------------------------- tf.distribute
MIRRORED_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_lr.optimizers import LayerwiseLR

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 3)).astype("float32")

    def run(strategy, layerwise):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            inputs = keras.Input((6,))
            h = keras.layers.Dense(5, activation="tanh", name="body")(inputs)
            model = keras.Model(inputs, keras.layers.Dense(3, name="head")(h))
            make = lambda lr: keras.optimizers.AdamW(lr, weight_decay=0.1)
            if layerwise:
                opt = LayerwiseLR(make(0.01), [("^body/", 0.5), ("head/kernel", 0.0)])
            else:
                opt = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(
                    make(0.01), {"body/.*": make(0.005), "head/kernel": make(0.0)}))
            model.compile(optimizer=opt, loss="mse")
        before = model.get_weights()
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        return before, model.get_weights()

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    before, got = run(mirrored, True)
    _, single = run(tf.distribute.get_strategy(), True)
    _, multi = run(tf.distribute.get_strategy(), False)
    np.testing.assert_array_equal(got[2], before[2])        # head/kernel frozen
    for g, s in zip(got, single):
        np.testing.assert_allclose(g, s, rtol=1e-5, atol=1e-6)
    for i in (0, 1, 3):
        np.testing.assert_allclose(got[i], multi[i], rtol=1e-5, atol=1e-6)
        assert not np.allclose(got[i], before[i])
    print("MIRRORED_OK")
    """
)


@pytest.mark.slow
@pytest.mark.backends("tensorflow", reason="tf.distribute.MirroredStrategy is TensorFlow's")
def test_mirrored_strategy_two_cpus_matches_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, env=env,
        timeout=300,
    )
    assert "MIRRORED_OK" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
