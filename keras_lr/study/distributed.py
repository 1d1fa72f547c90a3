"""Run the study's work units as tasks on a Dask distributed cluster.

`run_study(plan, directory, client=client)` hands its runs to `run_units` instead of training
them in its own process. A *work unit* is everything one compiled model serves: the runs of one
group (`keras_lr.study.runner.run_group`: one model and optimizer, each seed's batch in a
replicated model where the parallel engine applies), or the range tests of one model and
optimizer; a group is split by seed only while there are fewer units than workers (`units`).
Each unit is one Dask task:

* the client sends the configs as plain dicts (``dataclasses.asdict``) and receives the
  records, which it alone appends to ``runs.jsonl`` (each key at most once) and turns into the
  report; workers never see the output directory;
* each worker process keeps one `Runner` (data, initial weights, compiled trainers) for all
  the tasks it runs, so a group compiles at most once per worker;
* a worker that dies in the middle of a task (killed, out of memory, machine lost) has its
  task rescheduled by Dask on another worker (``distributed.scheduler.allowed-failures``, 3
  by default), and the client keeps only the first record of a key; Ctrl-C on the client
  cancels the pending tasks and writes the partial report as a local run does; a rerun with
  the same directory resumes from ``runs.jsonl``;
* a worker process runs one study task at a time and limits TensorFlow to
  ``$KERAS_LR_THREADS`` intra-op threads (default: the worker's ``--nthreads``), one
  inter-op thread, so that N workers on a machine do not oversubscribe its cores.

Dask is optional: ``pip install "keras-lr[distributed]"``; without it `connect` raises
`DaskMissing` with that one line.

Example:

```python
from keras_lr import study
from keras_lr.study import distributed

client, cluster = distributed.connect(workers=2)      # or connect("tcp://host:8786")
try:
    study.run_study(study.default_plan(quick=True), "out", client=client)
finally:
    distributed.close(client, cluster)
```

Reference:
    Dask distributed, https://distributed.dask.org (``Client.submit``, ``as_completed``,
    ``LocalCluster``; resilience: "Worker failures").
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import uuid
from collections.abc import Iterable, Iterator

from keras_lr.study.grid import RangeTestConfig, RunConfig

__all__ = ["THREADS_ENV", "DaskMissing", "close", "connect", "run_units", "units",
           "worker_env", "worker_threads"]

#: Environment variable: TensorFlow intra-op threads of each worker process.
THREADS_ENV = "KERAS_LR_THREADS"
_INSTALL = 'pip install "keras-lr[distributed]"'


class DaskMissing(ImportError):
    """Dask distributed is not installed (the ``distributed`` extra)."""


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise DaskMissing(f"running the study on Dask needs dask.distributed: {_INSTALL}") \
            from None
    return distributed


def worker_env(workers: int, cores: int | None = None) -> dict:
    """Environment of `workers` local worker processes sharing `cores` (default: all).

    Example:
        >>> worker_env(2, cores=8)["KERAS_LR_THREADS"]
        '4'
    """
    import keras

    threads = max(1, (cores or os.cpu_count() or 1) // workers)
    env = {THREADS_ENV: str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
           "KERAS_BACKEND": keras.backend.backend(),  # the workers run the client's backend
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    if threads == 1:  # XLA:CPU (JAX) has no thread-count flag, only single-threaded Eigen
        flags = os.environ.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    return env


def connect(scheduler: str | None = None, workers: int | None = None):
    """A Dask client: to the scheduler at `scheduler`, or to a new `LocalCluster` of
    `workers` processes (one thread each; TensorFlow gets ``cores // workers`` threads).

    Returns:
        ``(client, cluster)``; `cluster` is None for an existing scheduler. Close both with
        `close`.

    Raises:
        DaskMissing: dask.distributed is not installed.
        ValueError: neither or both of `scheduler` and `workers`, or ``workers < 1``.
    """
    if (scheduler is None) == (workers is None):
        raise ValueError("connect needs exactly one of scheduler and workers")
    distributed = _import_distributed()
    if scheduler is not None:
        return distributed.Client(scheduler), None
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
        env=worker_env(workers))
    return distributed.Client(cluster), cluster


def close(client, cluster=None) -> None:
    """Close the client, then the local cluster `connect` started (if any)."""
    client.close()
    if cluster is not None:
        cluster.close()


def _unit_key(config) -> tuple:
    """What one compiled model serves: a run's group; a range test's family, data, optimizer,
    size and limit (`Runner.run_range_test` keeps one compiled model for those)."""
    if config.kind == "run":
        return ("run", config.group)
    return ("range_test", config.family, config.data, config.optimizer, config.size,
            config.limit, config.batch_size)


def units(todo: Iterable, workers: int | None = None) -> list[list]:
    """Split configs into work units: all the configs one compiled model serves (a run group,
    or the range tests of one model and optimizer), so each compiles once on the cluster.

    Compiling dominates these small runs (measured: 20-45 s for a group's first run on a
    loaded 2-core machine, 0.4 s for each later one), so a group is only split, by seed, while
    there are fewer units than `workers`: the largest unit first.

    Example:
        >>> from keras_lr.study.grid import RunConfig
        >>> runs = [RunConfig("mlp", "digits", "adam", lr, seed) for seed in (0, 1)
        ...         for lr in (0.01, 0.1)]
        >>> sizes = [len(u) for u in units(runs)]
        >>> sizes, [len(u) for u in units(runs, workers=2)]
        ([4], [2, 2])
    """
    grouped: dict = {}
    for config in todo:
        grouped.setdefault(_unit_key(config), []).append(config)
    out = [sorted(u, key=lambda c: c.seed) for u in grouped.values()]
    while workers and len(out) < workers:
        splittable = [u for u in out if len({c.seed for c in u}) > 1]
        if not splittable:
            break
        largest = max(splittable, key=len)
        out.remove(largest)
        seeds = sorted({c.seed for c in largest})
        half = set(seeds[: len(seeds) // 2])
        out += [[c for c in largest if c.seed in half], [c for c in largest if c.seed not in half]]
    out.sort(key=len, reverse=True)  # largest first: the last unit to start is a short one
    return out


# ---------------------------------------------------------------------- worker side
_LOCK = threading.Lock()
_STATE: dict = {}


def worker_threads() -> dict:
    """Limit this process's framework threads once (before its first op); return them.

    Intra-op threads: ``$KERAS_LR_THREADS``, else the Dask worker's thread count, else all
    cores; inter-op threads: 1. TensorFlow and PyTorch are set here; JAX reads its flags
    (`worker_env`'s ``XLA_FLAGS``) when it starts, so its figures are the requested ones.
    """
    if "threads" in _STATE:
        return _STATE["threads"]
    import keras

    want = os.environ.get(THREADS_ENV)
    if not want:
        try:
            from distributed import get_worker

            want = get_worker().state.nthreads
        except (ImportError, ValueError):
            want = os.cpu_count() or 1
    want = max(1, int(want))
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(want)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # torch already ran parallel work in this process
            pass
        _STATE["threads"] = {"intra_op": torch.get_num_threads(),
                             "inter_op": torch.get_num_interop_threads(), "pid": os.getpid()}
        return _STATE["threads"]
    if backend != "tensorflow":
        _STATE["threads"] = {"intra_op": want, "inter_op": 1, "pid": os.getpid()}
        return _STATE["threads"]
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(want)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran in this process: keep what it has
        pass
    _STATE["threads"] = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                         "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                         "pid": os.getpid()}
    return _STATE["threads"]


def _work(kind: str, fields: list[dict], parallel) -> list[dict]:
    """A Dask task: train one unit in this worker process's `Runner`; return its records."""
    from keras_lr.study.runner import Runner, run_group

    with _LOCK:  # one study task at a time per process: the Runner's trainers are shared
        worker_threads()
        runner = _STATE.get(("runner", parallel))
        if runner is None:
            runner = _STATE[("runner", parallel)] = Runner(parallel=parallel)
        if kind == "run":
            return list(run_group([RunConfig(**f) for f in fields], runner))
        return [runner.run_range_test(RangeTestConfig(**f)) for f in fields]


# ---------------------------------------------------------------------- client side
def _task_key(unit) -> str:
    """A readable key, fresh per submission: a cancelled task of an earlier client (Ctrl-C,
    then a rerun on the same scheduler) may still hold the plain one."""
    digest = hashlib.sha1("|".join(c.key for c in unit).encode()).hexdigest()[:12]
    return f"keras-lr-{unit[0].kind}-{digest}-{uuid.uuid4().hex[:8]}"


def run_units(client, todo: list, parallel="auto") -> Iterator[tuple]:
    """Submit every unit of `todo` (sorted by kind, group and seed, as `run_study` sorts
    them) to `client`; yield ``(config, record)`` as units finish, each config once.

    On an exception or Ctrl-C in the caller, or when the caller stops iterating, the units
    not yet finished are cancelled.
    """
    distributed = _import_distributed()
    by_key = {c.key: c for c in todo}
    workers = len(client.scheduler_info().get("workers", {})) or None
    futures = [client.submit(_work, unit[0].kind, [dataclasses.asdict(c) for c in unit],
                             parallel, key=_task_key(unit), pure=False)
               for unit in units(todo, workers)]
    seen = set()
    try:
        for future in distributed.as_completed(futures):
            for record in future.result():
                if record["key"] in seen or record["key"] not in by_key:
                    continue
                seen.add(record["key"])
                yield by_key[record["key"]], record
            future.release()
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
