"""The structure stage: configs and keys, the models it builds, μP runs against keras_lr.mup
trained by fit, the parallel rule, the claims on synthetic records, figures and the report."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from study_configs import small_config

from keras_lr.study import grid, structure, structure_claims

# configs, plans, claims, figures and the report need no training: every backend
ANY = pytest.mark.backends("tensorflow", "jax", "torch")


_config = small_config


# ---------------------------------------------------------------------- configs
@ANY
def test_default_structure_keeps_the_keys_of_earlier_versions():
    import dataclasses

    config = _config()
    old = {k: v for k, v in dataclasses.asdict(config).items()
           if k not in grid.STRUCTURE_DEFAULTS}
    assert config.key == grid._hash({"kind": "run", **old})
    assert "width" not in config.variant and "norm" not in config.variant
    wide = _config(width=64)
    assert wide.key != config.key and "width=64" in wide.variant
    assert wide.group != config.group and _config(lr=0.5, seed=3).group == config.group
    assert wide.structured and not config.structured
    assert _config(norm="batch").label().endswith("seed=0")
    assert "norm=batch" in _config(norm="batch").label()


@ANY
@pytest.mark.parametrize("kwargs, message", [
    (dict(family="lstm", width=8), "Argument `family` must be 'mlp' or 'cnn' for width"),
    (dict(family="gru", residual=True), "Argument `family` must be 'mlp' or 'cnn' for width"),
    (dict(family="lstm", norm="batch"), "Argument `norm` must be one of 'none', 'layer'"),
    (dict(norm="group"), "Argument `norm` must be one of 'none', 'batch', 'layer'"),
    (dict(depth=0), "Argument `depth` must be >= 1. Received: depth=0"),
    (dict(width=0), "Argument `width` must be >= 1"),
    (dict(mup_base=8, optimizer="prodigy", lr=1.0), "Argument `optimizer` must be one of"),
    (dict(mup_base=8, multipliers="dense_x10"), "Argument `multipliers` must be 'none'"),
    (dict(family="lstm", mup_base=8), "Argument `family` must be 'mlp' or 'cnn' for mup_base"),
])
def test_configs_that_make_no_sense_are_refused_in_keras_wording(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _config(**kwargs)


@ANY
def test_residual_must_be_a_bool():
    with pytest.raises(TypeError, match="Argument `residual` must be True or False"):
        _config(residual=1)


@ANY
def test_model_kwargs_and_the_sizes_own_width():
    from keras_lr.study.runner import MODEL_KWARGS

    for size in grid.SIZES:
        for family in ("mlp", "cnn", "lstm", "gru"):
            assert structure.model_kwargs(_config(family=family, size=size)) \
                == MODEL_KWARGS[size][family]
        for family in ("mlp", "cnn"):  # the own width is in each sweep, as the main grid's run
            own = structure._own_width(family, size)
            assert own in structure.WIDTHS[size][family]
            assert structure.model_kwargs(_config(family=family, size=size, width=own)) \
                == MODEL_KWARGS[size][family]
    assert structure.model_kwargs(_config(size="default", width=32, depth=3, norm="layer",
                                          residual=True)) == {
        "hidden": (32, 32, 32), "norm": "layer", "residual": True}
    assert structure.model_kwargs(_config(family="cnn", size="standard", width=8, depth=2)) \
        == {"filters": (8, 16, 32), "dense": 32, "depth": 2}
    assert structure.model_kwargs(_config(family="lstm", depth=2, norm="layer")) == {
        "units": 16, "depth": 2, "norm": "layer"}
    for size, widths in structure.WIDTHS.items():
        if size != "quick":
            assert all(widths[f][-1] / widths[f][0] >= 8 and len(widths[f]) >= 4
                       for f in widths)


@ANY
def test_plans_hold_the_structure_stage():
    plan = grid.default_plan()
    by = {s.name: s.expand([]) for s in plan.stages if not callable(s.configs)}
    width = by["width"]
    assert {c.seed for c in width} == {0, 1, 2}
    assert {c.mup_base for c in width} == {None, 32}
    assert sorted({c.width for c in width if c.mup_base}) == [32, 64, 128, 256]
    assert {c.depth for c in width} == {2}
    assert {c.lr for c in width} == set(plan.rates)  # the whole grid: the optimum lies inside
    assert {(c.depth, c.residual) for c in by["depth"]} == {
        (d, r) for d in (None, 2, 4, 8) for r in (False, True)}
    assert {(c.family, c.norm) for c in by["normalization"]} == {
        (f, n) for f in ("mlp", "cnn") for n in grid.NORMS}
    depth = {c.key for c in by["depth"]}  # SP at the own width, 2 layers: the depth-2 runs
    shared = {c.key for c in width if c.width is None and c.lr >= 1e-3}
    assert len(shared) == 21 and shared <= depth
    full = structure.structure_plan()
    sizes = {s.name: len(s.expand([])) for s in full.stages}
    assert sizes == {"width": 2 * 4 * 2 * 2 * 9 * 3, "depth": 2 * 4 * 2 * 2 * 9 * 3,
                     "normalization": 2 * 3 * 2 * 9 * 3}
    quick = structure.structure_plan(quick=True)
    assert {c.size for s in quick.stages for c in s.expand([])} == {"quick"}


# ---------------------------------------------------------------------- runs
def test_mup_at_its_base_width_is_the_standard_run_and_wider_is_not():
    from keras_lr.study import runner

    r = runner.Runner(parallel=False)
    sp = r.run(_config(width=8))
    mu = r.run(_config(width=8, mup_base=8))
    assert mu["val_loss"] == sp["val_loss"] and mu["train_loss"] == sp["train_loss"]
    assert r.run(_config(width=32, mup_base=8))["val_loss"] != r.run(_config(width=32))[
        "val_loss"]


def _fit_by_hand(config, model, optimizer):
    """Train with Keras `fit` on the runner's documented batch order; final val loss."""
    import keras

    from keras_lr import data

    ds = data.load(config.data, view=data.view_for(config.family), seed=0, limit=config.limit)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng([config.seed, 1])
    steps = len(ds.x_train) // config.batch_size
    for _ in range(config.epochs):
        order = rng.permutation(len(ds.x_train))[:steps * config.batch_size]
        model.fit(ds.x_train[order], ds.y_train[order], batch_size=config.batch_size,
                  shuffle=False, epochs=1, verbose=0)
    pred = model(ds.x_val, training=False)
    return float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(ds.y_val, pred)))


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.01), ("sgd", 0.1)])
def test_a_mup_run_equals_keras_lr_mup_build_trained_by_fit(optimizer, lr):
    """The stage's μP run against the user's one call, `keras_lr.mup.build`, and `fit`."""
    import keras

    from keras_lr import data, models, mup
    from keras_lr.study import runner

    config = _config(optimizer=optimizer, lr=lr, width=32, mup_base=8, seed=1)
    record = runner.Runner(parallel=False).run(config)
    ds = data.load("digits", view="flat", seed=0, limit=300)
    inner = (keras.optimizers.Adam(lr) if optimizer == "adam"
             else keras.optimizers.SGD(lr, momentum=0.9))
    model, opt = mup.build(lambda w: models.build("mlp", ds.input_shape, 10, hidden=(w,),
                                                  seed=1), 32, 8, inner)
    assert record["val_loss"][-1] == pytest.approx(_fit_by_hand(config, model, opt), rel=1e-4)


@pytest.mark.parametrize("kwargs", [dict(norm="batch"), dict(depth=3, residual=True),
                                    dict(family="cnn", norm="layer", width=4)])
def test_structured_runs_equal_the_models_built_and_trained_by_fit(kwargs):
    import keras

    from keras_lr import data, models
    from keras_lr.study import runner

    config = _config(**kwargs)
    record = runner.Runner(parallel=False).run(config)
    ds = data.load("digits", view=data.view_for(config.family), seed=0, limit=300)
    model = models.build(config.family, ds.input_shape, 10, seed=0,
                         **structure.model_kwargs(config))
    got = _fit_by_hand(config, model, keras.optimizers.Adam(config.lr))
    assert record["val_loss"][-1] == pytest.approx(got, rel=1e-4)


def test_parallel_engine_takes_width_and_depth_but_not_norm_residual_or_mup():
    import keras

    from keras_lr.study import parallel

    backend = keras.backend.backend()
    batch = [_config(family="cnn", lr=lr, width=4, depth=2) for lr in (0.01, 0.1)]
    assert parallel.supported(batch[0])
    for kw in (dict(norm="batch"), dict(residual=True), dict(width=8, mup_base=4)):
        # keras_lr.sweep replicates plain Sequential models only; JAX maps any model's step
        assert parallel.supported(_config(family="cnn", **kw)) is (backend == "jax")
        assert parallel.use_parallel([_config(family="cnn", lr=lr, **kw)
                                      for lr in (0.01, 0.1)], True) is (backend == "jax")


@pytest.mark.slow
def test_parallel_and_sequential_engines_agree_on_a_wider_deeper_cnn():
    from keras_lr.study import runner

    batch = [_config(family="cnn", lr=lr, width=4, depth=2, epochs=1) for lr in (0.003, 0.03)]
    par = list(runner.run_group(batch, runner.Runner(parallel=True)))
    seq = list(runner.run_group(batch, runner.Runner(parallel=False)))
    for a, b in zip(par, seq):
        np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-4)


# ---------------------------------------------------------------------- claims
def _record(lr, seed, loss, score=None, diverged=False, **fields):
    config = grid.RunConfig("mlp", "digits", fields.pop("optimizer", "adam"), lr, seed,
                            size="default", **fields)
    import dataclasses

    return {"kind": "run", "key": config.key, "variant": config.variant,
            **dataclasses.asdict(config), "final_loss": float("nan") if diverged else loss,
            "final_score": 0.1 if diverged else (score if score is not None else 1 - loss / 3),
            "best_score": 0.5, "best_loss": loss, "diverged": diverged, "baseline_score": 0.1,
            "oscillation": 0.0, "epochs_to_target": None, "val_loss": [loss], "train_loss": [loss],
            "val_score": [0.5], "epochs": 1}


RATES = grid.rate_grid(1e-4, 1.0, 9)


def _width_records(best_of, seeds=(0, 1, 2), **fields):
    """Loss curves whose minimum over log10(rate) lies at `best_of(width, seed)`."""
    out = []
    widths = structure.WIDTHS["default"]["mlp"]
    for seed in seeds:
        for width in widths:
            for param in ("sp", "mup"):
                vertex = best_of(width / widths[0], seed, param)
                for lr in RATES:
                    loss = 0.2 + (math.log10(lr) - vertex) ** 2
                    sp = param == "sp"  # as the plan: SP at the own width has width None
                    out.append(_record(lr, seed, loss,
                                       width=None if sp and width == 64 else width,
                                       depth=structure.WIDTH_DEPTH["mlp"],
                                       mup_base=None if sp else widths[0], **fields))
    return out


def _rows(records, cid):
    return {r["subject"]: r for r in structure_claims.claim_rows(records) if r["id"] == cid}


@ANY
def test_width_claims_supported_when_sp_moves_and_mup_does_not():
    # SP: best rate falls 0.3 decades per doubling (the SP prediction); μP: flat at 1e-2
    records = _width_records(lambda w, s, p: -1.5 - 0.3 * math.log2(w) + 0.02 * s
                             if p == "sp" else -2.0 + 0.02 * s)
    sp = _rows(records, "width_sp")["mlp (adam)"]
    assert sp["verdict"] == "supported" and sp["effect"] == pytest.approx(-0.3, abs=0.02)
    mu = _rows(records, "width_mup")["mlp (adam)"]
    assert mu["verdict"] == "supported" and mu["effect"] < 0.02
    transfer = _rows(records, "mup_transfer")
    assert transfer["mlp (adam) muP"]["verdict"] == "supported"
    assert transfer["mlp (adam) SP"]["verdict"] == "supported"  # 0.9 decades: 2 grid steps
    assert transfer["mlp (adam) muP"]["tau"] == pytest.approx(0.75)


@ANY
def test_width_claims_not_supported_when_both_move():
    records = _width_records(lambda w, s, p: -1.5 - 0.3 * math.log2(w) + 0.02 * s)
    assert _rows(records, "width_mup")["mlp (adam)"]["verdict"] == "not supported"
    assert _rows(records, "mup_transfer")["mlp (adam) muP"]["verdict"] == "not supported"
    flat = _width_records(lambda w, s, p: -2.0 + 0.01 * s)
    assert _rows(flat, "width_sp")["mlp (adam)"]["verdict"] == "not supported"
    assert _rows(flat, "mup_transfer")["mlp (adam) SP"]["verdict"] == "not supported"


@ANY
@settings(max_examples=30, deadline=None)
@given(st.floats(-3.6, -0.4))
def test_best_log_rate_finds_a_parabolas_vertex_between_grid_points(vertex):
    curve = {lr: {"final_loss": 0.3 + (math.log10(lr) - vertex) ** 2, "diverged": False}
             for lr in RATES}
    assert structure_claims.best_log_rate(curve) == pytest.approx(vertex, abs=1e-6)


@ANY
def test_best_log_rate_at_the_edge_or_next_to_a_divergence_is_the_grid_minimum():
    curve = {lr: {"final_loss": 1.0 + math.log10(lr), "diverged": False} for lr in RATES}
    assert structure_claims.best_log_rate(curve) == pytest.approx(-4.0)  # the lowest rate
    curve = {lr: {"final_loss": (math.log10(lr) + 1.2) ** 2, "diverged": lr > 0.05}
             for lr in RATES}
    assert structure_claims.best_log_rate(curve) == pytest.approx(math.log10(RATES[5]))  # not -1.2
    assert math.isnan(structure_claims.best_log_rate({1e-3: {"final_loss": 1.0, "diverged": True}}))


def _range_records(top_of, seeds=(0, 1, 2), **fields):
    """Every rate up to `top_of(seed)` usable (score 0.9), diverged above."""
    return [_record(lr, s, 0.3, score=0.9, diverged=lr > top_of(s) * 1.01, **fields)
            for s in seeds for lr in RATES]


@ANY
def test_norm_claim_reads_the_top_of_the_stable_range():
    records = (_range_records(lambda s: 0.01) + _range_records(lambda s: 0.1, norm="batch")
               + _range_records(lambda s: 0.01 if s else 0.0316, norm="layer"))
    rows = _rows(records, "norm_stable")
    assert rows["mlp (adam, batch)"]["verdict"] == "supported"
    assert rows["mlp (adam, batch)"]["effect"] == pytest.approx(1.0)
    assert rows["mlp (adam, layer)"]["verdict"] == "inconclusive"
    worse = _range_records(lambda s: 0.01) + _range_records(lambda s: 1e-3, norm="batch")
    assert _rows(worse, "norm_stable")["mlp (adam, batch)"]["verdict"] == "not supported"


def _depth_records(plain_top, residual_top):
    out = []
    for depth in structure.DEPTHS:
        for residual, top in ((False, plain_top), (True, residual_top)):
            out += _range_records(lambda s, d=depth, t=top: t(d, s),
                                  depth=None if depth == 1 else depth, residual=residual)
    return out


@ANY
def test_depth_claims():
    records = _depth_records(lambda d, s: 0.1 / d ** 1.5, lambda d, s: 0.1)
    narrow = _rows(records, "depth_narrows")["mlp (adam)"]
    assert narrow["verdict"] == "supported" and narrow["effect"] < -0.3
    wide = _rows(records, "residual_widens")["mlp (adam)"]
    assert wide["verdict"] == "supported" and wide["effect"] > 0.5
    same = _depth_records(lambda d, s: 0.1, lambda d, s: 0.1)
    assert _rows(same, "depth_narrows")["mlp (adam)"]["verdict"] == "not supported"
    assert _rows(same, "residual_widens")["mlp (adam)"]["verdict"] == "not supported"


@ANY
def test_structure_runs_stay_out_of_the_other_claims():
    from keras_lr.study import claims

    base = [_record(lr, s, 0.3, score=0.5) for s in (0, 1) for lr in RATES]
    wide = [_record(lr, s, 0.1, score=0.99, width=128) for s in (0, 1) for lr in RATES]
    assert claims.reference_scores(base + wide) == claims.reference_scores(base)
    assert claims._runs(base + wide, family="mlp", optimizer="adam") == base
    old = [{k: v for k, v in r.items() if k not in grid.STRUCTURE_DEFAULTS} for r in base]
    assert claims._runs(old, family="mlp", optimizer="adam") == old  # records of 0.1


# ---------------------------------------------------------------------- report
@ANY
def test_figures_tables_and_the_report(tmp_path):
    from keras_lr.study import report, store, structure_figures
    from keras_lr.study.claims import evaluate_claims
    from keras_lr.study.metrics import aggregate

    records = (_width_records(lambda w, s, p: -1.5 - 0.3 * math.log2(w)
                              if p == "sp" else -2.0)
               + _depth_records(lambda d, s: 0.1 / d, lambda d, s: 0.1)
               + _range_records(lambda s: 0.1, norm="batch")
               + _range_records(lambda s: 0.01, norm="layer"))
    for name, draw in structure_figures.FIGURES.items():
        assert draw(records, tmp_path / name) == str(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 5000
    rows = structure_claims.width_rows(records)
    assert [r[2] for r in rows] == ["SP", "muP"]
    assert rows[1][4] == "0.000" and float(rows[0][4]) > 0.5  # μP transfers, SP pays
    claim_rows = evaluate_claims(records)
    paths = report.write_report(tmp_path, records, claim_rows, {"seeds": 3}, "complete")
    markdown = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert markdown.index("## Summary") < markdown.index("## Headline results") \
        < markdown.index("### Width and muP")
    summary = markdown.split("## Summary")[1].split("##")[0]
    assert "Under SP the best Adam rate falls as the network widens: supported for " \
           "mlp (adam)" in summary
    assert summary.count("\n- ") == 3  # width, depth, normalization: one sentence each
    assert "<details><summary>Per-seed detail</summary>" in markdown
    assert html.count("<details>") == 3 and "seed 0:" not in html.split("<details>")[0]
    assert {p.rsplit("/", 1)[1] for p in paths["figures"]} >= set(structure_figures.FIGURES)
    aggregates = aggregate(records)
    assert {row["norm"] for row in aggregates} == {"none", "batch", "layer"}
    store.write_tables(tmp_path, records, aggregates, claim_rows, {})
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert {"width", "depth", "norm", "residual", "mup_base"} <= set(header)


def test_a_config_two_stages_share_trains_once_and_counts_once(tmp_path):
    from keras_lr.study.engine import run_study

    shared = _config(epochs=1, lr=0.01)
    plan = grid.Plan([grid.Stage("a", [shared, _config(epochs=1, lr=0.1)]),
                      grid.Stage("b", [shared])], (0.01, 0.1), "two stages")
    first = run_study(plan, tmp_path, progress=False)
    assert (first.executed, first.skipped) == (2, 0)
    again = run_study(plan, tmp_path, progress=False)
    assert (again.executed, again.skipped, again.total) == (0, 2, 2)


def test_records_and_results_say_which_backend_and_engine_made_them(tmp_path):
    import json

    import keras

    from keras_lr.study.engine import run_study

    cnn = [_config(family="cnn", epochs=1, lr=lr) for lr in (0.01, 0.1)]
    plan = grid.Plan([grid.Stage("a", cnn + [_config(epochs=1)])], (0.01, 0.1), "engines")
    run_study(plan, tmp_path, progress=False, runner=None)
    data = json.loads((tmp_path / "results.json").read_text())
    backend = keras.backend.backend()
    # auto: the CNN's batch in parallel on TensorFlow and torch (torch the MLP's too, but a
    # single run is never a batch); JAX runs everything one by one
    engines = "sequential 3" if backend == "jax" else "parallel 2, sequential 1"
    if backend == "jax":
        assert {r["engine"] for r in data["runs"]} == {"sequential"}
    else:
        assert {(r["family"], r["engine"]) for r in data["runs"]} == {
            ("cnn", "parallel"), ("mlp", "sequential")}
    assert data["settings"]["backend"] == backend
    assert data["settings"]["engines"] == engines
    assert f"engines={engines}" in (tmp_path / "report.md").read_text()
    assert f"({backend})" in (tmp_path / "report.md").read_text()


@ANY
def test_a_seed_whose_every_run_diverged_has_no_transfer_distance():
    records = _width_records(lambda w, s, p: -2.0)
    records = [dict(r, diverged=True, final_loss=float("nan"))
               if r["seed"] == 2 and r.get("width") == 256 else r for r in records]
    row = _rows(records, "mup_transfer")["mlp (adam) muP"]
    assert row["seeds"] == 2 and row["verdict"] == "supported"
