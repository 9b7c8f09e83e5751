"""Loading a trained model folder for inference: takes a folder written by training.py to a
ready-to-run test-mode AIR (z_pres rounded, posterior means) and images to numpy predictions.

A model folder holds ``config.json`` and TensorFlow checkpoints (``model.ckpt-STEP``). The model
is built once, in its own ``tf.Graph``, on a placeholder of any batch size, so the demo can call
``predict`` many times a second and scripts can load several models side by side.
"""
import os

import numpy as np

from air.config import AIRConfig, CONFIG_FILENAME

# TensorFlow is imported inside the functions that need it, so a script can reject a wrong
# folder at once (read_config) before paying for TensorFlow's start-up.

SCOPE = "air"


class ModelDirError(Exception):
    """The model folder is missing, incomplete or does not match its config (one-line message)."""


def read_config(model_dir):
    """Takes a model folder to its AIRConfig (no TensorFlow needed).

    Raises ModelDirError when the folder or its config.json is missing or unreadable.
    """
    if not os.path.isdir(model_dir):
        raise ModelDirError("model folder %s does not exist (train one with training.py; the "
                            "checkpoints are in RESULTS_DIR/model)" % model_dir)
    config_path = os.path.join(model_dir, CONFIG_FILENAME)
    if not os.path.isfile(config_path):
        raise ModelDirError("%s has no %s: not a model folder written by training.py"
                            % (model_dir, CONFIG_FILENAME))
    try:
        config = AIRConfig.load(config_path)
    except (ValueError, TypeError, IOError) as error:
        raise ModelDirError("incompatible %s: %s" % (config_path, error))
    return config


def find_checkpoint(model_dir):
    """Takes a model folder to (AIRConfig, latest checkpoint prefix), without building a graph.

    Raises ModelDirError when the folder, its config.json or a checkpoint is missing or unreadable.
    """
    import tensorflow.compat.v1 as tf
    config = read_config(model_dir)
    checkpoint = tf.train.latest_checkpoint(model_dir)
    if checkpoint is None:
        raise ModelDirError("%s has no checkpoint (model.ckpt-STEP files and their 'checkpoint' "
                            "index)" % model_dir)
    return config, checkpoint


def checkpoint_step(checkpoint):
    """Takes a checkpoint prefix to the training iteration it was saved at (None if unrecorded)."""
    import tensorflow.compat.v1 as tf
    reader = tf.train.load_checkpoint(checkpoint)
    if not reader.has_tensor("global_step"):
        return None
    return int(reader.get_tensor("global_step"))


def _check_variables(checkpoint, variables):
    """Raises ModelDirError unless the checkpoint holds every variable with the same shape."""
    import tensorflow.compat.v1 as tf
    try:
        saved = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as error:
        raise ModelDirError("unreadable checkpoint %s: %s" % (checkpoint, error))
    for variable in variables:
        name = variable.op.name
        shape = variable.shape.as_list()
        if name not in saved:
            raise ModelDirError("checkpoint %s lacks variable %s: it was not written by this "
                                "model with this config.json" % (checkpoint, name))
        if list(saved[name]) != shape:
            raise ModelDirError("checkpoint %s does not match config.json: %s is %s in the "
                                "checkpoint but %s in the model" % (checkpoint, name,
                                                                     list(saved[name]), shape))


class LoadedModel:
    """A test-mode AIRModel restored from a model folder, in its own graph and session.

    Args:
        model_dir: folder with config.json and checkpoints (training.py's RESULTS_DIR/model).
        checkpoint: a specific checkpoint prefix instead of the latest one.
        threads: intra- and inter-op threads of the session (0: TensorFlow's choice).

    The z_pres prior used by the ELBO is the one at the checkpoint's training iteration (as in
    the held-out evaluation during training), or the end of the schedule if it is unrecorded.
    Raises ModelDirError for a missing or incompatible folder.
    """

    def __init__(self, model_dir, checkpoint=None, threads=0):
        import tensorflow.compat.v1 as tf
        from air.air_model import AIRModel
        self.config, latest = find_checkpoint(model_dir)
        self.checkpoint = checkpoint or latest
        self.step = checkpoint_step(self.checkpoint)
        config = self.config
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.placeholder(
                tf.float32, [None, config.canvas_height, config.canvas_width], name="images")
            step = None if self.step is None else tf.constant(self.step, tf.int64)
            self.model = AIRModel(self.images, config, training=False, global_step=step,
                                  scope=SCOPE)
            variables = tf.global_variables(scope=SCOPE)
            _check_variables(self.checkpoint, variables)
            saver = tf.train.Saver(var_list=variables)
            steps = self.model.steps
            self._fetches = {
                "digit_count": self.model.digit_count,
                "z_pres": steps.z_pres,
                "z_pres_probability": tf.sigmoid(steps.z_pres_log_odds),
                "boxes": self.model.boxes,
                "live": steps.live,
                "windows": steps.window,
                "reconstructions": steps.reconstruction,
                "canvas": self.model.canvas,
                "negative_elbo": self.model.negative_elbo,
                "z_what_mean": steps.z_what_mean,
                "scale": steps.scale,
                "shift": steps.shift,
            }
        session_config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                                        inter_op_parallelism_threads=threads)
        self.session = tf.Session(graph=self.graph, config=session_config)
        # Restored inside the graph: under TF 2 without disable_v2_behavior() the Saver would
        # otherwise take the eager path and reject these graph variables.
        with self.graph.as_default():
            try:
                saver.restore(self.session, self.checkpoint)
            except (tf.errors.OpError, ValueError) as error:
                self.session.close()
                raise ModelDirError("cannot restore %s: %s" % (self.checkpoint,
                                                              str(error).splitlines()[0]))
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
    from air.air_model import AIRModel
    os.makedirs(model_dir, exist_ok=True)
    config.save(os.path.join(model_dir, CONFIG_FILENAME))
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        images = tf.placeholder(tf.float32, [None, config.canvas_height, config.canvas_width])
        AIRModel(images, config, training=False, scope=SCOPE)
        saver = tf.train.Saver(tf.global_variables(scope=SCOPE), save_relative_paths=True)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return saver.save(session, os.path.join(model_dir, "model.ckpt"), global_step=0)
