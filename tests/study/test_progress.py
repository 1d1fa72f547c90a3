"""The study's progress bar is optional: rich (the `progress` extra) may be missing."""

import sys

from keras_lr.study import engine


def _drive(bar):
    # the calls run_study makes
    with bar:
        task = bar.add_task("", total=4, stage="")
        bar.update(task, advance=1)
        bar.update(task, description="mlp", stage="grid")
        bar.update(task, advance=1, total=max(bar.tasks[0].total or 0, 6))
    return bar.tasks[0].total


def test_without_rich_the_study_runs_without_a_bar(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich", None)  # `import rich` raises ImportError
    bar = engine._progress(True)
    assert isinstance(bar, engine._NoProgress)
    assert "install keras-lr[progress]" in capsys.readouterr().err
    assert _drive(bar) == 6


def test_disabled_bar_needs_no_rich(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich", None)
    assert isinstance(engine._progress(False), engine._NoProgress)
    assert capsys.readouterr().err == ""


def test_rich_bar_takes_the_same_calls():
    bar = engine._progress(True)
    assert not isinstance(bar, engine._NoProgress)
    assert _drive(bar) == 6
