"""Exporting a training run's weights (no optimiser slots) as a small model folder."""
import os
import shutil

import tensorflow.compat.v1 as tf

from air.air_model import AIRModel
from air.config import CONFIG_FILENAME
from air.inference import SCOPE, find_checkpoint

EXPORT_NAME = "model.ckpt"


def export_weights(model_dir, output_dir, checkpoint=None):
    """Copies the model weights and global step of a checkpoint into a fresh model folder.

    ``model_dir`` is a training run's model folder (its latest checkpoint, or ``checkpoint``
    if given, is read); ``output_dir`` receives ``model.ckpt-STEP``, a ``checkpoint`` file
    with a relative path (the folder can be moved) and config.json. Returns the new prefix.
    """
    config, latest = find_checkpoint(model_dir)
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [None, config.canvas_height, config.canvas_width])
        AIRModel(images, config, training=False, scope=SCOPE)
        global_step = tf.train.get_or_create_global_step()
        saver = tf.train.Saver(tf.trainable_variables() + [global_step],
                               save_relative_paths=True)
        with tf.Session() as session:
            saver.restore(session, checkpoint or latest)
            os.makedirs(output_dir, exist_ok=True)
            exported = saver.save(session, os.path.join(output_dir, EXPORT_NAME),
                                  global_step=int(session.run(global_step)),
                                  write_meta_graph=False)
    shutil.copyfile(os.path.join(model_dir, CONFIG_FILENAME),
                    os.path.join(output_dir, CONFIG_FILENAME))
    return exported
