"""What the study tests share: small run configs (digits at the quick size, 300 samples), and
a Ctrl-C after a number of stored records."""

from keras_lr.study import grid
from keras_lr.study.store import Store


def small_config(**kw) -> grid.RunConfig:
    """A quick-size digits `RunConfig` (MLP, Adam, rate 0.01, seed 0, 2 epochs, 300 samples)
    with `kw` replacing any field."""
    base = dict(family="mlp", data="digits", optimizer="adam", lr=0.01, seed=0, epochs=2,
                size="quick", limit=300)
    base.update(kw)
    return grid.RunConfig(**base)


def interrupt_after(monkeypatch, stored: int) -> list:
    """Patch `Store.append` to raise KeyboardInterrupt once `stored` records are stored (the
    main thread stores them, where Ctrl-C arrives); returns the keys stored so far.
    ``monkeypatch.undo()`` puts the real `Store.append` back."""
    original, keys = Store.append, []

    def interrupting(self, record):
        if len(keys) == stored:
            raise KeyboardInterrupt
        keys.append(record["key"])
        original(self, record)

    monkeypatch.setattr(Store, "append", interrupting)
    return keys
