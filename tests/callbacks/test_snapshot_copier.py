"""`Copier` (DivergenceGuard's device-side snapshots): the copy, the finite flag and the
scalars read with it, and a step check's host reads. Runs on every backend."""

import keras
import numpy as np
from callback_helpers import regression_data, tiny_model

from keras_lr.callbacks import DivergenceGuard
from keras_lr.callbacks._jax_state import StateReader
from keras_lr.callbacks._snapshot import Copier

# A step count that float32 cannot hold (above 2**24); JAX without x64 keeps int64 as int32.
STEPS = 2**30 + 3 if keras.backend.backend() == "jax" else 2**40 + 3


def _variables():
    weights = keras.Variable(np.arange(6, dtype="float32").reshape(2, 3), name="w")
    norm = keras.Variable(np.float32(np.nan), name="grad_norm")  # allowed to be NaN
    steps = keras.Variable(STEPS, dtype="int64", name="steps", trainable=False)
    total = keras.Variable(np.float32(12.5), name="total")
    return weights, norm, steps, total


def test_take_copies_and_reads_the_scalars_with_the_copy():
    """The scalars come back as exact floats (a step count above 2**24 included), the
    untested NaN does not make the state non-finite, and the copies are independent of later
    writes to the variables."""
    weights, norm, steps, total = _variables()
    copier = Copier([weights, norm], untested={id(norm)})
    copies, finite, numbers = copier.take([steps, total])
    assert finite is True
    assert numbers == [STEPS, 12.5]
    assert all(type(n) is float for n in numbers)
    weights.assign(np.zeros((2, 3), "float32"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(copies[0]),
                                  np.arange(6, dtype="float32").reshape(2, 3))
    # without scalars, and again with them: one copy function per set of scalars
    assert copier.take()[2] == []
    total.assign(np.float32(-1.0))
    assert copier.take([steps, total])[2] == [STEPS, -1.0]
    assert len(copier._copies) == 2


def test_a_tested_non_finite_value_is_reported():
    weights, norm, steps, total = _variables()
    _, finite, _ = Copier([weights, norm]).take([total])
    assert finite is False
    weights.assign(np.full((2, 3), np.inf, "float32"))
    _, finite, _ = Copier([weights]).take()
    assert finite is False


def test_a_step_check_reads_the_host_once_through_the_copy(monkeypatch):
    """8 steps an epoch, checks every 2: each check is one `Copier.take` (the window's sums
    and the step count ride along with the copy); the only separate scalar reads are the
    epoch mean's two sums, once per epoch. Before, each check read three scalars apart."""
    reads, takes = [], []
    read, take = StateReader.read, Copier.take
    monkeypatch.setattr(StateReader, "read",
                        lambda self, v: reads.append(v.path) or read(self, v))
    monkeypatch.setattr(Copier, "take",
                        lambda self, *a, **k: takes.append(len(a[0]) if a else 0)
                        or take(self, *a, **k))
    guard = DivergenceGuard(snapshot_every=2)
    model = tiny_model(keras.optimizers.Adam(1e-3))
    model.fit(*regression_data(), batch_size=8, epochs=2, verbose=0, shuffle=False,
              callbacks=[guard])
    assert guard.recoveries == [] and guard._candidate is not None
    # the first snapshot (the step only), then 4 checks an epoch (iterations, total, count)
    assert takes == [1] + [3] * 8
    assert len(reads) == 2 * 2, reads
