"""`keras-lr tune` in one process: usage errors (one line, exit 2) and a one-trial search."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("keras_tuner")

from keras_lr.cli.main import main  # noqa: E402

BASE = ["tune", "--model", "mlp", "--limit", "100", "--epochs", "1"]


def run(argv, capsys):
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def no_distribution(monkeypatch):
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("extra, env, message", [
    (["--min-lr", "1", "--max-lr", "0.1"], {}, "--max-lr (0.1) must be > --min-lr (1)"),
    (["--tuner", "hyperband", "--max-trials", "3"], {},
     "--max-trials does not apply to --tuner hyperband (its budget is --epochs, its "
     "max_epochs)"),
    (["--schedules", "cosine,cosin"], {},
     "unknown schedule 'cosin'; choose from constant, step, exponential, cosine, "
     "warmup_cosine, onecycle, cyclical"),
    (["--optimizers", ""], {}, "empty optimizer list"),
    ([], {"KERASTUNER_ORACLE_IP": "127.0.0.1"},
     "distributed search: KERASTUNER_ORACLE_IP set but KERASTUNER_ORACLE_PORT, "
     "KERASTUNER_TUNER_ID not; set all three or none"),
    ([], {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "http",
          "KERASTUNER_TUNER_ID": "tuner0"},
     "KERASTUNER_ORACLE_PORT must be a port number, got 'http'"),
    (["--overwrite"], {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
                       "KERASTUNER_TUNER_ID": "tuner0"},
     "--overwrite on a worker would delete the shared project; give it to the chief only"),
])
def test_usage_errors_are_one_line(extra, env, message, tmp_path, capsys, monkeypatch,
                                   no_distribution):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    status, out, err = run(BASE + ["--directory", str(tmp_path)] + extra, capsys)
    assert (status, out, err) == (2, "", f"keras-lr: error: {message}\n")


@pytest.mark.filterwarnings("ignore:Skipping variable loading")
def test_single_machine_search_prints_and_writes_the_best(tmp_path, capsys, no_distribution):
    pytest.importorskip("sklearn")
    status, out, err = run(BASE + ["--max-trials", "2", "--schedules", "cosine", "--optimizers",
                                   "adam", "--clip", "none", "--min-lr", "1e-3", "--max-lr",
                                   "1e-2", "--directory", str(tmp_path)], capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["trial 1", "trial 2"]
    assert "keras-lr tune: trained 2 trial(s), 0 pruned" in lines
    best = json.loads((tmp_path / "mlp_digits" / "best_hyperparameters.json").read_text())
    assert best["objective"] == "val_accuracy"
    assert best["hyperparameters"]["schedule"] == "cosine"
    assert 1e-3 <= best["hyperparameters"]["learning_rate"] <= 1e-2
    assert f"  {best['score']:.4g}  learning_rate=" in out
