"""Trains AIR on multi-MNIST: checkpoints, TensorBoard summaries, held-out accuracy, resume.

    python training.py [--data-dir multi_mnist_data/] [--results-dir air_results/] [--resume]
                       [--max-iterations N | --epochs N] [--<any AIRConfig field> VALUE ...]

Results folder: source/ (snapshot of the running code), model/ (checkpoints + config.json),
summary/ (TensorBoard events: training under their group names, held-out under heldout/),
metrics.csv (one row per held-out evaluation). Ctrl-C / SIGTERM save a checkpoint and exit.
"""
import argparse
import os
import sys

from air import cli, devices
from air import config as air_config
from air.training.run_folder import TrainingError

MAX_THREADS = 1024


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train continuous-relaxation AIR on multi-MNIST.",
        formatter_class=cli.HelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--data-dir", default="multi_mnist_data/",
                     help="folder with train.tfrecords and test.tfrecords (multi_mnist.py)")
    run.add_argument("--results-dir", default="air_results/", help="where everything is written")
    run.add_argument("--resume", action="store_true",
                     help="continue from the latest checkpoint in --results-dir")
    positive = cli.integer(minimum=1)
    cli.add_numeric_options(run, [
        ("--epochs", cli.number(0.0, exclusive_minimum=True), 300, "passes over the training set"),
        ("--max-iterations", positive, None,
         "stop after this many iterations (overrides --epochs)"),
        ("--seed", cli.integer(0, cli.MAX_SEED), None, "graph, shuffle and sampler seed"),
        ("--eval-every", positive, 1000, "iterations between held-out evaluations"),
        ("--eval-batch-size", positive, 500,
         "images per forward pass of the held-out evaluation"),
        ("--heldout-elbo-samples", positive, 4,
         "samples per held-out image of the sampled ELBO of the discrete model at the final "
         "z_pres prior (metrics.csv heldout_discrete_elbo_final_prior)", "N")]
        + [("--%s-every" % group, cli.integer(minimum=0), default,
            "iterations between %s summaries (0: none)" % group)
           for group, default in (("scalars", 50), ("variables", 250), ("images", 500),
                                  ("gradients", 100))]
        + [("--save-every", positive, 10000, "iterations between checkpoints"),
           ("--keep-checkpoints", positive, 5, "newest checkpoints kept"),
           ("--progress-seconds", cli.number(minimum=0.0), 5.0, "seconds between progress lines"),
           ("--max-skipped-in-a-row", positive, 100,
            "stop when this many updates in a row had a non-finite loss"),
           ("--threads", cli.integer(0, MAX_THREADS), 0,
            "TensorFlow intra/inter-op threads (0: TensorFlow's choice)"),
           ("--stop-at-accuracy", cli.number(0.0, 1.0, exclusive_minimum=True), None,
            "stop once held-out count accuracy has been >= A at --patience evaluations in a row "
            "(resumed runs count their earlier evaluations)", "A"),
           ("--patience", positive, 3,
            "evaluations in a row at --stop-at-accuracy before stopping"),
           ("--gradient-variance-draws", cli.integer(minimum=0), 20,
            "draws of the z_pres network's gradient on one fixed training batch at every "
            "held-out evaluation, for its variance per estimator (metrics.csv "
            "z_pres_gradient_variance_*; 0: not measured; at least 2 to measure)", "M")])

    devices.add_options(run)
    air_config.add_flags(parser)
    return parser


def run(args):
    """Checks the options, then trains (air/training/train_loop.py); TrainingError for problems the user
    can fix. Model flags AIRConfig refuses are named before anything is written."""
    if os.path.exists(args.results_dir) and not os.path.isdir(args.results_dir):
        raise TrainingError("--results-dir %s is a file, not a folder" % args.results_dir)
    air_config.overrides_from_args(args)
    from air.training import train_loop  # Imports TensorFlow: after the checks above.
    train_loop.train(args)
    return 0


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
