"""Port the three classic PyTorch learning-rate recipes to keras-lr and check them.

The recipes (as written in countless PyTorch training scripts):

1. ``StepLR(optimizer, step_size=30, gamma=0.1)``, ``scheduler.step()`` once per epoch;
2. ``ExponentialLR(optimizer, gamma=0.9)``, ``scheduler.step()`` once per epoch;
3. ``LambdaLR(optimizer, lambda step: min(1.0, step / warmup))``, stepped once per batch.

For each, this script trains a tiny model on random data with the keras-lr port and checks
that the rate the optimizer used at every batch equals PyTorch's formula, computed in NumPy
from the PyTorch documentation (and ``torch.optim.lr_scheduler`` itself when torch is
installed). Runs in a few seconds on a CPU::

    KERAS_BACKEND=tensorflow python examples/port_pytorch_recipes.py
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lr.schedules import (  # noqa: E402
    Constant,
    ExponentialDecay,
    PerEpoch,
    StepDecay,
    Warmup,
    values,
)

BASE_LR = 0.1
BATCH_SIZE = 16
NUM_SAMPLES = 64
STEPS_PER_EPOCH = NUM_SAMPLES // BATCH_SIZE  # 4 batches per epoch
EPOCHS = 3
WARMUP = 6  # batches; tiny so that the warmup is visible in a 12-batch run
CHECK_EPOCHS = 100  # the formula check runs far beyond the training run


def pytorch_formulas(steps: np.ndarray) -> dict[str, np.ndarray]:
    """The PyTorch recipes' rates at every batch, from the formulas in PyTorch's docs."""
    epoch = steps // STEPS_PER_EPOCH  # scheduler.step() ran once at the end of each epoch
    return {
        "StepLR": BASE_LR * 0.1 ** (epoch // 30),
        "ExponentialLR": BASE_LR * 0.9**epoch,
        "LambdaLR warmup": BASE_LR * np.minimum(1.0, steps / WARMUP),
    }


def keras_lr_ports() -> dict[str, keras.optimizers.schedules.LearningRateSchedule]:
    """The same three recipes as keras-lr schedules, in optimizer steps (batches)."""
    return {
        "StepLR": PerEpoch(StepDecay(BASE_LR, step_size=30, gamma=0.1), STEPS_PER_EPOCH),
        "ExponentialLR": PerEpoch(ExponentialDecay(BASE_LR, gamma=0.9), STEPS_PER_EPOCH),
        "LambdaLR warmup": Warmup(Constant(BASE_LR), warmup_steps=WARMUP),
    }


def torch_curves(steps: int) -> dict[str, np.ndarray] | None:
    """Rates from torch.optim.lr_scheduler itself, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None

    def run(make, per_epoch: bool) -> np.ndarray:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)
        scheduler = make(optimizer)
        rates = []
        for step in range(steps):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if not per_epoch or (step + 1) % STEPS_PER_EPOCH == 0:
                scheduler.step()
        return np.array(rates)

    schedulers = torch.optim.lr_scheduler
    return {
        "StepLR": run(lambda o: schedulers.StepLR(o, step_size=30, gamma=0.1), True),
        "ExponentialLR": run(lambda o: schedulers.ExponentialLR(o, gamma=0.9), True),
        "LambdaLR warmup": run(
            lambda o: schedulers.LambdaLR(o, lambda s: min(1.0, s / WARMUP)), False
        ),
    }


class RecordRate(keras.callbacks.Callback):
    """Records the rate the optimizer uses for each batch (read before the batch runs)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        self.rates.append(float(optimizer.learning_rate))


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_SAMPLES, 8)).astype("float32")
    y = rng.normal(size=(NUM_SAMPLES, 1)).astype("float32")

    check_steps = CHECK_EPOCHS * STEPS_PER_EPOCH
    expected = pytorch_formulas(np.arange(check_steps))
    from_torch = torch_curves(check_steps)

    for name, schedule in keras_lr_ports().items():
        # 1. The whole curve, far beyond the training run.
        curve = values(schedule, check_steps)
        np.testing.assert_allclose(curve, expected[name], rtol=1e-5, atol=1e-8, err_msg=name)
        if from_torch is not None:
            np.testing.assert_allclose(curve, from_torch[name], rtol=1e-5, atol=1e-8, err_msg=name)

        # 2. The rate the optimizer really used while training.
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9), loss="mse")
        recorder = RecordRate()
        history = model.fit(
            x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=0, callbacks=[recorder]
        )
        used = np.array(recorder.rates)
        np.testing.assert_allclose(used, expected[name][: len(used)], rtol=1e-5, err_msg=name)

        checked = "formula and torch.optim" if from_torch is not None else "formula"
        print(
            f"{name:16s} matches the PyTorch {checked} over {check_steps} steps; "
            f"trained {len(used)} batches, final loss {history.history['loss'][-1]:.4f}"
        )


if __name__ == "__main__":
    main()
