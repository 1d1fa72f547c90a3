"""`load(..., download=True)` and `keras-lr study --download`, against a local HTTP server.

The test makes small files in the real formats (``mnist.npz``; gzip IDX for Fashion-MNIST;
the CIFAR python tar.gz with its pickled batches), serves them from ``http.server`` on
127.0.0.1 (a thread, bounded by timeouts) and points the real loading code at it through
``KERAS_LR_DATA_MIRROR``; the expected hashes are the test files' own. Sockets may connect to
127.0.0.1 only, so nothing here can reach the internet. Backend-neutral.
"""

import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
from types import MappingProxyType

import numpy as np
import pytest

from keras_lr import data
from keras_lr.data import download, sources

N_TRAIN, N_TEST = 8, 4


def _labels(n, classes=10):
    return (np.arange(n) * 7 + 3) % classes


def _images(labels, size=28):
    images = np.repeat((labels % 10 * 20).astype(np.uint8)[:, None, None], size, 1)
    return np.repeat(images, size, 2)


def _idx_gz(array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _cifar_tar(inner, batches):
    """A tar.gz holding `inner`/<name> pickles in CIFAR's python format (protocol 2)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, batch in batches.items():
            payload = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"{inner}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _cifar_batch(labels, key):
    planes = np.empty((len(labels), 3, 32, 32), np.uint8)
    planes[:, 0] = (labels % 10 * 20)[:, None, None]
    planes[:, 1:] = 7
    return {b"data": planes.reshape(len(labels), 3072), key: [int(v) for v in labels]}


def _files():
    """name -> {file name: bytes} in each data set's real format."""
    y_train, y_test = _labels(N_TRAIN), _labels(N_TEST)
    fashion = {
        "train-images-idx3-ubyte.gz": _idx_gz(_images(y_train)),
        "train-labels-idx1-ubyte.gz": _idx_gz(y_train),
        "t10k-images-idx3-ubyte.gz": _idx_gz(_images(y_test)),
        "t10k-labels-idx1-ubyte.gz": _idx_gz(y_test),
    }
    cifar10 = {f"data_batch_{i}": _cifar_batch(_labels(2), b"labels") for i in range(1, 6)}
    cifar10["test_batch"] = _cifar_batch(_labels(N_TEST), b"labels")
    c100 = {"train": _cifar_batch(_labels(N_TRAIN, 100), b"fine_labels"),
            "test": _cifar_batch(_labels(N_TEST, 100), b"fine_labels")}
    return {
        "mnist": {"mnist.npz": _npz_bytes(
            x_train=_images(y_train), y_train=y_train.astype(np.uint8),
            x_test=_images(y_test), y_test=y_test.astype(np.uint8))},
        "fashion_mnist": fashion,
        "cifar10": {"cifar-10-python.tar.gz": _cifar_tar("cifar-10-batches-py", cifar10)},
        "cifar100": {"cifar-100-python.tar.gz": _cifar_tar("cifar-100-python", c100)},
    }


class _Server:
    """Serves `files` on 127.0.0.1; `mode[name]` = "truncate" sends half of a file under the
    full Content-Length and hangs up, "corrupt" flips its bytes, "missing" answers 404."""

    def __init__(self):
        self.files, self.mode, self.requests = {}, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self):  # noqa: N802 (http.server's name)
                name = self.path.lstrip("/")
                server.requests.append(name)
                body, mode = server.files.get(name), server.mode.get(name)
                if body is None or mode == "missing":
                    self.send_error(404)
                    return
                if mode == "corrupt":
                    body = bytes(b ^ 0xFF for b in body)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)
                if mode == "truncate":
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A KERAS_HOME in tmp_path, a mirror on 127.0.0.1 serving the test files, hashes of them."""
    home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "debian"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    real_connect = socket.socket.connect

    def loopback_only(sock, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    srv = _Server()
    files = _files()
    remotes = {}
    for name, remotes_of in download.REMOTES.items():
        remotes[name] = tuple(
            dataclasses.replace(r, file_hash=hashlib.sha256(files[name][r.fname]).hexdigest())
            for r in remotes_of)
        for fname, body in files[name].items():
            srv.files[fname] = body
    monkeypatch.setattr(download, "REMOTES", MappingProxyType(remotes))
    monkeypatch.setenv(download.MIRROR_ENV, srv.url)
    srv.home = home
    yield srv
    srv.close()


def _cache_files(home):
    """Every file and folder under KERAS_HOME, relative."""
    found = []
    for root, dirs, names in os.walk(home):
        found += [os.path.relpath(os.path.join(root, n), home) for n in dirs + names]
    return sorted(found)


@pytest.mark.parametrize("name, shape, classes", [
    ("mnist", (28, 28, 1), 10),
    ("fashion_mnist", (28, 28, 1), 10),
    ("cifar10", (32, 32, 3), 10),
    ("cifar100", (32, 32, 3), 100),
])
def test_download_fetches_into_the_keras_layout_once(server, name, shape, classes):
    assert name not in data.available()
    ds = data.load(name, download=True, validation_split=0.25)
    assert ds.input_shape == shape and ds.num_classes == classes
    n = len(ds.x_train) + len(ds.x_val)
    assert n == (14 if name == "cifar10" else N_TRAIN + N_TEST)
    for x, y in ds:  # each image still carries its label
        np.testing.assert_array_equal(np.round(x[:, 5, 5, 0] * 255), (y % 10) * 20)
    assert name in data.available()
    expected = {
        "mnist": ["datasets/mnist.npz"],
        "fashion_mnist": [f"datasets/fashion-mnist/{r.fname}"
                          for r in download.REMOTES["fashion_mnist"]],
        "cifar10": ["datasets/cifar-10-batches-py-target/cifar-10-batches-py/test_batch",
                    "datasets/cifar-10-batches-py-target_archive"],
        "cifar100": ["datasets/cifar-100-python-target/cifar-100-python/train",
                     "datasets/cifar-100-python-target_archive"],
    }[name]
    cached = _cache_files(server.home)
    assert all(path in cached for path in expected), cached
    assert not [p for p in cached if ".keras-lr-download-" in p]  # no staging left
    served = len(server.requests)
    assert served == len(download.REMOTES[name])
    again = data.load(name, download=True, validation_split=0.25)  # cached: no request
    assert len(server.requests) == served
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_without_the_flag_the_error_names_flag_file_and_folder(server):
    with pytest.raises(data.DataNotAvailable) as info:
        data.load("mnist")
    message = str(info.value)
    assert "download=True" in message and "--download" in message
    assert os.path.join(str(server.home), "datasets") in message and "mnist.npz" in message
    for name, needle in [("fashion_mnist", "train-images-idx3-ubyte.gz"),
                         ("cifar10", "cifar-10-python.tar.gz"),
                         ("cifar100", "cifar-100-python.tar.gz")]:
        with pytest.raises(data.DataNotAvailable, match="--download") as info:
            data.load(name)
        assert needle in str(info.value) and "\n" not in str(info.value)
    assert server.requests == []  # nothing fetched without the flag


@pytest.mark.parametrize("mode, reason", [
    ("truncate", "IncompleteRead|ContentTooShort|retrieval incomplete"),
    ("corrupt", "hash"),
    ("missing", "404"),
])
@pytest.mark.parametrize("name, fname", [
    ("mnist", "mnist.npz"),
    ("cifar10", "cifar-10-python.tar.gz"),
])
def test_a_bad_download_is_a_clear_error_and_leaves_no_file(server, mode, reason, name, fname):
    server.mode[fname] = mode
    with pytest.raises(data.DownloadFailed, match=reason) as info:
        data.load(name, download=True)
    message = str(info.value)
    assert server.url + fname in message and "nothing was written" in message
    assert "\n" not in message
    assert _cache_files(server.home / "datasets") == []
    server.mode.clear()  # the next try succeeds
    assert data.load(name, download=True).num_classes == 10


def test_a_hash_valid_file_that_is_no_archive_is_refused(server, monkeypatch):
    garbage = b"not a tar archive at all" * 10
    server.files["cifar-10-python.tar.gz"] = garbage
    remote = dataclasses.replace(download.REMOTES["cifar10"][0],
                                 file_hash=hashlib.sha256(garbage).hexdigest())
    monkeypatch.setattr(download, "REMOTES",
                        MappingProxyType({**download.REMOTES, "cifar10": (remote,)}))
    with pytest.raises(data.DownloadFailed, match="not a tar archive"):
        data.fetch("cifar10")
    assert _cache_files(server.home / "datasets") == []


def test_an_interrupted_download_leaves_no_file(server, monkeypatch):
    import keras

    def interrupted(fname, origin, cache_dir, cache_subdir, **kwargs):
        folder = os.path.join(cache_dir, cache_subdir)
        os.makedirs(folder)
        with open(os.path.join(folder, fname), "wb") as handle:
            handle.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.utils, "get_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.load("mnist", download=True)
    assert _cache_files(server.home / "datasets") == []


def test_only_missing_files_are_fetched(server):
    folder = server.home / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    for fname in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / fname).write_bytes(server.files[fname])
    data.load("fashion_mnist", download=True)
    assert sorted(server.requests) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_origin_is_the_official_host_without_a_mirror(monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    assert download.origin(download.REMOTES["cifar10"][0]) == (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
    monkeypatch.setenv(download.MIRROR_ENV, "http://mirror.example/data/")
    assert download.origin(download.REMOTES["mnist"][0]) == "http://mirror.example/data/mnist.npz"


def test_bad_arguments():
    with pytest.raises(ValueError, match="Argument `name`"):
        data.fetch("digits")
    with pytest.raises(TypeError, match="Argument `download` must be a boolean"):
        data.load("digits", download="yes")


def test_bundled_data_ignore_the_flag(server):
    assert data.load("digits", download=True, limit=50).num_classes == 10
    assert server.requests == []


def test_cli_download_fetches_before_the_study(server, monkeypatch, tmp_path, capsys):
    from keras_lr.cli.main import main
    from keras_lr.study import engine

    argv = ["study", "--data", "mnist", "--models", "mlp", "--optimizers", "adam",
            "--lrs", "1e-2", "--seeds", "1", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--download" in err and "mnist.npz" in err
    ran = []
    monkeypatch.setattr(engine, "run_study", lambda plan, out, **kw: ran.append(plan) or
                        (_ for _ in ()).throw(SystemExit(0)))
    with pytest.raises(SystemExit):
        main(argv + ["--download"])
    assert ran and server.requests == ["mnist.npz"]
