"""`keras-lr find` (in process through `main`)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from keras_lr.cli.main import main

pytest.importorskip("sklearn")  # the digits data


def run(argv, capsys):
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_find_writes_plot_and_json(tmp_path, capsys):
    status, out, err = run(
        ["find", "--model", "mlp", "--data", "digits", "--num-steps", "20", "--out",
         str(tmp_path)], capsys)
    assert status == 0, err
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((tmp_path / "lr_find.json").read_text())
    assert record["model"] == "mlp" and record["num_steps"] == 20
    n = len(record["learning_rates"])
    assert 10 <= n <= 20 and len(record["losses"]) == n
    assert np.all(np.isfinite(record["losses"]))
    for name in ("valley", "steep", "minimum"):
        assert name in out
    assert "lr_find.png" in out


@pytest.mark.filterwarnings("ignore:Skipping variable loading")  # unbuilt optimizer saved
def test_find_with_a_saved_model(tmp_path, capsys):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    path = tmp_path / "tiny.keras"
    model.save(path)
    status, out, err = run(
        ["find", "--model", str(path), "--num-steps", "12", "--start-lr", "1e-4", "--end-lr",
         "1", "--out", str(tmp_path / "o")], capsys)
    assert status == 0, err
    assert (tmp_path / "o" / "lr_find.json").exists()
    # the reference model must match the data view
    image = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    image.compile("adam", "sparse_categorical_crossentropy")
    image.save(tmp_path / "wrong.keras")
    status, _, err = run(["find", "--model", str(tmp_path / "wrong.keras")], capsys)
    assert status == 2 and "does not match" in err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model", "mlp", "--num-steps", "5"], ["--num-steps"]),
        (["--model", "mlp", "--start-lr", "1", "--end-lr", "0.5"], ["--end-lr"]),
        (["--model", "mlp", "--start-lr", "-1"], ["--start-lr"]),
        (["--model", "transformer"], ["--model"]),
        (["--model", "mlp", "--data", "nope"], ["--data"]),
        (["--model", "mlp", "--optimizer", "lion"], ["--optimizer"]),
        (["--model", "missing.keras"], ["no such file"]),
        (["--model", "mlp", "--verify", "1"], ["--verify"]),
    ],
)
def test_bad_input_exits_2(argv, words, capsys, tmp_path):
    try:
        status = main(["find", *argv, "--out", str(tmp_path)])
    except SystemExit as exit_:  # argparse's own type errors
        status = exit_.code
    _, err = capsys.readouterr()
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "lr_find.png").exists()




def test_find_verify_trains_rates_around_the_valley(tmp_path, capsys):
    status, out, err = run(
        ["find", "--model", "mlp", "--num-steps", "40", "--start-lr", "1e-4", "--end-lr", "10",
         "--verify", "3", "--verify-epochs", "1", "--out", str(tmp_path)], capsys)
    assert status == 0, err
    verify = json.loads((tmp_path / "lr_find.json").read_text())["verify"]
    rates = verify["learning_rates"]
    assert len(rates) == 3 and rates[1] == pytest.approx(verify["around"], rel=1e-6)
    assert rates[0] == pytest.approx(verify["around"] / 10, rel=1e-6)
    assert len(verify["history"]["val_loss"]) == 3  # one curve per rate
    best = verify["best"]
    assert best["learning_rate"] == pytest.approx(rates[best["index"]])
    assert out.count("<- best") == 1 and "verify: best rate" in out
    assert (tmp_path / "lr_verify.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def no_range_test(monkeypatch):
    """Fail the test if the range test starts: these errors must come before any training."""
    import keras_lr.finder

    def find_lr(*args, **kwargs):
        raise AssertionError("the range test started")

    monkeypatch.setattr(keras_lr.finder, "find_lr", find_lr)


def test_out_under_a_file_exits_2_before_training(tmp_path, capsys, no_range_test):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    status, out, err = run(["find", "--model", "mlp", "--num-steps", "10", "--out",
                            str(blocker / "sub")], capsys)
    assert (status, out) == (2, "")
    assert err.startswith(f"keras-lr: error: --out {str(blocker / 'sub')!r} is not a writable "
                          "directory (")
    assert err.count("\n") == 1


@pytest.mark.filterwarnings("ignore:Skipping variable loading")  # unbuilt optimizer saved
def test_verify_refuses_a_model_it_cannot_replicate_before_training(tmp_path, capsys,
                                                                    no_range_test):
    inputs = keras.Input((64,))
    functional = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs))
    functional.compile("adam", "sparse_categorical_crossentropy")
    functional.save(tmp_path / "functional.keras")
    status, out, err = run(["find", "--model", str(tmp_path / "functional.keras"), "--num-steps",
                            "10", "--verify", "2", "--out", str(tmp_path / "o")], capsys)
    assert (status, out) == (2, "")
    assert err.startswith("keras-lr: error: --verify: parallel_fit replicates `keras.Sequential`")
    assert err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # nothing written
