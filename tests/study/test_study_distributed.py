"""The study on a Dask cluster: a 2-worker LocalCluster on loopback, kept small.

Checks that the records equal an in-process run's, that a worker killed in the middle of a
task has its work rerun elsewhere with every run stored exactly once, that Ctrl-C on the
client writes the partial report and cancels the rest, that a rerun resumes, that workers
limit their TensorFlow threads, and the one-line errors without Dask.
"""

import collections
import json
import os
import signal
import sys
import threading
import time

import pytest
from study_configs import interrupt_after

from keras_lr.cli.main import main
from keras_lr.study import distributed, engine
from keras_lr.study.grid import Plan, RangeTestConfig, RunConfig, Stage
from keras_lr.study.runner import Runner
from keras_lr.study.store import Store

STUDY = pytest.mark.backends("tensorflow", "jax", "torch")


def _plan(seeds=4, rates=(1e-3, 1e-2, 1e-1)):
    runs = [RunConfig("mlp", "digits", "adam", lr, s, epochs=2, size="quick", limit=300)
            for s in range(seeds) for lr in rates]
    follow = lambda records: [  # noqa: E731  (a computed stage, as the schedule stage is)
        RunConfig("mlp", "digits", "adam", 1e-2, 0, epochs=2, size="quick", limit=300,
                  schedule="cosine")] if len(records) >= len(runs) else []
    return Plan([Stage("main", runs), Stage("follow", follow, 1)], rates, "test plan")


def _stored_keys(directory):
    lines = (directory / "runs.jsonl").read_text().splitlines()
    return collections.Counter(json.loads(line)["key"] for line in lines if line.strip())


def _expected_keys(plan):
    keys = [c.key for c in plan.stages[0].configs]
    return set(keys) | {c.key for c in plan.stages[1].configs([{}] * len(keys))}


def test_units_are_what_one_compiled_model_serves():
    runs = [RunConfig("mlp", "digits", o, lr, s) for o in ("adam", "sgd") for s in (0, 1, 2)
            for lr in (0.1, 0.01)]
    warm = [RunConfig("mlp", "digits", "adam", 0.1, s, schedule="warmup") for s in (0, 1)]
    tests = [RangeTestConfig("mlp", "digits", "adam", s) for s in (0, 1)]
    units = distributed.units(runs + warm + tests)
    assert [len(u) for u in units] == [8, 6, 2]  # adam (with its warmup runs), sgd, tests
    for unit in units[:2]:
        assert len({c.group for c in unit}) == 1
        assert [c.seed for c in unit] == sorted(c.seed for c in unit)
    assert sorted(sum(units, []), key=str) == sorted(runs + warm + tests, key=str)
    # fewer units than workers: the largest is split by seed, never below one seed
    split = distributed.units(runs + warm + tests, workers=5)
    assert len(split) == 5 and all(len({c.group for c in u if c.kind == "run"}) <= 1
                                   for u in split)
    one = distributed.units(runs[:2], workers=8)  # one group, one seed: nothing to split
    assert [len(u) for u in one] == [2]


def test_waves_submit_fixed_stages_together():
    fixed = [Stage(n, []) for n in "ab"]
    computed = Stage("c", lambda records: [])
    stages = [fixed[0], fixed[1], computed, Stage("d", [])]
    assert [[s.name for s in w] for w in engine._waves(stages, together=True)] == [
        ["a", "b"], ["c", "d"]]
    assert [[s.name for s in w] for w in engine._waves(stages, together=False)] == [
        ["a"], ["b"], ["c"], ["d"]]


def test_worker_env_shares_the_cores():
    env = distributed.worker_env(3, cores=16)
    assert env["KERAS_LR_THREADS"] == env["OMP_NUM_THREADS"] == "5"
    assert env["TF_NUM_INTEROP_THREADS"] == "1"
    assert distributed.worker_env(4, cores=2)["KERAS_LR_THREADS"] == "1"


def test_without_dask_one_line_errors(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(distributed.DaskMissing, match=r'pip install "keras-lr\[distributed\]"'):
        distributed.connect(workers=2)
    assert main(["study", "--quick", "--workers", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "keras-lr[distributed]" in err


@pytest.mark.parametrize("argv, message", [
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "are exclusive"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--plan", "standard", "--models", "mlp"], "--plan cannot be combined"),
])
def test_bad_cluster_flags(argv, message, capsys, tmp_path):
    assert main(["study", "--quick", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_connect_needs_one_target():
    with pytest.raises(ValueError, match="exactly one"):
        distributed.connect()
    with pytest.raises(ValueError, match="exactly one"):
        distributed.connect("tcp://127.0.0.1:1", 2)


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    client, local = distributed.connect(workers=2)
    yield client, local
    distributed.close(client, local)


def _pids(client):
    return client.run(os.getpid)


@STUDY
@pytest.mark.slow
def test_killed_worker_loses_and_doubles_nothing(cluster, tmp_path):
    client, _ = cluster
    plan = _plan()
    pids = _pids(client)
    killed = {}

    def killer():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for address, keys in client.processing().items():
                if keys and address in pids:
                    killed.update(address=address, task=list(keys)[0])
                    os.kill(pids[address], signal.SIGKILL)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = engine.run_study(plan, tmp_path / "a", progress=False, client=client)
    thread.join(timeout=10)
    assert killed, "no task was seen running, so no worker was killed"
    stored = _stored_keys(tmp_path / "a")
    assert set(stored) == _expected_keys(plan) and set(stored.values()) == {1}
    assert result.executed == len(stored) and not result.interrupted
    assert (tmp_path / "a" / "report.md").exists()

    # the distributed records are the in-process ones (same seeds, same engine)
    local = engine.run_study(plan, tmp_path / "b", progress=False, runner=Runner())
    ours = {r["key"]: r for r in Store(tmp_path / "a").load()}
    theirs = {r["key"]: r for r in Store(tmp_path / "b").load()}
    assert local.executed == len(theirs) == len(ours)
    for key, record in theirs.items():
        assert ours[key]["final_score"] == pytest.approx(record["final_score"], abs=0.02)
        assert ours[key]["val_loss"] == pytest.approx(record["val_loss"], rel=1e-3)

    # a rerun resumes: nothing left to do
    again = engine.run_study(plan, tmp_path / "a", progress=False, client=client)
    assert again.executed == 0 and again.skipped == len(stored)

    # every worker, the restarted one too, limits TensorFlow to cores // 2 threads
    client.wait_for_workers(2, timeout=120)
    threads = client.run(distributed.worker_threads)
    want = max(1, (os.cpu_count() or 1) // 2)
    assert {t["intra_op"] for t in threads.values()} == {want}
    assert {t["inter_op"] for t in threads.values()} == {1}


@STUDY
@pytest.mark.slow
def test_ctrl_c_on_the_client_writes_partial_report_and_resumes(cluster, tmp_path,
                                                                 monkeypatch):
    client, _ = cluster
    plan = _plan(seeds=3, rates=(1e-3, 1e-2))
    interrupt_after(monkeypatch, 2)
    with pytest.raises(engine.StudyInterrupted) as info:
        engine.run_study(plan, tmp_path / "s", progress=False, client=client)
    assert info.value.result.executed == 2
    assert "PARTIAL" in (tmp_path / "s" / "report.md").read_text()
    assert sum(_stored_keys(tmp_path / "s").values()) == 2
    deadline = time.monotonic() + 60  # the other units were cancelled
    while time.monotonic() < deadline and any(client.processing().values()):
        time.sleep(0.2)
    assert not any(client.processing().values())

    monkeypatch.undo()
    result = engine.run_study(plan, tmp_path / "s", progress=False, client=client)
    assert result.skipped == 2 and result.executed == len(_expected_keys(plan)) - 2
    stored = _stored_keys(tmp_path / "s")
    assert set(stored) == _expected_keys(plan) and set(stored.values()) == {1}


@STUDY
@pytest.mark.slow
def test_cli_workers_runs_the_study_on_a_local_cluster(tmp_path, capsys):
    pytest.importorskip("distributed")
    argv = ["study", "--models", "mlp", "--optimizers", "adam", "--lrs", "1e-2,1e-1",
            "--seeds", "1", "--epochs", "1", "--quick", "--no-progress", "--workers", "2",
            "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    assert "keras-lr study: 3 runs" in capsys.readouterr().out  # 2 runs and 1 range test
    assert sum(_stored_keys(tmp_path / "o").values()) == 3
    assert "--workers 2" in (tmp_path / "o" / "report.md").read_text()


@STUDY
@pytest.mark.slow
def test_cli_scheduler_joins_an_existing_cluster(cluster, tmp_path, capsys):
    client, local = cluster
    argv = ["study", "--models", "mlp", "--optimizers", "sgd", "--lrs", "1e-2,1e-1",
            "--seeds", "2", "--epochs", "1", "--quick", "--no-progress",
            "--scheduler", local.scheduler_address, "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    assert "keras-lr study: 6 runs" in capsys.readouterr().out  # 4 runs and 2 range tests
    assert sum(_stored_keys(tmp_path / "o").values()) == 6
    assert client.status == "running" and len(client.scheduler_info()["workers"]) == 2
