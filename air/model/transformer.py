"""Spatial transformer: affine sampling grids and bilinear sampling, batched, no loops.

Coordinates are normalised so that an image spans [-1, 1] from its left (top) edge to its
right (bottom) edge; the centre of pixel i of n lies at (2 i + 1) / n - 1. An affine
``theta`` [B, 2, 3] maps output coordinates (x, y, 1) to the input coordinates to sample.
Samples outside the input read zeros.

AIR's windows are squares described by ``scale`` (window side / canvas side) and ``shift``
(window centre, x then y, in canvas coordinates): cropping samples the canvas at
``scale * p + shift`` for each window point p; pasting is the inverse map.

``crop`` and ``paste`` take one of two sampling grids (``AIRConfig.transformer_grid``):
``pixel_centres`` as above, or ``align_corners``, the convention of the spatial transformer of
the original code (TensorFlow models' ``transformer``): the n points of an axis run from -1 to
1 inclusive, -1..1 lands on pixel coordinates 0..(n - 1.001), and a point whose coordinate lies
off [0, n - 1) reads zero (no fade over the edge pixel).
"""
import tensorflow.compat.v1 as tf

GRIDS = ("pixel_centres", "align_corners")


def _pixel_centres(size):
    """[size] normalised coordinates of the pixel centres of one axis."""
    return (2.0 * tf.range(size, dtype=tf.float32) + 1.0) / size - 1.0


def affine_grid(theta, height, width):
    """Takes theta [B, 2, 3] to the input coordinates (x, y), each [B, height, width]."""
    ys, xs = tf.meshgrid(_pixel_centres(height), _pixel_centres(width), indexing="ij")
    points = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]),
                       tf.ones([height * width])], axis=0)  # [3, h*w]
    coords = tf.einsum("bij,jk->bik", theta, points)  # [B, 2, h*w]
    x = tf.reshape(coords[:, 0], [-1, height, width])
    y = tf.reshape(coords[:, 1], [-1, height, width])
    return x, y


def bilinear_sample(images, x, y):
    """Samples images [B, H, W] at normalised (x, y) [B, h, w] bilinearly; outside reads 0."""
    shape = tf.shape(images)
    batch, in_height, in_width = shape[0], shape[1], shape[2]
    height_f = tf.cast(in_height, tf.float32)
    width_f = tf.cast(in_width, tf.float32)
    # Normalised -> pixel-index coordinates (pixel centres at integers).
    px = ((x + 1.0) * width_f - 1.0) / 2.0
    py = ((y + 1.0) * height_f - 1.0) / 2.0
    x0 = tf.floor(px)
    y0 = tf.floor(py)
    wx1 = px - x0
    wy1 = py - y0
    x0 = tf.cast(x0, tf.int32)
    y0 = tf.cast(y0, tf.int32)

    flat = tf.reshape(images, [-1])
    out_shape = tf.shape(x)
    base = tf.reshape(tf.range(batch) * in_height * in_width, [-1, 1, 1])

    def corner(xi, yi):
        inside = ((xi >= 0) & (xi < in_width) & (yi >= 0) & (yi < in_height))
        index = base + tf.clip_by_value(yi, 0, in_height - 1) * in_width + tf.clip_by_value(
            xi, 0, in_width - 1)
        values = tf.gather(flat, tf.reshape(index, [-1]))
        return tf.reshape(values, out_shape) * tf.cast(inside, images.dtype)

    return ((1.0 - wx1) * (1.0 - wy1) * corner(x0, y0)
            + wx1 * (1.0 - wy1) * corner(x0 + 1, y0)
            + (1.0 - wx1) * wy1 * corner(x0, y0 + 1)
            + wx1 * wy1 * corner(x0 + 1, y0 + 1))


def transform(images, theta, height, width):
    """Takes images [B, H, W] and theta [B, 2, 3] to the [B, height, width] sampled output."""
    x, y = affine_grid(theta, height, width)
    return bilinear_sample(images, x, y)


def window_theta(scale, shift):
    """Takes scale [B] and shift [B, 2] to the window -> canvas theta [B, 2, 3]."""
    zeros = tf.zeros_like(scale)
    return tf.reshape(tf.stack([scale, zeros, shift[:, 0], zeros, scale, shift[:, 1]], axis=1),
                      [-1, 2, 3])


def _tent_weights(centres, size):
    """Bilinear interpolation weights [B, n, size] of sampling points [B, n] along one axis.

    Weight of input pixel k for a point at pixel coordinate c is max(0, 1 - |c - k|): the
    two nearest pixels share the weight, and pixels that do not exist contribute nothing,
    which is the zero padding outside the image.
    """
    pixels = tf.range(size, dtype=tf.float32)
    return tf.nn.relu(1.0 - tf.abs(centres[:, :, None] - pixels[None, None, :]))


def _axis_weights(points, size, grid):
    """Interpolation weights [B, n, size] of normalised points [B, n] on an axis of ``size``
    pixels, under the sampling convention ``grid`` (see the module's docstring)."""
    if grid == "pixel_centres":
        return _tent_weights(((points + 1.0) * size - 1.0) / 2.0, size)
    # The original's floor/clip indexing: both neighbours clip to one pixel off [0, size - 1)
    # and their weights cancel, so such points read exactly zero.
    coordinates = (points + 1.0) * (size - 1.001) / 2.0
    inside = tf.logical_and(coordinates >= 0.0, coordinates < size - 1.0)
    return _tent_weights(coordinates, size) * tf.cast(inside, tf.float32)[:, :, None]


def _grid_points(size, grid):
    """[size] normalised sampling points of an output axis."""
    return tf.linspace(-1.0, 1.0, size) if grid == "align_corners" else _pixel_centres(size)


def _separable_transform(images, scale, shift, out_height, out_width, grid="pixel_centres"):
    """Axis-aligned transform x_in = scale * x_out + shift as two batched matmuls.

    With the default grid, the same result as ``transform`` with theta = [[s, 0, sx],
    [0, s, sy]] (tested), but bilinear sampling of an axis-aligned grid factorises into a row
    and a column interpolation, which is much cheaper than gathering four corners per output
    pixel and has dense, well-behaved gradients for both the images and the coordinates.
    """
    if grid not in GRIDS:
        raise ValueError("grid must be one of %s, got %r" % (", ".join(GRIDS), grid))
    in_height = int(images.shape[1])
    in_width = int(images.shape[2])
    x = scale[:, None] * _grid_points(out_width, grid)[None, :] + shift[:, 0:1]   # [B, out_w]
    y = scale[:, None] * _grid_points(out_height, grid)[None, :] + shift[:, 1:2]  # [B, out_h]
    rows = _axis_weights(y, in_height, grid)       # [B, out_h, H]
    columns = _axis_weights(x, in_width, grid)     # [B, out_w, W]
    return tf.matmul(tf.matmul(rows, images), columns, transpose_b=True)


def crop(images, scale, shift, size, grid="pixel_centres"):
    """Takes canvases [B, H, W] to the [B, size, size] windows at (scale, shift)."""
    return _separable_transform(images, scale, shift, size, size, grid)


def paste(windows, scale, shift, height, width, grid="pixel_centres"):
    """Takes windows [B, h, w] back to [B, height, width] canvases, placed at (scale, shift)."""
    return _separable_transform(windows, 1.0 / scale, -shift / scale[:, None], height, width,
                                grid)


def window_boxes(scale, shift, height, width):
    """Pixel boxes [..., 4] = (x_min, y_min, box width, box height) of windows on the canvas.

    The box of the pixel-centre grid; an align_corners window covers the same box to within
    half a pixel (its points span scale * (n - 1.001) pixels), which is all a drawing needs."""
    side_x = scale * width
    side_y = scale * height
    x_min = (shift[..., 0] + 1.0) * width / 2.0 - side_x / 2.0
    y_min = (shift[..., 1] + 1.0) * height / 2.0 - side_y / 2.0
    return tf.stack([x_min, y_min, side_x, side_y], axis=-1)
