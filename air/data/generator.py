"""Generation of multi-MNIST images (numpy only; the worker processes never import TensorFlow).

An image of H x W float32 pixels in [0, 1] holds 0..max_digits MNIST digits. Each digit is cropped
to the bounding box of its non-zero pixels (after the optional scaling and rotation) and pasted by
adding its pixels / 255 at a random position wholly inside the canvas (at least ``canvas_margin``
pixels from each edge). Digits never overlap:

* pixel mode (default): no two digits' non-zero pixels are closer than ``digit_gap`` + 1 pixels in
  Chebyshev distance, i.e. at least ``digit_gap`` empty pixels lie between them in every direction;
* bounding-box mode (``bbox_overlap``): the crop boxes are at least ``digit_gap`` pixels apart along
  the x axis or along the y axis (boxes overlap only when they overlap on both axes).

Since digits never share a pixel, the canvas is exactly the sum of the pasted crops and stays in
[0, 1]. With a background, a random H x W window of it (values in [0, max_intensity]) is added and
the sum clipped to [0, 1].

Determinism: the images of a split are cut into chunks of ``CHUNK`` images; chunk k of split s draws
from ``numpy.random.default_rng([seed, s, 1, k])`` and the digit counts of the split are a permutation
drawn from ``default_rng([seed, s, 0])``. Nothing depends on the number of worker processes, so the
output is byte-identical for any ``--workers``.
"""

import collections
import math

import numpy as np

from air.cli import UserError
from air.data.record_encoding import encode_example

CHUNK = 1000            # Images per work unit (fixed: the output must not depend on the workers).
POSITION_TRIES = 20     # Random positions tried before enumerating all free positions of a digit.
SPLIT_CODES = {"train": 0, "test": 1}

Options = collections.namedtuple("Options", [
    "height", "width",        # canvas size in pixels
    "digit_gap",              # empty pixels required between digits
    "canvas_margin",          # empty pixels required between digits and the canvas edge
    "bbox_overlap",           # True: compare bounding boxes instead of pixels
    "width_scale",            # (min, max) horizontal scale factor of each digit
    "height_scale",           # (min, max) vertical scale factor
    "rotation",               # (min, max) rotation in degrees, counterclockwise
    "background",             # None or float32 [BH, BW] (BH >= H, BW >= W) in [0, max_intensity]
    "max_attempts",           # digit re-draws per image before giving up
])


def default_options(**overrides):
    """The generator's defaults (50x50, no gap, no margin, pixel mode, no transforms)."""
    options = Options(height=50, width=50, digit_gap=0, canvas_margin=0, bbox_overlap=False,
                      width_scale=(1.0, 1.0), height_scale=(1.0, 1.0), rotation=(0.0, 0.0),
                      background=None, max_attempts=100)
    return options._replace(**overrides)


class GenerationError(UserError):
    """An impossible or failed generation request (the message is one line)."""


Example = collections.namedtuple("Example", ["image", "labels", "indices", "positions", "boxes"])
Example.__doc__ = """One generated image: image float32 [H, W]; labels, indices int32 [M];
positions int32 [M, 2] (x, y of each crop's top-left corner); boxes int32 [M, 2] (width, height)."""


def crop_boxes(images):
    """Bounding boxes of the non-zero pixels of each image.

    Args:
      images: uint8 [N, 28, 28].
    Returns:
      int32 [N, 4]: row, column of the top-left corner, height, width (a blank image gets 0, 0, 0, 0).
    """
    rows = images.any(axis=2)  # [N, 28]: rows holding ink
    cols = images.any(axis=1)  # [N, 28]: columns holding ink
    size = images.shape[1]
    top = rows.argmax(axis=1)
    bottom = size - rows[:, ::-1].argmax(axis=1)
    left = cols.argmax(axis=1)
    right = images.shape[2] - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([top, left, bottom - top, right - left], axis=1).astype(np.int32)
    boxes[~rows.any(axis=1)] = 0
    return boxes


def to_float(pixels):
    """uint8 MNIST pixels -> float32 in [0, 1] (the exact formula the tests reproduce)."""
    return pixels.astype(np.float32) / np.float32(255)


def transform_digit(image, width_scale, height_scale, degrees):
    """Scales and rotates one 28x28 digit (bilinear) and crops it to its non-zero pixels.

    Args:
      image: uint8 [28, 28].
      width_scale, height_scale: scale factors along x and y.
      degrees: counterclockwise rotation, applied after the scaling.
    Returns:
      float32 [h, w] in [0, 1].
    """
    from scipy import ndimage  # Imported only when transforms are used.
    theta = math.radians(degrees)
    # Forward map in (row, column) coordinates: rotation R times scaling S. With rows pointing down,
    # this R turns the picture counterclockwise for a positive angle.
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    forward = rotation.dot(np.diag([height_scale, width_scale]))
    size = np.array(image.shape, np.float64)
    corners = np.array([[0, 0], [0, size[1]], [size[0], 0], [size[0], size[1]]]) - size / 2
    extent = np.abs(corners.dot(forward.T)).max(axis=0)
    out_shape = tuple(int(math.ceil(2 * e)) + 2 for e in extent)
    inverse = np.linalg.inv(forward)
    # affine_transform maps output coordinates o to input coordinates inverse.o + offset.
    out_centre = (np.array(out_shape) - 1) / 2.0
    in_centre = (size - 1) / 2.0
    offset = in_centre - inverse.dot(out_centre)
    out = ndimage.affine_transform(to_float(image), inverse, offset=offset, output_shape=out_shape,
                                   order=1, mode="constant", cval=0.0)
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    rows = np.flatnonzero(out.any(axis=1))
    cols = np.flatnonzero(out.any(axis=0))
    if rows.size == 0:
        return np.zeros([0, 0], np.float32)
    return out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def dilate(mask, gap):
    """Grows a boolean mask by ``gap`` pixels in every direction (a (2 gap + 1)^2 square).

    Returns:
      bool [h + 2 gap, w + 2 gap]; its origin is ``gap`` pixels above and left of the input's.
    """
    h, w = mask.shape
    padded = np.zeros([h + 2 * gap, w + 2 * gap], bool)
    padded[gap:gap + h, gap:gap + w] = mask
    rows = padded.copy()
    for s in range(1, gap + 1):  # separable: first along x ...
        rows[:, s:] |= padded[:, :-s]
        rows[:, :-s] |= padded[:, s:]
    out = rows.copy()
    for s in range(1, gap + 1):  # ... then along y
        out[s:, :] |= rows[:-s, :]
        out[:-s, :] |= rows[s:, :]
    return out


def _free_positions(occupied, mask, y_range, x_range):
    """All (y, x) in the ranges where ``mask`` placed at y, x hits no occupied pixel. [K, 2] int."""
    h, w = mask.shape
    grid = occupied.astype(np.float32)
    s0, s1 = grid.strides
    windows = np.lib.stride_tricks.as_strided(
        grid, shape=(grid.shape[0] - h + 1, grid.shape[1] - w + 1, h, w), strides=(s0, s1, s0, s1))
    hits = np.tensordot(windows, mask.astype(np.float32), axes=([2, 3], [0, 1]))
    hits = hits[y_range[0]:y_range[1] + 1, x_range[0]:x_range[1] + 1]
    free = np.argwhere(hits < 0.5)
    return free + np.array([y_range[0], x_range[0]])


def place(rng, crops, options):
    """Finds non-overlapping positions for the crops, in order, each uniform over the free places.

    Returns:
      int [M, 2] (y, x) of each crop's top-left corner, or None when some crop does not fit.
    """
    height, width, gap, margin = options.height, options.width, options.digit_gap, options.canvas_margin
    occupied = np.zeros([height, width], bool)  # pixels taken by placed digits, grown by the gap
    positions = []
    for crop in crops:
        h, w = crop.shape
        # Pixel mode tests the ink; bounding-box mode tests the whole crop rectangle.
        mask = np.ones([h, w], bool) if options.bbox_overlap else crop > 0
        y_range = (margin, height - margin - h)
        x_range = (margin, width - margin - w)
        if y_range[1] < y_range[0] or x_range[1] < x_range[0]:
            return None  # The crop does not fit inside the canvas and its margin.
        found = None
        for _ in range(POSITION_TRIES):  # Rejection sampling: cheap while the canvas is empty.
            y = rng.integers(y_range[0], y_range[1] + 1)
            x = rng.integers(x_range[0], x_range[1] + 1)
            if not (occupied[y:y + h, x:x + w] & mask).any():
                found = (y, x)
                break
        if found is None:  # Crowded: enumerate every free position and pick one uniformly.
            free = _free_positions(occupied, mask, y_range, x_range)
            if len(free) == 0:
                return None
            found = tuple(free[rng.integers(len(free))])
        y, x = int(found[0]), int(found[1])
        positions.append((y, x))
        grown = dilate(mask, gap) if gap else mask
        # Paint the grown mask, clipped to the canvas (its origin is gap pixels up and left).
        top, left = y - gap, x - gap
        gh, gw = grown.shape
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + gh, height), min(left + gw, width)
        occupied[r0:r1, c0:c1] |= grown[r0 - top:r1 - top, c0 - left:c1 - left]
    return np.array(positions, np.int64).reshape(-1, 2)


class Source(object):
    """The MNIST digits of one split with their crop boxes."""

    def __init__(self, images, labels):
        self.images = images
        self.labels = labels
        self.boxes = crop_boxes(images)

    def __len__(self):
        return self.images.shape[0]


def transforms_enabled(options):
    return (options.width_scale != (1.0, 1.0) or options.height_scale != (1.0, 1.0)
            or options.rotation != (0.0, 0.0))


def make_crop(rng, source, index, options):
    """The float32 [h, w] crop of digit ``index``, transformed when the options ask for it."""
    if transforms_enabled(options):
        sx = rng.uniform(*options.width_scale)
        sy = rng.uniform(*options.height_scale)
        degrees = rng.uniform(*options.rotation)
        return transform_digit(source.images[index], sx, sy, degrees)
    top, left, h, w = source.boxes[index]
    return to_float(source.images[index, top:top + h, left:left + w])


def make_image(rng, count, source, options):
    """Generates one image with ``count`` digits from ``source``.

    Raises:
      GenerationError when no placement was found after ``options.max_attempts`` draws of digits.
    """
    for _ in range(options.max_attempts):
        indices = rng.integers(0, len(source), size=count)
        crops = [make_crop(rng, source, i, options) for i in indices]
        positions = place(rng, crops, options)
        if positions is not None:
            break
    else:
        raise GenerationError(
            "could not place %d digit(s) on a %dx%d canvas (digit gap %d, canvas margin %d%s) in %d "
            "attempts; use fewer digits, a smaller gap or margin, smaller scales or a larger canvas"
            % (count, options.height, options.width, options.digit_gap, options.canvas_margin,
               ", bounding-box mode" if options.bbox_overlap else "", options.max_attempts))
    image = np.zeros([options.height, options.width], np.float32)
    boxes = np.zeros([count, 2], np.int32)
    for k, (crop, (y, x)) in enumerate(zip(crops, positions)):
        h, w = crop.shape
        image[y:y + h, x:x + w] += crop  # Digits never share a pixel, so this is a paste.
        boxes[k] = (w, h)
    if options.background is not None:
        bh, bw = options.background.shape
        oy = rng.integers(0, bh - options.height + 1)
        ox = rng.integers(0, bw - options.width + 1)
        window = options.background[oy:oy + options.height, ox:ox + options.width]
        image = np.clip(image + window, 0.0, 1.0).astype(np.float32)
    return Example(image=image,
                   labels=source.labels[indices].astype(np.int32),
                   indices=indices.astype(np.int32),
                   positions=positions[:, ::-1].astype(np.int32),  # (y, x) -> (x, y)
                   boxes=boxes)


def digit_counts(total, max_digits, seed, split, min_digits=0):
    """Digit count of each image of a split: balanced over min_digits..max_digits, in a seeded
    random order.

    The remainder of ``total`` / (max_digits - min_digits + 1) goes to the smallest counts.
    """
    kinds = max_digits - min_digits + 1
    counts = min_digits + np.repeat(
        np.arange(kinds), [total // kinds + (k < total % kinds) for k in range(kinds)])
    return np.random.default_rng([seed, SPLIT_CODES[split], 0]).permutation(counts)


def chunk_tasks(split, counts, seed):
    """Work units (split, chunk number, digit counts) covering ``counts`` in order."""
    return [(split, k, counts[start:start + CHUNK], seed)
            for k, start in enumerate(range(0, len(counts), CHUNK))]


# Per-process state of the worker processes: {split: Source} and the Options.
_STATE = {}


def init_worker(sources, options):
    """Pool initializer (and in-process set-up): stores the sources and options."""
    _STATE["sources"] = sources
    _STATE["options"] = options


def run_chunk(task):
    """Generates one chunk. Returns its serialised records (list of bytes), in order."""
    split, chunk, counts, seed = task
    source = _STATE["sources"][split]
    options = _STATE["options"]
    rng = np.random.default_rng([seed, SPLIT_CODES[split], 1, chunk])
    return [encode_example(*make_image(rng, int(count), source, options)) for count in counts]
