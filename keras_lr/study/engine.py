"""Run a study plan: resume from the store, show progress, write the report, survive Ctrl-C.

`run_study` expands the plan stage by stage (a stage may depend on the results of earlier
ones), skips every config whose key is already in ``DIR/runs.jsonl``, runs the rest (grouped
so that each compiled trainer is reused, through `runner.run_group`, which trains the runs of
one group and seed in parallel where `Runner.parallel` allows it), appends each record as it finishes, and finally
writes ``results.csv``, ``results.json``, the figures and ``report.md``/``report.html``. On
``KeyboardInterrupt`` it writes the same outputs from the finished runs, marks the report as
partial and re-raises (the CLI then exits with 130); a rerun resumes where it stopped.

In one process, ``threads`` groups train at once, each in its own thread (`group_threads`:
two on JAX, whose compiled epochs and compilations release the GIL; one elsewhere). Each
group keeps its own compiled trainer, so the records are those of one thread, only finished
in another order (tested).

With a Dask ``client`` the runs train as tasks on the cluster's workers
(`keras_lr.study.distributed`); the client alone writes the store and the report. Stages that
do not depend on results (fixed lists of configs) are then submitted together, so that the
workers do not wait at every stage boundary; a stage computed from results still waits for
everything before it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import os
import platform
import sys
import time
import types
from pathlib import Path

from keras_lr._validation import check_int
from keras_lr.study import claims as claims_mod
from keras_lr.study import metrics
from keras_lr.study.grid import Plan
from keras_lr.study.report import write_report
from keras_lr.study.runner import Runner, run_group
from keras_lr.study.store import Store, write_tables

__all__ = ["StudyResult", "group_threads", "run_study", "write_outputs"]

GROUP_THREADS = {"jax": 2}
"""Groups trained at once in one process by backend (others: 1). On JAX an epoch is one
compiled call and XLA compiles in the background, both without the GIL. Measured: the default
study on 2 cores, 262 s with one group at a time, 199 s with two (the same records). torch
steps eagerly and holds the GIL between its small ops: its quick plan took 73 s with two,
55 s with one."""


@dataclasses.dataclass
class StudyResult:
    """What `run_study` did: runs executed now, skipped (already stored), total stored."""

    directory: str
    executed: int
    skipped: int
    total: int
    seconds: float
    interrupted: bool
    claims: list
    report: dict


class _NoProgress:
    """Stands in for `rich.progress.Progress` when the bar is off or rich is not installed."""

    def __init__(self):
        self.tasks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def add_task(self, description, total=None, **fields):
        self.tasks.append(types.SimpleNamespace(total=total))
        return len(self.tasks) - 1

    def update(self, task, total=None, **fields):
        if total is not None:
            self.tasks[task].total = total


def _progress(enabled: bool):
    """A rich progress bar on stderr; a no-op when disabled or without the `progress` extra."""
    if not enabled:
        return _NoProgress()
    try:
        import rich  # noqa: F401
    except ImportError:
        print("keras-lr: no progress bar (install keras-lr[progress] for one)", file=sys.stderr)
        return _NoProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.fields[stage]}[/] {task.description}"),
                    BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=False)


def group_threads(threads="auto") -> int:
    """The number of groups trained at once: `threads`, or for ``"auto"`` the backend's
    `GROUP_THREADS` (at most the machine's cores).

    Example:
        >>> group_threads(3)
        3

    Raises:
        ValueError: `threads` is neither ``"auto"`` nor an int >= 1.
    """
    if threads == "auto":
        import keras

        return max(1, min(GROUP_THREADS.get(keras.backend.backend(), 1), os.cpu_count() or 1))
    return check_int("threads", threads, minimum=1)


def run_study(plan: Plan, directory, *, progress: bool = True, runner: Runner | None = None,
              command: str | None = None, client=None, threads="auto") -> StudyResult:
    """Run (or resume) `plan` with outputs in `directory`; see the module docstring.

    `client`: a ``dask.distributed.Client``; the runs then train on its workers (with
    ``runner.parallel``'s engine choice), see `keras_lr.study.distributed`.
    `threads`: groups trained at once in this process (`group_threads`; not with `client`).
    """
    auto, threads = threads == "auto", group_threads(threads)
    if client is not None:
        if not auto and threads > 1:
            raise ValueError(f"Argument `threads` must be 'auto' or 1 with a Dask `client` "
                             f"(each worker trains one unit at a time). Received: "
                             f"threads={threads}")
        threads = 1
    start = time.perf_counter()
    store = Store(directory)
    records = store.load()
    done = {r["key"] for r in records}
    runner = runner or Runner()
    executed = skipped = 0
    interrupted = False
    fixed = {c.key for s in plan.stages if not callable(s.configs) for c in s.expand(records)}
    estimate = len(fixed) + sum(s.size_hint for s in plan.stages if callable(s.configs))
    seen: set = set()  # keys counted so far: a config that stages share counts once
    try:
        with _progress(progress) as bar:
            task = bar.add_task("", total=estimate, stage="")
            for wave in _waves(plan.stages, together=client is not None or threads > 1):
                todo, stage_of = [], {}
                for stage in wave:
                    configs = [c for c in dict.fromkeys(stage.expand(records))
                               if c.key not in seen]
                    seen.update(c.key for c in configs)
                    fresh = [c for c in configs if c.key not in done and c.key not in stage_of]
                    skipped += len(configs) - len(fresh)
                    bar.update(task, advance=len(configs) - len(fresh))
                    stage_of.update((c.key, stage.name) for c in fresh)
                    todo += fresh
                todo.sort(key=lambda c: (c.kind, getattr(c, "group", ()), c.seed))
                if client is None and threads > 1:
                    source = _threaded_records(todo, runner, threads)
                elif client is None:
                    source = _records(todo, runner)
                else:
                    from keras_lr.study.distributed import run_units

                    source = run_units(client, todo, runner.parallel)
                with contextlib.closing(source):  # on Ctrl-C: cancel the cluster's tasks now
                    for config, record in source:
                        if record["key"] in done:  # never store a run twice
                            continue
                        bar.update(task, description=config.label(),
                                   stage=stage_of[config.key])
                        store.append(record)
                        records.append(record)
                        done.add(record["key"])
                        executed += 1
                        bar.update(task, advance=1,
                                   total=max(bar.tasks[0].total or 0, executed + skipped))
    except KeyboardInterrupt:
        interrupted = True
    seconds = time.perf_counter() - start
    # The store may also hold runs of other plans (a --quick run, other rates or epochs in
    # the same directory): they stay stored for their own resume but stay out of this report.
    keys = {c.key for stage in plan.stages for c in stage.expand(records)}
    reported = [r for r in records if r["key"] in keys]
    claim_rows, report = write_outputs(directory, reported, plan, executed=executed,
                                       skipped=skipped, seconds=seconds,
                                       interrupted=interrupted, command=command,
                                       left_out=len(records) - len(reported))
    result = StudyResult(str(directory), executed, skipped, len(records), seconds,
                         interrupted, claim_rows, report)
    if interrupted:
        raise StudyInterrupted(result)
    return result


def _waves(stages, together: bool) -> list[list]:
    """Stages in the order they can start: one by one, or (`together`) a stage computed from
    results with every fixed stage after it, up to the next computed one."""
    if not together:
        return [[stage] for stage in stages]
    waves: list[list] = []
    for stage in stages:
        if waves and not callable(stage.configs):
            waves[-1].append(stage)
        else:
            waves.append([stage])
    return waves


def _records(todo: list, runner: Runner):
    """Yield ``(config, record)`` for every config of `todo` (sorted by kind, group, seed):
    runs group by group through `run_group` (parallel batches where allowed), range tests one
    by one. Before a group's runs, the next group's trainer is built (`Runner.prepare`: on JAX
    it then compiles while this group trains)."""
    chunks = [(kind, list(chunk)) for (kind, _), chunk in itertools.groupby(
        todo, key=lambda c: (c.kind, getattr(c, "group", None)))]
    for index, (kind, chunk) in enumerate(chunks):
        following = chunks[index + 1] if index + 1 < len(chunks) else None
        if following is not None and following[0] == "run":
            runner.prepare(following[1])
        if kind == "run":
            by_key = {c.key: c for c in chunk}
            for record in run_group(chunk, runner):
                yield by_key[record["key"]], record
        else:
            for config in chunk:
                yield config, runner.run_range_test(config)


def _threaded_records(todo: list, runner: Runner, threads: int):
    """Yield ``(config, record)`` for every config of `todo` as `threads` threads finish them,
    each thread taking the next work unit (`keras_lr.study.distributed.units`: a run group or
    the range tests of one model; the largest first). When the caller stops (Ctrl-C, an error,
    ``close()``), no thread starts another run and each finishes the one it is in."""
    import queue
    import threading

    from keras_lr.study.distributed import units

    pending = collections.deque(units(todo))  # never split: a group has one trainer
    lock, stop, out = threading.Lock(), threading.Event(), queue.SimpleQueue()

    def work():
        try:
            while not stop.is_set():
                with lock:
                    if not pending:
                        return
                    unit = pending.popleft()
                by_key = {c.key: c for c in unit}
                records = (run_group(unit, runner) if unit[0].kind == "run"
                           else map(runner.run_range_test, unit))
                for record in records:
                    out.put((by_key[record["key"]], record))
                    if stop.is_set():
                        return
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            out.put(error)
        finally:
            out.put(None)

    workers = [threading.Thread(target=work, name=f"keras-lr-group-{i}", daemon=True)
               for i in range(threads)]
    for worker in workers:
        worker.start()
    running = len(workers)
    try:
        while running:
            item = out.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for worker in workers:
            worker.join()


class StudyInterrupted(KeyboardInterrupt):
    """Raised by `run_study` after writing the partial report; carries the `StudyResult`."""

    def __init__(self, result: StudyResult):
        super().__init__("study interrupted")
        self.result = result


def write_outputs(directory, records, plan: Plan, *, executed=0, skipped=0, seconds=0.0,
                  interrupted=False, command=None, left_out=0):
    """Write the tables, figures and report from `records` (the plan's own runs); return
    (claims, report paths). `left_out`: stored runs of other plans, named in the status."""
    import keras

    claim_rows = (plan.claims or claims_mod.evaluate_claims)(records)
    aggregates = metrics.aggregate(records)
    engines = collections.Counter(r.get("engine", "unrecorded") for r in records
                                  if r.get("kind") == "run")
    settings = {"plan": plan.description, **plan.settings, "backend": keras.backend.backend(),
                "engines": ", ".join(f"{k} {v}" for k, v in sorted(engines.items())) or "-"}
    write_tables(directory, records, aggregates, claim_rows, settings)
    state = "PARTIAL (interrupted; rerun the same command to resume)" if interrupted \
        else "complete"
    others = (f"; {left_out} stored runs of other plans (other models, rates, epochs or "
              "--quick) are left out of this report") if left_out else ""
    status = (
        f"Status: {state}. {len(records)} runs stored ({executed} run now in "
        f"{seconds:.0f} s, {skipped} resumed from the store{others}). Command: "
        f"`{command or 'keras-lr study'}`. Generated {time.strftime('%Y-%m-%d %H:%M')} with "
        f"keras {keras.__version__} ({keras.backend.backend()}), Python "
        f"{platform.python_version()}, {os.cpu_count()} CPU cores, {sys.platform}."
    )
    report = write_report(Path(directory), records, claim_rows, settings, status)
    return claim_rows, report
