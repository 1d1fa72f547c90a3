"""Every `Example:` in the package's docstrings runs and prints what it shows (stdlib doctest)."""

import doctest
import importlib
import pkgutil

import keras
import pytest

import keras_lr

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(keras_lr.__path__, "keras_lr.")
    if not info.name.endswith("__main__")
)


#: Modules whose subject runs on TensorFlow only: their examples fail, as documented, elsewhere.
TENSORFLOW_ONLY = ("keras_lr.sweep", "keras_lr.finder.verify", "keras_lr.study")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if keras.backend.backend() != "tensorflow" and name.startswith(TENSORFLOW_ONLY):
        pytest.skip(f"{name} runs on TensorFlow only (the sweep on JAX and torch is issue 16)")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):  # each test gets its own copy of the globals
        runner.run(test)
    results = runner.summarize(verbose=False)
    if results.attempted == 0:
        pytest.skip(f"{name} has no docstring examples")
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name}"
