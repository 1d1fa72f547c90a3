"""Shared test setup: the backend under test, quiet logs, markers and a Keras-session fixture.

The backend is `KERAS_BACKEND` (TensorFlow when unset); `.ci/run` runs the suite once per
backend, as Keras's own CI does. A test that cannot run on every backend says so with
``@pytest.mark.backends("tensorflow", reason="...")`` and is skipped, with that reason, elsewhere.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

try:  # torch before TensorFlow: loading them the other way round can crash (Keras's conftest)
    import torch  # noqa: F401
except ImportError:
    pass

import keras  # noqa: E402  (must come after the environment is set)
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

BACKEND = keras.backend.backend()

# `HYPOTHESIS_PROFILE=ci` (set by .ci/run) fixes hypothesis's examples, so CI judges the code
# and not the draw; local runs keep drawing new examples. Test modules build their settings
# after this import, so they inherit the loaded profile.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "backends(*names, reason): run only on these Keras backends; skipped with the reason "
        "on the others",
    )


def pytest_runtest_setup(item):
    for marker in item.iter_markers(name="backends"):
        if BACKEND not in marker.args:
            reason = marker.kwargs.get("reason", "not supported on this backend")
            pytest.skip(f"{'/'.join(marker.args)} only ({BACKEND}): {reason}")


def pytest_report_header(config):
    return f"keras backend: {BACKEND}"


@pytest.fixture
def clear_session():
    """Clear the Keras session (layer-name counters, graphs) before and after a test."""
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
