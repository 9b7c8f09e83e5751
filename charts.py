"""Draws the charts of training runs as PNGs: held-out accuracy, loss terms, attention samples.

    python charts.py --results-dir air_results/ [--output-dir air_results/charts]
                     [--compare other_run/ ...] [--data multi_mnist_data/test.tfrecords]

Writes to the output folder:
  accuracy.png  held-out count accuracy over iterations: all images (large panel) and the
                0-, 1- and 2-digit subsets (small panels); one line per run.
  losses.png    the loss terms of metrics.csv over iterations, one line per run.
  samples.png   held-out images from the first run's newest checkpoint: each original with
                the step windows (red, green, blue) beside its reconstruction. Skipped, with
                a message, when the run has no checkpoint or no record file is found.
Several runs: give several --results-dir folders, or --compare ones.
"""
import argparse
import os
import sys

from air import cli
from air.training import metrics_log

SAMPLES_DATA = os.path.join("multi_mnist_data", "test.tfrecords")
MAX_SAMPLES = 100  # rows of samples.png; more would make a figure too tall to look at


def build_parser():
    parser = argparse.ArgumentParser(
        description="Draw accuracy, loss and attention-sample charts (PNG) of training runs.",
        formatter_class=cli.HelpFormatter)
    parser.add_argument("--results-dir", nargs="+", required=True, metavar="DIR",
                        help="training results folder(s) (with metrics.csv); the first one is "
                             "the run whose samples are drawn")
    parser.add_argument("--compare", nargs="+", default=[], metavar="DIR",
                        help="more results folders drawn as extra lines")
    parser.add_argument("--output-dir", default=None,
                        help="where the PNGs go (default: FIRST_RESULTS_DIR/charts)")
    parser.add_argument("--data", default=None,
                        help="record file of the samples (default: multi_mnist_data/test.tfrecords "
                             "beside the results folder, else in the current folder)")
    parser.add_argument("--samples", type=cli.integer(0, MAX_SAMPLES), default=8,
                        help="attention samples to draw (0: no samples.png)")
    parser.add_argument("--dpi", type=cli.integer(10, 1000), default=100,
                        help="resolution of the PNGs in dots per inch")
    return parser


def run_labels(folders):
    """Short names of the runs: folder names, or whole paths where the names collide."""
    names = [os.path.basename(os.path.normpath(os.path.abspath(f))) for f in folders]
    return [name if names.count(name) == 1 else os.path.normpath(folder)
            for name, folder in zip(names, folders)]


def load_runs(folders):
    """Takes results folders to [(label, metrics)]; a UserError for a folder without metrics."""
    runs = []
    for folder, label in zip(folders, run_labels(folders)):
        if not os.path.isdir(folder):
            raise cli.UserError("results folder %s does not exist" % folder)
        path = os.path.join(folder, metrics_log.FILENAME)
        if not os.path.isfile(path):
            raise cli.UserError("%s has no metrics.csv (written by training.py at the first "
                                "held-out evaluation)" % folder)
        runs.append((label, metrics_log.read_columns(path)))
    return runs


def samples_data_path(results_dir, explicit):
    """The record file for the samples: --data, or the usual places; None if none exists."""
    if explicit is not None:
        if not os.path.isfile(explicit):
            raise cli.UserError("data file %s not found" % explicit)
        return explicit
    parent = os.path.dirname(os.path.normpath(os.path.abspath(results_dir)))
    for candidate in (os.path.join(parent, SAMPLES_DATA), SAMPLES_DATA):
        if os.path.isfile(candidate):
            return candidate
    return None


def draw_samples(results_dir, data_arg, count, path, dpi):
    """Writes samples.png from the run's newest checkpoint; returns a message if skipped."""
    tf = cli.import_tensorflow()
    from air.evaluation import model_folder
    from air.training import checkpoints
    from air.visualisation import plots
    from air.data import records

    model_dir = os.path.join(results_dir, "model")
    if not os.path.isdir(model_dir):
        return "samples skipped: no checkpoint in %s" % model_dir
    try:
        checkpoint, config_path = checkpoints.find_checkpoint(model_dir)
        config = checkpoints.load_config(config_path)
    except checkpoints.DamagedCheckpointError:
        raise  # Not a run without samples to draw: a fault the user must hear of.
    except checkpoints.CheckpointError as error:
        return "samples skipped: %s" % error
    data_path = samples_data_path(results_dir, data_arg)
    if data_path is None:
        return ("samples skipped: no %s beside %s or here; pass --data" % (SAMPLES_DATA,
                                                                         results_dir))
    try:
        data = records.read_records(data_path)
    except (tf.errors.OpError, ValueError, IOError) as error:
        raise cli.UserError("cannot read %s: %s" % (data_path, cli.first_line(error)))
    if len(data.images) == 0:
        return "samples skipped: %s holds no images" % data_path
    message = records.shape_mismatch(data_path, data.images.shape[1:],
                                     (config.canvas_height, config.canvas_width))
    if message:
        if data_arg is not None:
            raise cli.UserError(message)
        return "samples skipped: " + message
    chosen = plots.pick_samples(data.digits, count)
    images = data.images[chosen]
    with model_folder.LoadedModel(os.path.dirname(checkpoint), checkpoint) as model:
        inferred = model.predict(images)
    step = checkpoints.checkpoint_step(checkpoint)
    title = "%s, %s" % (os.path.basename(os.path.normpath(os.path.abspath(results_dir))),
                        "iteration %d" % step if step is not None else checkpoint)
    figure = plots.samples_figure(images, inferred["canvas"], inferred["boxes"],
                                  inferred["live"], data.digits[chosen], title=title)
    plots.save(figure, path, dpi)
    return None


def charts(results_dirs, output_dir=None, data=None, samples=8, dpi=100):
    """Draws the charts of the runs into output_dir; returns the paths written."""
    from air.visualisation import plots
    runs = load_runs(results_dirs)
    if not any(len(metrics["iteration"]) for _, metrics in runs):
        raise cli.UserError("no metrics rows yet in %s: wait for the first held-out evaluation "
                            "(--eval-every)" % ", ".join(results_dirs))
    output_dir = output_dir or os.path.join(results_dirs[0], "charts")
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for name, draw in (("accuracy.png", plots.accuracy_figure), ("losses.png", plots.loss_figure)):
        path = os.path.join(output_dir, name)
        plots.save(draw(runs), path, dpi)
        written.append(path)
    path = os.path.join(output_dir, "runs.md")
    with open(path, "w") as f:
        f.write(metrics_log.runs_table(runs))
    written.append(path)
    if samples > 0:
        path = os.path.join(output_dir, "samples.png")
        skipped = draw_samples(results_dirs[0], data, samples, path, dpi)
        if skipped:
            print(skipped, flush=True)
        else:
            written.append(path)
    return written


def run(args):
    """Draws the charts and prints what was written (a UserError on bad input)."""
    if args.output_dir and os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise cli.UserError("--output-dir %s is a file, not a folder" % args.output_dir)
    written = charts(args.results_dir + args.compare, args.output_dir, args.data,
                     args.samples, args.dpi)
    for path in written:
        print("wrote %s" % path)
        if path.endswith(".md"):
            with open(path) as f:
                print(f.read(), end="")
    return 0


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
