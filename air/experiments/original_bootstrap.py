"""Child process of air/experiments/original_code.py: runs the original project's training.py, unchanged.

    python air/experiments/original_bootstrap.py --code-dir DIR --results-folder DIR --max-iterations N
                                     [--seed S] [--threads T] [--mask-transformer-residues]
                                     [--quiet --cli-module PATH_OF_OUR_AIR_CLI]

Run as a script, never imported by the rest of this package: the original code has a package
named ``air`` too, so this file must not import ours (and takes its own folder off sys.path);
the one module of ours it uses, air/cli.py for a quiet start-up, it loads by the path
air/experiments/original_code.py gives it.
Only what surrounds the original's graph changes (each change is made by replacing a
TensorFlow attribute before its training.py runs):

* Every session gets the original's own ConfigProto plus: graph rewrites ``arithmetic_optimization``
  and ``constant_folding`` off, because TensorFlow (1.15, and 2.21 too) turns its
  ``log(1.0 - p + 1e-9)`` into ``log((1 + 1e-9) - p)``, -inf at p = 1 in float32 (with TF 1.15
  either rewrite alone does it); and the given number of TensorFlow threads.
* The training loop has no end but its 300 epochs: once a training step returns global step N,
  the next training step raises ``OutOfRangeError``, which the original catches as "training has
  ended", so the summaries at step N are written. SIGTERM and SIGINT end it the same way.
* Summary writers flush every 30 s and are closed at the end (the original never closes its own).
* The graph-level and numpy seeds are set.
* With --mask-transformer-residues, the spatial transformer's output is multiplied by the
  indicator of the points whose four interpolation corners all lie in the image. Elsewhere the
  original's four interpolation terms cancel in real arithmetic (the exact value is 0) but leave
  float32 residues, which its likelihood multiplies by up to 1e9 (docs/study/README.md). Off by default.

Progress lines go to stderr; the original's own prints (one line per iteration) to stdout.
"""
import argparse
import os
import runpy
import signal
import sys
import time

# A training step's fetch list holds the global step variable under this name (any scope).
GLOBAL_STEP_NAME = "global_step"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--results-folder", required=True)
    parser.add_argument("--max-iterations", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reader-threads", type=int, default=1)
    parser.add_argument("--progress-seconds", type=float, default=60.0)
    parser.add_argument("--mask-transformer-residues", action="store_true")
    parser.add_argument("--quiet", action="store_true",
                        help="TensorFlow's start-up lines and warnings off (--cli-module)")
    parser.add_argument("--cli-module", default=None,
                        help="the path of our air/cli.py, loaded by path for --quiet")
    return parser.parse_args(argv)


def session_config(tf, config, threads):
    """Takes the ConfigProto the original passes (or None) to a copy with the two graph
    rewrites that break its likelihood turned off and ``threads`` TensorFlow threads."""
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    patched = config_pb2.ConfigProto()
    if config is not None:
        patched.CopyFrom(config)
    patched.intra_op_parallelism_threads = threads
    patched.inter_op_parallelism_threads = threads
    rewrites = patched.graph_options.rewrite_options
    rewrites.arithmetic_optimization = rewriter_config_pb2.RewriterConfig.OFF
    rewrites.constant_folding = rewriter_config_pb2.RewriterConfig.OFF
    return patched


def interpolation_support(tf, height, width, theta, out_size):
    """Takes the original transformer's input size, theta (B x 6 numbers in any shape) and
    (out_height, out_width) to a float mask [B, out_height, out_width, 1]: 1 where the
    sampling point's corners floor(x), floor(x) + 1 (and the same for y) lie in the image, so
    none is clipped."""
    out_height, out_width = out_size
    xs, ys = tf.meshgrid(tf.linspace(-1.0, 1.0, out_width), tf.linspace(-1.0, 1.0, out_height))
    grid = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]), tf.ones([out_height * out_width])])
    # Any leading shape of theta, as the original reshapes it (its box drawing passes
    # [images, steps, 2, 3]).
    matrices = tf.reshape(theta, [-1, 2, 3])
    points = tf.matmul(matrices, tf.tile(grid[None], [tf.shape(matrices)[0], 1, 1]))
    # The original's own map from [-1, 1] to pixel coordinates.
    x = (points[:, 0] + 1.0) * (tf.cast(width, tf.float32) - 1.001) / 2.0
    y = (points[:, 1] + 1.0) * (tf.cast(height, tf.float32) - 1.001) / 2.0
    inside = tf.logical_and(
        tf.logical_and(x >= 0.0, tf.floor(x) + 1.0 <= tf.cast(width, tf.float32) - 1.0),
        tf.logical_and(y >= 0.0, tf.floor(y) + 1.0 <= tf.cast(height, tf.float32) - 1.0))
    return tf.reshape(tf.cast(inside, tf.float32), [-1, out_height, out_width, 1])


def masked_transformer(tf, transformer):
    """Takes the original's ``transformer(U, theta, out_size, ...)`` to the same function with
    its output zeroed where the interpolation clips (exactly 0 there in real arithmetic)."""
    def transform(U, theta, out_size, *args, **kwargs):
        output = transformer(U, theta, out_size, *args, **kwargs)
        shape = tf.shape(U)
        return output * interpolation_support(tf, shape[1], shape[2], theta, out_size)
    return transform


class TrainingStepLimit:
    """Wraps Session.run: counts training steps, prints progress, ends the loop at the limit."""

    def __init__(self, tf, max_iterations, progress_seconds, stream=sys.stderr):
        self.tf = tf
        self.max_iterations = max_iterations
        self.progress_seconds = progress_seconds
        self.stream = stream
        self.stop_reason = None
        self.step = None
        self.start = self.last_progress = None
        self.first_step = None

    def stop(self, reason):
        if self.stop_reason is None:
            self.stop_reason = reason

    def global_step_index(self, fetches):
        """The position of the global step in a training step's fetch list, else None."""
        if not isinstance(fetches, (list, tuple)):
            return None
        for index, fetch in enumerate(fetches):
            name = getattr(fetch, "name", "")
            if isinstance(name, str) and name.split(":")[0].split("/")[-1] == GLOBAL_STEP_NAME:
                return index
        return None

    def before(self, fetches):
        """Called before every run; raises OutOfRangeError to end the original's loop."""
        index = self.global_step_index(fetches)
        if index is not None and self.stop_reason is not None:
            raise self.tf.errors.OutOfRangeError(None, None, self.stop_reason)
        return index

    def after(self, index, values):
        """Called after a training step with its fetched values."""
        self.step = int(values[index])
        now = time.time()
        if self.start is None:
            self.start, self.last_progress, self.first_step = now, now, self.step
        if self.step >= self.max_iterations:
            self.stop("reached iteration %d" % self.step)
        if now - self.last_progress >= self.progress_seconds or self.stop_reason is not None:
            self.last_progress = now
            self.report(now)

    def report(self, now):
        done = self.step - self.first_step
        rate = done / max(now - self.start, 1e-9)
        left = (self.max_iterations - self.step) / rate if rate > 0 else float("inf")
        eta = "%.0f min" % (left / 60.0) if left != float("inf") else "unknown"
        print("original: iteration %d/%d, %.2f it/s, ETA %s" % (
            self.step, self.max_iterations, rate, eta), file=self.stream, flush=True)


def install(tf, options, limit):
    """Replaces tf's Session and FileWriter (both the 1.x and compat.v1 names) and seeds."""
    import numpy as np
    base_session = tf.compat.v1.Session
    base_writer = tf.compat.v1.summary.FileWriter
    writers = []

    class Session(base_session):
        def __init__(self, target="", graph=None, config=None):
            super(Session, self).__init__(target, graph, session_config(tf, config, options.threads))

        def run(self, fetches, *args, **kwargs):
            index = limit.before(fetches)
            values = super(Session, self).run(fetches, *args, **kwargs)
            if index is not None:
                limit.after(index, values)
            return values

    class FileWriter(base_writer):
        def __init__(self, logdir, graph=None, max_queue=10, flush_secs=30, **kwargs):
            super(FileWriter, self).__init__(logdir, graph=graph, max_queue=max_queue,
                                             flush_secs=flush_secs, **kwargs)
            writers.append(self)

    for module in (tf, tf.compat.v1):
        module.Session = Session
    for module in (tf.summary, tf.compat.v1.summary):
        module.FileWriter = FileWriter
    tf.compat.v1.set_random_seed(options.seed)
    np.random.seed(options.seed)
    return writers


def _load_module_file(path):
    """Loads a module of ours by path under another name (``air`` is the original's)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_ours_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    options = parse_args(argv)
    # Run by path, Python put this file's folder first on sys.path (before the original's own
    # code): it comes off, so the original's imports find only the original's modules. The
    # folder of this script is all that is looked up here, never the repository's layout.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    code_dir = os.path.abspath(options.code_dir)
    results_folder = os.path.abspath(options.results_folder)  # Before the chdir below.
    sys.path.insert(0, code_dir)
    os.chdir(code_dir)

    if options.quiet and options.cli_module:
        _load_module_file(options.cli_module).quiet_tensorflow()
    import tensorflow as tf
    limit = TrainingStepLimit(tf, options.max_iterations, options.progress_seconds)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, frame: limit.stop(
            "stopped by %s" % signal.Signals(s).name))
    writers = install(tf, options, limit)
    if options.mask_transformer_residues:
        # The original's package (from code_dir), which is also called air: imported by name so
        # that nothing mistakes it for this repository's.
        import importlib
        original_transformer = importlib.import_module("air.transformer")
        original_model = importlib.import_module("air.air_model")
        masked = masked_transformer(tf, original_transformer.transformer)
        original_transformer.transformer = original_model.transformer = masked

    sys.argv = ["training.py", "-r", results_folder, "-o", "1",
                "-t", str(options.reader_threads)]
    try:
        runpy.run_path(os.path.join(code_dir, "training.py"), run_name="__main__")
    finally:
        for writer in writers:
            writer.close()
    print("original: ended at iteration %s (%s)" % (limit.step, limit.stop_reason or
                                                    "the original's 300 epochs"),
          file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
