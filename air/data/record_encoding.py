"""Serialisation of multi-MNIST records as ``tf.train.Example`` bytes, in plain Python.

The writing half of the record format of air/data/records.py (which re-exports
``encode_example`` and ``FEATURES``), kept free of TensorFlow so that the generator's worker
processes serialise records without loading it; the parent process only writes bytes. The
output is byte-identical to ``tf.train.Example(...).SerializeToString(deterministic=True)``
(features sorted by name), which tests/data/test_records.py checks against TensorFlow's own encoder.

Protocol-buffer layout used (field number, wire type 2 = length-delimited):
  Example  { Features features = 1; }
  Features { map<string, Feature> feature = 1; }   each entry { string key = 1; Feature value = 2; }
  Feature  { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; }
  BytesList { repeated bytes value = 1; }          Int64List { repeated int64 value = 1 [packed]; }
"""

import numpy as np

FEATURES = ("image", "digits", "indices", "positions", "boxes", "labels", "height", "width")
_LENGTH_DELIMITED = 2
_ONE_BYTE = [bytes((i,)) for i in range(0x80)]  # Varints of 0..127 (most tags and lengths).


def _varint(value):
    """Base-128 varint of a non-negative int (negative int64 as 64-bit two's complement)."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number, payload):
    """A length-delimited field: tag, length, payload."""
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def bytes_feature(value):
    """Serialised ``Feature`` holding one bytes value."""
    return _field(1, _field(1, bytes(value)))


def int64_feature(values):
    """Serialised ``Feature`` holding int64 values (packed encoding)."""
    if isinstance(values, int):
        values = [values]
    return _field(3, _field(1, b"".join(_varint(int(v)) for v in values)))


def example(features):
    """Serialised ``Example`` from {name: serialised Feature}, features sorted by name.

    Args:
      features: dict mapping str names to the output of ``bytes_feature`` / ``int64_feature``.
    Returns:
      bytes, equal to TensorFlow's deterministic serialisation.
    """
    entries = b"".join(_field(1, _field(1, name.encode("utf-8")) + _field(2, features[name]))
                       for name in sorted(features))
    return _field(1, entries)


def encode_example(image, labels, indices, positions, boxes):
    """Serialises one image and the metadata of its digits (see air/data/records.py for the layout).

    Args:
      image: float array [H, W] (stored as little-endian float32).
      labels: int [M] digit classes.
      indices: int [M] MNIST indices.
      positions: int [M, 2] x, y of each crop's top-left corner.
      boxes: int [M, 2] width, height of each crop.
    Returns:
      The serialised Example (bytes).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError("image must be 2-D [H, W], got shape %s" % (image.shape,))
    labels = np.asarray(labels, dtype="<i4").reshape(-1)
    count = labels.shape[0]
    indices = np.asarray(indices, dtype="<i4").reshape(-1)
    positions = np.asarray(positions, dtype="<i4").reshape(-1, 2)
    boxes = np.asarray(boxes, dtype="<i4").reshape(-1, 2)
    if not indices.shape[0] == positions.shape[0] == boxes.shape[0] == count:
        raise ValueError("labels, indices, positions and boxes must describe the same digits: %d, "
                         "%d, %d, %d" % (count, indices.shape[0], positions.shape[0], boxes.shape[0]))
    return example({
        "image": bytes_feature(np.ascontiguousarray(image, dtype="<f4").tobytes()),
        "digits": int64_feature(count),
        "indices": bytes_feature(indices.tobytes()),
        "positions": bytes_feature(positions.tobytes()),
        "boxes": bytes_feature(boxes.tobytes()),
        "labels": bytes_feature(labels.tobytes()),
        "height": int64_feature(image.shape[0]),
        "width": int64_feature(image.shape[1]),
    })
