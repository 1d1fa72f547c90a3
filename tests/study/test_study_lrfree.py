"""The learning-rate-free sub-study: the stage, the engine's optimizers (against the plain
optimizers trained by `fit`, schedule-free scored at a hand-computed x), the claim's verdicts,
the d figure and the records."""

import inspect
import json

import numpy as np
import pytest

from keras_lr.study import claims, grid, lrfree, parallel
from keras_lr.study.engine import write_outputs
from keras_lr.study.store import Store


# ---------------------------------------------------------------------- the plan
def test_default_plan_has_the_stage_before_the_schedules():
    plan = grid.default_plan()
    names = [s.name for s in plan.stages]
    assert names[-1] == "schedules"  # schedules stay last, the structure stage before them
    assert names[-5:-1] == ["learning-rate-free", "width", "depth", "normalization"]
    configs = plan.stages[names.index("learning-rate-free")].expand([])
    defaults = [c for c in configs if c.lr == grid.DEFAULT_RATES[c.optimizer]]
    assert len(defaults) == 4 * 3 * 3  # families x optimizers x seeds
    assert {(c.optimizer, c.lr) for c in defaults} == {
        ("prodigy", 1.0), ("dadapt_adam", 1.0), ("schedule_free_adamw", 0.0025)}
    tuned = [c for c in configs if c not in defaults]
    assert {c.optimizer for c in tuned} == {"schedule_free_adamw"}
    assert sorted({c.lr for c in tuned}) == list(plan.rates[2:])  # the sub-study rates
    assert len(tuned) == 4 * 7 * 3
    assert {c.schedule for c in configs} == {"constant"}
    assert {c.family for c in configs} == set(grid.FAMILIES)
    main = plan.stages[0].expand([])
    assert {(c.epochs, c.size, c.limit) for c in configs} == {
        (c.epochs, c.size, c.limit) for c in main}
    # the main grid and the other stages are unchanged: no Adam run is added or rerun
    assert not {c.key for c in configs} & {c.key for s in plan.stages
                                           if s.name not in ("learning-rate-free", "schedules")
                                           for c in s.expand([])}


def test_quick_plan_has_the_stage_on_its_families_and_rates():
    plan = grid.default_plan(quick=True)
    stage = next(s for s in plan.stages if s.name == "learning-rate-free")
    configs = stage.expand([])
    assert len(configs) == 3 * 3 * 2 + 3 * 4 * 2
    assert {c.family for c in configs} == {"mlp", "cnn", "lstm"}
    assert {c.size for c in configs} == {"quick"}


def test_standard_plan_leaves_the_stage_out(monkeypatch):
    from keras_lr import data

    monkeypatch.setattr(data, "available", lambda: ("mnist5k",))
    plan = grid.standard_plan(quick=True)
    assert not any("learning-rate-free" in s.name for s in plan.stages)


def test_default_rates_are_the_optimizers_own_defaults():
    from keras_lr import optimizers

    classes = {"prodigy": optimizers.Prodigy, "dadapt_adam": optimizers.DAdaptAdam,
               "schedule_free_adamw": optimizers.ScheduleFreeAdamW}
    for name, cls in classes.items():
        default = inspect.signature(cls).parameters["learning_rate"].default
        assert grid.DEFAULT_RATES[name] == default, name


def test_parse_optimizers_and_the_keras_wording():
    assert grid.parse_optimizers("adam, prodigy,adam") == ("adam", "prodigy")
    with pytest.raises(ValueError, match=r"Argument `optimizer` must be one of 'sgd', 'adam', "
                       r"'prodigy', 'dadapt_adam', 'schedule_free_adamw'\. "
                       r"Received: optimizer='adamw'"):
        grid.parse_optimizers("adam,adamw")
    with pytest.raises(ValueError, match="empty"):
        grid.parse_optimizers(" ,")


def test_cli_bad_optimizer_exits_2_with_one_keras_line(capsys, tmp_path):
    from keras_lr.cli.main import main

    assert main(["study", "--optimizers", "sgd,prodigi", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("keras-lr: error:")
    assert "Argument `optimizer` must be one of" in err and "optimizer='prodigi'" in err


def test_custom_plan_range_tests_only_for_sgd_and_adam():
    plan = grid.custom_plan(("mlp",), "digits", ("adam", "prodigy"), (0.01, 1.0),
                            ("constant",), ("none",), seeds=2, epochs=1)
    runs, tests = (s.expand([]) for s in plan.stages)
    assert {c.optimizer for c in runs} == {"adam", "prodigy"}
    assert {c.optimizer for c in tests} == {"adam"}


def test_parallel_engine_leaves_lr_free_runs_to_the_sequential_one():
    batch = [grid.RunConfig("cnn", "digits", "schedule_free_adamw", lr, 0) for lr in (0.01, 0.1)]
    assert not parallel.use_parallel(batch, "auto")
    assert not parallel.use_parallel(batch, True)
    assert parallel.use_parallel([grid.RunConfig("cnn", "digits", "adam", lr, 0)
                                  for lr in (0.01, 0.1)], True)


def test_make_optimizer_refuses_unknown_names_in_keras_wording():
    from keras_lr.study.runner import make_optimizer

    with pytest.raises(ValueError, match="Argument `optimizer` must be one of .*"
                       "Received: optimizer='lion'"):
        make_optimizer("lion")


# ---------------------------------------------------------------------- the engine
def _by_hand(config, runner_mod):
    """Train `config` independently: the plain optimizer at that rate (no wrapper), Keras
    `fit` on the runner's documented batch order, the model from `keras_lr.models.build`."""
    import keras

    from keras_lr import data, models, optimizers

    ds = data.load(config.data, view=data.view_for(config.family), seed=0, limit=config.limit)
    model = models.build(config.family, ds.input_shape, ds.num_classes, seed=config.seed,
                         **runner_mod.MODEL_KWARGS[config.size][config.family])
    cls = {"prodigy": optimizers.Prodigy, "dadapt_adam": optimizers.DAdaptAdam,
           "schedule_free_adamw": optimizers.ScheduleFreeAdamW}[config.optimizer]
    optimizer = cls(config.lr)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng([config.seed, 1])
    steps = len(ds.x_train) // config.batch_size
    d = []
    for _ in range(config.epochs):
        order = rng.permutation(len(ds.x_train))[:steps * config.batch_size]
        model.fit(ds.x_train[order], ds.y_train[order], batch_size=config.batch_size,
                  shuffle=False, epochs=1, verbose=0)
        if hasattr(optimizer, "d"):
            d.append(float(keras.ops.convert_to_numpy(optimizer.d)))

    def val_loss():
        pred = model(ds.x_val, training=False)
        return float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            ds.y_val, pred)))

    return model, optimizer, val_loss, d


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adam"])
def test_engine_builds_the_estimators_and_records_d_every_step(name):
    from keras_lr.study import runner as runner_mod

    config = grid.RunConfig("mlp", "digits", name, 1.0, 1, epochs=2, size="quick", limit=300)
    record = runner_mod.Runner().run(config)
    _, optimizer, val_loss, d = _by_hand(config, runner_mod)
    steps = len(record["d"]) // 2
    assert len(record["d"]) == 2 * steps and steps > 1
    assert record["d"][0] != record["d"][-1]  # it moves
    # d at the end of each epoch, and the loss, equal the optimizer trained by fit
    np.testing.assert_allclose([record["d"][steps - 1], record["d"][-1]], d, rtol=1e-4)
    assert record["val_loss"][-1] == pytest.approx(val_loss(), rel=1e-4)


def test_engine_scores_schedule_free_at_x():
    """The record's validation loss is the loss at x = (y - (1 - beta) z) / beta, computed
    here by hand from the optimizer trained by fit, and not the loss at y."""
    import keras

    from keras_lr.study import runner as runner_mod

    config = grid.RunConfig("mlp", "digits", "schedule_free_adamw", 0.02, 1, epochs=2,
                            size="quick", limit=300)
    record = runner_mod.Runner().run(config)
    model, optimizer, val_loss, _ = _by_hand(config, runner_mod)
    at_y = val_loss()
    beta = optimizer.beta_1
    for variable, z in optimizer.z_variables():
        y, zv = (keras.ops.convert_to_numpy(v) for v in (variable, z))
        variable.assign((y - (1 - beta) * zv) / beta)
    at_x = val_loss()
    assert record["val_loss"][-1] == pytest.approx(at_x, rel=1e-4)
    assert abs(at_x - at_y) > 50 * 1e-4 * at_x  # the test could tell x from y
    assert "d" not in record


def test_schedule_free_at_its_default_rate_is_the_default_optimizer():
    from keras_lr.study import runner as runner_mod

    runner = runner_mod.Runner()
    config = grid.RunConfig("mlp", "digits", "schedule_free_adamw",
                            grid.DEFAULT_RATES["schedule_free_adamw"], 0, epochs=1,
                            size="quick", limit=300)
    record = runner.run(config)
    trainer = runner._trainers[config.group]
    assert trainer.schedule_free and trainer.estimate is None
    from keras_lr.callbacks import schedule_free_eval

    _, optimizer, val_loss, _ = _by_hand(config, runner_mod)
    schedule_free_eval(optimizer)  # the library's own swap to x
    assert record["val_loss"][-1] == pytest.approx(val_loss(), rel=1e-4)


# ---------------------------------------------------------------------- the claim
def _run(family, optimizer, lr, seed, score, schedule="constant", d=None):
    record = {"kind": "run", "family": family, "data": "digits", "optimizer": optimizer,
              "schedule": schedule, "clip": "none", "multipliers": "none", "epochs": 2,
              "size": "quick", "lr": lr, "seed": seed, "final_score": score,
              "best_score": score, "final_loss": 1.0, "best_loss": 1.0, "oscillation": 0.0,
              "diverged": False, "baseline_score": 0.1, "epochs_to_target": None,
              "epochs_run": 2, "regression": False, "initial_loss": 2.3,
              "val_loss": [1.5, 1.0], "train_loss": [1.6, 1.1], "val_score": [0.5, score],
              "final_val_acc": score, "best_val_acc": score, "diverged_epoch": None,
              "seconds": 0.1}
    record["variant"] = "|".join(str(record[k]) for k in ("family", "data", "optimizer",
                                                          "schedule", "clip", "multipliers"))
    record["key"] = record["variant"] + f"|lr={lr}|seed={seed}"
    if d is not None:
        record["d"] = d
    return record


def _adam(family="mlp", best=0.95, seeds=(0, 1, 2), warmup_cosine=None):
    records = [_run(family, "adam", lr, s, score) for s in seeds
               for lr, score in ((1e-3, best - 0.05), (1e-2, best), (1e-1, 0.5))]
    if warmup_cosine is not None:
        records += [_run(family, "adam", 1e-2, s, warmup_cosine, "warmup_cosine")
                    for s in seeds]
    return records


def _free(optimizer, scores, family="mlp"):
    return [_run(family, optimizer, grid.DEFAULT_RATES[optimizer], s, score)
            for s, score in enumerate(scores)]


def _row(rows, subject):
    found = [r for r in rows if r["id"] == "lr_free" and r["subject"] == subject]
    assert len(found) == 1, rows
    return found[0]


def test_claim_supported_within_one_point():
    records = _adam() + _free("prodigy", [0.947, 0.952, 0.944])  # 0.3, -0.2, 0.6 points
    row = _row(claims.evaluate_claims(records), "mlp/digits (prodigy)")
    assert row["verdict"] == "supported" and row["unit"] == "accuracy points"
    assert row["effect"] == pytest.approx(0.2333333, abs=1e-5)
    assert row["claim"] == claims.CLAIMS["lr_free"] and row["tau"] == 1.0


def test_claim_not_supported_three_points_below():
    records = _adam() + _free("dadapt_adam", [0.92, 0.921, 0.919])
    row = _row(claims.evaluate_claims(records), "mlp/digits (dadapt_adam)")
    assert row["verdict"] == "not supported" and row["effect"] == pytest.approx(3.0, abs=1e-5)


def test_claim_inconclusive_when_seeds_disagree_and_with_one_seed():
    records = _adam() + _free("schedule_free_adamw", [0.95, 0.92, 0.95])
    assert _row(claims.evaluate_claims(records),
                "mlp/digits (schedule_free_adamw)")["verdict"] == "inconclusive"
    records = _adam(seeds=(0,)) + _free("prodigy", [0.95])
    assert _row(claims.evaluate_claims(records), "mlp/digits (prodigy)")["verdict"] == "inconclusive"


def test_better_than_adam_is_within_and_grid_runs_are_not_the_defaults():
    sf_grid = [_run("mlp", "schedule_free_adamw", 0.01, s, 0.99) for s in range(3)]
    records = _adam() + _free("schedule_free_adamw", [0.96, 0.97, 0.965]) + sf_grid
    row = _row(claims.evaluate_claims(records), "mlp/digits (schedule_free_adamw)")
    assert row["verdict"] == "supported" and row["effect"] == pytest.approx(-1.5, abs=1e-5)


def test_tuned_adam_takes_warmup_cosine_when_it_is_better():
    records = _adam(warmup_cosine=0.97) + _free("prodigy", [0.96, 0.96, 0.96])
    assert lrfree.tuned_adam(records, "mlp")[:2] == ("warmup_cosine", 0.01)
    row = _row(claims.evaluate_claims(records), "mlp/digits (prodigy)")
    assert row["effect"] == pytest.approx(1.0, abs=1e-5)
    assert row["verdict"] == "not supported"  # exactly 1 point is not "within"
    assert "warmup_cosine lr=0.01" in row["detail"]
    # a tie keeps the constant schedule
    assert lrfree.tuned_adam(_adam(warmup_cosine=0.95), "mlp")[0] == "constant"


def test_no_adam_no_claim_and_lr_free_runs_leave_the_other_claims_alone():
    assert not [r for r in claims.evaluate_claims(_free("prodigy", [0.9, 0.9]))
                if r["id"] == "lr_free"]
    base = _adam() + [_run("mlp", "sgd", lr, s, sc) for s in (0, 1, 2)
                      for lr, sc in ((1e-2, 0.5), (1e-1, 0.95), (1.0, 0.3))]
    strong = _free("prodigy", [0.999, 0.999, 0.999])
    assert claims.reference_scores(base) == claims.reference_scores(base + strong)
    before = [r for r in claims.evaluate_claims(base)]
    after = [r for r in claims.evaluate_claims(base + strong) if r["id"] != "lr_free"]
    assert before == after


# ---------------------------------------------------------------------- figure and records
def _study_records():
    records = _adam(warmup_cosine=0.955)
    for optimizer, start in (("prodigy", 1e-6), ("dadapt_adam", 1e-6)):
        for seed in range(3):
            d = list(np.geomspace(start, 3e-3 * (1 + seed / 10), 20))
            records.append(_run("mlp", optimizer, 1.0, seed, 0.95, d=d))
    records += _free("schedule_free_adamw", [0.95, 0.95, 0.95])
    records += [_run("mlp", "schedule_free_adamw", 0.01, s, 0.96) for s in range(3)]
    return records


def test_d_figure_writes_a_png_and_needs_d(tmp_path):
    from keras_lr.study import figures

    path = figures.lr_estimates(_study_records(), tmp_path / "d.png")
    assert path and (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    without = [{k: v for k, v in r.items() if k != "d"} for r in _study_records()]
    assert figures.lr_estimates(without, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_report_has_the_table_claim_and_figure(tmp_path):
    plan = grid.default_plan(quick=True)
    _, report = write_outputs(tmp_path, _study_records(), plan)
    names = [p.rsplit("/", 1)[-1] for p in map(str, report["figures"])]
    assert "study_lr_free_d.png" in names
    markdown = (tmp_path / "report.md").read_text()
    assert "### Learning-rate-free optimizers: do their defaults match tuned Adam?" in markdown
    assert "![The estimate d" in markdown
    assert "mlp/digits (prodigy)" in markdown and claims.CLAIMS["lr_free"] in markdown
    rows = lrfree.table_rows(_study_records())
    # tuned Adam: warmup_cosine (0.955) beats constant (0.95); final d: mean over seeds
    assert rows == [["mlp/digits", "warmup_cosine, 0.01", "0.955", "0.950", "0.950", "0.950",
                     "0.960 (0.01)", "0.0033 / 0.0033", "3"]]


def test_record_with_d_round_trips_through_the_store(tmp_path):
    records = _study_records()
    store = Store(tmp_path)
    for record in records:
        store.append(record)
    loaded = store.load()
    assert [r["d"] for r in loaded if "d" in r] == [r["d"] for r in records if "d" in r]
    assert lrfree.d_curves(loaded, "mlp", "prodigy")[2][-1] == pytest.approx(3.6e-3)
    write_outputs(tmp_path, loaded, grid.default_plan(quick=True))
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert sum("d" in r for r in runs) == 6


def test_existing_run_keys_are_unchanged():
    """Stores written before the sub-study resume: the keys of SGD and Adam runs are the
    ones computed before it existed."""
    assert grid.RunConfig("mlp", "digits", "adam", 0.01, 0).key == "91c2f4c40ab10640"
    assert grid.RunConfig("cnn", "digits", "sgd", 0.1, 2, epochs=3, size="quick",
                          limit=600).key == "c7e78893967eeb22"


def test_claim_per_data_set_names_the_data():
    from keras_lr.study.standard import evaluate_per_data

    records = [dict(r, data="mnist5k", variant=r["variant"].replace("|digits|", "|mnist5k|"))
               for r in _adam() + _free("prodigy", [0.95, 0.95, 0.95])]
    rows = [r for r in evaluate_per_data(records) if r["id"] == "lr_free"]
    assert [(r["subject"], r["verdict"]) for r in rows] == [
        ("mlp/mnist5k (prodigy)", "supported")]


def test_cli_custom_grid_with_lr_free_optimizers_reports_and_resumes(tmp_path, capsys):
    from keras_lr.cli.main import main

    argv = ["study", "--models", "mlp", "--optimizers", "adam,prodigy,schedule_free_adamw",
            "--lrs", "0.0025,1", "--seeds", "1", "--epochs", "1", "--quick", "--no-progress",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "keras-lr study: 7 runs" in capsys.readouterr().out  # 6 runs, 1 range test
    markdown = (tmp_path / "report.md").read_text()
    assert "mlp/digits (prodigy)" in markdown and "mlp/digits (schedule_free_adamw)" in markdown
    assert (tmp_path / "study_lr_free_d.png").exists()
    data = json.loads((tmp_path / "results.json").read_text())
    assert {t["optimizer"] for t in data["range_tests"]} == {"adam"}
    assert [len(r["d"]) > 0 for r in data["runs"] if r["optimizer"] == "prodigy"] == [True] * 2
    assert main(argv) == 0  # resumes: nothing left to train
    assert "keras-lr study: 0 runs" in capsys.readouterr().out
