"""Shared timing for the benchmarks: interleaved rounds and paired ratios.

Timings on a shared 2-core machine drift by tens of percent within a minute. Two things make a
ratio steady anyway:

- *interleaving*: every round runs each variant once, in a shuffled order, so a slow spell of
  the machine hits all variants alike;
- *pairing*: the ratio of a variant to the baseline is taken within each round (the two ran
  seconds apart) and the median is taken over rounds, rather than dividing two medians that
  may come from different spells.

Both wall-clock and process CPU time are recorded; CPU time is the steadier one when other
processes compete for the cores. `graph_ops` adds a count that no noise touches: the operations
in one traced training step (TensorFlow backend), nested function bodies included.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping

__all__ = ["graph_ops", "interleaved", "paired_ratio"]


def interleaved(runs: Mapping[str, Callable[[], object]], rounds: int, *, seed: int = 0,
                per: float = 1.0) -> dict[str, dict[str, list[float]]]:
    """Time every callable once per round, in a shuffled order, for `rounds` rounds.

    Args:
        runs: name -> zero-argument callable (already warmed up: traced and compiled).
        rounds: how many interleaved rounds.
        seed: seed of the shuffling.
        per: divide every time by this (e.g. the steps in one call) to get a per-step time.

    Returns:
        ``{"wall": {name: [seconds per round]}, "cpu": {name: [...]}}``.
    """
    shuffler = random.Random(seed)
    times = {"wall": {name: [] for name in runs}, "cpu": {name: [] for name in runs}}
    for _ in range(rounds):
        order = list(runs)
        shuffler.shuffle(order)
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            runs[name]()
            times["wall"][name].append((time.perf_counter() - wall) / per)
            times["cpu"][name].append((time.process_time() - cpu) / per)
    return times


def paired_ratio(times: Mapping[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of ``times[name][r] / times[base][r]``."""
    return statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))


def graph_ops(model, x, y) -> int:
    """Operations in one traced ``model.train_step`` on ``(x, y)``, nested functions included.

    The model must be compiled (and built by one ``fit`` so that the optimizer has its
    variables). The count is exact and repeatable: what a variant adds to the step shows
    here even when the timings cannot resolve it.
    """
    import tensorflow as tf

    graph = tf.function(model.train_step).get_concrete_function(
        (tf.constant(x), tf.constant(y))).graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)
