"""Find a learning rate for the digits MLP with the range test, then train with it.

Run: ``KERAS_BACKEND=tensorflow python examples/find_lr_digits.py`` (writes lr_find_digits.png).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_lr import data, models  # noqa: E402
from keras_lr.finder import find_lr  # noqa: E402


def main():
    dataset = data.load("digits", view="flat", seed=0)
    (x, y), (x_val, y_val) = dataset
    keras.utils.set_random_seed(0)
    model = models.build("mlp", dataset.input_shape, dataset.num_classes, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    result = find_lr(model, x, y, batch_size=32, start_lr=1e-7, end_lr=10.0, num_steps=100)
    print(f"{len(result)} steps, {result.stop_reason}; suggestions: {result.suggestions()}")
    result.plot(path="lr_find_digits.png")

    # The model is untouched by the test: train it at the suggested rate.
    model.optimizer.learning_rate = result.suggestion("valley")
    model.fit(x, y, batch_size=32, epochs=5, verbose=0)
    print("validation accuracy:", model.evaluate(x_val, y_val, verbose=0)[1])


if __name__ == "__main__":
    main()
