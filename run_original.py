"""Trains the original project's code (github.com/aakhundov/tf-attend-infer-repeat) on this
repository's data, unchanged, and tabulates its test-set summaries.

    python run_original.py --original-dir ../tf-attend-infer-repeat [--results-dir runs/original-code]
                           [--data-dir multi_mnist_data] [--max-iterations 5000] [--seed 1]
                           [--threads 1] [--mask-transformer-residues] [--overwrite]
    python run_original.py --tabulate-only --results-dir runs/original-code

Needs TensorFlow 1.x (stack (a)): the original code imports tf.contrib. Writes, in the results
folder: code/ (the original's files it ran, with links to the data), original/ (its own results:
TensorBoard summaries, parameters every 10,000 iterations), original.log (its prints),
metrics.csv (its test-set accuracies under training.py's column names, so
`charts.py --results-dir RESULTS --compare OUR_RUN` draws both) and summary.md (a table every
--table-every iterations). What is changed around the original's graph, and why, is listed in
air/experiments/original_bootstrap.py; the graph itself is untouched unless --mask-transformer-residues.
"""
import argparse
import os
import sys

from air import cli
from air.experiments import original_code


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train the original AIR code (a clone of aakhundov/tf-attend-infer-repeat) "
                    "on this repository's multi-MNIST records, unchanged but for session "
                    "options, seeds and a step limit, and tabulate its test-set summaries.",
        formatter_class=cli.HelpFormatter)
    parser.add_argument("--original-dir", default=None,
                        help="a clone of github.com/aakhundov/tf-attend-infer-repeat "
                             "(required unless --tabulate-only)")
    parser.add_argument("--results-dir", default="runs/original-code",
                        help="where the run's files go")
    parser.add_argument("--data-dir", default="multi_mnist_data",
                        help="folder with train.tfrecords and test.tfrecords (multi_mnist.py)")
    parser.add_argument("--max-iterations", type=cli.integer(1), default=5000,
                        help="training iterations (the original writes its test-set summaries "
                             "every 50)")
    parser.add_argument("--seed", type=cli.integer(0, cli.MAX_SEED), default=1,
                        help="graph-level and numpy seed (the input queue still shuffles "
                             "nondeterministically)")
    parser.add_argument("--threads", type=cli.integer(1), default=1,
                        help="TensorFlow threads (intra- and inter-op)")
    parser.add_argument("--mask-transformer-residues", action="store_true",
                        help="zero the original transformer's output where its interpolation "
                             "clips (0 there in exact arithmetic; float32 leaves residues)")
    parser.add_argument("--progress-seconds", type=cli.number(0.0), default=60.0,
                        help="seconds between progress lines")
    parser.add_argument("--table-every", type=cli.integer(50), default=500,
                        help="iterations between rows of summary.md (a multiple of 50, the "
                             "original's summary interval)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in --results-dir (the original cannot "
                             "resume)")
    parser.add_argument("--tabulate-only", action="store_true",
                        help="only rewrite metrics.csv and summary.md from the summaries")
    return parser


def run(args):
    """Trains (unless --tabulate-only), then tabulates; returns the training's exit status."""
    if args.table_every % 50:
        raise cli.UserError("--table-every must be a multiple of 50, got %d" % args.table_every)
    status = 0
    if not args.tabulate_only:
        if args.original_dir is None:
            raise cli.UserError("--original-dir is required (or give --tabulate-only)")
        code_dir = original_code.prepare(args.original_dir, args.data_dir, args.results_dir,
                                         args.overwrite)
        command = original_code.child_command(
            code_dir, args.results_dir, args.max_iterations, args.seed, args.threads,
            args.mask_transformer_residues, args.progress_seconds, quiet=not args.verbose)
        status = original_code.run_child(command, os.path.join(args.results_dir, "original.log"),
                                         quiet=not args.verbose)
    elif not os.path.isdir(os.path.join(args.results_dir, "original")):
        raise cli.UserError("%s holds no run of the original code" % args.results_dir)
    rows = original_code.tabulate(args.results_dir, args.table_every,
                                  "The original code: %s" % os.path.normpath(args.results_dir))
    print("run_original: %d test-set summaries, last at iteration %s; wrote %s and %s" % (
        len(rows), rows[-1]["iteration"] if rows else "-",
        os.path.join(args.results_dir, "metrics.csv"),
        os.path.join(args.results_dir, "summary.md")), flush=True)
    if status != 0:
        print("error: the original code exited with status %d (its output: %s)" % (
            status, os.path.join(args.results_dir, "original.log")), file=sys.stderr, flush=True)
    return status


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
