"""Generates the multi-MNIST data set: train.tfrecords and test.tfrecords.

Training images use MNIST training digits only; the test set uses MNIST test digits only. Each
image holds 0..--max-digits digits, cropped to their ink and placed without overlap (see
air/multi_mnist_gen.py for the exact rules, and air/records.py for the record format).

    python multi_mnist.py --mnist-dir /path/to/mnist     # 20,000 images per digit count 0/1/2

Errors print one line ``error: ...`` on stderr and exit with status 2.
"""

import argparse
import collections
import multiprocessing
import os
import sys
import time

import numpy as np

from air import cli
from air import mnist
from air import multi_mnist_gen as gen

DEFAULT_MNIST_DIR = "mnist_data/"
DEFAULT_OUTPUT_DIR = "multi_mnist_data/"
TRAIN_FILE = "train.tfrecords"
TEST_FILE = "test.tfrecords"
# Upper bounds of the sizes: beyond them a typo (an extra zero or two) would fill the memory or
# the disk before any error could say so.
MAX_IMAGES = 1000000
MAX_DIGITS = 20
MAX_SIDE = 1000
MAX_WORKERS = 256


class UsageError(cli.UserError):
    """Bad input from the user (reported as ``error: ...``, exit status 2)."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="multi_mnist.py",
        description="Generate multi-MNIST images (MNIST digits placed without overlap on a canvas) "
                    "into OUTPUT_DIR/train.tfrecords and OUTPUT_DIR/test.tfrecords.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR") or DEFAULT_MNIST_DIR,
                        help="folder with the four MNIST *-ubyte(.gz) files; missing ones are "
                             "downloaded (the MNIST_DIR environment variable overrides the default)")
    parser.add_argument("--mnist-mirror", action="append", metavar="URL",
                        help="base URL to download missing MNIST files from (repeatable; default: "
                             "the public mirrors in air/mnist.py)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="where to write the records")
    parser.add_argument("--max-digits", type=cli.integer(0, MAX_DIGITS), default=2,
                        help="images hold 0..MAX_DIGITS digits, equally many of each count")
    parser.add_argument("--images-per-digit", type=cli.integer(0, MAX_IMAGES), default=20000,
                        help="training images for each digit count")
    parser.add_argument("--test-set-size", type=cli.integer(0, MAX_IMAGES), default=1000,
                        help="test images in all, balanced over the digit counts")
    parser.add_argument("--height", type=cli.integer(1, MAX_SIDE), default=50,
                        help="canvas height in pixels")
    parser.add_argument("--width", type=cli.integer(1, MAX_SIDE), default=50,
                        help="canvas width in pixels")
    parser.add_argument("--digit-gap", type=cli.integer(0, MAX_SIDE), default=0,
                        help="empty pixels required between any two digits")
    parser.add_argument("--canvas-margin", type=cli.integer(0, MAX_SIDE), default=0,
                        help="empty pixels required between digits and the canvas edge")
    parser.add_argument("--bbox-overlap", action="store_true",
                        help="forbid overlapping bounding boxes (both axes checked) instead of "
                             "overlapping ink pixels")
    parser.add_argument("--width-scale", nargs=2,
                        type=cli.number(0.0, exclusive_minimum=True), default=[1.0, 1.0],
                        metavar=("MIN", "MAX"), help="range of each digit's horizontal scale")
    parser.add_argument("--height-scale", nargs=2,
                        type=cli.number(0.0, exclusive_minimum=True), default=[1.0, 1.0],
                        metavar=("MIN", "MAX"), help="range of each digit's vertical scale")
    parser.add_argument("--rotation", type=cli.number(), nargs=2, default=[0.0, 0.0],
                        metavar=("MIN", "MAX"), help="range of each digit's rotation in degrees "
                                                     "(counterclockwise)")
    parser.add_argument("--background", metavar="PATH",
                        help="grey-scale image (any format Pillow reads, or .npy with values in "
                             "[0, 1]) at least as large as the canvas; a random window of it is "
                             "added to every image and the sum clipped to [0, 1]")
    parser.add_argument("--background-max-intensity", type=cli.number(0.0, 1.0), default=0.2,
                        help="background pixel values are scaled to [0, this]")
    parser.add_argument("--max-attempts", type=cli.integer(1, MAX_IMAGES), default=100,
                        help="draws of digits per image before an impossible request is reported")
    parser.add_argument("--seed", type=cli.integer(minimum=0), default=0,
                        help="random seed (same seed, same bytes)")
    parser.add_argument("--workers", type=cli.integer(1, MAX_WORKERS),
                        default=min(os.cpu_count() or 1, MAX_WORKERS),
                        help="worker processes (the output does not depend on it)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def _range(name, values, low=None):
    lo, hi = float(values[0]), float(values[1])
    if lo > hi:
        raise UsageError("--%s: MIN %g is larger than MAX %g" % (name, lo, hi))
    if low is not None and lo <= low:
        raise UsageError("--%s: values must be > %g, got %g" % (name, low, lo))
    return lo, hi


def load_background(path, max_intensity, height, width):
    """Loads a background as float32 in [0, max_intensity]; it must cover the canvas."""
    if not os.path.isfile(path):
        raise UsageError("--background: no such file: %s" % path)
    try:
        if path.endswith(".npy"):
            values = np.load(path).astype(np.float32)
            if values.ndim != 2 or values.min() < 0 or values.max() > 1:
                raise ValueError("expected a 2-D array with values in [0, 1]")
        else:
            from PIL import Image
            with Image.open(path) as image:
                values = np.asarray(image.convert("L"), np.float32) / np.float32(255)
    except Exception as e:  # Any unreadable file is a usage error, reported in one line.
        raise UsageError("--background: cannot read %s (%s)" % (path, str(e).splitlines()[0]))
    if values.shape[0] < height or values.shape[1] < width:
        raise UsageError("--background: %s is %dx%d, smaller than the %dx%d canvas"
                         % (path, values.shape[0], values.shape[1], height, width))
    return (values * np.float32(max_intensity)).astype(np.float32)


def options_from_args(args):
    """Validates the arguments and returns the generator's Options."""
    for name in ("max_digits", "images_per_digit", "test_set_size", "digit_gap", "canvas_margin",
                 "seed"):
        if getattr(args, name) < 0:
            raise UsageError("--%s must be >= 0, got %d" % (name.replace("_", "-"), getattr(args, name)))
    for name in ("height", "width", "workers", "max_attempts"):
        if getattr(args, name) < 1:
            raise UsageError("--%s must be >= 1, got %d" % (name.replace("_", "-"), getattr(args, name)))
    if 2 * args.canvas_margin >= min(args.height, args.width):
        raise UsageError("--canvas-margin %d leaves no room on a %dx%d canvas"
                         % (args.canvas_margin, args.height, args.width))
    if not 0.0 <= args.background_max_intensity <= 1.0:
        raise UsageError("--background-max-intensity must be in [0, 1], got %g"
                         % args.background_max_intensity)
    background = None
    if args.background:
        background = load_background(args.background, args.background_max_intensity,
                                     args.height, args.width)
    return gen.default_options(
        height=args.height, width=args.width, digit_gap=args.digit_gap,
        canvas_margin=args.canvas_margin, bbox_overlap=args.bbox_overlap,
        width_scale=_range("width-scale", args.width_scale, low=0.0),
        height_scale=_range("height-scale", args.height_scale, low=0.0),
        rotation=_range("rotation", args.rotation), background=background,
        max_attempts=args.max_attempts)


class Progress(object):
    """A progress line on stderr: count, rate and ETA (rewritten in place on a terminal)."""

    def __init__(self, total, quiet=False, stream=None):
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.time()
        self.last = 0.0

    def update(self, count):
        self.done += count
        now = time.time()
        interval = 0.5 if self.tty else 5.0
        if not self.quiet and (now - self.last >= interval or self.done == self.total):
            self.last = now
            self._write(now)

    def _write(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        line = "multi_mnist: %d/%d images (%3.0f%%), %.0f images/s, ETA %.0f s" % (
            self.done, self.total, 100.0 * self.done / max(self.total, 1), rate, eta)
        self.stream.write(("\r" + line + "   ") if self.tty else line + "\n")
        self.stream.flush()

    def close(self):
        if not self.quiet:
            elapsed = time.time() - self.start
            self.stream.write("%smulti_mnist: %d images in %.1f s\n"
                              % ("\n" if self.tty else "", self.done, elapsed))
            self.stream.flush()


def _chunks(tasks, pool, window):
    """Yields the results of ``tasks`` in order; at most ``window`` chunks are in flight."""
    if pool is None:
        for task in tasks:
            yield gen.run_chunk(task)
        return
    pending = collections.deque()
    tasks = iter(tasks)
    for task in tasks:
        pending.append(pool.apply_async(gen.run_chunk, (task,)))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().get()
        for task in tasks:
            pending.append(pool.apply_async(gen.run_chunk, (task,)))
            break
        yield result


def generate(data, options, args):
    """Generates both splits and writes their record files. Returns {file name: record count}."""
    sources = {"train": gen.Source(data.train_images, data.train_labels),
               "test": gen.Source(data.test_images, data.test_labels)}
    plans = [
        (TRAIN_FILE, gen.chunk_tasks(
            "train", gen.digit_counts(args.images_per_digit * (args.max_digits + 1),
                                      args.max_digits, args.seed, "train"), args.seed)),
        (TEST_FILE, gen.chunk_tasks(
            "test", gen.digit_counts(args.test_set_size, args.max_digits, args.seed, "test"),
            args.seed)),
    ]
    if gen.transforms_enabled(options):
        import scipy.ndimage  # pylint: disable=unused-import; imported once, before the fork
    pool = None
    if args.workers > 1:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = context.Pool(args.workers, initializer=gen.init_worker, initargs=(sources, options))
    else:
        gen.init_worker(sources, options)
    total = args.images_per_digit * (args.max_digits + 1) + args.test_set_size
    progress = Progress(total, quiet=args.quiet)
    written = {}
    # Both files are written under temporary names and renamed together at the end, so a failed
    # run never leaves a new train file next to an old test file.
    partial = {name: os.path.join(args.output_dir, "." + name + ".partial") for name, _ in plans}
    try:
        from air import records  # Imports TensorFlow: after the fork, so workers never hold it.
        for name, tasks in plans:
            def examples():
                for chunk in _chunks(tasks, pool, 2 * args.workers):
                    for serialized in chunk:
                        yield serialized
                    progress.update(len(chunk))
            written[name] = records.write_examples(partial[name], examples())
        for name, _ in plans:
            os.replace(partial[name], os.path.join(args.output_dir, name))
        progress.close()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        for path in partial.values():
            if os.path.exists(path):
                os.remove(path)
    return written


def run(args):
    """Generates the data set; returns the exit status (UsageError & co. on bad input)."""
    options = options_from_args(args)
    mirrors = mnist.MIRRORS if args.mnist_mirror is None else tuple(args.mnist_mirror)
    data = mnist.load(args.mnist_dir, mirrors=mirrors)
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as e:
        raise UsageError("cannot create output folder %s (%s)" % (args.output_dir, e))
    written = generate(data, options, args)
    if not args.quiet:
        for name, count in written.items():
            sys.stderr.write("multi_mnist: wrote %d records to %s\n"
                             % (count, os.path.join(args.output_dir, name)))
    return 0


def main(argv=None):
    """Runs the generator; returns the exit status (0 on success, 2 on an error)."""
    return cli.main(build_parser(), run, argv, errors=(mnist.MnistError, gen.GenerationError))


if __name__ == "__main__":
    sys.exit(main())
