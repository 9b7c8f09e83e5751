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
import glob
import os
import re

from air.cli import UserError, first_line
from air.config import AIRConfig, CONFIG_FILENAME

CHECKPOINT_PREFIX = "model.ckpt"  # A model folder's checkpoints are CHECKPOINT_PREFIX-STEP.
INDEX_FILENAME = "checkpoint"  # TensorFlow's list of a folder's checkpoints.


class CheckpointError(UserError, ValueError):
    """A model folder, checkpoint or config.json that cannot be used; the message is one line."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read completely (cut short, empty or missing)."""


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
    The checkpoint is read through (``verify_checkpoint``): a damaged one is a
    DamagedCheckpointError naming the file, here rather than as TensorFlow's traceback later.
    """
    folder = model_folder(path)
    if not os.path.isdir(path):  # A checkpoint prefix (model_folder checked its .index).
        verify_checkpoint(path)
        return path, os.path.join(folder, CONFIG_FILENAME)
    prefix = latest_checkpoint(folder)
    if prefix is None:
        named = named_checkpoint(folder)
        if named is not None:  # The index names a checkpoint whose files are gone.
            raise DamagedCheckpointError(
                "the `%s` index in %s names %s, whose %s.index is missing%s" % (
                    INDEX_FILENAME, folder, os.path.basename(named), os.path.basename(named),
                    _complete_hint(folder)))
        raise CheckpointError("no checkpoint in %s (expected the `checkpoint` index file and "
                              "the model.ckpt-* files that training.py writes)" % path)
    verify_checkpoint(prefix)
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
        if not reader.has_tensor("global_step"):
            return None
        return int(reader.get_tensor("global_step"))
    except Exception as error:  # TensorFlow 2.x raises IndexError for a .data file cut short.
        problem = checkpoint_damage(checkpoint)
        if problem:
            raise DamagedCheckpointError("checkpoint %s is damaged: %s" % (checkpoint, problem))
        raise CheckpointError("cannot read checkpoint %s: %s" % (checkpoint, first_line(error)))


# --- Damaged checkpoints -----------------------------------------------------------------

def checkpoint_damage(prefix):
    """What keeps the checkpoint ``prefix`` from being read completely, as one line naming the
    file, or None when every tensor reads.

    Every tensor is read, not only the index: a ``.data`` file cut short (an interrupted copy,
    a full disk) passes a look at the index alone. The model is small, so this costs little.
    """
    import tensorflow.compat.v1 as tf
    index = prefix + ".index"
    if not os.path.isfile(index):
        return "%s is missing" % index
    if os.path.getsize(index) == 0:
        return "%s is empty" % index
    try:
        reader = tf.train.NewCheckpointReader(prefix)
    except Exception as error:  # TensorFlow's error types differ between 1.x and 2.x.
        return "%s cannot be read (%s)" % (_missing_data_file(prefix) or index, first_line(error))
    for name in sorted(reader.get_variable_to_shape_map()):
        try:
            reader.get_tensor(name)
        except Exception as error:  # 1.15: OutOfRangeError; 2.x: IndexError.
            data = _missing_data_file(prefix) or ", ".join(_data_files(prefix)) or index
            return "%s is cut short or damaged (%s, reading %s)" % (
                data, first_line(error), name)
    return None


def verify_checkpoint(prefix):
    """Raises DamagedCheckpointError unless the checkpoint ``prefix`` reads completely."""
    problem = checkpoint_damage(prefix)
    if problem:
        raise DamagedCheckpointError("checkpoint %s is damaged: %s%s" % (
            prefix, problem, _complete_hint(os.path.dirname(prefix) or ".", prefix)))


def _data_files(prefix):
    return sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))


def _missing_data_file(prefix):
    """The first shard that a checkpoint of ``prefix`` lacks (shards are ``.data-I-of-N``)."""
    found = _data_files(prefix)
    match = re.search(r"\.data-\d+-of-(\d+)$", found[0]) if found else None
    shards = int(match.group(1)) if match else 1
    for shard in range(shards):
        path = "%s.data-%05d-of-%05d" % (prefix, shard, shards)
        if not os.path.isfile(path):
            return path
    return None


def _step_of(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def named_checkpoint(folder):
    """The prefix that a folder's ``checkpoint`` index names (in ``folder``), or None."""
    if not os.path.isfile(os.path.join(folder, INDEX_FILENAME)):
        return None
    import tensorflow.compat.v1 as tf
    try:
        state = tf.train.get_checkpoint_state(folder)
    except Exception:  # An unparsable index names nothing; the files are still listed.
        return None
    if state is None or not state.model_checkpoint_path:
        return None
    return os.path.join(folder, os.path.basename(state.model_checkpoint_path))


def checkpoints_in(folder):
    """Every checkpoint prefix of ``folder``, newest (highest step) first: those with an
    ``.index`` file, and the one the ``checkpoint`` index names even if its files are gone."""
    prefixes = {path[:-len(".index")] for path in glob.glob(
        os.path.join(glob.escape(folder), CHECKPOINT_PREFIX + "-*.index"))}
    named = named_checkpoint(folder)
    if named is not None:
        prefixes.add(named)
    return sorted(prefixes, key=lambda p: (_step_of(p), p), reverse=True)


def has_checkpoints(folder):
    """True when ``folder`` holds checkpoint files or a ``checkpoint`` index, complete or not."""
    return os.path.isfile(os.path.join(folder, INDEX_FILENAME)) or bool(checkpoints_in(folder))


def newest_complete_checkpoint(folder):
    """Takes a folder to (the newest checkpoint that reads completely or None, [(prefix,
    problem) of every newer one that does not])."""
    damaged = []
    for prefix in checkpoints_in(folder):
        problem = checkpoint_damage(prefix)
        if problem is None:
            return prefix, damaged
        damaged.append((prefix, problem))
    return None, damaged


def _complete_hint(folder, damaged_prefix=None):
    """'; the newest complete checkpoint there is PREFIX' when one other than the damaged
    one exists (a script can be given that prefix instead), else ''."""
    if not os.path.isdir(folder):
        return ""
    for prefix in checkpoints_in(folder):
        if prefix != damaged_prefix and checkpoint_damage(prefix) is None:
            return "; the newest complete checkpoint there is %s" % prefix
    return ""


def checkpoint_to_resume(folder, report=print):
    """The newest checkpoint of ``folder`` that reads completely, for training.py --resume.

    Newer damaged ones (a save cut short, a file cut short) are passed over, each ``report``ed
    in one line; leftovers of an interrupted save (``partial_save_files``) are removed.
    Raises DamagedCheckpointError when no checkpoint reads completely.
    """
    for path in partial_save_files(folder):
        os.remove(path)
        report("removed %s, left by a save that did not finish" % path)
    prefix, damaged = newest_complete_checkpoint(folder)
    if prefix is None:
        raise DamagedCheckpointError("--resume: no complete checkpoint in %s (%s)" % (
            folder, "; ".join("%s: %s" % (os.path.basename(p), problem) for p, problem in damaged)
            or "no checkpoint files"))
    for damaged_prefix, problem in damaged:
        report("checkpoint %s is damaged: %s; resuming from %s, the newest complete one"
               % (damaged_prefix, problem, prefix))
    return prefix


# What an interrupted or failed save leaves: TensorFlow writes each checkpoint file under a
# temporary name (NAME.tempstateDIGITS; the meta graph and the index as NAME.tmpHEX) and renames
# it when it is complete.
_PARTIAL_SAVE = re.compile(r"(\.tempstate\d+|\.tmp[0-9a-f]{32})$")


def partial_save_files(folder):
    """The temporary files of unfinished saves in ``folder``."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if _PARTIAL_SAVE.search(name))


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
