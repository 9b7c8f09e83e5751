"""What every script shares on the command line: one error type, one `error:` line, quiet TF.

A script builds its argparse parser and hands it, with its ``run(args)``, to ``main``:

    def main(argv=None):
        return cli.main(build_parser(), run, argv)

``main`` adds ``--verbose``, turns a bad argument or a ``UserError`` into exactly one line
``error: ...`` on stderr with exit status 2, and keeps TensorFlow's start-up chatter (C++ log
lines, deprecation warnings) off the terminal unless ``--verbose`` is given. Numeric options use
the argparse types ``integer`` and ``number``, which reject out-of-range and non-finite values
while the arguments are parsed, before anything is read or written.

No TensorFlow here: a script can report a bad option before paying for TensorFlow's start-up.
"""
import argparse
import contextlib
import importlib.abc
import importlib.util
import logging
import math
import os
import signal
import sys
import threading
import warnings

USAGE_ERROR = 2     # exit status of a bad option or input (argparse's own convention)
INTERRUPTED = 130   # exit status after Ctrl-C (128 + SIGINT)
# The largest --seed: numpy's seeds and TensorFlow's stateless sampler keys must hold it.
MAX_SEED = 2 ** 31 - 1


class UserError(Exception):
    """A problem the user can fix (bad option, missing file); printed as one ``error:`` line."""


def first_line(error):
    """Takes an exception to the first line of its message (TensorFlow's can run to pages; an
    OpError's ``message`` is the message without the op's traceback)."""
    text = (getattr(error, "message", None) or str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


class StopSignals:
    """SIGINT and SIGTERM turned into a request to stop, from construction to ``restore`` (or
    through a with block): each records its name in ``signal_name``, sets ``event`` (for other
    threads) and calls ``on_signal(signum)`` if given. ``restore`` puts the previous handlers
    back, since a script's main also runs in-process (from tests)."""

    def __init__(self, on_signal=None):
        self.signal_name = None
        self.event = threading.Event()
        self._on_signal = on_signal
        self._previous = {signum: signal.signal(signum, self._handle)
                          for signum in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name
        self.event.set()
        if self._on_signal is not None:
            self._on_signal(signum)

    def restore(self):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()


def format_duration(seconds):
    """3725 -> '1h02m', 125 -> '2m05s'; '?' for an unknown (infinite or NaN) time."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return "%dh%02dm" % (hours, rest // 60) if hours else "%dm%02ds" % divmod(rest, 60)


# --- Numeric option types -----------------------------------------------------------------

def integer(minimum=None, maximum=None):
    """Takes bounds to an argparse type: text -> int in [minimum, maximum], else one-line error."""
    def convert(text):
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a whole number, got %r" % text)
    return _bounded_type("integer", convert, minimum, maximum, False)


def number(minimum=None, maximum=None, exclusive_minimum=False):
    """Takes bounds to an argparse type: text -> finite float in range, else a one-line error.

    ``exclusive_minimum`` makes the minimum itself invalid (for "must be positive").
    """
    def convert(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a number, got %r" % text)
        if not math.isfinite(value):  # float() accepts "nan", "inf" and overflows like "1e999"
            raise argparse.ArgumentTypeError("expected a finite number, got %r" % text)
        return value
    return _bounded_type("number", convert, minimum, maximum, exclusive_minimum)


def _bounded_type(name, convert, minimum, maximum, exclusive_minimum):
    """The argparse type ``name``: ``convert`` (text -> value), then the bounds checked; the
    bounds stay readable as attributes (tests/test_command_lines.py sweeps the values beyond them)."""
    def parse(text):
        value = convert(text)
        _check_bounds(value, minimum, maximum, exclusive_minimum)
        return value
    parse.__name__ = name
    parse.minimum, parse.maximum, parse.exclusive_minimum = minimum, maximum, exclusive_minimum
    return parse


def add_numeric_options(parser, options):
    """Adds options given as (flag, type, default, help) or (flag, type, default, help,
    metavar) rows to an argparse parser or group; ``type`` is ``integer(...)`` or
    ``number(...)``."""
    for flag, kind, default, help_text, *metavar in options:
        parser.add_argument(flag, type=kind, default=default, help=help_text,
                            metavar=metavar[0] if metavar else None)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with "(default: ...)" after an option's help, except where saying it adds
    nothing: no default (None), an off switch (False), or a help text that says its own
    ("default: ...")."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False) or "default:" in text:
            return text
        return super()._get_help_string(action)


def entry_point(build_parser, run):
    """A script's ``main(argv=None)``: ``main`` below with the script's parser and ``run``."""
    def script_main(argv=None):
        return main(build_parser(), run, argv)
    return script_main


def _check_bounds(value, minimum, maximum, exclusive_minimum):
    """Raises ArgumentTypeError when value lies outside the bounds."""
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        raise argparse.ArgumentTypeError("must be %s %s, got %s" % (
            "greater than" if exclusive_minimum else "at least", minimum, value))
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError("must be at most %s, got %s" % (maximum, value))


# --- Quiet TensorFlow ---------------------------------------------------------------------

def quiet_tensorflow(verbose=False):
    """Keeps TensorFlow's log lines off the terminal (nothing changes when ``verbose``).

    Must run before TensorFlow is imported to catch everything: TF_CPP_MIN_LOG_LEVEL is read
    when the C++ library loads; TensorFlow 2.x also prints absl lines ("Could not find cuda
    drivers") while it is imported, whatever that variable says, so the import itself runs with
    the process's stderr pointed at /dev/null. A variable the user set is left as it is.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # 3: not even cuInit's ERROR line
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # "non-resource variables ..."
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    if "tensorflow" not in sys.modules and not any(
            isinstance(finder, _SilentTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SilentTensorFlowImport())


@contextlib.contextmanager
def _stderr_silenced():
    """Points file descriptor 2 at /dev/null for the duration (C++ writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _SilentTensorFlowImport(importlib.abc.MetaPathFinder):
    """Import hook: the first ``import tensorflow`` runs with stderr silenced, then it leaves.

    A hook rather than an import here, so that scripts still import TensorFlow only when they
    need it (a wrong folder is reported at once, not after TensorFlow's start-up).
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilentLoader(spec.loader)
        return spec


class _SilentLoader(importlib.abc.Loader):
    """Wraps a module loader so that executing the module runs with stderr silenced."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _stderr_silenced():
            self._loader.exec_module(module)


def import_tensorflow():
    """Imports TensorFlow's 1.x API in graph mode, the mode of every graph here, on either stack
    (TensorFlow 1.15 or 2.x); returns the module, ``tf``. Call ``quiet_tensorflow`` first."""
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    return tf


# --- The main wrapper ---------------------------------------------------------------------

def _raise_usage_error(message):
    """Replaces ArgumentParser.error: argparse's usage line + message become one UserError."""
    raise UserError(message)


def main(parser, run, argv=None, errors=()):
    """Takes a script's parser and ``run(args)`` to the process exit status.

    0 (or what ``run`` returns) on success; 2 after one line ``error: <message>`` on stderr for
    a bad argument, a ``UserError`` or one of ``errors`` (library exceptions whose messages are
    one line); 130 after Ctrl-C.
    """
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines and warnings")
    parser.error = _raise_usage_error
    try:
        args = parser.parse_args(argv)
        quiet_tensorflow(args.verbose)
        status = run(args)
    except (UserError,) + tuple(errors) as error:
        print("error: %s" % first_line(error), file=sys.stderr, flush=True)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return INTERRUPTED
    return 0 if status is None else status
