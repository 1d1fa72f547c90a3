"""The standard plan (MNIST-5k, Fashion-MNIST, CIFAR-10 where present) and its per-data claims."""

import dataclasses

import pytest

from keras_lr import data
from keras_lr.study import grid, standard
from keras_lr.study.claims import evaluate_claims

RATES = (1e-3, 1e-2, 1e-1, 1.0)


def _run(name, family, optimizer, lr, seed, score, **fields):
    config = grid.RunConfig(family, name, optimizer, lr, seed, **fields)
    return {"kind": "run", "key": config.key, "variant": config.variant,
            **dataclasses.asdict(config), "final_score": score, "best_score": score,
            "final_loss": 1.0, "best_loss": 1.0, "oscillation": 0.0, "diverged": score < 0.2,
            "baseline_score": 0.1, "epochs_to_target": None}


def _records(name, adam, sgd):
    return [_run(name, f, o, lr, seed, s) for f in ("mlp", "cnn") for seed in (0, 1)
            for o, scores in (("adam", adam), ("sgd", sgd)) for lr, s in zip(RATES, scores)]


def test_claims_per_data_set_equal_the_digits_claims_on_the_same_numbers():
    adam, sgd = (0.9, 0.95, 0.5, 0.1), (0.3, 0.8, 0.95, 0.1)
    digits = evaluate_claims(_records("digits", adam, sgd))
    # Fashion-MNIST with the same numbers, MNIST-5k where Adam and SGD peak together
    rows = standard.evaluate_per_data(_records("fashion_mnist", adam, sgd)
                                      + _records("mnist5k", sgd, sgd))
    fashion = [r for r in rows if r["data"] == "fashion_mnist"]
    assert [(r["id"], r["verdict"], r["effect"]) for r in fashion] == [
        (r["id"], r["verdict"], r["effect"]) for r in digits if r["id"] != "clip_rnn"]
    assert all(r["subject"].count("/fashion_mnist") == 1 for r in fashion)
    assert {r["subject"] for r in fashion if r["id"] == "adam_vs_sgd"} == {
        "mlp/fashion_mnist", "cnn/fashion_mnist"}
    mnist = {r["subject"]: r for r in rows if r["data"] == "mnist5k" and r["id"] == "adam_vs_sgd"}
    assert {r["verdict"] for r in mnist.values()} == {"not supported"}  # same peak: 0 decades
    fashion_adam = [r for r in fashion if r["id"] == "adam_vs_sgd"]
    assert {r["verdict"] for r in fashion_adam} == {"supported"}  # two decades apart
    assert not [r for r in rows if r["id"] == "clip_rnn"]


def test_standard_plan_uses_the_data_sets_present(monkeypatch):
    monkeypatch.setattr(data, "available", lambda: ("digits", "mnist5k", "adding"))
    plan = grid.standard_plan(quick=True)
    names = {c.data for stage in plan.stages for c in stage.configs}
    assert names == {"mnist5k"} and plan.claims is standard.evaluate_per_data
    assert {c.size for stage in plan.stages for c in stage.configs} == {"standard"}
    main = [c for c in plan.stages[0].configs]
    assert {c.family for c in main} == {"mlp", "cnn"} and len({c.lr for c in main}) == 5
    full = grid.standard_plan()
    assert {c.limit for s in full.stages for c in s.configs} == {None}
    assert "lstm" in {c.family for s in full.stages for c in s.configs}
    monkeypatch.setattr(data, "available", lambda: ("digits",))
    with pytest.raises(ValueError, match="none of the standard data sets"):
        grid.standard_plan()


def test_standard_models_fit_28x28_and_32x32():
    from keras_lr import models
    from keras_lr.study.runner import MODEL_KWARGS

    for shape in ((28, 28, 1), (32, 32, 3)):
        model = models.build("cnn", shape, 10, **MODEL_KWARGS["standard"]["cnn"])
        assert model.get_layer("pool_2").output.shape[1:3] == (4, 4)


def test_a_custom_grid_on_other_data_measures_its_claims_there():
    plan = grid.custom_plan(("mlp",), "fashion_mnist", ("adam",), (0.01,), ("constant",),
                            ("none",), seeds=1, epochs=1)
    assert plan.claims is standard.evaluate_per_data
    digits = grid.custom_plan(("mlp",), "digits", ("adam",), (0.01,), ("constant",),
                              ("none",), seeds=1, epochs=1)
    assert digits.claims is None
