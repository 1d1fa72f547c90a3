"""recommend() returns compile-ready objects whose numbers come from the measured table."""

import keras
import numpy as np
import pytest

from keras_lr import data, models, recipes
from keras_lr.optimizers import current_learning_rate


@pytest.mark.parametrize("family", ["mlp", "cnn", "lstm", "gru"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_recommend_compiles_and_trains_one_step(family, optimizer):
    ds = data.load("digits", view=family, limit=64)
    model = models.build(family, ds.input_shape, ds.num_classes, seed=0,
                         **({"units": 8} if family in ("lstm", "gru") else {}))
    recipe = recipes.recommend(model, optimizer=optimizer, steps_per_epoch=10, epochs=3)
    assert recipe.family == family
    entry = recipes.MEASURED[family]
    assert recipe.learning_rate == entry[optimizer]["peak"]
    assert (recipe.clip is not None) == (entry["clip"] is not None)
    model.compile(optimizer=recipe.optimizer, loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    # Two steps: a warmup schedule starts at rate 0.
    model.fit(ds.x_train[:32], ds.y_train[:32], batch_size=16, epochs=1, verbose=0)
    after = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert np.isfinite(current_learning_rate(recipe.optimizer))
    assert recipe.summary().startswith(family)


def test_recommend_by_family_name_and_errors():
    recipe = recipes.recommend("cnn", steps_per_epoch=5, epochs=2)
    assert isinstance(recipe.optimizer, keras.optimizers.Optimizer)
    with pytest.raises(ValueError, match="model_or_family"):
        recipes.recommend("transformer")
    with pytest.raises(ValueError, match="optimizer"):
        recipes.recommend("mlp", optimizer="lion")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        recipes.recommend("mlp", steps_per_epoch=0)


def test_family_of_infers_from_layers():
    conv = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3),
                             keras.layers.Flatten(), keras.layers.Dense(2)], name="net")
    assert recipes.family_of(conv) == "cnn"
    rnn = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(2)], name="net2")
    assert recipes.family_of(rnn) == "gru"
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="net3")
    assert recipes.family_of(dense) == "mlp"


def test_simple_rnn_has_no_recipe():
    from keras_lr import models

    # before: the package's own simple_rnn family silently got the MLP recipe
    for model in (models.build("simple_rnn", (8, 8), 10),
                  keras.Sequential([keras.Input((5, 3)), keras.layers.SimpleRNN(2)], name="s")):
        with pytest.raises(ValueError, match="no measured recipe"):
            recipes.recommend(model)


def _record(optimizer, lr, seed, score, schedule="constant", loss=0.1):
    fields = {"kind": "run", "family": "mlp", "data": "digits", "optimizer": optimizer,
              "schedule": schedule, "clip": "none", "multipliers": "none", "epochs": 2,
              "size": "quick", "lr": lr, "seed": seed, "final_score": score,
              "best_score": score, "final_loss": loss, "best_loss": loss, "oscillation": 0.0,
              "diverged": False, "baseline_score": 0.1, "epochs_to_target": None}
    fields["variant"] = f"{optimizer}|{schedule}"
    return fields


def test_derive_table_from_records():
    records = []
    for seed in (0, 1):
        for lr, adam, sgd in ((0.001, 0.9, 0.5), (0.01, 0.95, 0.8), (0.1, 0.3, 0.96)):
            records.append(_record("adam", lr, seed, adam))
            records.append(_record("sgd", lr, seed, sgd))
        records.append(_record("adam", 0.01, seed, 0.97, schedule="cosine"))
        records.append(_record("adam", 0.01, seed, 0.97, schedule="step", loss=0.2))
    table = recipes.derive_table(records)
    assert list(table) == ["mlp"]
    assert table["mlp"]["sgd"] == {"rate": 0.1, "schedule": "constant", "peak": 0.1}
    # cosine and step tie on accuracy; cosine has the lower loss
    assert table["mlp"]["adam"] == {"rate": 0.01, "schedule": "cosine", "peak": 0.01}
    assert table["mlp"]["clip"] is None and table["mlp"]["multipliers"] is None
