"""Grid parsing, config hashing and the default/quick plans."""

import pytest

from keras_lr.study import grid


def test_parse_rates_log_spaced_range():
    assert grid.parse_rates("1e-4:1:9") == (1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 0.01,
                                             0.0316228, 0.1, 0.316228, 1.0)
    assert grid.parse_rates("0.5:0.5:1") == (0.5,)


def test_parse_rates_comma_list_sorted_unique():
    assert grid.parse_rates("0.1, 0.001,0.1") == (0.001, 0.1)


@pytest.mark.parametrize("text", ["", "1e-3:1", "1:1e-3:3", "a:1:3", "1e-3:1:x", "1e-3:1:0",
                                  "0,0.1", "-1", "nan", "inf,0.1", "1e-3:1:2:4",
                                  "1:1e-4:1",  # HIGH < LOW with N=1 was accepted
                                  "1:1.000001:5"])  # collapses to one rate at 6 digits
def test_parse_rates_rejects_malformed(text):
    with pytest.raises(ValueError):
        grid.parse_rates(text)


def test_parse_list():
    assert grid.parse_list("adam, sgd,adam", grid.OPTIMIZERS, "optimizer") == ("adam", "sgd")
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        grid.parse_list("mlp,vgg", grid.FAMILIES, "model")
    with pytest.raises(ValueError, match="empty"):
        grid.parse_list(" , ", grid.FAMILIES, "model")


def test_run_key_depends_on_every_field_but_not_on_float_noise():
    a = grid.RunConfig("mlp", "digits", "adam", 0.1, 0)
    assert a.key == grid.RunConfig("mlp", "digits", "adam", 0.1 + 1e-12, 0).key
    others = [grid.RunConfig("cnn", "digits", "adam", 0.1, 0),
              grid.RunConfig("mlp", "digits", "sgd", 0.1, 0),
              grid.RunConfig("mlp", "digits", "adam", 0.2, 0),
              grid.RunConfig("mlp", "digits", "adam", 0.1, 1),
              grid.RunConfig("mlp", "digits", "adam", 0.1, 0, schedule="cosine"),
              grid.RunConfig("mlp", "digits", "adam", 0.1, 0, clip="agc"),
              grid.RunConfig("mlp", "digits", "adam", 0.1, 0, epochs=3)]
    assert len({a.key} | {o.key for o in others}) == 1 + len(others)
    # Rate, seed and schedule share a compiled group; clipping does not.
    assert a.group == others[2].group == others[3].group == others[4].group
    assert a.group != others[5].group
    assert grid.RangeTestConfig("mlp", "digits", "adam", 0).key != a.key


def test_default_plan_is_not_the_full_product():
    plan = grid.default_plan()
    sizes = {s.name: len(s.expand([])) for s in plan.stages}
    assert sizes["main"] == 4 * 2 * 9 * 3
    assert sizes["warmup"] == sizes["clip"] == 4 * 7 * 3
    assert sizes["adding"] == 2 * 3 * 7 * 3
    assert sizes["range tests"] == 4 * 2 * 3
    assert sizes["schedules"] == 0  # depends on the main grid's results
    assert plan.stages[-1].size_hint == 4 * 5 * 2 * 3
    total = sum(sizes.values()) + plan.stages[-1].size_hint
    assert total < 4 * 2 * 9 * 2 * 7 * 3  # far below the cartesian product


def test_schedule_stage_samples_around_the_constant_optimum():
    plan = grid.default_plan(quick=True)
    stage = plan.stages[-1]
    main = plan.stages[0].expand([])
    records = [{"kind": "run", "family": c.family, "data": c.data, "optimizer": c.optimizer,
                "schedule": c.schedule, "clip": c.clip, "multipliers": c.multipliers,
                "lr": c.lr, "seed": c.seed, "final_score": 1.0 - abs(c.lr - 0.1),
                "epochs": c.epochs, "batch_size": c.batch_size, "size": c.size,
                "limit": c.limit} for c in main]
    configs = stage.expand(records)
    assert configs and {c.lr for c in configs} == {0.1}
    assert {c.schedule for c in configs} == {"cosine", "warmup_cosine"}


def test_schedule_stage_looks_only_at_the_plans_own_rates():
    """A run at another rate stored in the same directory (another plan's) scoring best must
    not move the default plan's schedule stage."""
    plan = grid.default_plan(quick=True)
    stage = next(s for s in plan.stages if s.name == "schedules")
    common = {k: plan.settings[k] for k in ("epochs", "batch_size", "size", "limit")}
    rates = plan.settings["rates"]

    def run(lr, score, seed=0):
        return {"kind": "run", "family": "mlp", "data": "digits", "optimizer": "adam",
                "schedule": "constant", "clip": "none", "multipliers": "none", "lr": lr,
                "seed": seed, "final_score": score, **common}

    records = [run(lr, 0.9 if lr == rates[1] else 0.5) for lr in rates]
    before = {c.lr for c in stage.expand(records) if c.family == "mlp"}
    foreign = run(5e-4, 0.99)
    assert foreign["lr"] not in rates
    after = {c.lr for c in stage.expand(records + [foreign]) if c.family == "mlp"}
    assert before == after and rates[1] in before
