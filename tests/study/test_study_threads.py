"""Groups trained at once in one process (`keras_lr.study.engine.group_threads`).

Checks that two threads store exactly the records of one (every backend: the default is 2 on
JAX only, but the engine is the same), that an error in one unit reaches the caller and stops
the other thread, that closing the record stream (Ctrl-C) starts no further run, the
argument errors, and on JAX that groups lowering to the same module share one compilation.
"""

import threading

import keras
import pytest
from study_configs import interrupt_after, small_config

from keras_lr.cli.main import main
from keras_lr.study import engine
from keras_lr.study.grid import Plan, RangeTestConfig, Stage
from keras_lr.study.runner import Runner
from keras_lr.study.store import Store

STUDY = pytest.mark.backends("tensorflow", "jax", "torch")


def _plan():
    runs = [small_config(optimizer=opt, lr=lr) for opt in ("adam", "sgd") for lr in (1e-2, 1e-1)]
    ranges = [RangeTestConfig("mlp", "digits", "adam", 0, size="quick", limit=300,
                              num_steps=10)]
    follow = lambda records: [  # noqa: E731  (a computed stage, as the schedule stage is)
        small_config(lr=1e-2, schedule="cosine")] if len(records) >= len(runs) else []
    return Plan([Stage("main", runs + ranges), Stage("follow", follow, 1)], (1e-2, 1e-1),
                "test plan")


def _without_time(records):
    return {r["key"]: {k: v for k, v in r.items() if k != "seconds"} for r in records}


@STUDY
def test_two_threads_store_the_records_of_one(tmp_path):
    one = engine.run_study(_plan(), tmp_path / "one", progress=False, threads=1)
    two = engine.run_study(_plan(), tmp_path / "two", progress=False, threads=2)
    assert one.executed == two.executed == 6 and not two.interrupted
    ours = _without_time(Store(tmp_path / "two").load())
    assert ours == _without_time(Store(tmp_path / "one").load())
    # a rerun resumes as ever
    again = engine.run_study(_plan(), tmp_path / "two", progress=False, threads=2)
    assert again.executed == 0 and again.skipped == 6


class _Failing(Runner):
    """Fails the SGD group's first run; counts every run started."""

    def __init__(self):
        super().__init__(parallel=False)  # every run through `run`
        self.started = []

    def run(self, config):
        self.started.append(config.key)
        if config.optimizer == "sgd":
            raise RuntimeError("boom")
        return super().run(config)


@STUDY
def test_an_error_in_one_unit_reaches_the_caller(tmp_path):
    runner = _Failing()
    with pytest.raises(RuntimeError, match="boom"):
        engine.run_study(_plan(), tmp_path / "s", progress=False, runner=runner, threads=2)
    assert not [t for t in threading.enumerate() if t.name.startswith("keras-lr-group")]
    # the failing unit stopped at its first run; nothing of it is stored
    sgd = {c.key for c in _plan().stages[0].configs if getattr(c, "optimizer", "") == "sgd"}
    assert len(sgd & set(runner.started)) == 1
    assert not sgd & {r["key"] for r in Store(tmp_path / "s").load()}


class _Counting(Runner):
    def __init__(self):
        super().__init__(parallel=False)
        self.started = 0

    def run(self, config):
        self.started += 1
        return super().run(config)


@STUDY
def test_closing_the_stream_starts_no_further_run():
    runner = _Counting()
    todo = [small_config(optimizer=opt, lr=lr, seed=seed) for opt in ("adam", "sgd")
            for seed in (0, 1) for lr in (1e-3, 1e-2, 3e-2, 1e-1)]
    todo.sort(key=lambda c: (c.kind, c.group, c.seed))
    stream = engine._threaded_records(todo, runner, 2)
    config, record = next(stream)
    assert record["key"] == config.key
    stream.close()  # what the engine does on Ctrl-C; joins both threads
    assert not [t for t in threading.enumerate() if t.name.startswith("keras-lr-group")]
    # the threads finished the runs they were in and started no other: without the stop,
    # closing would wait for all 16
    assert runner.started < len(todo) / 2


def test_group_threads_by_backend_and_argument_errors():
    auto = engine.group_threads()
    assert auto == (min(2, __import__("os").cpu_count() or 1)
                    if keras.backend.backend() == "jax" else 1)
    assert engine.group_threads(3) == 3
    with pytest.raises(ValueError, match=r"Argument `threads` must be >= 1\. Received: "
                                         r"threads=0"):
        engine.group_threads(0)
    with pytest.raises(ValueError, match="with a Dask `client`"):
        engine.run_study(_plan(), "unused", progress=False, client=object(), threads=2)


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--threads", "two"], "--threads must be an integer"),
    (["--threads", "2", "--workers", "2"], "--threads is for one process"),
])
def test_bad_threads_flags(argv, message, capsys, tmp_path):
    code = main(["study", "--quick", "--out", str(tmp_path / "s"), *argv])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "s" / "runs.jsonl").exists()


@pytest.mark.backends("jax", reason="the JAX epochs' compilation cache")
def test_groups_lowering_to_one_module_share_one_compilation():
    runner = Runner()
    # the same model and optimizer in two groups (they differ in their number of epochs)
    a = runner.run(small_config(epochs=1))
    b = runner.run(small_config(epochs=2))
    runner.run(small_config(optimizer="sgd"))
    trainers = {k[5]: t for k, t in runner._trainers.items() if k[2] == "adam"}
    sgd = next(t for k, t in runner._trainers.items() if k[2] == "sgd")
    first, second = (trainers[e].epochs._compiled._futures for e in (1, 2))
    assert first[0] is second[0] and first[1] is second[1]  # epoch and evaluation shared
    third = sgd.epochs._compiled._futures
    assert third[0] is not first[0] and third[1] is first[1]  # another optimizer: its own epoch
    assert a["val_loss"][0] == b["val_loss"][0]  # the same first epoch from the same weights


@STUDY
def test_ctrl_c_writes_the_partial_report_and_a_rerun_resumes(tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 2)
    with pytest.raises(engine.StudyInterrupted) as info:
        engine.run_study(_plan(), tmp_path / "s", progress=False, threads=2)
    assert info.value.result.executed == 2
    assert "PARTIAL" in (tmp_path / "s" / "report.md").read_text()
    assert not [t for t in threading.enumerate() if t.name.startswith("keras-lr-group")]

    monkeypatch.undo()
    result = engine.run_study(_plan(), tmp_path / "s", progress=False, threads=2)
    assert result.skipped == 2 and result.executed == 4
    keys = [r["key"] for r in Store(tmp_path / "s").load()]
    assert len(keys) == len(set(keys)) == 6
