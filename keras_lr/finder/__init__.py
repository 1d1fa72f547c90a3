"""The learning-rate range test: `find_lr` and its `LRFinderResult`.

Modules:
    core: `find_lr`: argument checks, driving the rate and the state restore.
    data: the batches, planned in NumPy so that every backend trains on the same ones.
    loop: what the backends' loops share (host smoothing, the rate schedule, the cache).
    tf_loop, jax_loop, torch_loop: the loop on each backend (a `tf.while_loop` chunk, a
        jitted `jax.lax.scan` chunk, one torch step at a time).
    result: `LRFinderResult` (curve, suggestions, plot, JSON).
    suggest: fastai's ``valley``, ``steep`` and ``minimum`` suggestion rules.
    verify: `verify_rates`: train a few rates around a suggestion at once (`keras_lr.sweep`).

Example:

```python
result = keras_lr.find_lr(model, x_train, y_train, start_lr=1e-7, end_lr=10, num_steps=100)
print(result.suggestions())
result.plot(path="lr_find.png")
```
"""

from keras_lr.finder.core import find_lr, range_test_rates
from keras_lr.finder.result import STOP_REASONS, LRFinderResult
from keras_lr.finder.suggest import minimum, steep, valley
from keras_lr.finder.verify import verify_rates

__all__ = [
    "STOP_REASONS",
    "LRFinderResult",
    "find_lr",
    "minimum",
    "range_test_rates",
    "steep",
    "valley",
    "verify_rates",
]
