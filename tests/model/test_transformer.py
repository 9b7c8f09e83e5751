"""air/model/transformer.py: the separable crop/paste, the general affine transform, and a naive loop.

The reference is a per-pixel Python loop written from the coordinate convention of the
module: the image spans [-1, 1], pixel i of n has its centre at (2 i + 1) / n - 1, theta
maps output coordinates to input coordinates, and points outside the input read 0.
"""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.model import transformer
from conftest import evaluate_in_graph as evaluate
from support.original_transformer import (original_code_transform_tf, residue_case,
                                          window_theta_np)


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_v2_behavior()


def naive_transform(images, theta, out_height, out_width):
    """Per-pixel bilinear lookup: images [B, H, W], theta [B, 2, 3] -> [B, out_h, out_w]."""
    batch, height, width = images.shape
    out = np.zeros([batch, out_height, out_width])

    def pixel(b, row, column):
        inside = 0 <= row < height and 0 <= column < width
        return images[b, row, column] if inside else 0.0

    for b in range(batch):
        for i in range(out_height):
            for j in range(out_width):
                x_out = (2.0 * j + 1.0) / out_width - 1.0
                y_out = (2.0 * i + 1.0) / out_height - 1.0
                x_in = theta[b, 0, 0] * x_out + theta[b, 0, 1] * y_out + theta[b, 0, 2]
                y_in = theta[b, 1, 0] * x_out + theta[b, 1, 1] * y_out + theta[b, 1, 2]
                column = ((x_in + 1.0) * width - 1.0) / 2.0  # pixel-index coordinates
                row = ((y_in + 1.0) * height - 1.0) / 2.0
                left, top = int(np.floor(column)), int(np.floor(row))
                fx, fy = column - left, row - top
                out[b, i, j] = ((1 - fx) * (1 - fy) * pixel(b, top, left)
                                + fx * (1 - fy) * pixel(b, top, left + 1)
                                + (1 - fx) * fy * pixel(b, top + 1, left)
                                + fx * fy * pixel(b, top + 1, left + 1))
    return out


def smooth_digit(size, seed=0):
    """A blurred random stroke pattern [size, size] in [0, 1], zero on the border."""
    rng = np.random.RandomState(seed)
    image = np.zeros([size, size])
    inner = size // 5
    image[inner:-inner, inner:-inner] = rng.rand(size - 2 * inner, size - 2 * inner) > 0.6
    kernel = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    for axis in (0, 1):
        image = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, image)
    return image / image.max()


def random_windows(rng, batch):
    scale = rng.uniform(0.2, 1.5, batch)
    shift = rng.uniform(-1.2, 1.2, [batch, 2])
    return scale.astype(np.float32), shift.astype(np.float32)


def test_transform_matches_naive_loop_for_general_affine_maps():
    rng = np.random.RandomState(0)
    images = rng.rand(3, 7, 9).astype(np.float32)
    theta = rng.uniform(-1.3, 1.3, [3, 2, 3]).astype(np.float32)  # rotations and shears too
    got = evaluate(lambda i, t: transformer.transform(i, t, 5, 6), images, theta)
    np.testing.assert_allclose(got, naive_transform(images, theta, 5, 6), atol=1e-5)


def test_crop_and_paste_match_transform_and_naive_loop():
    rng = np.random.RandomState(1)
    canvases = rng.rand(4, 11, 11).astype(np.float32)
    windows = rng.rand(4, 6, 6).astype(np.float32)
    scale, shift = random_windows(rng, 4)
    theta = window_theta_np(scale, shift)
    inverse = window_theta_np(1.0 / scale, -shift / scale[:, None])

    def build(canvas, window, s, t):
        return (transformer.crop(canvas, s, t, 6),
                transformer.transform(canvas, transformer.window_theta(s, t), 6, 6),
                transformer.paste(window, s, t, 11, 11),
                transformer.transform(window, transformer.window_theta(1.0 / s, -t / s[:, None]),
                                      11, 11))

    crop, crop_general, paste, paste_general = evaluate(build, canvases, windows, scale, shift)
    np.testing.assert_allclose(crop, crop_general, atol=1e-5)
    np.testing.assert_allclose(crop, naive_transform(canvases, theta, 6, 6), atol=1e-5)
    np.testing.assert_allclose(paste, paste_general, atol=1e-5)
    np.testing.assert_allclose(paste, naive_transform(windows, inverse, 11, 11), atol=1e-5)


def test_crop_matches_transform_at_model_sizes():
    rng = np.random.RandomState(2)
    canvases = rng.rand(16, 50, 50).astype(np.float32)
    scale, shift = random_windows(rng, 16)
    crop, general = evaluate(lambda c, s, t: (
        transformer.crop(c, s, t, 28),
        transformer.transform(c, transformer.window_theta(s, t), 28, 28)), canvases, scale, shift)
    np.testing.assert_allclose(crop, general, atol=1e-4)


def test_identity_returns_the_image():
    rng = np.random.RandomState(3)
    images = rng.rand(2, 12, 12).astype(np.float32)
    ones, zeros = np.ones(2, np.float32), np.zeros([2, 2], np.float32)
    identity = np.tile(np.array([[[1, 0, 0], [0, 1, 0]]], np.float32), [2, 1, 1])
    crop, paste, general = evaluate(lambda i, s, t, th: (
        transformer.crop(i, s, t, 12), transformer.paste(i, s, t, 12, 12),
        transformer.transform(i, th, 12, 12)), images, ones, zeros, identity)
    for result in (crop, paste, general):
        np.testing.assert_allclose(result, images, atol=1e-6)
    # A different output size resamples the same picture: a constant image stays constant
    # (away from the border, where the zero padding outside comes in).
    resampled = evaluate(lambda i, s, t: transformer.crop(i, s, t, 20),
                         np.full([2, 12, 12], 0.7, np.float32), ones, zeros)
    np.testing.assert_allclose(resampled[:, 2:-2, 2:-2], 0.7, atol=1e-6)


def placement(top, left, side, canvas_size):
    """(scale, shift) of the side x side window whose top-left pixel is (top, left)."""
    scale = side / float(canvas_size)
    centre_x = (left + side / 2.0) / canvas_size * 2.0 - 1.0
    centre_y = (top + side / 2.0) / canvas_size * 2.0 - 1.0
    return np.float32(scale), np.array([centre_x, centre_y], np.float32)


def test_cropping_a_placed_digit_returns_it():
    digit = smooth_digit(28)
    canvases, scales, shifts = [], [], []
    for top, left in [(0, 0), (11, 5), (22, 22), (3, 17)]:
        canvas = np.zeros([50, 50])
        canvas[top:top + 28, left:left + 28] = digit
        scale, shift = placement(top, left, 28, 50)
        canvases.append(canvas)
        scales.append(scale)
        shifts.append(shift)
    crops, pasted = evaluate(lambda c, s, t, d: (
        transformer.crop(c, s, t, 28),
        transformer.paste(tf.tile(d[None], [4, 1, 1]), s, t, 50, 50)),
        canvases, scales, shifts, digit)
    for crop in crops:
        np.testing.assert_allclose(crop, digit, atol=1e-5)
    np.testing.assert_allclose(pasted, canvases, atol=1e-5)
    boxes = evaluate(lambda s, t: transformer.window_boxes(s, t, 50, 50), scales, shifts)
    np.testing.assert_allclose(boxes, [[0, 0, 28, 28], [5, 11, 28, 28], [22, 22, 28, 28],
                                       [17, 3, 28, 28]], atol=1e-4)


def test_crop_then_paste_puts_the_digit_back():
    """A window a little larger than the digit, off the pixel grid: only interpolation blur."""
    digit = smooth_digit(20, seed=4)
    canvas = np.zeros([50, 50])
    canvas[14:34, 9:29] = digit
    scale = np.array([23.3 / 50.0], np.float32)
    shift = np.array([[(9 + 10.4) / 25.0 - 1.0, (14 + 9.7) / 25.0 - 1.0]], np.float32)
    back = evaluate(lambda c, s, t: transformer.paste(transformer.crop(c, s, t, 28), s, t, 50, 50),
                    canvas[None], scale, shift)[0]
    assert np.abs(back - canvas).max() < 0.15
    assert np.abs(back - canvas).mean() < 0.01
    assert back.sum() == pytest.approx(canvas.sum(), rel=0.03)
    rows, columns = np.mgrid[:50, :50]
    for coordinate in (rows, columns):  # centre of mass stays put
        assert (back * coordinate).sum() / back.sum() == pytest.approx(
            (canvas * coordinate).sum() / canvas.sum(), abs=0.1)


@pytest.mark.parametrize("grid", transformer.GRIDS)
def test_gradients_match_finite_differences(grid):
    rng = np.random.RandomState(5)
    canvas = np.stack([np.pad(smooth_digit(30, seed), 10) for seed in range(3)]).astype(np.float32)
    window = np.stack([smooth_digit(12, seed) for seed in range(3)]).astype(np.float32)
    if grid == "align_corners":
        # Zero borders: with align_corners the value jumps where a point leaves the window (the
        # original's hard cut), which a finite difference across it sees and a gradient not.
        window[:, [0, -1], :] = 0.0
        window[:, :, [0, -1]] = 0.0
    # Off the pixel grid: where a sampling point falls exactly on a pixel centre the tent
    # weights have a kink, and TF's derivative of |d| and relu there is 0 (a subgradient).
    scale = np.array([0.4537, 0.6123, 0.7891], np.float32)
    shift = np.array([[0.1031, -0.0517], [-0.2093, 0.1571], [0.0529, 0.3013]], np.float32)
    weights_crop = rng.rand(3, 12, 12).astype(np.float32)
    weights_paste = rng.rand(3, 50, 50).astype(np.float32)
    with tf.Graph().as_default():
        s = tf.placeholder(tf.float32, [3])
        t = tf.placeholder(tf.float32, [3, 2])
        objective = (
            tf.reduce_sum(weights_crop * transformer.crop(canvas, s, t, 12, grid), [1, 2])
            + tf.reduce_sum(weights_paste * transformer.paste(window, s, t, 50, 50, grid),
                            [1, 2]))
        gradients = tf.gradients(tf.reduce_sum(objective), [s, t])
        with tf.Session() as session:
            def value(s_, t_):
                return session.run(objective, {s: s_, t: t_}).astype(np.float64)

            grad_scale, grad_shift = session.run(gradients, {s: scale, t: shift})
            # The align_corners points of these windows lie closer to pixel centres (kinks),
            # so its differences take a smaller step.
            step = 1e-3 if grid == "pixel_centres" else 1e-4
            numeric_scale = (value(scale + step, shift) - value(scale - step, shift)) / (2 * step)
            numeric_shift = np.zeros_like(grad_shift)
            for axis in range(2):
                offset = np.zeros_like(shift)
                offset[:, axis] = step
                numeric_shift[:, axis] = (value(scale, shift + offset)
                                          - value(scale, shift - offset)) / (2 * step)
    for analytic, numeric in ((grad_scale, numeric_scale), (grad_shift, numeric_shift)):
        assert np.all(np.isfinite(analytic))
        # Bilinear sampling is piecewise linear in the coordinates, so differences that
        # straddle a pixel boundary differ a little from the one-sided derivative.
        np.testing.assert_allclose(analytic, numeric, rtol=0.05, atol=0.05 * np.abs(numeric).max())


@pytest.mark.parametrize("grid", transformer.GRIDS)
def test_gradients_finite_for_extreme_windows(grid):
    scale = np.array([1e-3, 1e-3, 1.0, 3.0], np.float32)  # MIN_SCALE of the model, and large
    shift = np.array([[0.0, 0.0], [5.0, -5.0], [-1.0, 1.0], [0.3, 0.3]], np.float32)
    canvas = np.random.RandomState(6).rand(4, 50, 50).astype(np.float32)
    window = np.ones([4, 28, 28], np.float32)

    def build(c, w, s, t):
        outputs = [transformer.crop(c, s, t, 28, grid), transformer.paste(w, s, t, 50, 50, grid)]
        total = tf.add_n([tf.reduce_sum(o) for o in outputs])
        return outputs, tf.gradients(total, [c, w, s, t])

    outputs, gradients = evaluate(build, canvas, window, scale, shift)
    for value in outputs + gradients:
        assert np.all(np.isfinite(value))


def original_code_transform(images, theta, out_height, out_width):
    """The sampling of the original code's spatial transformer (TensorFlow models'), written
    out in numpy: output points on linspace(-1, 1), input coordinates (v + 1) * (n - 1.001) / 2,
    both corner indices clipped to the image, weights from the clipped corners."""
    batch, height, width = images.shape
    ys, xs = np.meshgrid(np.linspace(-1.0, 1.0, out_height), np.linspace(-1.0, 1.0, out_width),
                         indexing="ij")
    out = np.zeros([batch, out_height, out_width])
    for b in range(batch):
        x = theta[b, 0, 0] * xs + theta[b, 0, 1] * ys + theta[b, 0, 2]
        y = theta[b, 1, 0] * xs + theta[b, 1, 1] * ys + theta[b, 1, 2]
        x = (x + 1.0) * (width - 1.001) / 2.0
        y = (y + 1.0) * (height - 1.001) / 2.0
        x0 = np.clip(np.floor(x).astype(int), 0, width - 1)
        x1 = np.clip(np.floor(x).astype(int) + 1, 0, width - 1)
        y0 = np.clip(np.floor(y).astype(int), 0, height - 1)
        y1 = np.clip(np.floor(y).astype(int) + 1, 0, height - 1)
        image = images[b]
        out[b] = ((x1 - x) * (y1 - y) * image[y0, x0] + (x1 - x) * (y - y0) * image[y1, x0]
                  + (x - x0) * (y1 - y) * image[y0, x1] + (x - x0) * (y - y0) * image[y1, x1])
    return out


def test_align_corners_grid_matches_the_original_code_sampling():
    rng = np.random.RandomState(7)
    batch = 24
    scale, shift = random_windows(rng, batch)  # many windows reach past the canvas
    canvas = rng.rand(batch, 50, 50).astype(np.float32)
    window = rng.rand(batch, 28, 28).astype(np.float32)
    crops, pastes = evaluate(lambda c, w, s, t: (
        transformer.crop(c, s, t, 28, "align_corners"),
        transformer.paste(w, s, t, 50, 50, "align_corners")), canvas, window, scale, shift)
    theta = window_theta_np(scale.astype(np.float64), shift.astype(np.float64))
    inverse = window_theta_np(1.0 / scale.astype(np.float64), -shift / scale[:, None])
    np.testing.assert_allclose(crops, original_code_transform(canvas, theta, 28, 28),
                               atol=2e-5)
    np.testing.assert_allclose(pastes, original_code_transform(window, inverse, 50, 50),
                               atol=2e-5)
    # The two grids differ: the original's window reaches a little further and has no fade.
    default_crops = evaluate(lambda c, s, t: transformer.crop(c, s, t, 28), canvas, scale, shift)
    assert np.abs(default_crops - crops).max() > 0.05


def test_align_corners_reads_zero_off_the_image_without_a_fade():
    canvas = np.ones([1, 50, 50], np.float32)
    # Window points from -1.5 to 0.5 across x: the original reads zero left of pixel 0.
    row = evaluate(lambda c: transformer.crop(
        c, tf.constant([1.0]), tf.constant([[-0.5, 0.0]]), 28, "align_corners"), canvas)[0, 14]
    coordinates = (np.linspace(-1.5, 0.5, 28) + 1.0) * (50 - 1.001) / 2.0
    np.testing.assert_allclose(row, (coordinates >= 0.0).astype(np.float32), atol=1e-6)


def test_original_code_paste_leaves_float32_residues_that_align_corners_does_not():
    """Why the original's grid trains in its code and not here (docs/departures.md): outside the
    window its paste sums terms that cancel only in real arithmetic; the float32 residues, times
    its likelihood's 1 / (p + 1e-9) on ink that no window covers, give a gradient here exactly 0."""
    window, scale, shift, inverse, ink = residue_case()

    def build(w):
        pasted = {"original": original_code_transform_tf(w, tf.constant(inverse), 50, 50),
                  "ours": transformer.paste(w, tf.constant(scale), tf.constant(shift), 50, 50,
                                            "align_corners")}
        outside = tf.cast(tf.equal(pasted["ours"], 0.0), tf.float32) * ink  # uncovered ink
        gradients = {k: tf.gradients(-tf.reduce_sum(outside * tf.log(tf.maximum(p, 0.0) + 1e-9)),
                                     w)[0] for k, p in pasted.items()}
        return pasted, gradients

    pasted, gradients = evaluate(build, window)
    np.testing.assert_allclose(pasted["original"], pasted["ours"], atol=2e-5)
    # Our paste is exactly zero off the window's support; the original's is not, in float32.
    support = np.zeros([4, 50, 50], bool)
    for b in range(4):
        coordinates = ((np.linspace(-1, 1, 50) - shift[b, ::-1, None]) / scale[b] + 1.0) * 13.4995
        inside = (coordinates >= 0) & (coordinates < 27)
        support[b] = inside[0][:, None] & inside[1][None, :]
    assert np.all(pasted["ours"][~support] == 0.0)
    residues = np.abs(pasted["original"][~support])
    assert 0.0 < residues.max() < 1e-4 and np.count_nonzero(residues) > 100
    # The likelihood gradient through those residues: large in the original, none in ours.
    assert np.abs(gradients["ours"]).max() == 0.0
    assert np.linalg.norm(gradients["original"]) > 1e3
