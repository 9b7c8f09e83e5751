"""Exports the weights of a training run (no optimiser slots) as a model folder.

    python export_model.py --results-dir air_results/ --output model/
"""
import argparse
import os
import sys

from air import cli


def build_parser():
    parser = argparse.ArgumentParser(
        description="Copy a training run's latest (or a chosen) checkpoint's model weights and "
                    "config.json into a small model folder for demo.py, embeddings.py, evaluate.py.",
        formatter_class=cli.HelpFormatter)
    parser.add_argument("--results-dir", default="air_results/",
                        help="training results folder (its model/ subfolder is read)")
    parser.add_argument("--checkpoint", default=None,
                        help="a checkpoint prefix of that run to export instead of the latest one")
    parser.add_argument("--output", default="model/", help="model folder to write")
    return parser


def run(args):
    """Exports the weights and prints what was written (a UserError on bad input)."""
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise cli.UserError("--output %s is a file, not a folder" % args.output)
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint + ".index"):
        raise cli.UserError("--checkpoint %s: no such checkpoint (expected %s.index)"
                            % (args.checkpoint, args.checkpoint))
    cli.import_tensorflow()
    from air.evaluation.model_folder import export_weights
    exported = export_weights(os.path.join(args.results_dir, "model"), args.output,
                              args.checkpoint)
    size = sum(os.path.getsize(os.path.join(args.output, f)) for f in os.listdir(args.output))
    print("exported %s (%.1f MB in %s)" % (exported, size / 1e6, args.output))
    return 0


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
