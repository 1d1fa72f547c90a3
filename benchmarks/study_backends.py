"""Benchmark: the wall time of `keras-lr study` on each Keras backend, and the sweep per backend.

Claim (issue 16): on the fastest backend the default ``keras-lr study`` takes at most half the
TensorFlow wall time, and `parallel_fit` trains 8 rates in at most 2.0x one ordinary fit.

The backend is chosen when Keras is imported, so each measurement is a fresh process
(``KERAS_BACKEND=<name> keras-lr study ... --out <temporary directory>``), run one after
another and interleaved over the repeats (TensorFlow, JAX, torch, TensorFlow, ...): the
machine's load drifts between runs, not between the backends of one round. Each study starts
from an empty output directory (nothing resumed) and its wall time includes starting Python,
importing the framework, loading the data and writing the report. Printed: the median wall
time per backend, its ratio to TensorFlow's, and the runs and engines each report names.

With ``--sweep``, `benchmarks/sweep_speed.py --quick` runs once per backend too (its own
ratios: 8 rates in one `parallel_fit` against one ordinary ``model.fit``).

Usage::

    python benchmarks/study_backends.py                      # default study, 1 round
    python benchmarks/study_backends.py --quick --repeats 3  # the quick plan, 3 rounds
    python benchmarks/study_backends.py --quick --backends tensorflow jax --sweep
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
HERE = Path(__file__).resolve().parent


def _environment(backend: str) -> dict:
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg",
                PYTHONWARNINGS="ignore")


def study_once(backend: str, quick: bool) -> dict:
    """Run one study in a fresh process; return its wall time and what its results say."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "keras_lr.cli.main", "study", "--out", out,
                   "--no-progress"] + (["--quick"] if quick else [])
        start = time.perf_counter()
        done = subprocess.run(command, env=_environment(backend), capture_output=True,
                              text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{backend}: keras-lr study failed:\n{done.stderr[-2000:]}")
        settings = json.loads((Path(out) / "results.json").read_text())["settings"]
    return {"seconds": seconds, "engines": settings.get("engines"),
            "backend": settings.get("backend")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick plan (274 runs)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sweep", action="store_true",
                        help="also run benchmarks/sweep_speed.py --quick per backend")
    args = parser.parse_args(argv)
    times: dict = {b: [] for b in args.backends}
    seen: dict = {}
    for round_ in range(args.repeats):
        for backend in args.backends:
            result = study_once(backend, args.quick)
            assert result["backend"] == backend, result
            times[backend].append(result["seconds"])
            seen[backend] = result["engines"]
            print(f"round {round_ + 1}: {backend:<10} {result['seconds']:7.1f} s "
                  f"({result['engines']})", flush=True)
    plan = "quick" if args.quick else "default"
    base = statistics.median(times["tensorflow"]) if times.get("tensorflow") else None
    print(f"\nkeras-lr study ({plan} plan), median wall time over {args.repeats} round(s):")
    for backend, values in times.items():
        median = statistics.median(values)
        ratio = f"{median / base:5.2f}x TensorFlow" if base else ""
        print(f"  {backend:<10} {median:7.1f} s  {ratio}  engines: {seen[backend]}")
    if args.sweep:
        for backend in args.backends:
            print(f"\n== benchmarks/sweep_speed.py --quick on {backend}", flush=True)
            subprocess.run([sys.executable, str(HERE / "sweep_speed.py"), "--quick"],
                           env=_environment(backend), check=True)


if __name__ == "__main__":
    main()
