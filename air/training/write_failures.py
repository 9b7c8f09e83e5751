"""A write that fails during training (a full disk, no permission, a read-only file system)
turned into one line: which path, why, and the newest checkpoint that is still complete.

The failure can come from Python (an OSError of metrics.csv or config.json), from TensorFlow's
saver (an OpError whose message names the file) or from TensorFlow 2.x's summary writer
thread (a RuntimeError, raised again in the training thread at its next write). ``reported``
recognises all three, removes what the failed save left behind and raises a TrainingError.
"""
import contextlib
import errno
import logging
import os
import re
import shutil
import threading

from air.training.checkpoints import newest_complete_checkpoint, partial_save_files
from air.training.run_folder import TrainingError

WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO,
                errno.EFBIG}
# The same causes as TensorFlow's C++ code words them (strerror's text).
_CAUSES = re.compile("|".join(re.escape(os.strerror(code)) for code in sorted(WRITE_ERRNOS)))
_TEMPORARY_SUFFIX = re.compile(r"\.tempstate\d+|\.tmp[0-9a-f]{32}")


def describe(error):
    """Takes an exception to 'PATH: CAUSE' when it is a failed write, else None."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list):
        failures = [why for _, _, why in error.args[0] if _CAUSES.search(str(why))]
        return "%s" % failures[0] if failures else None  # copytree: "[Errno 28] ...: 'path'"
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return "%s: %s" % (error.filename or "?", error.strerror)
    for line in str(error).splitlines():  # TensorFlow: "PATH; CAUSE", often not the first line
        if _CAUSES.search(line):
            # The temporary name of a failed save is gone; the file it stood for is not.
            return _TEMPORARY_SUFFIX.sub("", line.strip()).replace("; ", ": ", 1)
    return None


@contextlib.contextmanager
def reported(model_dir):
    """Runs the block; a failed write in it becomes a TrainingError naming the path, the
    cause and the newest complete checkpoint, after the partial files of a save are removed.
    Other exceptions pass unchanged."""
    quiet = _QuietWriterThread()
    try:
        with quiet:
            yield
    except Exception as error:
        cause = describe(error)
        if cause is None:
            raise
        raise write_failure(cause, model_dir) from None


def write_failure(cause, model_dir):
    """The TrainingError of a failed write ``cause`` ('PATH: CAUSE') during training."""
    for path in partial_save_files(model_dir):
        try:
            os.remove(path)
        except OSError:
            pass  # A read-only folder keeps them; --resume removes them later.
    newest = newest_complete_checkpoint(model_dir)[0] if os.path.isdir(model_dir) else None
    if newest is None:
        return TrainingError(
            "cannot write %s; no checkpoint was completed: free space (or fix the folder's "
            "permissions), then delete %s and start again" % (cause, os.path.dirname(model_dir)))
    return TrainingError(
        "cannot write %s; the newest complete checkpoint is %s: free space (or fix the "
        "folder's permissions), then continue with --resume" % (cause, newest))


class _QuietWriterThread:
    """While active, a failed write in TensorFlow 2.x's summary writer thread prints neither
    the thread's traceback nor TensorFlow's log line: the training thread meets the same
    error at its next write, and ``reported`` gives it as one line."""

    def __enter__(self):
        self._hook = getattr(threading, "excepthook", None)  # Python >= 3.8
        if self._hook is not None:
            threading.excepthook = self._excepthook
        self._filter = _DropWriteFailures()
        logging.getLogger("tensorflow").addFilter(self._filter)
        return self

    def _excepthook(self, hook_args):
        if describe(hook_args.exc_value) is None:
            self._hook(hook_args)

    def __exit__(self, *exc):
        if self._hook is not None:
            threading.excepthook = self._hook
        logging.getLogger("tensorflow").removeFilter(self._filter)


class _DropWriteFailures(logging.Filter):
    def filter(self, record):
        return _CAUSES.search(record.getMessage()) is None
