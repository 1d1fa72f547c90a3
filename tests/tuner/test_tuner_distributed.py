"""`keras-lr tune` in KerasTuner's distributed mode: a chief and two workers on 127.0.0.1.

Every process runs in its own process group and is killed in `finally`, whatever happens:
a KerasTuner worker waits up to an hour for a missing chief, and a chief whose search failed
never exits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("keras_tuner")
pytest.importorskip("sklearn")  # the digits data

import keras_lr  # noqa: E402

pytestmark = pytest.mark.slow
DEADLINE_S = 240  # the whole search; it takes well under a minute on 2 busy cores
TRIALS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(tuner_id, port, directory, log):
    env = dict(os.environ, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port),
               KERASTUNER_TUNER_ID=tuner_id, KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(keras_lr.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "keras_lr.cli.main", "tune", "--model", "mlp", "--limit",
               "300", "--max-trials", str(TRIALS), "--epochs", "2", "--min-lr", "1e-3",
               "--max-lr", "10", "--schedules", "constant,cosine", "--optimizers", "adam",
               "--clip", "none", "--directory", str(directory), "--project-name", "dist"]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def wait_for(condition, deadline, what, processes):
    while not condition():
        for name, process in processes.items():
            if process.poll() is not None and process.returncode != 0:
                raise AssertionError(f"{name} exited with {process.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_chief_and_two_workers_finish_a_search_together(tmp_path):
    port, directory = free_port(), tmp_path / "tuning"
    logs = {name: tmp_path / f"{name}.log" for name in ("tuner1", "tuner2", "chief")}
    text = {name: (lambda path=path: path.read_text(errors="replace")) for name, path in
            logs.items()}
    processes, handles = {}, []
    deadline = time.monotonic() + DEADLINE_S
    try:
        # Workers first: once both wait for the oracle, starting the chief lets both ask for
        # a trial at the same moment, so both get work however slowly each one started.
        for name in ("tuner1", "tuner2"):
            handles.append(logs[name].open("w"))
            processes[name] = start(name, port, directory, handles[-1])
        wait_for(lambda: all("asking the oracle" in text[n]() for n in ("tuner1", "tuner2")),
                 deadline, "the workers to be ready", processes)
        handles.append(logs["chief"].open("w"))
        processes["chief"] = start("chief", port, directory, handles[-1])
        for name, process in processes.items():
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert process.returncode == 0, f"{name} failed:\n{text[name]()[-3000:]}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for handle in handles:
            handle.close()

    trained = {}
    for name in ("tuner1", "tuner2"):
        found = re.search(rf"worker {name} finished: trained (\d+) trial\(s\), (\d+) pruned",
                          text[name]())
        assert found, text[name]()[-3000:]
        trained[name] = int(found.group(1))
    assert all(count >= 1 for count in trained.values()), trained  # both workers ran trials
    assert sum(trained.values()) == TRIALS
    statuses = [json.loads(path.read_text())["status"]
                for path in sorted((directory / "dist").glob("trial_*/trial.json"))]
    assert statuses == ["COMPLETED"] * TRIALS
    assert "best trials (val_accuracy):" in text["chief"]()
    best = json.loads((directory / "dist" / "best_hyperparameters.json").read_text())
    assert best["objective"] == "val_accuracy" and 0.5 < best["score"] <= 1.0
