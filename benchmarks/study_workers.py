"""Benchmark: the study on a 2-worker Dask LocalCluster vs in one process.

Claim: on a 2-core machine, ``keras-lr study --quick --workers 2`` finishes the quick plan at
least 1.5x faster (throughput, runs per second) than ``keras-lr study --quick``; the scheduling
overhead per task is small against a task (a work unit: a group, or a model's range tests).
``--plan default`` compares the default plan instead; the backend is ``KERAS_BACKEND``
(TensorFlow when unset). The one process trains as it does by default (on JAX two groups at
once, `keras_lr.study.engine.group_threads`).

Both variants run as fresh ``keras-lr study`` subprocesses (so neither reuses the other's
compiled functions), each into its own new output folder, interleaved: every round runs both,
in a shuffled order, and the ratio is taken within the round; the median over rounds is
printed. Printed:

* wall: the whole command, Python start, imports and (for --workers) starting the cluster
  included;
* study: the study's own time, from its summary line (``N runs in S s``); workers are started
  before it;
* throughput ratio: runs per second of --workers 2 over one process (wall and study);
* CPU: user + system seconds of the command and its worker processes, and the ratio of the
  two; when other jobs compete for the cores, a variant's wall time depends on its share of
  them (the kernel shares per thread), and the CPU ratio says whether the work itself grew;
* overhead per task: the round trip of a Dask task that does no work, with the same
  arguments and result sizes as a study unit, on a running 2-worker LocalCluster: submitted
  all at once (throughput) and one at a time (latency), against the median unit time of the
  quick plan.

Usage::

    python benchmarks/study_workers.py               # 2 rounds
    python benchmarks/study_workers.py --rounds 1
    KERAS_BACKEND=jax python benchmarks/study_workers.py --plan default --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SUMMARY = re.compile(r"keras-lr study: (\d+) runs in (\d+) s")
TARGET = 1.5


def _study(out: str, workers: int | None, plan: str) -> dict:
    argv = [sys.executable, "-m", "keras_lr.cli.main", "study", "--plan", plan, "--no-progress",
            "--out", out]
    if workers:
        argv += ["--workers", str(workers)]
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers are reaped children
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    match = SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"study failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    return {"runs": int(match.group(1)), "study": float(match.group(2)), "wall": wall,
            "cpu": cpu, "out": out}


def _noop(kind, fields, parallel):
    """A task of a study unit's shape that does nothing: returns records of the same size."""
    return [dict(f, kind="run", key=str(i), val_loss=[0.0] * 3, train_loss=[0.0] * 3,
                 val_score=[0.0] * 3) for i, f in enumerate(fields)]


def _overhead(tasks: int) -> dict:
    import dataclasses

    from distributed import as_completed

    from keras_lr.study import distributed
    from keras_lr.study.grid import RunConfig

    fields = [dataclasses.asdict(RunConfig("mlp", "digits", "adam", lr, 0))
              for lr in (1e-3, 1e-2, 1e-1, 1.0)]
    client, cluster = distributed.connect(workers=2)
    try:
        client.submit(_noop, "run", fields, "auto", pure=False).result()  # warm up
        start = time.perf_counter()
        futures = [client.submit(_noop, "run", fields, "auto", pure=False)
                   for _ in range(tasks)]
        for future in as_completed(futures):
            future.result()
        together = (time.perf_counter() - start) / tasks
        start = time.perf_counter()
        for _ in range(tasks // 4):
            client.submit(_noop, "run", fields, "auto", pure=False).result()
        alone = (time.perf_counter() - start) / (tasks // 4)
    finally:
        distributed.close(client, cluster)
    return {"together": together, "alone": alone}


def _unit_seconds(out: str) -> float:
    """Median time of one work unit of a finished study (a run group, or the range tests of
    one model and optimizer: `keras_lr.study.distributed.units`), from its records."""
    units: dict = {}
    fields = ("family", "data", "optimizer", "clip", "multipliers", "epochs", "batch_size",
              "size", "limit")
    with open(os.path.join(out, "runs.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            r = json.loads(line)
            key = (r["kind"],) + tuple(r.get(f) for f in fields)
            units[key] = units.get(key, 0.0) + r["seconds"]
    return statistics.median(units.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=200, help="no-op tasks for the overhead")
    parser.add_argument("--plan", choices=("quick", "default"), default="quick",
                        help="the study plan both variants run (default: quick)")
    args = parser.parse_args()
    shuffler = random.Random(0)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="keras-lr-bench-") as tmp:
        for r in range(args.rounds):
            order = ["one process", "--workers 2"]
            shuffler.shuffle(order)
            result = {}
            for name in order:
                out = os.path.join(tmp, f"{r}-{'w' if 'workers' in name else 'p'}")
                result[name] = _study(out, 2 if "workers" in name else None, args.plan)
                print(f"round {r + 1}, {name}: {result[name]['runs']} runs, "
                      f"wall {result[name]['wall']:.0f} s, study {result[name]['study']:.0f} s, "
                      f"CPU {result[name]['cpu']:.0f} s", flush=True)
            rounds.append(result)
        unit = _unit_seconds(rounds[-1]["one process"]["out"])
    cpu = statistics.median(x["--workers 2"]["cpu"] / x["one process"]["cpu"] for x in rounds)
    ratios = {k: statistics.median(
        (x["--workers 2"]["runs"] / x["--workers 2"][k]) / (x["one process"]["runs"]
                                                            / x["one process"][k])
        for x in rounds) for k in ("wall", "study")}
    overhead = _overhead(args.tasks)
    load = os.getloadavg()
    print(f"\n{os.environ['KERAS_BACKEND']} backend, {args.plan} plan")
    print(f"throughput ratio, --workers 2 over one process: wall {ratios['wall']:.2f}x, "
          f"study {ratios['study']:.2f}x (target >= {TARGET}x; median of {args.rounds} rounds)")
    print(f"CPU seconds, --workers 2 over one process: {cpu:.2f}x")
    print(f"scheduling overhead per task: {overhead['together'] * 1e3:.1f} ms submitted "
          f"together, {overhead['alone'] * 1e3:.1f} ms one at a time; a {args.plan}-plan unit takes "
          f"{unit:.1f} s (median), so overhead = {overhead['alone'] / unit:.2%} of a unit")
    print(f"{os.cpu_count()} CPU cores; load average at the end {load[0]:.1f} / {load[1]:.1f} "
          "(1 / 5 min): other processes share these cores")


if __name__ == "__main__":
    main()
