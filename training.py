"""Trains AIR on multi-MNIST: checkpoints, TensorBoard summaries, held-out accuracy, resume.

    python training.py [--data-dir multi_mnist_data/] [--results-dir air_results/] [--resume]
                       [--max-iterations N | --epochs N] [--<any AIRConfig field> VALUE ...]
    python training.py --options-file OPTIONS.json [--config-file CONFIG.json] [--<flag> ...]

Results folder: source/ (snapshot of the running code), model/ (checkpoints + config.json),
summary/ (TensorBoard events: training under their group names, held-out under heldout/),
metrics.csv (one row per held-out evaluation). Ctrl-C / SIGTERM save a checkpoint and exit.
"""
import argparse
import os
import sys

from air import cli, devices
from air import config as air_config
from air.training import options as training_options
from air.training.run_folder import TrainingError


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train continuous-relaxation AIR on multi-MNIST.",
        formatter_class=cli.HelpFormatter)
    run = parser.add_argument_group(
        "run (air/training/options.py; docs/training.md)")
    run.add_argument("--options-file", default=None, metavar="PATH",
                     help="JSON of training options (as a run saves in model/%s); the flags "
                          "given override it" % training_options.FILENAME)
    run.add_argument("--config-file", default=None, metavar="PATH",
                     help="JSON of model configuration fields (as model/config.json); the "
                          "model flags given override it")
    training_options.add_flags(run)
    air_config.add_flags(parser)
    return parser


def options_and_config(args):
    """The TrainingOptions and the model's config fields (name -> value) the arguments ask for:
    each file's values, then the flags given on top. TrainingError names a bad file or flag."""
    base = _read_file("--options-file", args.options_file, training_options.TrainingOptions)
    config = _read_file("--config-file", args.config_file, air_config.AIRConfig)
    config_fields = config.to_dict() if config is not None else {}
    try:
        options = training_options.from_args(args, base)
    except ValueError as error:
        raise TrainingError(error)
    return options, dict(config_fields, **air_config.overrides_from_args(args))


def _read_file(flag, path, kind):
    """``kind.load(path)``, None without a path; a bad file is a TrainingError naming it."""
    if path is None:
        return None
    try:
        return kind.load(path)
    except (ValueError, OSError) as error:
        raise TrainingError("%s %s: %s" % (flag, path, cli.first_line(error)))


def run(args):
    """Checks the options, then trains (air/training/train_loop.py); TrainingError for problems the user
    can fix. Model flags AIRConfig refuses are named before anything is written."""
    options, config_fields = options_and_config(args)
    if os.path.exists(options.results_dir) and not os.path.isdir(options.results_dir):
        raise TrainingError("--results-dir %s is a file, not a folder" % options.results_dir)
    from air.training import train_loop  # Imports TensorFlow: after the checks above.
    train_loop.train(options, config_fields)
    return 0


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
