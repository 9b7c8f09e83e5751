"""Exports the weights of a training run (no optimiser slots) as a model folder.

    python export_model.py --results-dir air_results/ --output model/
"""
import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Copy a training run's latest (or a chosen) checkpoint's model weights and "
                    "config.json into a small model folder for demo.py, embeddings.py, evaluate.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--results-dir", default="air_results/",
                        help="training results folder (its model/ subfolder is read)")
    parser.add_argument("--checkpoint", default=None,
                        help="a checkpoint prefix of that run to export instead of the latest one")
    parser.add_argument("--output", default="model/", help="model folder to write")
    args = parser.parse_args(argv)
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    tf.logging.set_verbosity(tf.logging.ERROR)
    from air.checkpoints import CheckpointError, export_weights
    try:
        exported = export_weights(os.path.join(args.results_dir, "model"), args.output,
                                  args.checkpoint)
    except CheckpointError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    size = sum(os.path.getsize(os.path.join(args.output, f)) for f in os.listdir(args.output))
    print("exported %s (%.1f MB in %s)" % (exported, size / 1e6, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
