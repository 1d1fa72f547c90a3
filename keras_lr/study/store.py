"""The results store: one JSON line per finished run, appended as it finishes, and the tables.

``DIR/runs.jsonl`` is the study's memory: every record carries its config hash (``key``), a
rerun with the same ``DIR`` skips the keys already there (resume), and an interrupted run leaves
at most one incomplete last line, which `Store.load` ignores (the next record starts a new
line). Its lines are Python's JSON: a diverged run's non-finite numbers are written as ``NaN``
(which `json`, pandas and most JSON Lines readers accept, strict parsers such as ``jq`` do
not). ``results.csv`` (one row per run, scalar fields; empty cells for NaN) and
``results.json`` (runs, per-rate aggregates, range tests, claims; strict JSON, ``null`` for
NaN) are rewritten from the store whenever the report is written.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from keras_lr.study.grid import structure_of

__all__ = ["CSV_FIELDS", "Store", "sanitize", "write_tables"]

CSV_FIELDS = (
    "key", "family", "data", "optimizer", "lr", "seed", "schedule", "clip", "multipliers",
    "epochs", "batch_size", "size", "limit", "width", "depth", "norm", "residual", "mup_base",
    "final_score", "best_score", "final_val_acc",
    "best_val_acc", "final_loss", "best_loss", "initial_loss", "diverged", "diverged_epoch",
    "epochs_to_target", "oscillation", "epochs_run", "seconds",
)


class Store:
    """Append-only JSONL store of run records in `directory` (created if missing)."""

    FILENAME = "runs.jsonl"

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / self.FILENAME

    def load(self) -> list[dict]:
        """All complete records, in the order written; a later duplicate key wins."""
        if not self.path.exists():
            return []
        records = {}
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by an interrupted write
                    continue
                if isinstance(record, dict) and "key" in record:
                    records[record["key"]] = record
        return list(records.values())

    def append(self, record: dict) -> None:
        """Write one record as a line and flush it to disk.

        A line cut by an interrupted write is ended first, so that the new record starts a
        line of its own (`load` skips the cut one).
        """
        line = json.dumps(record, sort_keys=True)
        if self._ends_mid_line():
            line = "\n" + line
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _ends_mid_line(self) -> bool:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"


def sanitize(value):
    """Replace NaN/inf by None, tuples by lists, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return value


def write_tables(directory, records: list[dict], aggregates: list[dict],
                 claims: list[dict], settings: dict) -> None:
    """Write ``results.csv`` and ``results.json`` into `directory`."""
    directory = Path(directory)
    runs = [r for r in records if r.get("kind") == "run"]
    tests = [r for r in records if r.get("kind") == "range_test"]
    with open(directory / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in runs:
            record = {**record, **structure_of(record)}  # defaults in the runs of 0.1
            writer.writerow({k: _cell(record.get(k)) for k in CSV_FIELDS})
    payload = {"settings": settings, "runs": runs, "aggregates": aggregates,
               "range_tests": tests, "claims": claims}
    with open(directory / "results.json", "w", encoding="utf-8") as handle:
        json.dump(sanitize(payload), handle, indent=1, allow_nan=False)


def _cell(value):
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if value is None:
        return ""
    return value
