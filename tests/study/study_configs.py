"""The small run configs the study tests share: digits at the quick size, 300 samples."""

from keras_lr.study import grid


def small_config(**kw) -> grid.RunConfig:
    """A quick-size digits `RunConfig` (MLP, Adam, rate 0.01, seed 0, 2 epochs, 300 samples)
    with `kw` replacing any field."""
    base = dict(family="mlp", data="digits", optimizer="adam", lr=0.01, seed=0, epochs=2,
                size="quick", limit=300)
    base.update(kw)
    return grid.RunConfig(**base)
