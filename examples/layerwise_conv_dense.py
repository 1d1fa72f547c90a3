"""Layer-wise learning rates on the 8x8 digits: conv vs dense, LLRD fine-tuning, LSTM gates.

Three short scenes, each with one optimizer and one schedule driving several rates:

1. A small CNN where the convolutions learn at 2x the base rate and the head at 0.5x
   (`LayerwiseLR` with a layer-class rule and a regex rule, `describe()` prints the table).
2. Fine-tuning the same network with layer-wise decay (`layer_decay`, BEiT/timm style): the
   head keeps the full rate, each earlier layer 0.5x the next.
3. An LSTM reading the digit row by row whose forget gate is frozen (`gate_multipliers(f=0)`):
   the script checks that exactly those columns did not move.

Uses scikit-learn's bundled copy of the digits (no download); runs in seconds on a CPU::

    KERAS_BACKEND=tensorflow python examples/layerwise_conv_dense.py
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from keras_lr.optimizers import (  # noqa: E402
    LayerwiseLR,
    gate_multipliers,
    layer_decay,
)
from keras_lr.schedules import CosineDecay  # noqa: E402

BATCH = 64
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data():
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1)
    y = digits.target.astype("int32")
    return x[:1500], y[:1500], x[1500:], y[1500:]


def cnn():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(32, activation="relu", name="dense")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="head")(x), name="cnn")


def main():
    keras.utils.set_random_seed(0)
    x, y, x_val, y_val = data()
    steps = 3 * (len(x) // BATCH + 1)

    # 1. Conv layers at 2x, the head at 0.5x, everything else at 1x; one cosine schedule.
    model = cnn()
    opt = LayerwiseLR(
        keras.optimizers.AdamW(CosineDecay(3e-3, steps), weight_decay=1e-4),
        [(keras.layers.Conv2D, 2.0), ("^head/", 0.5)],
    ).bind(model)  # bind: a layer class is used as a selector
    opt.describe()
    model.compile(opt, LOSS, metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0)
    accuracy = model.evaluate(x_val, y_val, verbose=0)[1]
    print(f"1. conv x2 / head x0.5: validation accuracy {accuracy:.3f}")
    assert accuracy > 0.5, "the CNN should learn well above chance (0.1)"

    # 2. Fine-tune with layer-wise decay: head 1, dense 0.5, conv2 0.25, conv1 0.125.
    rules = layer_decay(model, decay=0.5)
    opt = LayerwiseLR(keras.optimizers.Adam(1e-3), rules)
    model.compile(opt, LOSS, metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    print("2. layer decay:", {row.path: round(float(row.multiplier), 4)
                              for row in opt.describe(print_fn=None)})
    print(f"   validation accuracy {model.evaluate(x_val, y_val, verbose=0)[1]:.3f}")

    # 3. An LSTM over the rows with its forget gate frozen (Keras gate order: i, f, c, o).
    inputs = keras.Input((8, 8))
    lstm = keras.layers.LSTM(16, name="lstm")
    rnn = keras.Model(inputs, keras.layers.Dense(10, name="head")(lstm(inputs)), name="rnn")
    forget = slice(16, 32)
    kernel_before = lstm.cell.kernel.numpy()
    opt = LayerwiseLR(keras.optimizers.Adam(1e-2), gate_multipliers(lstm, f=0.0, o=2.0))
    rnn.compile(opt, LOSS, metrics=["accuracy"])
    rnn.fit(x[..., 0], y, batch_size=BATCH, epochs=2, verbose=0)
    kernel_after = lstm.cell.kernel.numpy()
    assert np.array_equal(kernel_after[:, forget], kernel_before[:, forget])
    assert not np.allclose(kernel_after[:, :16], kernel_before[:, :16])
    accuracy = rnn.evaluate(x_val[..., 0], y_val, verbose=0)[1]
    print(f"3. LSTM, forget gate frozen (unchanged: yes): validation accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
