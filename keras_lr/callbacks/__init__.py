"""Learning-rate callbacks: monitoring, divergence recovery, plateau reduction, scheduling.

* `LRMonitor`: the real current rate (schedule x scale), per-group rates and guard counters
  in the logs, so History and TensorBoard record them.
* `DivergenceGuard`: restore the last good snapshot and lower the rate when the loss
  becomes non-finite or spikes.
* `ReduceLROnPlateau`: Keras's callback, working with schedules (through `lr_scale`) and with
  PyTorch's relative threshold as an option.
* `LRScheduler`: any schedule evaluated per epoch or per step, assigned to a float rate.
* `ScheduleFreeEval`: the schedule-free evaluation point x for validation, evaluation and
  saving, the training point y for training.

All of them work with `steps_per_execution > 1`, `keras.callbacks.BackupAndRestore` and
KerasTuner (a deep copy is a fresh callback with the same arguments).
"""

from keras_lr.callbacks.divergence import DivergenceGuard
from keras_lr.callbacks.monitor import LRMonitor, learning_rate_logs
from keras_lr.callbacks.plateau import ReduceLROnPlateau
from keras_lr.callbacks.schedule_free import (
    ScheduleFreeEval,
    recompute_batchnorm_statistics,
    schedule_free_eval,
    schedule_free_mode,
    schedule_free_train,
)
from keras_lr.callbacks.scheduler import LRScheduler

__all__ = [
    "DivergenceGuard",
    "LRMonitor",
    "LRScheduler",
    "ReduceLROnPlateau",
    "ScheduleFreeEval",
    "learning_rate_logs",
    "recompute_batchnorm_statistics",
    "schedule_free_eval",
    "schedule_free_mode",
    "schedule_free_train",
]
