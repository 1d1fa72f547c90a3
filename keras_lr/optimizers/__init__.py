"""Optimizer wrappers (a shared learning-rate scale, layer-wise multipliers) and the
learning-rate-free optimizers (schedule-free AdamW and SGD, Prodigy, D-Adaptation Adam)."""

from keras_lr.optimizers.base import (
    LRWrapper,
    base_optimizer,
    current_learning_rate,
    find_lr_scale,
    unwrap,
)
from keras_lr.optimizers.dadapt import DAdaptAdam
from keras_lr.optimizers.layerwise import LayerwiseLR, LayerwiseRow
from keras_lr.optimizers.momentum import ScheduledMomentum, current_momentum, momentum_attribute
from keras_lr.optimizers.prodigy import Prodigy
from keras_lr.optimizers.rules import Paths, discriminative, gate_multipliers, layer_decay
from keras_lr.optimizers.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD

__all__ = [
    "DAdaptAdam",
    "LRWrapper",
    "LayerwiseLR",
    "LayerwiseRow",
    "Paths",
    "Prodigy",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "ScheduledMomentum",
    "base_optimizer",
    "current_learning_rate",
    "current_momentum",
    "discriminative",
    "find_lr_scale",
    "gate_multipliers",
    "layer_decay",
    "momentum_attribute",
    "unwrap",
]
