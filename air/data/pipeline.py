"""The tf.data input pipeline: a record file (air/data/records.py) to batches of tensors.

Works in graph mode on TF 1.15 and 2.x; training, the held-out evaluation and the benchmarks
read their batches here.
"""
import tensorflow.compat.v1 as tf

from air.data.records import PAD, image_shape


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
