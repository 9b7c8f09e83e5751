"""MNIST loading: verification, clear errors, and downloads from a real local HTTP server."""

import contextlib
import functools
import gzip
import http.server
import os
import shutil
import threading

import numpy as np
import pytest

from air.data import mnist
from conftest import closed_port_url

LABELS = mnist.TEST_LABELS  # The smallest file (10 kB decompressed): most tests use it.


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory):
    """Serves ``directory`` over HTTP on 127.0.0.1 in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d/" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def raw_bytes(mnist_dir, name):
    with gzip.open(os.path.join(mnist_dir, name + ".gz"), "rb") as f:
        return f.read()


def test_shared_copy_loads_and_verifies(mnist_data):
    assert mnist_data.train_images.shape == (60000, 28, 28)
    assert mnist_data.test_images.shape == (10000, 28, 28)
    assert mnist_data.train_images.dtype == np.uint8
    assert mnist_data.train_labels.shape == (60000,) and mnist_data.test_labels.shape == (10000,)
    assert set(np.unique(mnist_data.test_labels)) == set(range(10))


def test_decompressed_and_recompressed_files_pass(tmp_path, mnist_dir):
    data = raw_bytes(mnist_dir, LABELS)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / LABELS).write_bytes(data)
    labels = mnist.load_file(str(plain), LABELS, mirrors=())
    recompressed = tmp_path / "recompressed"
    recompressed.mkdir()
    (recompressed / (LABELS + ".gz")).write_bytes(gzip.compress(data, compresslevel=1))
    np.testing.assert_array_equal(mnist.load_file(str(recompressed), LABELS, mirrors=()), labels)


def test_truncated_gz_names_file_and_checksum(tmp_path, mnist_dir):
    gz = open(os.path.join(mnist_dir, LABELS + ".gz"), "rb").read()
    (tmp_path / (LABELS + ".gz")).write_bytes(gz[:len(gz) // 2])
    with pytest.raises(mnist.MnistError) as error:
        mnist.load_file(str(tmp_path), LABELS, mirrors=())
    message = str(error.value)
    assert LABELS in message and mnist.MD5[LABELS] in message
    assert "\n" not in message


def test_corrupt_gz_names_file_and_checksum(tmp_path, mnist_dir):
    gz = bytearray(open(os.path.join(mnist_dir, LABELS + ".gz"), "rb").read())
    for i in range(len(gz) // 2, len(gz) // 2 + 16):
        gz[i] ^= 0xFF
    (tmp_path / (LABELS + ".gz")).write_bytes(bytes(gz))
    with pytest.raises(mnist.MnistError) as error:
        mnist.load_file(str(tmp_path), LABELS, mirrors=())
    assert LABELS in str(error.value) and mnist.MD5[LABELS] in str(error.value)


def test_not_a_gzip_file(tmp_path):
    (tmp_path / (LABELS + ".gz")).write_bytes(b"this is not gzip data at all")
    with pytest.raises(mnist.MnistError, match=LABELS):
        mnist.load_file(str(tmp_path), LABELS, mirrors=())


def test_wrong_magic_number(tmp_path, mnist_dir):
    data = bytearray(raw_bytes(mnist_dir, LABELS))
    data[3] = 0x03  # 0x00000801 (labels) -> 0x00000803 (images)
    (tmp_path / (LABELS + ".gz")).write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(mnist.MnistError, match=r"t10k-labels-idx1-ubyte: wrong IDX magic number "
                                               r"0x00000803, expected 0x00000801"):
        mnist.load_file(str(tmp_path), LABELS, mirrors=())


def test_wrong_contents_with_valid_header_fail_the_checksum(tmp_path, mnist_dir):
    data = bytearray(raw_bytes(mnist_dir, LABELS))
    data[100] = (data[100] + 1) % 10  # Still a well-formed label file, but not MNIST's.
    (tmp_path / LABELS).write_bytes(bytes(data))
    with pytest.raises(mnist.MnistError) as error:
        mnist.load_file(str(tmp_path), LABELS, mirrors=())
    assert "expected %s" % mnist.MD5[LABELS] in str(error.value)


def test_short_file(tmp_path, mnist_dir):
    data = raw_bytes(mnist_dir, LABELS)
    (tmp_path / LABELS).write_bytes(data[:-10])
    with pytest.raises(mnist.MnistError, match="data bytes"):
        mnist.load_file(str(tmp_path), LABELS, mirrors=())


def test_missing_file_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(mnist.MnistError) as error:
        mnist.load(str(tmp_path), mirrors=[closed_port_url()], timeout=5)
    message = str(error.value)
    assert "put the four MNIST files" in message and str(tmp_path) in message
    assert "train-images-idx3-ubyte.gz" in message and "\n" not in message


def test_download_good_file_then_corrupted_one(tmp_path, mnist_dir):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(os.path.join(mnist_dir, LABELS + ".gz"), str(served))
    with serve(served) as url:
        # Good file: downloaded, verified and kept.
        good = tmp_path / "good"
        labels = mnist.load_file(str(good), LABELS, mirrors=[url])
        assert labels.shape == (10000,)
        assert sorted(os.listdir(str(good))) == [LABELS + ".gz"]
        # Corrupted file on the server: a clear error and nothing left behind.
        gz = bytearray((served / (LABELS + ".gz")).read_bytes())
        gz[len(gz) // 2] ^= 0xFF
        (served / (LABELS + ".gz")).write_bytes(bytes(gz))
        bad = tmp_path / "bad"
        with pytest.raises(mnist.MnistError) as error:
            mnist.load_file(str(bad), LABELS, mirrors=[url])
        message = str(error.value)
        assert LABELS in message and mnist.MD5[LABELS] in message and url in message
        assert os.listdir(str(bad)) == []


def test_download_falls_back_to_next_mirror(tmp_path, mnist_dir, mnist_data):
    empty = tmp_path / "empty"  # The second mirror answers 404 for everything.
    empty.mkdir()
    target = str(tmp_path / "downloaded")
    with serve(empty) as missing, serve(mnist_dir) as good:
        mirrors = [closed_port_url(), missing, good]
        images = mnist.load_file(target, mnist.TEST_IMAGES, mirrors=mirrors)
        labels = mnist.load_file(target, mnist.TEST_LABELS, mirrors=mirrors)
    np.testing.assert_array_equal(images, mnist_data.test_images)
    np.testing.assert_array_equal(labels, mnist_data.test_labels)
    assert sorted(os.listdir(target)) == [mnist.TEST_IMAGES + ".gz", mnist.TEST_LABELS + ".gz"]
