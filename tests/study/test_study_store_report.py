"""The results store's line handling, the record of a diverged run, and the report's figures
on data other than digits (synthetic records, no training)."""

import dataclasses
import json
import types

import numpy as np

from keras_lr.study import grid
from keras_lr.study.engine import write_outputs
from keras_lr.study.runner import make_record
from keras_lr.study.store import Store


def _record(family, data, optimizer, lr, seed, score, schedule="constant", epochs=4,
            diverged_at=None):
    regression = data == "adding"
    info = types.SimpleNamespace(baseline_score=0.0 if regression else 0.1,
                                 regression=regression)
    config = grid.RunConfig(family=family, data=data, optimizer=optimizer, lr=lr, seed=seed,
                            schedule=schedule, epochs=epochs)
    scores = list(np.linspace(0.2, score, epochs))
    val = list(np.linspace(2.0, 0.3, epochs))
    steps = [np.linspace(v + 0.1, v, 5) for v in val]
    if diverged_at is not None:
        scores, val, steps = scores[:diverged_at + 1], val[:diverged_at] + [50.0], \
            steps[:diverged_at + 1]
    return make_record(info, config, 2.3, list(val), val, scores, steps, diverged_at, 0.1)


def _range_test(family, data, optimizer, seed):
    config = grid.RangeTestConfig(family=family, data=data, optimizer=optimizer, seed=seed)
    return {"kind": "range_test", "key": config.key, **dataclasses.asdict(config),
            "suggestion": 0.02, "stop_reason": "diverged",
            "learning_rates": list(np.geomspace(1e-5, 10, 20)),
            "smoothed_losses": list(np.linspace(2, 1, 20)), "seconds": 0.1}


def test_a_record_after_a_cut_line_is_kept(tmp_path):
    store = Store(tmp_path)
    store.append({"key": "a", "x": 1})
    with open(store.path, "a", encoding="utf-8") as handle:
        handle.write('{"key": "cut-by-a-kill", "fami')  # an interrupted write
    store.append({"key": "b", "x": 2})
    assert [r["key"] for r in store.load()] == ["a", "b"]  # before: "b" was glued and lost


def test_a_diverged_runs_best_loss_ignores_the_diverged_epoch():
    record = _record("mlp", "digits", "sgd", 30.0, 0, 0.9, diverged_at=2)
    assert record["diverged"] and record["diverged_epoch"] == 3
    assert record["best_loss"] == min(np.linspace(2.0, 0.3, 4)[:2])
    # diverged in its first epoch: no good epoch, so no best loss (was the 50.0 of the spike)
    first = _record("mlp", "digits", "sgd", 30.0, 0, 0.9, diverged_at=0)
    assert np.isnan(first["best_loss"]) and first["best_score"] == 0.1
    alive = _record("mlp", "digits", "sgd", 0.1, 0, 0.9)
    assert alive["best_loss"] == 0.3


def test_figures_and_schedule_table_for_data_other_than_digits(tmp_path):
    rates = (1e-3, 1e-2, 1e-1, 1.0)
    records = []
    for family in ("mlp", "lstm"):
        for optimizer in ("sgd", "adam"):
            for seed in (0, 1):
                for lr, score in zip(rates, (0.5, 0.9, 0.95, 0.3)):
                    for schedule in ("constant", "cosine"):
                        records.append(_record(family, "mnist5k", optimizer, lr, seed, score,
                                               schedule=schedule))
                records.append(_range_test(family, "mnist5k", optimizer, seed))
    plan = grid.custom_plan(("mlp", "lstm"), "mnist5k", ("sgd", "adam"), rates,
                            ("constant", "cosine"), ("none",), 2, 4)
    _, report = write_outputs(tmp_path, records, plan)
    names = sorted(p.rsplit("/", 1)[-1] for p in map(str, report["figures"]))
    # before: no figure at all (every figure drew digits only)
    assert names == ["study_accuracy_vs_lr.png", "study_range_test.png",
                     "study_schedules.png", "study_stable_range.png"]
    markdown = (tmp_path / "report.md").read_text()
    assert "Schedules (adam" in markdown and "mlp/mnist5k" in markdown
    assert json.loads((tmp_path / "results.json").read_text())["runs"]
