"""Model folders: a checkpoint of the model weights with its config.json beside it."""
import os
import shutil

import tensorflow.compat.v1 as tf

from air.air_model import AIRModel
from air.config import AIRConfig, CONFIG_FILENAME

EXPORT_NAME = "model.ckpt"


def checkpoint_prefix(path):
    """Takes a model folder (with a ``checkpoint`` file) or a checkpoint prefix to the prefix."""
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            raise IOError("no checkpoint in %s" % path)
        return prefix
    if tf.train.checkpoint_exists(path):
        return path
    raise IOError("no checkpoint at %s" % path)


def config_beside(prefix_or_dir):
    """The AIRConfig saved next to a checkpoint (in the same folder)."""
    folder = prefix_or_dir if os.path.isdir(prefix_or_dir) else os.path.dirname(prefix_or_dir)
    path = os.path.join(folder, CONFIG_FILENAME)
    if not os.path.isfile(path):
        raise IOError("no %s in %s" % (CONFIG_FILENAME, folder))
    return AIRConfig.load(path)


def export_weights(source, output_dir):
    """Copies the model weights (no optimiser slots) of a checkpoint into a fresh model folder.

    ``source`` is a model folder or checkpoint prefix of a training run; ``output_dir``
    receives ``model.ckpt-STEP`` (global step kept), a relative ``checkpoint`` file and
    config.json. Returns the new checkpoint prefix.
    """
    prefix = checkpoint_prefix(source)
    config = config_beside(prefix)
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [None, config.canvas_height, config.canvas_width])
        AIRModel(images, config, training=False)
        global_step = tf.train.get_or_create_global_step()
        weights = tf.trainable_variables() + [global_step]
        saver = tf.train.Saver(weights, save_relative_paths=True)
        with tf.Session() as session:
            saver.restore(session, prefix)
            step = int(session.run(global_step))
            os.makedirs(output_dir, exist_ok=True)
            exported = saver.save(session, os.path.join(output_dir, EXPORT_NAME),
                                  global_step=step, write_meta_graph=False)
    shutil.copyfile(os.path.join(os.path.dirname(prefix), CONFIG_FILENAME),
                    os.path.join(output_dir, CONFIG_FILENAME))
    return exported
