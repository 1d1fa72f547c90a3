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


#: Each backend's own modules (imported only on it).
BACKEND_MODULES = {"keras_lr.finder.tf_loop": "tensorflow", "keras_lr.finder.jax_loop": "jax",
                   "keras_lr.finder.torch_loop": "torch", "keras_lr.guards._torch": "torch",
                   "keras_lr.study._tensorflow_epochs": "tensorflow",
                   "keras_lr.study._jax_epochs": "jax", "keras_lr.study._torch_epochs": "torch"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if BACKEND_MODULES.get(name, keras.backend.backend()) != keras.backend.backend():
        pytest.skip(f"{name} is the {BACKEND_MODULES[name]} backend's module")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):  # each test gets its own copy of the globals
        runner.run(test)
    results = runner.summarize(verbose=False)
    if results.attempted == 0:
        pytest.skip(f"{name} has no docstring examples")
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name}"
