"""Fetch the standard data sets into the Keras cache, only when asked (``download=True``).

`fetch` downloads the files of ``mnist``, ``fashion_mnist``, ``cifar10`` or ``cifar100`` with
``keras.utils.get_file``, the mechanism of Keras's own loaders (``keras.datasets.*``): the
same origins, the same hashes (SHA-256 from Keras; Fashion-MNIST, which Keras does not check,
against Zalando's published MD5s), the same layout under ``$KERAS_HOME/datasets``, so
``keras.datasets.mnist.load_data()`` finds what `fetch` wrote and the other way round.

Nothing half-written ever reaches the cache. Every file is downloaded (and archives
extracted) in a private staging folder beside its destination; only a complete, hash-checked
file or a completely extracted folder is moved into place with one ``os.replace``. A failed,
truncated, corrupt or interrupted download raises `DownloadFailed`, whose message names the
URL and the reason, and leaves the cache as it was.

Origins: ``KERAS_LR_DATA_MIRROR`` (an environment variable) replaces the official hosts by a
base URL of your own that serves the same file names, e.g. an internal mirror or a local
``python -m http.server``; the hashes are checked all the same.

Example:
    >>> from keras_lr.data import download
    >>> [f.fname for f in download.REMOTES["fashion_mnist"]][:2]
    ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']

Reference:
    ``keras.utils.get_file`` and ``keras/src/datasets/{mnist,fashion_mnist,cifar10,cifar100}.py``
    (Keras 3.15), whose origins and hashes this module repeats.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import warnings
from types import MappingProxyType

from keras_lr.data import sources

__all__ = ["MIRROR_ENV", "REMOTES", "DownloadFailed", "Remote", "fetch", "origin"]

#: Environment variable: a base URL that replaces every official host.
MIRROR_ENV = "KERAS_LR_DATA_MIRROR"

_KERAS_BUCKET = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_TORONTO = "https://www.cs.toronto.edu/~kriz/"


@dataclasses.dataclass(frozen=True)
class Remote:
    """One file of a data set on the network and where it goes in the Keras cache.

    Attributes:
        fname: file name at the origin (the mirror serves the same name).
        base: official base URL; the file's URL is ``base + fname``.
        file_hash: SHA-256 (64 hex digits) or MD5 (32) of the file, checked by ``get_file``.
        subdir: folder under ``$KERAS_HOME`` (``"datasets"`` or ``"datasets/fashion-mnist"``).
        target: name in `subdir`; for an archive, the folder it is extracted into (Keras 3's
            ``cifar-10-batches-py-target``); the archive itself is kept as
            ``target + "_archive"``, as ``get_file(..., extract=True)`` keeps it.
        extract: whether the file is a tar archive to extract.
    """

    fname: str
    base: str
    file_hash: str
    subdir: str = "datasets"
    target: str = ""
    extract: bool = False

    @property
    def name(self) -> str:
        return self.target or self.fname


def _fashion(fname: str, md5: str) -> Remote:
    return Remote(fname, _KERAS_BUCKET, md5, subdir=os.path.join("datasets", "fashion-mnist"))


#: The files of every data set `fetch` knows, with Keras's origins and hashes.
REMOTES = MappingProxyType({
    "mnist": (
        Remote("mnist.npz", _KERAS_BUCKET,
               "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
    ),
    # Keras's loader checks no hash for these; the MD5s are Zalando's (and torchvision's).
    "fashion_mnist": (
        _fashion("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        _fashion("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        _fashion("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        _fashion("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    "cifar10": (
        Remote("cifar-10-python.tar.gz", _TORONTO,
               "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
               target="cifar-10-batches-py-target", extract=True),
    ),
    "cifar100": (
        Remote("cifar-100-python.tar.gz", _TORONTO,
               "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
               target="cifar-100-python-target", extract=True),
    ),
})


class DownloadFailed(OSError):
    """A download failed, was truncated or did not match its hash; the cache is unchanged."""


def origin(remote: Remote) -> str:
    """The URL `fetch` reads `remote` from: ``$KERAS_LR_DATA_MIRROR/fname`` or the official one.

    Example:
        >>> origin(REMOTES["mnist"][0]).endswith("/tf-keras-datasets/mnist.npz")
        True
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return mirror.rstrip("/") + "/" + remote.fname
    return remote.base + remote.fname


def _get_one(remote: Remote, folder: str) -> None:
    """Download (and extract) `remote` in a staging folder, then move it into `folder`."""
    import keras

    url = origin(remote)
    final = os.path.join(folder, remote.name)
    if os.path.exists(final):
        return
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".keras-lr-download-", dir=folder)
    try:
        try:
            with warnings.catch_warnings():  # "Could not extract archive": raised below
                warnings.simplefilter("ignore", UserWarning)
                path = keras.utils.get_file(
                    fname=remote.name, origin=url, file_hash=remote.file_hash,
                    cache_dir=staging, cache_subdir="files", extract=remote.extract)
            if remote.extract and not (os.path.isdir(path) and os.listdir(path)):
                raise ValueError("the file is not a tar archive Keras could extract")
        except Exception as error:  # get_file raises bare Exception; Ctrl-C passes through
            reason = " ".join(str(error).split()) or type(error).__name__
            raise DownloadFailed(
                f"Downloading {url} failed ({type(error).__name__}: {reason}); nothing was "
                f"written to {folder}. Rerun to retry, or set {MIRROR_ENV} to a mirror."
            ) from None
        if remote.extract:
            archive = os.path.join(staging, "files", remote.name + "_archive")
            os.replace(path, final)  # the folder first: it is what the readers look for
            os.replace(archive, final + "_archive")
        else:
            os.replace(path, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(name: str) -> None:
    """Download data set `name` into ``$KERAS_HOME/datasets`` unless it is already there.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"cifar100"``.

    Raises:
        DownloadFailed: a file could not be fetched, was truncated or failed its hash check.
        ValueError: `name` cannot be downloaded (a bundled or generated data set).
    """
    from keras_lr._validation import check_choice

    check_choice("name", name, tuple(REMOTES))
    if _present(name):
        return
    home = sources.keras_home()
    for remote in REMOTES[name]:
        _get_one(remote, os.path.join(home, remote.subdir))


def _present(name: str) -> bool:
    try:
        sources.CHECKS[name]()
    except sources.DataNotAvailable:
        return False
    return True
