"""Saves a checkpoint with its test-mode outputs on fixed images, or checks that a checkpoint
restores to those outputs: run ``save`` with one TensorFlow stack and ``check`` with another.

    python tests/support/checkpoint_roundtrip.py save DIR [--model-dir MODEL] [--seed N]
    python tests/support/checkpoint_roundtrip.py check DIR [--tolerance 1e-5]

``save`` writes DIR/model.ckpt-STEP (+ the ``checkpoint`` index), DIR/config.json,
DIR/outputs.npz (the fixed input images and every test-mode output of the model) and
DIR/saved_by.json (Python and TensorFlow versions). Its weights are drawn with numpy from
``--seed`` (the same on every stack), or restored from the latest checkpoint of
``--model-dir`` (a training results' ``model/`` folder).

``check`` restores DIR's checkpoint into a freshly built test-mode model, runs it on the
saved images and compares every output: counts and masks exactly, real values within the
tolerance (absolute below 1, relative above, for the ELBO terms of ~1e3). Exit status 0
when all match, 1 when some output differs, 2 for unusable input.
"""
import argparse
import json
import os
import platform
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUTS = "outputs.npz"
SAVED_BY = "saved_by.json"
# Integer or 0/1 outputs: a difference here is a different decision, not rounding.
EXACT = ("digit_count", "live", "attempted", "z_pres")


class RoundTripError(Exception):
    """Unusable input (missing folder or file); printed as one line."""


def fixed_images(height, width, seed=0):
    """[8, H, W] float32: blurred bright squares on black (0 to 3), noise, all 0, all 1.

    The edges of the squares are blurred over a few pixels: a window cropped across a hard
    edge moves by a whole pixel value per pixel of shift, so the float rounding differences
    of two TensorFlow builds (~3e-7 in the shift) would use up most of the tolerance.
    """
    import numpy as np
    rng = np.random.RandomState(seed)
    images = np.zeros([8, height, width], np.float32)
    kernel = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    for i, count in enumerate([0, 1, 2, 3, 2]):
        for _ in range(count):
            side = rng.randint(height // 6, height // 2)
            top, left = rng.randint(0, height - side), rng.randint(0, width - side)
            images[i, top:top + side, left:left + side] = rng.uniform(0.6, 1.0)
        for axis in (0, 1):
            images[i] = np.apply_along_axis(lambda v: np.convolve(v, kernel, "same"), axis,
                                            images[i])
    images[5] = rng.rand(height, width)
    images[7] = 1.0
    return np.clip(images, 0.0, 1.0)


def build(config):
    """Test-mode model on an image placeholder; returns (placeholder, {name: output tensor})."""
    import tensorflow.compat.v1 as tf
    from air.model.air_model import AIRModel
    images = tf.placeholder(tf.float32, [None, config.canvas_height, config.canvas_width])
    global_step = tf.train.get_or_create_global_step()  # saved: it sets the z_pres prior
    model = AIRModel(images, config, training=False, global_step=global_step)
    outputs = dict(model.steps._asdict())
    for name in ("canvas", "digit_count", "boxes", "reconstruction_loss", "kl_z_pres",
                 "kl_z_where", "kl_z_what", "negative_elbo", "loss", "z_pres_prior_log_odds"):
        outputs[name] = getattr(model, name)
    return images, outputs


def numpy_weights(variables, seed):
    """Glorot-uniform weights and small non-zero biases from numpy: the same on every stack."""
    import numpy as np
    rng = np.random.RandomState(seed)
    values = []
    for variable in variables:
        shape = variable.shape.as_list()
        if variable.op.name == "global_step":
            values.append(np.int64(4321))
        elif len(shape) >= 2:
            fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            values.append(rng.uniform(-limit, limit, shape).astype(np.float32))
        else:
            values.append(rng.normal(0.0, 0.1, shape).astype(np.float32))
    return values


def save(directory, model_dir=None, seed=0):
    import numpy as np
    import tensorflow.compat.v1 as tf
    from air.config import AIRConfig, CONFIG_FILENAME
    from air.training import checkpoints

    if model_dir is not None:
        try:
            checkpoint, config_path = checkpoints.find_checkpoint(model_dir)
            config = checkpoints.load_config(config_path)
        except checkpoints.CheckpointError as error:
            raise RoundTripError(str(error))
    else:
        config = AIRConfig()
    os.makedirs(directory, exist_ok=True)
    images = fixed_images(config.canvas_height, config.canvas_width, seed)
    with tf.Graph().as_default():
        placeholder, outputs = build(config)
        variables = tf.global_variables()
        with tf.Session() as session:
            if model_dir is not None:
                checkpoints.restore_variables(session, checkpoint, variables)
            else:
                for variable, value in zip(variables, numpy_weights(variables, seed)):
                    variable.load(value, session)
            values = session.run(outputs, {placeholder: images})
            step = int(session.run(tf.train.get_global_step()))
            # Relative paths in the index: DIR can be copied or moved between environments.
            prefix = tf.train.Saver(variables, save_relative_paths=True).save(
                session, os.path.join(directory, "model.ckpt"), global_step=step)
    config.save(os.path.join(directory, CONFIG_FILENAME))
    np.savez(os.path.join(directory, OUTPUTS), images=images, **values)
    with open(os.path.join(directory, SAVED_BY), "w") as f:
        json.dump(stack_description(), f)
    print("saved %s and the outputs of %d images (%s)"
          % (prefix, len(images), describe(stack_description())))


def check(directory, tolerance=1e-5):
    """Returns the list of mismatch messages (empty when everything matches)."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    from air.config import AIRConfig, CONFIG_FILENAME

    paths = [os.path.join(directory, name) for name in (OUTPUTS, CONFIG_FILENAME, SAVED_BY)]
    for path in paths:
        if not os.path.isfile(path):
            raise RoundTripError("missing %s: run `save %s` first" % (path, directory))
    checkpoint = tf.train.latest_checkpoint(directory)
    if checkpoint is None:
        raise RoundTripError("no checkpoint in %s: run `save %s` first" % (directory, directory))
    config = AIRConfig.load(paths[1])
    with open(paths[2]) as f:
        saved_by = json.load(f)
    saved = dict(np.load(paths[0]))
    images = saved.pop("images")
    with tf.Graph().as_default():
        placeholder, outputs = build(config)
        with tf.Session() as session:
            tf.train.Saver().restore(session, checkpoint)
            values = session.run(outputs, {placeholder: images})

    problems = []
    for name in sorted(outputs):
        got, want = np.asarray(values[name]), saved.get(name)
        if want is None:
            problems.append("%s: not in the saved outputs" % name)
        elif got.shape != want.shape:
            problems.append("%s: shape %s, saved %s" % (name, got.shape, want.shape))
        elif name in EXACT:
            if not np.array_equal(got, want):
                problems.append("%s: differs at %d of %d entries" % (
                    name, int(np.sum(got != want)), got.size))
        else:
            error = np.abs(got.astype(np.float64) - want) / np.maximum(1.0, np.abs(want))
            if not np.all(error <= tolerance):  # also catches NaN
                problems.append("%s: largest difference %.3g (tolerance %g)"
                                % (name, np.nanmax(error), tolerance))
    if not problems:
        print("ok: %d outputs of %d images match within %g (saved by %s, checked by %s)"
              % (len(outputs), len(images), tolerance, describe(saved_by),
                 describe(stack_description())))
    return problems


def stack_description():
    import tensorflow as tf_module
    return {"python": platform.python_version(), "tensorflow": tf_module.__version__}


def describe(stack):
    return "Python %s, TensorFlow %s" % (stack["python"], stack["tensorflow"])


def build_parser():
    parser = argparse.ArgumentParser(
        description="Save a checkpoint with its test-mode outputs, or check that one restores "
                    "to them (run the two with different TensorFlow stacks).")
    commands = parser.add_subparsers(dest="command")
    save_parser = commands.add_parser("save", help="write checkpoint, config and outputs to DIR")
    save_parser.add_argument("directory", metavar="DIR")
    save_parser.add_argument("--model-dir", default=None,
                             help="take the weights from this model folder's latest checkpoint "
                                  "(default: numpy random weights from --seed)")
    save_parser.add_argument("--seed", type=int, default=0, help="weights and images seed")
    check_parser = commands.add_parser("check", help="restore DIR and compare the outputs")
    check_parser.add_argument("directory", metavar="DIR")
    check_parser.add_argument("--tolerance", type=float, default=1e-5,
                              help="largest difference (absolute below 1, relative above)")
    return parser


def main(argv=None):
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("error: choose a command: save or check", file=sys.stderr)
        return 2
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    tf.logging.set_verbosity(tf.logging.ERROR)
    try:
        if args.command == "save":
            save(args.directory, args.model_dir, args.seed)
            return 0
        problems = check(args.directory, args.tolerance)
    except RoundTripError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    for problem in problems:
        print("error: %s" % problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
