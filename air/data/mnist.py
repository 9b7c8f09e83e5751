"""Loading, verifying and downloading the four standard MNIST files.

The files are looked up in one folder, either gzipped (``train-images-idx3-ubyte.gz``) or already
decompressed (``train-images-idx3-ubyte``). Whatever their origin (found locally or downloaded), the
MD5 of the *decompressed* contents is checked against the published values below, so a recompressed
copy passes while a corrupt or truncated one fails. Files that are missing are downloaded from the
mirrors in ``MIRRORS`` (tried in order) and verified before they are kept.

Every failure raises ``MnistError`` whose message is one line naming the file concerned.

No TensorFlow here: the generator's worker processes import this module.
"""

import collections
import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
import zlib

import numpy as np

from air.cli import UserError

# Base names (without .gz) of the four files.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# MD5 of the decompressed IDX contents: independent of how the file was gzipped.
MD5 = {
    TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
    TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
    TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
    TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
}

# IDX magic numbers: 0x00000803 = unsigned bytes, 3 dimensions; 0x00000801 = unsigned bytes, 1 dim.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
MAGIC = {TRAIN_IMAGES: IMAGES_MAGIC, TRAIN_LABELS: LABELS_MAGIC,
         TEST_IMAGES: IMAGES_MAGIC, TEST_LABELS: LABELS_MAGIC}
COUNTS = {TRAIN_IMAGES: 60000, TRAIN_LABELS: 60000, TEST_IMAGES: 10000, TEST_LABELS: 10000}

# Public mirrors serving the gzipped files under their standard names; tried in this order.
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

Mnist = collections.namedtuple(
    "Mnist", ["train_images", "train_labels", "test_images", "test_labels"])
Mnist.__doc__ = """The MNIST arrays: images uint8 [N, 28, 28], labels uint8 [N] (N = 60000 / 10000)."""


class MnistError(UserError):
    """A missing, corrupt or unverifiable MNIST file (the message is one line)."""


def _decompress(path):
    """Returns the decompressed contents of ``path`` (plain bytes if it is not a .gz file)."""
    name = os.path.basename(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        # gzip raises OSError ("Not a gzipped file", CRC errors), EOFError (truncated) or zlib.error.
        raise MnistError("%s: cannot read or decompress (%s); expected decompressed MD5 %s"
                         % (path, e if str(e) else type(e).__name__, MD5.get(_base(name), "?")))


def _base(name):
    return name[:-3] if name.endswith(".gz") else name


def parse_idx(data, name):
    """Parses IDX bytes into a uint8 array, checking magic number, shape and size.

    Args:
      data: the decompressed file contents.
      name: the file's base name (one of ``FILES``), used for the expected magic and count.
    Returns:
      uint8 array [N, 28, 28] for image files, [N] for label files.
    """
    expected_magic = MAGIC[name]
    if len(data) < 4:
        raise MnistError("%s: file too short (%d bytes) to hold an IDX header" % (name, len(data)))
    magic, = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise MnistError("%s: wrong IDX magic number 0x%08x, expected 0x%08x"
                         % (name, magic, expected_magic))
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistError("%s: truncated IDX header" % name)
    shape = struct.unpack(">%dI" % ndim, data[4:header])
    if shape[0] != COUNTS[name] or (ndim == 3 and shape[1:] != (28, 28)):
        raise MnistError("%s: unexpected IDX shape %s" % (name, "x".join(map(str, shape))))
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise MnistError("%s: %d data bytes, expected %d for shape %s"
                         % (name, len(data) - header, size, "x".join(map(str, shape))))
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_verified(path, name=None):
    """Reads one MNIST file (``.gz`` or decompressed), checks it and returns the parsed array.

    The magic number and shape are checked first (their messages are the most specific), then the
    MD5 of the decompressed contents.
    """
    name = name or _base(os.path.basename(path))
    data = _decompress(path)
    array = parse_idx(data, name)
    digest = hashlib.md5(data).hexdigest()
    if digest != MD5[name]:
        raise MnistError("%s: MD5 of decompressed contents is %s, expected %s (corrupt or wrong file)"
                         % (path, digest, MD5[name]))
    return array


def find_file(directory, name):
    """Returns the path of ``name`` (.gz preferred, then decompressed) in ``directory``, or None."""
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def download(directory, name, mirrors=MIRRORS, timeout=30.0):
    """Downloads ``name``.gz into ``directory`` from the first mirror serving a verified copy.

    The download goes to a temporary file that is renamed into place only after the MD5 of its
    decompressed contents matches, so a bad download never stays behind.

    Returns:
      The path of the verified file.
    Raises:
      MnistError if no mirror gave a verified copy (the message says what went wrong).
    """
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise MnistError("cannot create MNIST folder %s (%s)" % (directory, e))
    target = os.path.join(directory, name + ".gz")
    bad_checksum = []
    unreachable = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name + ".gz"
        fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".gz", dir=directory)
        try:
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                    shutil.copyfileobj(r, out)
            except (urllib.error.URLError, OSError, ValueError) as e:
                unreachable.append("%s (%s)" % (url, getattr(e, "reason", e)))
                continue
            try:
                read_verified(tmp, name)
            except MnistError:
                bad_checksum.append(url)
                continue
            os.replace(tmp, target)
            return target
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    if bad_checksum:
        raise MnistError("%s.gz: downloaded copy from %s failed verification (expected MD5 %s of "
                         "the decompressed contents)" % (name, ", ".join(bad_checksum), MD5[name]))
    raise MnistError(
        "%s.gz not found in %s and could not be downloaded (%s); put the four MNIST files %s in %s "
        "(or pass --mnist-dir / set MNIST_DIR)"
        % (name, os.path.abspath(directory), "; ".join(unreachable) or "no mirrors",
           ", ".join(f + ".gz" for f in FILES), os.path.abspath(directory)))


# Verified arrays by (real path, size, modification time): a process loading the same unchanged file
# again (tests, benchmarks) skips the decompression and checksum. The arrays are read-only.
_VERIFIED = {}


def load_file(directory, name, mirrors=MIRRORS, timeout=30.0):
    """Returns the verified array of one file, downloading it when missing (``mirrors=()``: never)."""
    path = find_file(directory, name)
    if path is None:
        path = download(directory, name, mirrors=mirrors, timeout=timeout)
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = read_verified(path, name)
    return _VERIFIED[key]


def load(directory, mirrors=MIRRORS, timeout=30.0):
    """Loads all four MNIST files from ``directory`` (downloading missing ones) into an ``Mnist``.

    Args:
      directory: folder holding the files (created when a download is needed).
      mirrors: base URLs tried in order for missing files; an empty sequence disables downloads.
      timeout: seconds per HTTP request.
    Returns:
      Mnist(train_images [60000, 28, 28] uint8, train_labels [60000] uint8,
            test_images [10000, 28, 28] uint8, test_labels [10000] uint8).
    Raises:
      MnistError with a one-line message naming the file at fault.
    """
    arrays = [load_file(directory, name, mirrors=mirrors, timeout=timeout) for name in FILES]
    return Mnist(*arrays)
