"""Learning-rate schedules: pure functions of the optimizer step, plus composition wrappers.

Every class subclasses `keras.optimizers.schedules.LearningRateSchedule`, is registered for
Keras serialization under the ``keras_lr`` package, works for a scalar or a vector of steps,
inside `tf.function` and under XLA. Boundaries follow PyTorch (a change "at" step ``m`` applies
to the update with ``t == m``). See `keras_lr.schedules.base` for the dtype rule.

Durations are optimizer steps as Keras counts them. With ``gradient_accumulation_steps=k``
Keras passes the micro-step count to the schedule; wrap it as ``PerEpoch(schedule, k)`` to
count real updates instead (or multiply the durations by ``k``).

Example:
    ```python
    from keras_lr import schedules

    schedule = schedules.Warmup(schedules.CosineDecay(1e-3, decay_steps=10_000), 500)
    model.compile(optimizer=keras.optimizers.AdamW(schedule), loss="mse")
    schedules.plot(schedule, 10_500)
    ```
"""

from keras_lr.schedules.base import as_schedule
from keras_lr.schedules.compose import PerEpoch, Product, Sequence, Warmup
from keras_lr.schedules.cosine import CosineDecay, CosineRestarts
from keras_lr.schedules.cyclic import CyclicalLR, CyclicalMomentum, OneCycle, OneCycleMomentum
from keras_lr.schedules.decay import (
    Constant,
    ExponentialDecay,
    InverseSqrtDecay,
    LinearDecay,
    MultiStepDecay,
    PiecewiseLinear,
    PolynomialDecay,
    StepDecay,
)
from keras_lr.schedules.preview import plot, values
from keras_lr.schedules.spec import format_schedule, known_schedule_names, parse_schedule
from keras_lr.schedules.wsd import WarmupStableDecay

__all__ = [
    "Constant",
    "CosineDecay",
    "CosineRestarts",
    "CyclicalLR",
    "CyclicalMomentum",
    "ExponentialDecay",
    "InverseSqrtDecay",
    "LinearDecay",
    "MultiStepDecay",
    "OneCycle",
    "OneCycleMomentum",
    "PerEpoch",
    "PiecewiseLinear",
    "PolynomialDecay",
    "Product",
    "Sequence",
    "StepDecay",
    "Warmup",
    "WarmupStableDecay",
    "as_schedule",
    "format_schedule",
    "known_schedule_names",
    "parse_schedule",
    "plot",
    "values",
]
