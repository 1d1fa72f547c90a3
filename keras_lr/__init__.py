"""keras-lr: everything about the learning rate for Keras 3.

Subpackages (imported lazily, so ``import keras_lr`` and ``keras-lr --help`` stay instant):

* `keras_lr.schedules`: `LearningRateSchedule` subclasses and composition wrappers.
* `keras_lr.optimizers`: optimizer wrappers: a shared learning-rate scale, layer-wise multipliers.
* `keras_lr.guards`: gradient clipping and non-finite-step skipping as an optimizer wrapper.
* `keras_lr.callbacks`: learning-rate monitoring, divergence recovery, plateau reduction.
* `keras_lr.finder`: the learning-rate range test (`keras_lr.find_lr`).
* `keras_lr.models`, `keras_lr.data`: reference models and embedded data sets.
* `keras_lr.mup`: μP (rates that transfer across width) through `LayerwiseLR`.
* `keras_lr.tuner`: KerasTuner search hooks (optional: needs the ``tuner`` extra, so it is
  not in ``__all__``; ``import keras_lr.tuner`` or ``keras_lr.tuner`` loads it).

Example:

```python
import keras_lr

result = keras_lr.find_lr(model, x, y, num_steps=100)
print(result.suggestion("valley"))
```
"""

from __future__ import annotations

import importlib

from keras_lr._version import __version__

_SUBMODULES = (
    "callbacks",
    "data",
    "finder",
    "guards",
    "models",
    "mup",
    "optimizers",
    "recipes",
    "schedules",
    "study",
    "sweep",
)
_OPTIONAL = ("tuner",)  # needs an extra: importable by name, left out of `import *`
_ATTRIBUTES = {
    "find_lr": "keras_lr.finder",
    "LRFinderResult": "keras_lr.finder",
}

__all__ = ["LRFinderResult", "__version__", "find_lr", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES or name in _OPTIONAL:
        return importlib.import_module(f"keras_lr.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'keras_lr' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_OPTIONAL))
