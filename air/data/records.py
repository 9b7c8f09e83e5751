"""The multi-MNIST record format, shared by every script.

Each record of a ``.tfrecords`` file is a ``tf.train.Example`` with these features (the layout of the
original project's records, so its tools can read ours):

  image      bytes   H*W float32, row-major, values in [0, 1]
  digits     int64   number of digits M in the image
  indices    bytes   M int32: index of each digit in its MNIST split (train records: the MNIST
                     training set; test records: the MNIST test set)
  positions  bytes   M x 2 int32: x, y (column, then row) of each digit crop's top-left corner
  boxes      bytes   M x 2 int32: width, height of each crop
  labels     bytes   M int32: class of each digit (0-9)
  height     int64   H
  width      int64   W

All byte strings are little-endian.

Writing: ``encode_example`` (from air/data/record_encoding.py, byte-identical to TensorFlow's
deterministic serialisation) and ``write_examples``. Reading: ``read_records`` (a whole file as
numpy arrays, no session needed); the tf.data pipeline of training is air/data/pipeline.py.
"""

import collections
import itertools
import os

import numpy as np
import tensorflow.compat.v1 as tf

# The writing half lives in a TensorFlow-free module (the generator's workers use it).
from air.data.record_encoding import FEATURES, encode_example  # pylint: disable=unused-import

DEFAULT_HEIGHT = 50
DEFAULT_WIDTH = 50
PAD = -1  # Fill value of the per-digit arrays beyond an image's digit count.

Records = collections.namedtuple(
    "Records", ["images", "digits", "labels", "indices", "positions", "boxes"])
Records.__doc__ = """A whole record file as numpy arrays (M = largest digit count in the file).

images float32 [N, H, W]; digits int64 [N]; labels, indices int32 [N, M];
positions, boxes int32 [N, M, 2] (x, y and width, height). Entries past digits[i] are -1.
"""


def write_examples(path, examples):
    """Writes records to ``path`` atomically (a temporary file renamed when complete).

    Args:
      path: output ``.tfrecords`` file.
      examples: iterable of serialised Examples (bytes) or of dicts of ``encode_example`` arguments.
    Returns:
      The number of records written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    count = 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for example in examples:
                if not isinstance(example, bytes):
                    example = encode_example(**example)
                writer.write(example)
                count += 1
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return count


def decode_example(serialized):
    """Parses one serialised Example into a dict of numpy values (no TensorFlow graph).

    Returns:
      dict with image float32 [H, W], digits int, and labels, indices int32 [M],
      positions, boxes int32 [M, 2].
    """
    feature = tf.train.Example.FromString(serialized).features.feature
    missing = [name for name in FEATURES if name not in feature]
    if missing:
        raise ValueError("record lacks feature(s) %s" % ", ".join(missing))
    height = feature["height"].int64_list.value[0]
    width = feature["width"].int64_list.value[0]
    raw = lambda name, dtype: np.frombuffer(feature[name].bytes_list.value[0], dtype=dtype)
    return {
        "image": raw("image", "<f4").reshape(height, width),
        "digits": int(feature["digits"].int64_list.value[0]),
        "labels": raw("labels", "<i4"),
        "indices": raw("indices", "<i4"),
        "positions": raw("positions", "<i4").reshape(-1, 2),
        "boxes": raw("boxes", "<i4").reshape(-1, 2),
    }


def iterate_records(path):
    """Yields the serialised records of a ``.tfrecords`` file (eager; no session needed)."""
    if not os.path.isfile(path):
        raise IOError("record file not found: %s" % path)
    # tf_record_iterator is deprecated in favour of eager tf.data, which graph-mode callers lack;
    # silence its one-off deprecation notice (TF 1.15 logs it at WARNING level).
    verbosity = tf.logging.get_verbosity()
    tf.logging.set_verbosity(tf.logging.ERROR)
    try:
        return tf.io.tf_record_iterator(path)
    finally:
        tf.logging.set_verbosity(verbosity)


def first_images(path, count):
    """The images [N, H, W] float32 of the first ``count`` records of ``path`` (N < count only
    when the file holds fewer)."""
    images = [decode_example(s)["image"] for s in itertools.islice(iterate_records(path), count)]
    return np.stack(images) if images else np.zeros((0, DEFAULT_HEIGHT, DEFAULT_WIDTH), np.float32)


def image_shape(path):
    """Returns (height, width) of the first record of ``path`` (the defaults if it is empty)."""
    for serialized in iterate_records(path):
        feature = tf.train.Example.FromString(serialized).features.feature
        return (int(feature["height"].int64_list.value[0]),
                int(feature["width"].int64_list.value[0]))
    return DEFAULT_HEIGHT, DEFAULT_WIDTH


def shape_mismatch(path, shape, expected):
    """The message for a record file of (height, width) images ``shape`` when the model
    expects ``expected`` (height, width), or None when they agree."""
    if tuple(shape) == tuple(expected):
        return None
    return "%s holds %dx%d images but the model expects %dx%d" % (
        (path,) + tuple(shape) + tuple(expected))


def read_records(path):
    """Reads a whole record file into numpy arrays; see ``Records`` for the fields and shapes."""
    decoded = [decode_example(s) for s in iterate_records(path)]
    if not decoded:
        shape = (DEFAULT_HEIGHT, DEFAULT_WIDTH)
        return Records(np.zeros((0,) + shape, np.float32), np.zeros([0], np.int64),
                       np.zeros([0, 0], np.int32), np.zeros([0, 0], np.int32),
                       np.zeros([0, 0, 2], np.int32), np.zeros([0, 0, 2], np.int32))
    shapes = set(d["image"].shape for d in decoded)
    if len(shapes) != 1:
        raise ValueError("%s: images of different sizes %s" % (path, sorted(shapes)))
    count = len(decoded)
    most = max(d["digits"] for d in decoded)
    labels = np.full([count, most], PAD, np.int32)
    indices = np.full([count, most], PAD, np.int32)
    positions = np.full([count, most, 2], PAD, np.int32)
    boxes = np.full([count, most, 2], PAD, np.int32)
    for i, d in enumerate(decoded):
        m = d["digits"]
        labels[i, :m] = d["labels"]
        indices[i, :m] = d["indices"]
        positions[i, :m] = d["positions"]
        boxes[i, :m] = d["boxes"]
    images = np.stack([d["image"] for d in decoded])
    digits = np.array([d["digits"] for d in decoded], np.int64)
    return Records(images, digits, labels, indices, positions, boxes)
