"""Shared test setup: the TensorFlow backend, quiet logs, and a Keras-session fixture."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import keras  # noqa: E402  (must come after the environment is set)
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# `HYPOTHESIS_PROFILE=ci` (set by .ci/run) fixes hypothesis's examples, so CI judges the code
# and not the draw; local runs keep drawing new examples. Test modules build their settings
# after this import, so they inherit the loaded profile.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def clear_session():
    """Clear the Keras session (layer-name counters, graphs) before and after a test."""
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
