"""Generates the multi-MNIST data set: train.tfrecords and test.tfrecords.

Training images use MNIST training digits only; the test set uses MNIST test digits only. Each
image holds --min-digits (0) to --max-digits digits, cropped to their ink and placed without
overlap (see air/data/generator.py for the exact rules, and air/data/records.py for the record
format).

    python multi_mnist.py --mnist-dir /path/to/mnist     # 20,000 images per digit count 0/1/2

Errors print one line ``error: ...`` on stderr and exit with status 2.
"""

import argparse
import os
import sys

from air import cli
from air.data import dataset_writer, mnist
from air.data import generator as gen

DEFAULT_MNIST_DIR = "mnist_data/"
DEFAULT_OUTPUT_DIR = "multi_mnist_data/"
# Upper bounds of the sizes: beyond them a typo (an extra zero or two) would fill the memory or
# the disk before any error could say so.
MAX_IMAGES = 1000000
MAX_DIGITS = 20
MAX_SIDE = 1000
MAX_WORKERS = 256


def build_parser():
    parser = argparse.ArgumentParser(
        prog="multi_mnist.py",
        description="Generate multi-MNIST images (MNIST digits placed without overlap on a canvas) "
                    "into OUTPUT_DIR/train.tfrecords and OUTPUT_DIR/test.tfrecords.",
        formatter_class=cli.HelpFormatter)
    parser.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR") or DEFAULT_MNIST_DIR,
                        help="folder with the four MNIST *-ubyte(.gz) files; missing ones are "
                             "downloaded (the MNIST_DIR environment variable overrides the default)")
    parser.add_argument("--mnist-mirror", action="append", metavar="URL",
                        help="base URL to download missing MNIST files from (repeatable; default: "
                             "the public mirrors in air/data/mnist.py)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="where to write the records")
    cli.add_numeric_options(parser, [
        ("--max-digits", cli.integer(0, MAX_DIGITS), 2,
         "images hold MIN_DIGITS..MAX_DIGITS digits, equally many of each count"),
        ("--min-digits", cli.integer(0, MAX_DIGITS), 0,
         "the fewest digits an image holds (3 with --max-digits 3: a set of 3-digit images)"),
        ("--images-per-digit", cli.integer(0, MAX_IMAGES), 20000,
         "training images for each digit count"),
        ("--test-set-size", cli.integer(0, MAX_IMAGES), 1000,
         "test images in all, balanced over the digit counts"),
        ("--height", cli.integer(1, MAX_SIDE), 50, "canvas height in pixels"),
        ("--width", cli.integer(1, MAX_SIDE), 50, "canvas width in pixels"),
        ("--digit-gap", cli.integer(0, MAX_SIDE), 0, "empty pixels required between any two digits"),
        ("--canvas-margin", cli.integer(0, MAX_SIDE), 0,
         "empty pixels required between digits and the canvas edge"),
    ])
    parser.add_argument("--bbox-overlap", action="store_true",
                        help="forbid overlapping bounding boxes (both axes checked) instead of "
                             "overlapping ink pixels")
    for name, what in (("width", "horizontal"), ("height", "vertical")):
        parser.add_argument("--%s-scale" % name, nargs=2,
                            type=cli.number(0.0, exclusive_minimum=True), default=[1.0, 1.0],
                            metavar=("MIN", "MAX"), help="range of each digit's %s scale" % what)
    parser.add_argument("--rotation", type=cli.number(), nargs=2, default=[0.0, 0.0],
                        metavar=("MIN", "MAX"), help="range of each digit's rotation in degrees "
                                                     "(counterclockwise)")
    parser.add_argument("--background", metavar="PATH",
                        help="grey-scale image (any format Pillow reads, or .npy with values in "
                             "[0, 1]) at least as large as the canvas; a random window of it is "
                             "added to every image and the sum clipped to [0, 1]")
    cli.add_numeric_options(parser, [
        ("--background-max-intensity", cli.number(0.0, 1.0), 0.2,
         "background pixel values are scaled to [0, this]"),
        ("--max-attempts", cli.integer(1, MAX_IMAGES), 100,
         "draws of digits per image before an impossible request is reported"),
        ("--seed", cli.integer(minimum=0), 0, "random seed (same seed, same bytes)"),
        ("--workers", cli.integer(1, MAX_WORKERS), min(os.cpu_count() or 1, MAX_WORKERS),
         "worker processes (the output does not depend on it)"),
    ])
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def _range(name, values, low=None):
    lo, hi = float(values[0]), float(values[1])
    if lo > hi:
        raise cli.UserError("--%s: MIN %g is larger than MAX %g" % (name, lo, hi))
    if low is not None and lo <= low:
        raise cli.UserError("--%s: values must be > %g, got %g" % (name, low, lo))
    return lo, hi


def options_from_args(args):
    """Validates what the parser's ranges cannot and returns the generator's Options."""
    if args.min_digits > args.max_digits:
        raise cli.UserError("--min-digits %d is more than --max-digits %d"
                            % (args.min_digits, args.max_digits))
    if 2 * args.canvas_margin >= min(args.height, args.width):
        raise cli.UserError("--canvas-margin %d leaves no room on a %dx%d canvas"
                            % (args.canvas_margin, args.height, args.width))
    background = None
    if args.background:
        background = dataset_writer.load_background(
            args.background, args.background_max_intensity, args.height, args.width)
    return gen.default_options(
        height=args.height, width=args.width, digit_gap=args.digit_gap,
        canvas_margin=args.canvas_margin, bbox_overlap=args.bbox_overlap,
        width_scale=_range("width-scale", args.width_scale, low=0.0),
        height_scale=_range("height-scale", args.height_scale, low=0.0),
        rotation=_range("rotation", args.rotation), background=background,
        max_attempts=args.max_attempts)


def run(args):
    """Generates the data set; returns the exit status (a UserError on bad input)."""
    options = options_from_args(args)
    mirrors = mnist.MIRRORS if args.mnist_mirror is None else tuple(args.mnist_mirror)
    data = mnist.load(args.mnist_dir, mirrors=mirrors)
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as e:
        raise cli.UserError("cannot create output folder %s (%s)" % (args.output_dir, e))
    written = dataset_writer.generate(
        data, options, args.output_dir, args.images_per_digit, args.test_set_size,
        args.max_digits, args.seed, args.workers, args.quiet, args.min_digits)
    if not args.quiet:
        for name, count in written.items():
            sys.stderr.write("multi_mnist: wrote %d records to %s\n"
                             % (count, os.path.join(args.output_dir, name)))
    return 0


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
