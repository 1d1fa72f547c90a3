"""The batches of a range test, the same on every backend.

Arrays are batched here, in NumPy, so that TensorFlow, JAX and PyTorch train on the same
batches in the same order: each pass over the data is ``rng.permutation(n)`` (or ``arange``
without shuffling) cut into batches of `batch_size`, the last one partial, as in ``model.fit``;
passes follow one another until the test has its `num_steps` batches. Floating-point arrays
are cast to ``keras.backend.floatx()``, as Keras's array adapter does. A `tf.data.Dataset`
(any backend, when TensorFlow is installed) is cycled as it is, and read as NumPy arrays on
JAX and PyTorch.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import tree

from keras_lr._validation import fail

__all__ = ["ArrayBatches", "DatasetBatches", "batches"]


def _is_tf_dataset(x) -> bool:
    module = type(x).__module__
    if not module.startswith("tensorflow"):
        return False
    import tensorflow as tf  # a tf.data.Dataset was passed, so TensorFlow is installed

    return isinstance(x, tf.data.Dataset)


def _as_array(leaf):
    array = np.asarray(leaf)
    if array.dtype.kind == "f" and array.dtype != np.dtype(keras.backend.floatx()):
        array = array.astype(keras.backend.floatx())
    return array


def batches(x, y, batch_size, shuffle, seed, num_steps):
    """The range test's batches: an `ArrayBatches` or a `DatasetBatches`.

    Raises:
        ValueError: empty data, arrays of different lengths, or `y` given with a dataset.
    """
    if _is_tf_dataset(x):
        if y is not None:
            raise ValueError(
                "Argument `y` must be None when `x` is a tf.data.Dataset (it yields the "
                f"targets). Received: y of type {type(y).__name__}"
            )
        if int(x.cardinality()) == 0:
            raise ValueError("Argument `x` is an empty tf.data.Dataset. Received: x=" + repr(x))
        return DatasetBatches(x)
    if x is None:
        fail("x", "must be arrays or a tf.data.Dataset", x)
    data = x if y is None else (x, y)
    data = tree.map_structure(_as_array, data)
    sizes = {int(leaf.shape[0]) if leaf.ndim else -1 for leaf in tree.flatten(data)}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            "Arguments `x` and `y` must be arrays with the same number of samples (first "
            f"dimension). Received: sizes {sorted(sizes)}"
        )
    (size,) = sizes
    if size == 0:
        raise ValueError("Argument `x` must contain at least one sample. Received: 0 samples")
    return ArrayBatches(data, size, batch_size, shuffle, seed, num_steps)


class ArrayBatches:
    """In-memory arrays cut into the test's batches by a NumPy plan.

    Attributes:
        data: the arrays (a structure of NumPy arrays, floats in floatx).
        order: the sample indices of every step, concatenated (int64).
        bounds: step ``i`` trains on ``order[bounds[i]:bounds[i + 1]]``.
    """

    def __init__(self, data, size, batch_size, shuffle, seed, num_steps):
        self.data = data
        rng = np.random.default_rng(seed)
        per_pass = -(-size // batch_size)
        passes = -(-num_steps // per_pass)
        order = [rng.permutation(size) if shuffle else np.arange(size) for _ in range(passes)]
        self.order = np.concatenate(order).astype(np.int64)
        starts = [p * size + b * batch_size for p in range(passes) for b in range(per_pass)]
        ends = [min(start + batch_size, (start // size + 1) * size) for start in starts]
        self.bounds = np.array([*starts[:num_steps], ends[num_steps - 1]], dtype=np.int64)
        self._next = 0

    def first(self):
        """The first batch (to build the model from)."""
        return self.batch(0)

    def batch(self, i):
        index = self.order[self.bounds[i] : self.bounds[i + 1]]
        return tree.map_structure(lambda a: a[index], self.data)

    def take(self, count):
        """The next `count` batches, as a list of NumPy structures."""
        out = [self.batch(i) for i in range(self._next, self._next + count)]
        self._next += count
        return out

    def tf_dataset(self, tf):
        """The same batches, gathered in a `tf.data` pipeline (TensorFlow's in-graph loop)."""
        data = tree.map_structure(tf.constant, self.data)
        order, bounds = tf.constant(self.order), tf.constant(self.bounds)

        def gather(i):
            index = order[bounds[i] : bounds[i + 1]]
            return tree.map_structure(lambda a: tf.gather(a, index), data)

        steps = tf.data.Dataset.range(len(self.bounds) - 1)
        return steps.map(gather).prefetch(tf.data.AUTOTUNE)


class DatasetBatches:
    """A batched `tf.data.Dataset`, cycled (its own shuffling and batching are kept)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self._iterator = None

    def first(self):
        for batch in self.dataset.take(1).as_numpy_iterator():
            return batch
        raise ValueError("Argument `x` yielded no batch: the data is empty.")

    def take(self, count):
        out = []
        while len(out) < count:
            if self._iterator is None:
                self._iterator, self._yielded = self.dataset.as_numpy_iterator(), False
            try:
                batch = next(self._iterator)
            except StopIteration:
                if not self._yielded:
                    raise ValueError("Argument `x` yielded no batch: the data is empty.") from None
                self._iterator = None
                continue
            self._yielded = True
            out.append(batch)
        return out

    def tf_dataset(self, tf):
        return self.dataset.repeat()
