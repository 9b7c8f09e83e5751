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

Writing: ``encode_example`` (from air/record_encoding.py, byte-identical to TensorFlow's
deterministic serialisation) and ``write_examples``. Reading: ``batched_dataset`` (a tf.data pipeline
for training, works in graph mode on TF 1.15 and 2.x) and ``read_records`` (a whole file as numpy
arrays, no session needed).
"""

import collections
import os

import numpy as np
import tensorflow.compat.v1 as tf

# The writing half lives in a TensorFlow-free module (the generator's workers use it).
from air.record_encoding import FEATURES, encode_example  # pylint: disable=unused-import

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


def image_shape(path):
    """Returns (height, width) of the first record of ``path`` (the defaults if it is empty)."""
    for serialized in iterate_records(path):
        feature = tf.train.Example.FromString(serialized).features.feature
        return (int(feature["height"].int64_list.value[0]),
                int(feature["width"].int64_list.value[0]))
    return DEFAULT_HEIGHT, DEFAULT_WIDTH


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


def _parse_fn(height, width, with_metadata):
    """Returns a function parsing one serialised record into a dict of tensors."""
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "digits": tf.io.FixedLenFeature([], tf.int64),
    }
    if with_metadata:
        for name in ("indices", "positions", "boxes", "labels"):
            spec[name] = tf.io.FixedLenFeature([], tf.string)

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        # Static [H, W]: decode_raw gives a flat [H*W] vector; a size mismatch fails at run time.
        image = tf.reshape(tf.io.decode_raw(parsed["image"], tf.float32), [height, width])
        out = {"image": image, "digits": tf.cast(parsed["digits"], tf.int32)}
        if with_metadata:
            out["labels"] = tf.io.decode_raw(parsed["labels"], tf.int32)
            out["indices"] = tf.io.decode_raw(parsed["indices"], tf.int32)
            out["positions"] = tf.reshape(tf.io.decode_raw(parsed["positions"], tf.int32), [-1, 2])
            out["boxes"] = tf.reshape(tf.io.decode_raw(parsed["boxes"], tf.int32), [-1, 2])
        return out

    return parse


def batched_dataset(path, batch_size, shuffle=True, repeat=True, seed=None, shuffle_buffer=10000,
                    height=None, width=None, with_metadata=False, drop_remainder=False,
                    num_parallel_calls=2, prefetch=2):
    """A tf.data pipeline of batches from a record file (works in graph mode on TF 1.15 and 2.x).

    Args:
      path: a ``.tfrecords`` file (or a list of them).
      batch_size: images per batch.
      shuffle: shuffle records with a buffer of ``shuffle_buffer`` (reshuffled every epoch).
      repeat: cycle over the file forever.
      seed: op-level seed of the shuffle (None: random).
      height, width: image size; None reads it from the first record of the (first) file.
      with_metadata: also give labels, indices [B, M] and positions, boxes [B, M, 2] (int32),
        padded with -1 to the largest digit count of the batch.
      drop_remainder: drop a last incomplete batch, giving a static batch dimension.
      num_parallel_calls: parallel record parsers.
      prefetch: batches prepared in advance.
    Returns:
      A ``tf.data.Dataset`` of dicts: image float32 [B, H, W], digits int32 [B] (and the metadata).
    """
    paths = [path] if isinstance(path, str) else list(path)
    if height is None or width is None:
        file_height, file_width = image_shape(paths[0])
        height = file_height if height is None else height
        width = file_width if width is None else width
    dataset = tf.data.TFRecordDataset(paths)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(_parse_fn(int(height), int(width), with_metadata),
                          num_parallel_calls=num_parallel_calls)
    if with_metadata:
        shapes = {"image": [height, width], "digits": [], "labels": [None], "indices": [None],
                  "positions": [None, 2], "boxes": [None, 2]}
        padding = {"image": tf.constant(0, tf.float32), "digits": tf.constant(0, tf.int32)}
        for name in ("labels", "indices", "positions", "boxes"):
            padding[name] = tf.constant(PAD, tf.int32)
        dataset = dataset.padded_batch(batch_size, shapes, padding, drop_remainder=drop_remainder)
    else:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(prefetch)
