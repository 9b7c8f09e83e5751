"""Model folders and checkpoint files: finding, reading and restoring them (files only).

A model folder holds ``config.json`` and TensorFlow checkpoints (``model.ckpt-STEP`` plus the
``checkpoint`` index), as training.py writes to RESULTS_DIR/model. Every function here accepts
a model folder, a training results folder (its ``model/`` is used) or, where a checkpoint is
looked up, one checkpoint prefix. Problems are raised as ``CheckpointError`` with a one-line
message, which the scripts print as ``error: ...``.

TensorFlow is imported inside the functions that need it, so a script can reject a wrong
folder at once (``read_config``) before paying for TensorFlow's start-up. The model itself is
air/evaluation/model_folder.py's: building it, saving and exporting its weights.
"""
import os

from air.cli import UserError, first_line
from air.config import AIRConfig, CONFIG_FILENAME

CHECKPOINT_PREFIX = "model.ckpt"  # A model folder's checkpoints are CHECKPOINT_PREFIX-STEP.
INDEX_FILENAME = "checkpoint"  # TensorFlow's list of a folder's checkpoints.


class CheckpointError(UserError, ValueError):
    """A model folder, checkpoint or config.json that cannot be used; the message is one line."""


def model_folder(path):
    """Takes a model folder, a results folder or a checkpoint prefix to the model folder.

    No TensorFlow needed. A folder is used itself unless only its ``model/`` subfolder holds
    a checkpoint index (or, failing that, a config.json), as in a training results folder.
    """
    if os.path.isdir(path):
        candidates = (path, os.path.join(path, "model"))
        for marker in (INDEX_FILENAME, CONFIG_FILENAME):
            for folder in candidates:
                if os.path.isfile(os.path.join(folder, marker)):
                    return folder
        return path
    if os.path.isfile(path + ".index"):
        return os.path.dirname(path) or "."
    raise CheckpointError("model folder or checkpoint %s does not exist (train one with "
                          "training.py; the checkpoints are in RESULTS_DIR/model)" % path)


def read_config(path):
    """Takes a model folder, results folder or checkpoint prefix to its AIRConfig (no TensorFlow).

    Raises CheckpointError when the folder or its config.json is missing or unreadable.
    """
    return load_config(os.path.join(model_folder(path), CONFIG_FILENAME))


def load_config(config_path):
    """Reads a config.json, raising CheckpointError with a one-line reason."""
    if not os.path.isfile(config_path):
        raise CheckpointError("%s has no %s: not a model folder written by training.py" % (
            os.path.dirname(config_path) or ".", CONFIG_FILENAME))
    try:
        return AIRConfig.load(config_path)
    except (ValueError, TypeError, IOError) as error:
        raise CheckpointError("incompatible %s: %s" % (config_path, first_line(error)))


def find_checkpoint(path):
    """Takes a model folder, a results folder or a checkpoint prefix to (prefix, config.json path).

    A folder gives its newest checkpoint (see ``model_folder`` for which folder is searched);
    the config.json path is the one beside the checkpoint, not checked for existence here.
    """
    folder = model_folder(path)
    if not os.path.isdir(path):  # A checkpoint prefix (model_folder checked its .index).
        return path, os.path.join(folder, CONFIG_FILENAME)
    prefix = latest_checkpoint(folder)
    if prefix is None:
        raise CheckpointError("no checkpoint in %s (expected the `checkpoint` index file and "
                              "the model.ckpt-* files that training.py writes)" % path)
    return prefix, os.path.join(folder, CONFIG_FILENAME)


def latest_checkpoint(folder):
    """The newest checkpoint prefix in ``folder``, or None.

    Also finds checkpoints of a folder that was moved: the ``checkpoint`` index of older runs
    holds absolute paths, so a stale path is looked up by its file name in ``folder``.
    """
    if not os.path.isfile(os.path.join(folder, INDEX_FILENAME)):
        return None
    import tensorflow.compat.v1 as tf
    prefix = tf.train.latest_checkpoint(folder)
    if prefix is not None:
        return prefix
    state = tf.train.get_checkpoint_state(folder)
    if state is not None and state.model_checkpoint_path:
        moved = os.path.join(folder, os.path.basename(state.model_checkpoint_path))
        if os.path.isfile(moved + ".index"):
            return moved
    return None


def checkpoint_step(checkpoint):
    """Takes a checkpoint prefix to the training iteration it was saved at (None if unrecorded)."""
    import tensorflow.compat.v1 as tf
    try:
        reader = tf.train.load_checkpoint(checkpoint)
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError("cannot read checkpoint %s: %s" % (checkpoint, first_line(error)))
    if not reader.has_tensor("global_step"):
        return None
    return int(reader.get_tensor("global_step"))


def restore_variables(session, checkpoint, variables=None):
    """Restores ``variables`` (default: all global ones of the session's graph) from ``checkpoint``.

    Names and shapes are compared first so that a config.json that does not describe the
    checkpoint (say a different ``rnn_units``) is reported as one line naming the variable,
    not as TensorFlow's restore traceback. Call it with the session's graph as the default
    graph (under TF 2 the Saver would otherwise take the eager path).
    """
    import tensorflow.compat.v1 as tf
    variables = tf.global_variables() if variables is None else list(variables)
    try:
        saved = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError("cannot read checkpoint %s: %s" % (checkpoint, first_line(error)))
    for variable in variables:
        name = variable.op.name
        shape = variable.shape.as_list()
        if name not in saved:
            raise CheckpointError("checkpoint %s does not match its config.json: it has no "
                                  "variable %s" % (checkpoint, name))
        if list(saved[name]) != shape:
            raise CheckpointError(
                "checkpoint %s does not match its config.json: %s is %s in the checkpoint but "
                "%s in the model the config describes" % (checkpoint, name, list(saved[name]), shape))
    try:
        tf.train.Saver(var_list=variables).restore(session, checkpoint)
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError("cannot restore %s: %s" % (checkpoint, first_line(error)))

