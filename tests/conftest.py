"""Shared test setup: the TensorFlow backend, quiet logs, and a Keras-session fixture."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import keras  # noqa: E402  (must come after the environment is set)
import pytest  # noqa: E402


@pytest.fixture
def clear_session():
    """Clear the Keras session (layer-name counters, graphs) before and after a test."""
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
