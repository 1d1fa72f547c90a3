"""`keras-lr study` end to end: outputs, resume after an interruption, bad input."""

import json

import pytest

from keras_lr.cli.main import main
from keras_lr.study import runner as runner_mod

TINY = ["study", "--models", "mlp", "--optimizers", "adam", "--lrs", "1e-3,1e-2,1e-1",
        "--seeds", "1", "--epochs", "1", "--quick", "--no-progress"]


@pytest.mark.parametrize("argv, message", [
    (["study", "--models", "vgg"], "unknown model 'vgg'"),
    (["study", "--lrs", "1e-3:1"], "LOW:HIGH:N"),
    (["study", "--lrs", "abc"], "not a number"),
    (["study", "--seeds", "0"], "--seeds must be >= 1"),
    (["study", "--epochs", "two"], "--epochs must be an integer"),
    (["study", "--data", "imagenet"], "unknown data set"),
    (["study", "--models", "cnn", "--data", "adding"], "cannot train on 'adding'"),
    (["study", "--clip", "bogus"], "unknown clip"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("keras-lr: error:")


def test_unwritable_out_exits_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(TINY + ["--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "not a writable directory" in err and err.count("\n") == 1


@pytest.mark.slow
def test_interrupted_study_writes_partial_report_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "study"
    calls = []
    original = runner_mod.Runner.run

    def interrupting(self, config):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(config.key)
        return original(self, config)

    monkeypatch.setattr(runner_mod.Runner, "run", interrupting)
    # run by run in one thread, so that it stops between runs
    sequential = TINY + ["--no-parallel", "--threads", "1"]
    assert main(sequential + ["--out", str(out)]) == 130
    assert "interrupted after 2 runs" in capsys.readouterr().err
    assert "PARTIAL" in (out / "report.md").read_text()
    assert len((out / "runs.jsonl").read_text().splitlines()) == 2

    monkeypatch.setattr(runner_mod.Runner, "run", original)
    executed = []
    monkeypatch.setattr(runner_mod.Runner, "run",
                        lambda self, c: executed.append(c.key) or original(self, c))
    assert main(sequential + ["--out", str(out)]) == 0
    assert len(executed) == 1 and executed[0] not in calls  # only the missing rate
    report = (out / "report.md").read_text()
    assert "Status: complete" in report and "2 resumed from the store" in report
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 3 and len(data["range_tests"]) == 1
    # A third run has nothing left to do.
    executed.clear()
    assert main(TINY + ["--parallel", "--out", str(out)]) == 0
    assert executed == []


def test_parallel_study_never_runs_one_by_one(tmp_path, monkeypatch, capsys):
    def refuse(self, config):
        raise AssertionError("the parallel engine should have trained this run")

    monkeypatch.setattr(runner_mod.Runner, "run", refuse)
    out = tmp_path / "par"
    assert main(TINY + ["--parallel", "--out", str(out)]) == 0
    assert "keras-lr study:" in capsys.readouterr().out
    assert "--parallel" in (out / "report.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 3


def test_report_holds_only_the_runs_of_its_own_plan(tmp_path, capsys):
    """Runs of another plan stored in the same directory stay out of the report and claims."""
    out = tmp_path / "shared"
    grid = TINY[:TINY.index("--lrs") + 1] + ["1e-3,1e-2"] + TINY[TINY.index("--lrs") + 2:]
    assert main(grid + ["--out", str(out)]) == 0
    other = grid[:grid.index("--lrs") + 1] + ["1e-1"] + grid[grid.index("--lrs") + 2:]
    assert main(other + ["--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert [r["lr"] for r in data["runs"]] == [0.1]  # not the two runs of the first plan
    assert len((out / "runs.jsonl").read_text().splitlines()) == 4  # all still stored
    assert "2 stored runs of other plans" in (out / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.every_backend
def test_quick_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["study", "--quick", "--no-progress", "--out", str(out)]) == 0
    for name in ("report.md", "report.html", "results.csv", "results.json", "runs.jsonl",
                 "study_accuracy_vs_lr.png", "study_stable_range.png", "study_schedules.png",
                 "study_range_test.png", "study_lr_free_d.png", "study_width_transfer.png",
                 "study_depth.png", "study_norm.png"):
        assert (out / name).stat().st_size > 0, name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 8
    data = json.loads((out / "results.json").read_text())
    ids = {c["id"] for c in data["claims"]}
    assert ids == {"adam_vs_sgd", "warmup_cnn", "clip_rnn", "conv_vs_dense", "gates_lstm",
                   "range_test", "lr_free", "width_sp", "width_mup", "mup_transfer",
                   "norm_stable", "depth_narrows", "residual_widens"}
    assert all(c["verdict"] in ("supported", "not supported", "inconclusive")
               for c in data["claims"])
    assert "claims:" in capsys.readouterr().out
