"""The test-mode model of a model folder: building it, loading it for predictions, saving and
exporting its weights.

A model folder holds ``config.json`` and TensorFlow checkpoints (``model.ckpt-STEP``); finding,
reading and restoring the files is air/training/checkpoints.py's job. ``LoadedModel`` builds the model
once, in its own ``tf.Graph``, on a placeholder of any batch size, so the demo can call
``predict`` many times a second and scripts can load several models side by side.
"""
import os
import shutil

import numpy as np

from air.training.checkpoints import (CHECKPOINT_PREFIX, CheckpointError, checkpoint_step,
                             find_checkpoint, load_config, model_folder, read_config,
                             restore_variables)
from air import devices
from air.config import CONFIG_FILENAME

# TensorFlow is imported inside the functions that need it; air/training/checkpoints.py reads a model
# folder without it, so a script can reject a wrong folder before TensorFlow's start-up.

SCOPE = "air"


def build_test_model(config, global_step=None, batch_size=None, name=None):
    """Builds the test-mode AIRModel (z_pres rounded, posterior means) on a float32 placeholder
    [batch_size, H, W] in the current graph; returns (placeholder, model).

    ``global_step`` (a tensor) sets the z_pres prior of the ELBO; without it the prior is at
    the end of the schedule. The variables are those of training, in scope ``SCOPE``.
    """
    import tensorflow.compat.v1 as tf
    from air.model.air_model import AIRModel
    images = tf.placeholder(tf.float32, [batch_size, config.canvas_height, config.canvas_width],
                            name=name)
    return images, AIRModel(images, config, training=False, global_step=global_step, scope=SCOPE)


# The outputs of a test-mode model by name (see LoadedModel.predict for their shapes): what
# the demo, the embeddings and the held-out evaluation read.
TEST_MODE_OUTPUTS = ("digit_count", "z_pres", "z_pres_probability", "boxes", "live", "windows",
                     "reconstructions", "canvas", "negative_elbo", "z_what_mean", "scale",
                     "shift")


def test_mode_outputs(model, names=TEST_MODE_OUTPUTS):
    """The tensors of the ``names`` outputs (TEST_MODE_OUTPUTS) of a test-mode AIRModel, as a
    dict in that order; an output that needs an op of its own gets it only when named."""
    import tensorflow.compat.v1 as tf
    steps = model.steps
    tensors = {
        "digit_count": lambda: model.digit_count,
        "z_pres": lambda: steps.z_pres,
        "z_pres_probability": lambda: tf.sigmoid(steps.z_pres_log_odds),
        "boxes": lambda: model.boxes,
        "live": lambda: steps.live,
        "windows": lambda: steps.window,
        "reconstructions": lambda: steps.reconstruction,
        "canvas": lambda: model.canvas,
        "negative_elbo": lambda: model.negative_elbo,
        "z_what_mean": lambda: steps.z_what_mean,
        "scale": lambda: steps.scale,
        "shift": lambda: steps.shift,
    }
    unknown = sorted(set(names) - set(tensors))
    if unknown:
        raise ValueError("unknown test-mode output(s): %s" % ", ".join(unknown))
    return {name: tensors[name]() for name in TEST_MODE_OUTPUTS if name in names}


class LoadedModel:
    """A test-mode AIRModel restored from a model folder, in its own graph and session.

    Args:
        model_dir: folder with config.json and checkpoints (training.py's RESULTS_DIR/model; a
            results folder or a checkpoint prefix also works, see air/training/checkpoints.py).
        checkpoint: a specific checkpoint prefix instead of the latest one (the config is still
            the one of ``model_dir``).
        threads: intra- and inter-op threads of the session (0: TensorFlow's choice).

    The z_pres prior used by the ELBO is the one at the checkpoint's training iteration (as in
    the held-out evaluation during training), or the end of the schedule if it is unrecorded.
    Raises CheckpointError (air/training/checkpoints.py) for a missing or incompatible folder.
    """

    def __init__(self, model_dir, checkpoint=None, threads=0):
        import tensorflow.compat.v1 as tf
        self.config = read_config(model_dir)  # Config errors first, as the scripts report them.
        self.checkpoint = checkpoint or find_checkpoint(model_dir)[0]
        self.step = checkpoint_step(self.checkpoint)
        config = self.config
        self.graph = tf.Graph()
        with self.graph.as_default():
            step = None if self.step is None else tf.constant(self.step, tf.int64)
            self.images, self.model = build_test_model(config, step, name="images")
            variables = tf.global_variables(scope=SCOPE)
            self._fetches = test_mode_outputs(self.model)
        self.session = tf.Session(graph=self.graph, config=devices.session_config(threads))
        # Restored inside the graph: under TF 2 without disable_v2_behavior() the Saver would
        # otherwise take the eager path and reject these graph variables.
        with self.graph.as_default():
            try:
                restore_variables(self.session, self.checkpoint, variables)
            except CheckpointError:
                self.session.close()
                raise
        self.graph.finalize()  # Nothing is added after loading: a refresh only runs the graph.

    @property
    def canvas_shape(self):
        return self.config.canvas_height, self.config.canvas_width

    def predict(self, images):
        """Takes images [B, H, W] (or one [H, W]) in [0, 1] to a dict of numpy arrays.

        Keys (T = max_steps, w = window size, L = z_what size): digit_count [B]; z_pres [B, T]
        (rounded) and z_pres_probability [B, T] (the posterior before rounding); boxes
        [B, T, 4] in pixels (x_min, y_min, width, height); live [B, T]; windows and
        reconstructions [B, T, w, w] (the crop the model saw and its decoding); canvas
        [B, H, W]; negative_elbo [B]; z_what_mean [B, T, L]; scale [B, T]; shift [B, T, 2].
        A single [H, W] image gives the same keys without the batch dimension.
        """
        images = np.asarray(images, dtype=np.float32)
        single = images.ndim == 2
        if single:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != self.canvas_shape:
            raise ValueError("images must be [B, %d, %d] or [%d, %d], got shape %s"
                             % (self.canvas_shape * 2 + (images.shape,)))
        result = self.session.run(self._fetches, {self.images: np.clip(images, 0.0, 1.0)})
        if single:
            result = {name: value[0] for name, value in result.items()}
        return result

    def predict_batches(self, images, batch_size=500):
        """Like ``predict`` for many images [N, H, W], run ``batch_size`` at a time."""
        parts = [self.predict(images[i:i + batch_size])
                 for i in range(0, len(images), batch_size)]
        if not parts:
            return self.predict(np.zeros((0,) + self.canvas_shape, np.float32))
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def save_untrained_model(model_dir, config, seed=0):
    """Writes a model folder (config.json + model.ckpt-0) of freshly initialised weights.

    Returns the checkpoint prefix. Inference costs the same as with trained weights, so this
    serves benchmarks and tests that need a model folder without training one.
    """
    import tensorflow.compat.v1 as tf
    os.makedirs(model_dir, exist_ok=True)
    config.save(os.path.join(model_dir, CONFIG_FILENAME))
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        build_test_model(config)
        saver = tf.train.Saver(tf.global_variables(scope=SCOPE), save_relative_paths=True)
        with tf.Session(config=devices.session_config()) as session:
            session.run(tf.global_variables_initializer())
            return saver.save(session, os.path.join(model_dir, CHECKPOINT_PREFIX), global_step=0)


def export_weights(model_dir, output_dir, checkpoint=None):
    """Copies the model weights and global step of a checkpoint into a fresh model folder.

    ``model_dir`` is a training run's model (or results) folder; its latest checkpoint, or
    ``checkpoint`` if given, is read. ``output_dir`` receives ``model.ckpt-STEP`` (no optimiser
    slots), a ``checkpoint`` index with a relative path (the folder can be moved) and
    config.json. Returns the new prefix; raises CheckpointError for an unusable model folder.
    """
    import tensorflow.compat.v1 as tf
    # Only the chosen checkpoint is read through: the latest may be damaged when it is not it.
    chosen = find_checkpoint(checkpoint or model_dir)[0]
    config_path = os.path.join(model_folder(model_dir), CONFIG_FILENAME)
    config = load_config(config_path)
    with tf.Graph().as_default():
        build_test_model(config)
        global_step = tf.train.get_or_create_global_step()
        variables = tf.trainable_variables() + [global_step]
        with tf.Session(config=devices.session_config()) as session:
            restore_variables(session, chosen, variables)
            os.makedirs(output_dir, exist_ok=True)
            saver = tf.train.Saver(variables, save_relative_paths=True)
            exported = saver.save(session, os.path.join(output_dir, CHECKPOINT_PREFIX),
                                  global_step=int(session.run(global_step)),
                                  write_meta_graph=False)
    shutil.copyfile(config_path, os.path.join(output_dir, CONFIG_FILENAME))
    return exported
