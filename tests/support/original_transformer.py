"""The original code's spatial transformer, ported for the tests that compare it with ours
(tests/model/test_transformer.py) and with the original code's runner
(tests/experiments/test_original_code.py): a helper module, not a test."""
import numpy as np
import tensorflow.compat.v1 as tf


def window_theta_np(scale, shift):
    """Window -> canvas theta: canvas point = scale * window point + shift."""
    return np.stack([np.stack([scale, 0 * scale, shift[:, 0]], 1),
                     np.stack([0 * scale, scale, shift[:, 1]], 1)], 1)


def original_code_transform_tf(images, theta, out_height, out_width):
    """The original code's interpolation in TensorFlow, written from its description: corner
    indices floor(x) and floor(x) + 1 clipped to the image, weights from the clipped corners, the
    four products summed in the order a (y0, x0), b (y1, x0), c (y0, x1), d (y1, x1)."""
    batch, height, width = [int(d) for d in images.shape]
    ys, xs = np.meshgrid(np.linspace(-1.0, 1.0, out_height), np.linspace(-1.0, 1.0, out_width),
                         indexing="ij")
    grid = tf.constant(np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)]), tf.float32)
    points = tf.einsum("bij,jk->bik", theta, grid)
    x = (points[:, 0] + 1.0) * (width - 1.001) / 2.0
    y = (points[:, 1] + 1.0) * (height - 1.001) / 2.0
    x0 = tf.clip_by_value(tf.cast(tf.floor(x), tf.int32), 0, width - 1)
    x1 = tf.clip_by_value(tf.cast(tf.floor(x), tf.int32) + 1, 0, width - 1)
    y0 = tf.clip_by_value(tf.cast(tf.floor(y), tf.int32), 0, height - 1)
    y1 = tf.clip_by_value(tf.cast(tf.floor(y), tf.int32) + 1, 0, height - 1)
    flat = tf.reshape(images, [-1])
    base = tf.range(batch)[:, None] * height * width

    def pixel(row, column):
        return tf.gather(flat, base + row * width + column)

    x0f, x1f, y0f, y1f = [tf.cast(v, tf.float32) for v in (x0, x1, y0, y1)]
    out = tf.add_n([(x1f - x) * (y1f - y) * pixel(y0, x0), (x1f - x) * (y - y0f) * pixel(y1, x0),
                    (x - x0f) * (y1f - y) * pixel(y0, x1), (x - x0f) * (y - y0f) * pixel(y1, x1)])
    return tf.reshape(out, [batch, out_height, out_width])


def residue_case():
    """Four 28x28 windows pasted on 50x50 canvases: (windows, scales, shifts, the inverse
    (paste) theta [4, 2, 3], random ink on the canvas)."""
    rng = np.random.RandomState(8)
    window = rng.rand(4, 28, 28).astype(np.float32)
    scale = np.array([0.35, 0.4, 0.45, 0.5], np.float32)
    shift = rng.uniform(-0.4, 0.4, [4, 2]).astype(np.float32)
    inverse = window_theta_np(1.0 / scale, -shift / scale[:, None]).astype(np.float32)
    ink = (rng.rand(4, 50, 50) > 0.7).astype(np.float32)
    return window, scale, shift, inverse, ink
