"""The one place in air/ that builds the command lines of this repository's scripts and entry
points, for the code that runs them in a child process (sweeps, benchmarks, the original code).

A child process is used where isolation is the point (a trial that can be stopped on its own,
a benchmark whose peak memory is its own) or another interpreter runs it. Options go in as
keyword arguments (``images_per_digit=100`` is ``--images-per-digit 100``; True is a bare
switch; None and False leave the flag out) or, for training, as an options file.

    python -m air.launcher --can-import tensorflow   # exit 0 if this Python imports it
"""
import argparse
import os
import sys

from air import paths


def flags(**options):
    """Keyword options as command-line flags, in the order given."""
    arguments = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        arguments.append("--" + name.replace("_", "-"))
        if value is True:
            continue
        if isinstance(value, (list, tuple)):
            arguments += [str(v) for v in value]
        else:
            arguments.append(str(value))
    return arguments


def file_command(path, python=None, **options):
    """A Python file of this repository run by path, with its options."""
    return [python or sys.executable, path] + flags(**options)


def script_command(name, python=None, **options):
    """A top-level script (``script_command("multi_mnist", output_dir=...)``)."""
    return file_command(paths.script(name), python, **options)


def training_command(options_path, config_path=None, python=None):
    """training.py on a TrainingOptions file (and the file of the model's config fields)."""
    return script_command("training", python, options_file=os.path.abspath(options_path),
                          config_file=config_path and os.path.abspath(config_path))


def module_command(module, python=None, arguments=()):
    """``python -m module`` of this package; run it with ``module_environment()``."""
    return [python or sys.executable, "-m", module] + list(arguments)


def module_environment():
    """The environment of a child that runs a module of this package: the checkout on its
    path, wherever the child's working folder is."""
    environment = dict(os.environ)
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = paths.REPO + (os.pathsep + path if path else "")
    return environment


def can_import(python, module, timeout=300):
    """True if the interpreter ``python`` starts and imports ``module``."""
    import subprocess
    command = module_command("air.launcher", python, ["--can-import", module])
    try:
        return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=module_environment(), timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description="Checks what this interpreter can import.")
    parser.add_argument("--can-import", required=True, metavar="MODULE")
    import importlib
    importlib.import_module(parser.parse_args(argv).can_import)
    return 0


if __name__ == "__main__":
    sys.exit(main())
