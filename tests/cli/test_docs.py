"""Keep the docs complete: every schedule has a section and a generated figure."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lr.schedules as schedules
from keras_lr.schedules.spec import _snake_case, parse_schedule

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "schedules.md").read_text()


def load_hook():
    spec = importlib.util.spec_from_file_location("figures_hook", ROOT / "docs/hooks/figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_schedule_classes():
    for name in schedules.__all__:
        obj = getattr(schedules, name)
        if isinstance(obj, type) and issubclass(obj, keras.optimizers.schedules.LearningRateSchedule):
            yield name


@pytest.mark.parametrize("name", list(public_schedule_classes()))
def test_every_schedule_has_a_section_and_a_figure(name):
    assert re.search(rf"^### {name}$", PAGE, re.M), f"docs/schedules.md has no '### {name}'"
    snake = _snake_case(name)
    assert f"(figures/{snake}.png)" in PAGE
    assert snake in load_hook().FIGURES


def test_figure_specs_parse_and_are_drawn_with_their_own_class():
    figures = load_hook().FIGURES
    for name, (_, specs) in figures.items():
        for text in specs:
            assert _snake_case(type(parse_schedule(text)).__name__) == name, text
    for link in re.findall(r"\(figures/(\w+)\.png\)", PAGE):
        assert link in figures


def test_hook_renders_a_png():
    data = load_hook().render(20, ["warmup(cosine_decay(1e-3, 10), 5)", "constant(1e-3)"])
    assert data.startswith(b"\x89PNG\r\n\x1a\n")


def test_mkdocs_nav_lists_every_page():
    config = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f": {page.name}" in config, f"{page.name} is not in the mkdocs.yml nav"


def test_schedules_page_recipes_do_what_they_say():
    block = re.search(r"### Recipes\n\n```python\n(.*?)```", PAGE, re.S).group(1)
    namespace = {}
    exec(compile(block, "docs/schedules.md", "exec"), namespace)
    epoch = namespace["steps_per_epoch"]
    resnet = schedules.values(namespace["resnet"], np.array([0, 5 * epoch, 30 * epoch - 1,
                                                             30 * epoch, 60 * epoch, 80 * epoch]))
    np.testing.assert_allclose(resnet, [0.0, 0.1, 0.1, 0.01, 0.001, 0.0001], rtol=1e-5)
    hold = schedules.values(namespace["hold_then_cosine"], np.array([0, 999, 1000, 10_000]))
    np.testing.assert_allclose(hold, [1e-3, 1e-3, 1e-3, 0.0], atol=1e-9)
