"""Writes the multi-MNIST data set: the worker pool, the progress line, and both record files.

The images themselves are air/data/generator.py's; this module runs its chunks in worker
processes (forked before TensorFlow is imported, so workers never hold it) and writes
train.tfrecords and test.tfrecords together.
"""
import collections
import multiprocessing
import os
import sys
import time

import numpy as np

from air.cli import first_line
from air.data import generator as gen

TRAIN_FILE = "train.tfrecords"
TEST_FILE = "test.tfrecords"


def load_background(path, max_intensity, height, width):
    """Loads a background as float32 in [0, max_intensity]; it must cover the canvas."""
    if not os.path.isfile(path):
        raise gen.GenerationError("--background: no such file: %s" % path)
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
        raise gen.GenerationError("--background: cannot read %s (%s)"
                                  % (path, first_line(e)))
    if values.shape[0] < height or values.shape[1] < width:
        raise gen.GenerationError("--background: %s is %dx%d, smaller than the %dx%d canvas"
                                  % (path, values.shape[0], values.shape[1], height, width))
    return (values * np.float32(max_intensity)).astype(np.float32)


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


def generate(data, options, output_dir, images_per_digit, test_set_size, max_digits, seed,
             workers=1, quiet=False, min_digits=0):
    """Generates both splits and writes their record files into ``output_dir``.

    ``images_per_digit`` training images for each digit count ``min_digits``..``max_digits``,
    and ``test_set_size`` test images balanced over them. Returns {file name: record count}.
    """
    sources = {"train": gen.Source(data.train_images, data.train_labels),
               "test": gen.Source(data.test_images, data.test_labels)}
    kinds = max_digits - min_digits + 1
    plans = [
        (TRAIN_FILE, gen.chunk_tasks(
            "train", gen.digit_counts(images_per_digit * kinds, max_digits, seed, "train",
                                      min_digits), seed)),
        (TEST_FILE, gen.chunk_tasks(
            "test", gen.digit_counts(test_set_size, max_digits, seed, "test", min_digits),
            seed)),
    ]
    if gen.transforms_enabled(options):
        import scipy.ndimage  # pylint: disable=unused-import; imported once, before the fork
    pool = None
    if workers > 1:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = context.Pool(workers, initializer=gen.init_worker, initargs=(sources, options))
    else:
        gen.init_worker(sources, options)
    total = images_per_digit * kinds + test_set_size
    progress = Progress(total, quiet=quiet)
    written = {}
    # Both files are written under temporary names and renamed together at the end, so a failed
    # run never leaves a new train file next to an old test file.
    partial = {name: os.path.join(output_dir, "." + name + ".partial") for name, _ in plans}
    try:
        from air.data import records  # Imports TensorFlow: after the fork, so workers never hold it.
        for name, tasks in plans:
            def examples():
                for chunk in _chunks(tasks, pool, 2 * workers):
                    for serialized in chunk:
                        yield serialized
                    progress.update(len(chunk))
            written[name] = records.write_examples(partial[name], examples())
        for name, _ in plans:
            os.replace(partial[name], os.path.join(output_dir, name))
        progress.close()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        for path in partial.values():
            if os.path.exists(path):
                os.remove(path)
    return written
