"""Scores a trained AIR model on a held-out record file: counts, boxes, ELBO and log p(x) bound.

    python evaluate.py [--model-dir model/] [--data multi_mnist_data/test.tfrecords]
                       [--json report.json] [--batch-size 500]
                       [--samples 200] [--importance-samples K] [--seed 0] [--max-steps N]
                       [--z-pres-log-odds]

--model-dir is the ``model/`` folder of a training run (its newest checkpoint and the
config.json beside it), a training results folder, or one checkpoint prefix such as
``air_results/model/model.ckpt-20000``. Counts and boxes come from test mode (z_pres rounded,
posterior means); the ELBO (from --samples samples per image) and, with --importance-samples,
the importance-weighted bound on log p(x) are those of the sampled discrete model at the final
z_pres prior (air/evaluation/likelihood.py), each with its standard error over images. Prints a short
table; --json also writes the report with the keys of ``air.evaluation.heldout.REPORT_KEYS``.
--max-steps runs the model with another number of steps than it trained with: one above the
largest count of the file lets it count images with more digits than it was trained on (and
also count one too many). --z-pres-log-odds adds the posterior z_pres log-odds of each step by
true count (key ``z_pres_log_odds``): how far a presence saturated at 0 or 1 is from turning.
"""
import argparse
import os
import sys

from air import cli

# Samples per image of the ELBO: enough for a standard error well under a nat on the default
# held-out set, although the log weights are heavy-tailed (docs/history.md has the figures).
DEFAULT_ELBO_SAMPLES = 200


def build_parser():
    parser = argparse.ArgumentParser(
        description="Evaluate a trained AIR checkpoint on a multi-MNIST record file: count "
                    "accuracy, confusion matrix, IoU of boxes matched to the true digits, and the "
                    "sampled ELBO and importance-weighted bound on log p(x) of the discrete "
                    "model at the final z_pres prior, with standard errors over images.",
        formatter_class=cli.HelpFormatter)
    parser.add_argument("--model-dir", default="model/",
                        help="model folder with a `checkpoint` file and config.json (a training "
                             "results folder or a checkpoint prefix also work)")
    parser.add_argument("--data", default="multi_mnist_data/test.tfrecords",
                        help="record file to evaluate on (written by multi_mnist.py)")
    parser.add_argument("--json", default=None, metavar="OUT",
                        help="also write the report as JSON to this file")
    parser.add_argument("--batch-size", type=cli.integer(minimum=1), default=500,
                        help="images per forward pass")
    parser.add_argument("--samples", type=cli.integer(minimum=1), default=DEFAULT_ELBO_SAMPLES,
                        metavar="N", help="samples per image of the Monte Carlo ELBO")
    parser.add_argument("--importance-samples", type=cli.integer(minimum=1), default=None,
                        metavar="K",
                        help="also the importance-weighted bound on log p(x) from K samples per "
                             "image (they share the ELBO's draws: max(N, K) samples in all)")
    parser.add_argument("--seed", type=cli.integer(0, cli.MAX_SEED), default=0,
                        help="seed of the sampling: the same command gives the same numbers (to "
                             "float32 rounding)")
    parser.add_argument("--max-steps", type=cli.integer(minimum=1), default=None, metavar="N",
                        help="steps of the model at test time (default: the ones it trained "
                             "with); say 4 to count 3-digit images with a model trained on 0-2")
    parser.add_argument("--z-pres-log-odds", action="store_true",
                        help="also report the posterior z_pres log-odds of each step by true "
                             "count (median, min and max over the images that attempted it): "
                             "where a presence rounds to 0 or 1, how saturated it is")
    return parser


def _whole_number(value, flag, minimum, maximum=None):
    """Takes a count given to ``evaluate`` (int or text) to an int in range; a UserError
    otherwise (the same rule as the command-line flag)."""
    if isinstance(value, bool):
        value = repr(value)
    try:
        return cli.integer(minimum, maximum)(str(value))
    except argparse.ArgumentTypeError as error:
        raise cli.UserError("%s: %s" % (flag, error))


def check_counts(elbo_samples, importance_samples, seed):
    """Takes (N, K or None, seed), as text or ints, to ints; a UserError when out of range."""
    return (_whole_number(elbo_samples, "--samples", 1),
            None if importance_samples is None else
            _whole_number(importance_samples, "--importance-samples", 1),
            _whole_number(seed, "--seed", 0, cli.MAX_SEED))


def evaluate(model_dir, data_path, batch_size=500, elbo_samples=DEFAULT_ELBO_SAMPLES,
             importance_samples=None, seed=0, max_steps=None, with_log_odds=False):
    """Takes a model folder (or checkpoint) and a record file to (report dict, checkpoint, step),
    with the model's own max_steps or ``max_steps`` (``with_log_odds``: HeldOutEvaluator.report).

    Raises a UserError for inputs that cannot be evaluated.
    """
    # Checked before TensorFlow is imported, so the commonest mistakes fail at once.
    elbo_samples, importance_samples, seed = check_counts(elbo_samples, importance_samples, seed)
    batch_size = _whole_number(batch_size, "--batch-size", 1)
    if max_steps is not None:
        max_steps = _whole_number(max_steps, "--max-steps", 1)
    if not os.path.exists(model_dir) and not os.path.isfile(model_dir + ".index"):
        raise cli.UserError("model folder or checkpoint %s does not exist" % model_dir)
    if not os.path.isfile(data_path):
        raise cli.UserError("data file %s not found (make it with `make data` or "
                            "multi_mnist.py)" % data_path)

    tf = cli.import_tensorflow()
    from air.data import records
    from air.training.checkpoints import checkpoint_step, find_checkpoint, load_config, restore_variables
    from air.evaluation.heldout import HeldOutEvaluator

    checkpoint, config_path = find_checkpoint(model_dir)
    config = load_config(config_path)
    if max_steps is not None:
        config = config.replace(max_steps=max_steps)
    step = checkpoint_step(checkpoint)
    try:
        height, width = records.image_shape(data_path)
    except (tf.errors.OpError, ValueError, IOError) as error:
        raise cli.UserError("%s is not a readable record file: %s" % (
            data_path, cli.first_line(error)))
    mismatch = records.shape_mismatch(data_path, (height, width),
                                      (config.canvas_height, config.canvas_width))
    if mismatch:
        raise cli.UserError("%s (%s)" % (mismatch, config_path))

    with tf.Graph().as_default():
        # The plug-in ELBO uses the z_pres prior of the checkpoint's iteration (the figure
        # training.py reported for it); the sampled ELBO and the IWAE bound use the end of the
        # schedule.
        global_step = None if step is None else tf.constant(step, tf.int64)
        evaluator = HeldOutEvaluator(config, data_path, batch_size, global_step, seed=seed)
        from air import devices
        with tf.Session(config=devices.session_config()) as session:
            restore_variables(session, checkpoint)
            try:
                report = evaluator.report(session, elbo_samples, importance_samples,
                                          with_log_odds)
            except tf.errors.OpError as error:
                raise cli.UserError("cannot read %s: %s" % (data_path, cli.first_line(error)))
            except ValueError as error:  # An empty file.
                raise cli.UserError(error)
    return report, checkpoint, step


def run(args):
    """Evaluates, prints the table and writes the JSON report (a UserError on bad input)."""
    # Checked first: an hour of evaluation should not end in an unwritable path.
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise cli.UserError("cannot write %s: its folder does not exist" % args.json)
    if args.json and os.path.isdir(args.json):
        raise cli.UserError("cannot write %s: it is a folder (give a file name)" % args.json)
    report, checkpoint, step = evaluate(args.model_dir, args.data, args.batch_size,
                                        args.samples, args.importance_samples, args.seed,
                                        args.max_steps, args.z_pres_log_odds)
    from air.evaluation import heldout
    print(heldout.format_report(report, checkpoint, step, args.data), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            f.write(heldout.report_json(report))
        print("wrote %s" % args.json)
    return 0


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
