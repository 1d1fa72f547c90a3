"""KerasTuner search hooks: learning-rate search spaces, a hypermodel, divergence pruning.

* `hp_learning_rate`, `hp_schedule`, `hp_optimizer`: declare named hyperparameters and return
  a rate, a keras-lr schedule, an optimizer (module `keras_lr.tuner.space`).
* `LRHyperModel`: a `keras_tuner.HyperModel` that builds your model (or a reference model),
  compiles it with the searched optimizer and schedule and fits it with pruning and
  monitoring.
* `DivergencePruning`: ends a trial as soon as its loss is non-finite or explodes and reports
  it as a completed, worst-scored trial.
* `finder_range`: a search range for `hp_learning_rate` from the LR range test.

Works with every KerasTuner tuner, on one machine and in KerasTuner's distributed mode; the
command line is ``keras-lr tune``. Needs the ``tuner`` extra (KerasTuner and, for the
TensorFlow backend, TensorBoard, without which KerasTuner fails every trial).

Example:

```python
import keras_tuner as kt
from keras_lr.tuner import LRHyperModel

tuner = kt.RandomSearch(LRHyperModel("mlp", epochs=5, steps_per_epoch=45, input_shape=(64,),
                                     num_classes=10),
                        objective="val_accuracy", max_trials=12, directory="tuning")
tuner.search(x_train, y_train, validation_data=(x_val, y_val))
```
"""

import importlib.util
import os

_MISSING = [
    package
    for package, needed in (
        ("keras_tuner", True),
        ("tensorboard", os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"),
    )
    if needed and importlib.util.find_spec(package) is None
]
if _MISSING:
    raise ImportError(
        "keras-lr's tuner hooks need KerasTuner: pip install 'keras-lr[tuner]' "
        f"(missing: {', '.join(_MISSING)})"
    )

from keras_lr.tuner.hypermodel import LRHyperModel  # noqa: E402
from keras_lr.tuner.pruning import DivergencePruning  # noqa: E402
from keras_lr.tuner.range import finder_range  # noqa: E402
from keras_lr.tuner.space import (  # noqa: E402
    CLIPS,
    OPTIMIZERS,
    SCHEDULES,
    hp_learning_rate,
    hp_optimizer,
    hp_schedule,
)

__all__ = [
    "CLIPS",
    "OPTIMIZERS",
    "SCHEDULES",
    "DivergencePruning",
    "LRHyperModel",
    "finder_range",
    "hp_learning_rate",
    "hp_optimizer",
    "hp_schedule",
]
