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

from air import cli
from air import config as air_config
from air.run_folder import TrainingError

MAX_SEED = 2 ** 31 - 1  # numpy's and TensorFlow's seeds must fit
MAX_THREADS = 1024


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train continuous-relaxation AIR on multi-MNIST.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--data-dir", default="multi_mnist_data/",
                     help="folder with train.tfrecords and test.tfrecords (multi_mnist.py)")
    run.add_argument("--results-dir", default="air_results/", help="where everything is written")
    run.add_argument("--resume", action="store_true",
                     help="continue from the latest checkpoint in --results-dir")
    run.add_argument("--epochs", type=cli.number(0.0, exclusive_minimum=True), default=300,
                     help="passes over the training set")
    run.add_argument("--max-iterations", type=cli.integer(minimum=1), default=None,
                     help="stop after this many iterations (overrides --epochs)")
    run.add_argument("--seed", type=cli.integer(0, MAX_SEED), default=None,
                     help="graph, shuffle and sampler seed")
    run.add_argument("--eval-every", type=cli.integer(minimum=1), default=1000,
                     help="iterations between held-out evaluations")
    run.add_argument("--eval-batch-size", type=cli.integer(minimum=1), default=500,
                     help="images per forward pass of the held-out evaluation")
    run.add_argument("--heldout-elbo-samples", type=cli.integer(minimum=1), default=4,
                     metavar="N",
                     help="samples per held-out image of the sampled ELBO of the discrete model "
                          "at the final z_pres prior (metrics.csv heldout_discrete_elbo_final_prior)")
    for group, default in (("scalars", 50), ("variables", 250), ("images", 500),
                           ("gradients", 100)):
        run.add_argument("--%s-every" % group, type=cli.integer(minimum=0), default=default,
                         help="iterations between %s summaries (0: none)" % group)
    run.add_argument("--save-every", type=cli.integer(minimum=1), default=10000,
                     help="iterations between checkpoints")
    run.add_argument("--keep-checkpoints", type=cli.integer(minimum=1), default=5,
                     help="newest checkpoints kept")
    run.add_argument("--progress-seconds", type=cli.number(minimum=0.0), default=5.0,
                     help="seconds between progress lines")
    run.add_argument("--max-skipped-in-a-row", type=cli.integer(minimum=1), default=100,
                     help="stop when this many updates in a row had a non-finite loss")
    run.add_argument("--threads", type=cli.integer(0, MAX_THREADS), default=0,
                     help="TensorFlow intra/inter-op threads (0: TensorFlow's choice)")
    run.add_argument("--stop-at-accuracy", type=cli.number(0.0, 1.0, exclusive_minimum=True),
                     default=None, metavar="A",
                     help="stop once held-out count accuracy has been >= A at --patience "
                          "evaluations in a row (resumed runs count their earlier evaluations)")
    run.add_argument("--patience", type=cli.integer(minimum=1), default=3,
                     help="evaluations in a row at --stop-at-accuracy before stopping")

    air_config.add_flags(parser)
    return parser


def run(args):
    """Checks the options, then trains (air/train_loop.py); TrainingError for problems the user
    can fix. Model flags AIRConfig refuses are named before anything is written."""
    if os.path.exists(args.results_dir) and not os.path.isdir(args.results_dir):
        raise TrainingError("--results-dir %s is a file, not a folder" % args.results_dir)
    air_config.overrides_from_args(args)
    from air import train_loop  # Imports TensorFlow: after the checks above.
    train_loop.train(args)
    return 0


def main(argv=None):
    return cli.main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
