"""Scores a trained AIR model on a held-out record file: counts, boxes and ELBO.

    python evaluate.py [--model-dir model/] [--data multi_mnist_data/test.tfrecords]
                       [--json report.json] [--batch-size 500]

--model-dir is the ``model/`` folder of a training run (its newest checkpoint and the
config.json beside it), a training results folder, or one checkpoint prefix such as
``air_results/model/model.ckpt-20000``. The model runs in test mode (z_pres rounded,
posterior means). Prints a short table; --json also writes the report with the keys
images, count_accuracy, count_accuracy_by_digits, confusion, mean_iou, box_recall_iou50
and elbo (see air/evaluation.py for their definitions).
"""
import argparse
import json
import os
import re
import sys

from air import cli


class EvaluationError(cli.UserError):
    """A problem with the inputs; printed as one line."""


def build_parser():
    parser = argparse.ArgumentParser(
        description="Evaluate a trained AIR checkpoint on a multi-MNIST record file: count "
                    "accuracy, confusion matrix, IoU of boxes matched to the true digits, ELBO.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-dir", default="model/",
                        help="model folder with a `checkpoint` file and config.json (a training "
                             "results folder or a checkpoint prefix also work)")
    parser.add_argument("--data", default="multi_mnist_data/test.tfrecords",
                        help="record file to evaluate on (written by multi_mnist.py)")
    parser.add_argument("--json", default=None, metavar="OUT",
                        help="also write the report as JSON to this file")
    parser.add_argument("--batch-size", type=cli.integer(minimum=1), default=500,
                        help="images per forward pass")
    return parser


def evaluate(model_dir, data_path, batch_size=500):
    """Takes a model folder (or checkpoint) and a record file to (report dict, checkpoint, step).

    Raises EvaluationError for inputs that cannot be evaluated.
    """
    # Checked before TensorFlow is imported, so the commonest mistakes fail at once.
    if batch_size < 1:
        raise EvaluationError("--batch-size must be at least 1, got %d" % batch_size)
    if not os.path.exists(model_dir) and not os.path.isfile(model_dir + ".index"):
        raise EvaluationError("model folder or checkpoint %s does not exist" % model_dir)
    if not os.path.isfile(data_path):
        raise EvaluationError("data file %s not found (make it with `make data` or "
                              "multi_mnist.py)" % data_path)

    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    from air import records
    from air.checkpoints import (CheckpointError, checkpoint_step, find_checkpoint, load_config,
                                 restore_variables)
    from air.evaluation import HeldOutEvaluator, evaluation_report

    try:
        checkpoint, config_path = find_checkpoint(model_dir)
        config = load_config(config_path)
        step = checkpoint_step(checkpoint)
    except CheckpointError as error:
        raise EvaluationError(error)
    try:
        height, width = records.image_shape(data_path)
    except (tf.errors.OpError, ValueError, IOError) as error:
        raise EvaluationError("%s is not a readable record file: %s" % (
            data_path, str(error).strip().splitlines()[0] if str(error).strip() else error))
    if (height, width) != (config.canvas_height, config.canvas_width):
        raise EvaluationError("%s holds %dx%d images but the model expects %dx%d (%s)" % (
            data_path, height, width, config.canvas_height, config.canvas_width, config_path))

    with tf.Graph().as_default():
        # The ELBO's z_pres prior is the one of the checkpoint's iteration, as in training.
        global_step = None if step is None else tf.constant(step, tf.int64)
        evaluator = HeldOutEvaluator(config, data_path, batch_size, global_step)
        with tf.Session() as session:
            try:
                restore_variables(session, checkpoint)
            except CheckpointError as error:
                raise EvaluationError(error)
            try:
                predictions = evaluator.predict(session)
            except tf.errors.OpError as error:
                raise EvaluationError("cannot read %s: %s" % (
                    data_path, error.message.strip().splitlines()[0]))
            except ValueError as error:  # An empty file.
                raise EvaluationError(error)
    return evaluation_report(predictions, config.max_steps), checkpoint, step


def format_report(report, checkpoint=None, step=None, data_path=None):
    """Takes an evaluation report to the printed table (a string)."""
    lines = []
    if checkpoint is not None:
        lines.append("model   %s%s" % (checkpoint, "" if step is None else
                                       " (iteration %d)" % step))
    if data_path is not None:
        lines.append("data    %s (%d images)" % (data_path, report["images"]))
    confusion = report["confusion"]
    predicted = len(confusion[0])
    lines.append("")
    lines.append("digits  images  accuracy  | found: " + " ".join("%5d" % k for k in range(predicted)))
    for true_count, row in enumerate(confusion):
        images = sum(row)
        if images == 0:
            continue
        accuracy = report["count_accuracy_by_digits"].get(str(true_count), float("nan"))
        lines.append("%-6d  %6d  %8.4f  |        " % (true_count, images, accuracy)
                     + " ".join("%5d" % n for n in row))
    lines.append("all     %6d  %8.4f" % (report["images"], report["count_accuracy"]))
    lines.append("")
    lines.append("mean IoU of matched boxes        %s" % _optional(report["mean_iou"], "%.4f"))
    lines.append("true digits found at IoU >= 0.5  %s" % _optional(report["box_recall_iou50"],
                                                                  "%.4f"))
    lines.append("ELBO per image                   %.2f" % report["elbo"])
    return "\n".join(lines)


def report_json(report):
    """The report as indented JSON text, each confusion row on one line."""
    text = json.dumps(report, indent=2)
    # Innermost lists of numbers (the confusion rows) on one line each.
    return re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]",
                  lambda m: "[%s]" % ", ".join(v.strip() for v in m.group(1).split(",")),
                  text) + "\n"


def _optional(value, pattern):
    return "n/a" if value is None else pattern % value


def run(args):
    """Evaluates, prints the table and writes the JSON report (EvaluationError on bad input)."""
    # Checked first: an hour of evaluation should not end in an unwritable path.
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise EvaluationError("cannot write %s: its folder does not exist" % args.json)
    if args.json and os.path.isdir(args.json):
        raise EvaluationError("cannot write %s: it is a folder (give a file name)" % args.json)
    report, checkpoint, step = evaluate(args.model_dir, args.data, args.batch_size)
    print(format_report(report, checkpoint, step, args.data), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            f.write(report_json(report))
        print("wrote %s" % args.json)
    return 0


def main(argv=None):
    return cli.main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
