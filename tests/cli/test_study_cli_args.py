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
