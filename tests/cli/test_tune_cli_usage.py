"""`keras-lr tune` usage errors caught before any trial: one line, exit 2, nothing trained."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from keras_lr.cli.main import main

BASE = ["tune", "--model", "mlp", "--limit", "100", "--max-trials", "1", "--epochs", "1",
        "--schedules", "cosine", "--optimizers", "adam", "--clip", "none"]


def run(argv, capsys):
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(autouse=True)
def no_distribution(monkeypatch):
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tuner_and_data():
    pytest.importorskip("keras_tuner")
    pytest.importorskip("sklearn")  # the digits data


@pytest.fixture
def no_search(monkeypatch):
    """Fail the test if a search starts: these errors must come before any trial."""
    import keras_tuner as kt

    def search(self, *args, **kwargs):
        raise AssertionError("the search started")

    monkeypatch.setattr(kt.engine.base_tuner.BaseTuner, "search", search)


def test_missing_keras_tuner_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "keras_tuner", None)  # find_spec then reports it missing
    monkeypatch.delitem(sys.modules, "keras_lr.tuner", raising=False)  # re-run its check
    status, out, err = run(BASE + ["--directory", str(tmp_path)], capsys)
    assert (status, out) == (2, "")
    assert err.startswith("keras-lr: error: keras-lr's tuner hooks need KerasTuner: pip "
                          "install 'keras-lr[tuner]' (missing: keras_tuner")
    assert err.count("\n") == 1


def test_directory_under_a_file_is_one_line(tuner_and_data, no_search, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    status, out, err = run(BASE + ["--directory", str(blocker / "sub")], capsys)
    assert (status, out) == (2, "")
    assert err.startswith(f"keras-lr: error: --directory {str(blocker / 'sub')!r} is not a "
                          "writable directory (")
    assert err.count("\n") == 1


@pytest.mark.parametrize("data, objective, choices", [
    ("digits", "bogus", "val_loss, val_accuracy, loss, accuracy"),
    ("digits", "val_mae", "val_loss, val_accuracy, loss, accuracy"),  # trials used to fail
    ("adding", "val_accuracy", "val_loss, loss"),  # regression: no accuracy
])
def test_objective_must_be_a_metric_the_model_reports(data, objective, choices, tuner_and_data,
                                                      no_search, tmp_path, capsys):
    status, out, err = run(BASE + ["--data", data, "--objective", objective, "--directory",
                                   str(tmp_path / "t")], capsys)
    assert (status, out) == (2, "")
    assert err == (f"keras-lr: error: --objective {objective!r} is not a metric the mlp model "
                   f"reports on {data}; choose from {choices}\n")
    assert not (tmp_path / "t").exists()  # refused before the directory is made


def test_objective_default_and_choices():
    from keras_lr.cli.tune import _objective

    classes = SimpleNamespace(metrics=["accuracy"])
    regression = SimpleNamespace(metrics=[])
    args = SimpleNamespace(objective=None, model="mlp", data="digits")
    assert _objective(args, classes) == "val_accuracy"
    assert _objective(args, regression) == "val_loss"
    for name in ("val_loss", "loss", "accuracy", "val_accuracy"):
        assert _objective(SimpleNamespace(**{**vars(args), "objective": name}), classes) == name


def test_keras_tuner_value_error_is_one_line(tuner_and_data, no_search, monkeypatch, tmp_path,
                                             capsys):
    import keras_tuner as kt

    def refuse(*args, **kwargs):
        raise ValueError("some setting KerasTuner refuses.\nsecond line")

    monkeypatch.setattr(kt, "RandomSearch", refuse)
    status, out, err = run(BASE + ["--directory", str(tmp_path)], capsys)
    assert (status, out, err) == (2, "", "keras-lr: error: KerasTuner: some setting KerasTuner "
                                         "refuses.\n")
