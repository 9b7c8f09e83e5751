"""The results folder of a training run: checking it, creating it, the snapshot of the code.

RESULTS_DIR/source/ (the code that ran), model/ (checkpoints + config.json), summary/
(TensorBoard events) and metrics.csv; a new run refuses a folder an earlier run used, a
resumed one refuses flags that would change the saved config.
"""
import os
import shutil
import subprocess
import time

from air import config as air_config
from air.training import metrics_log
from air.training import options as training_options
from air.training.checkpoints import has_checkpoints
from air.cli import UserError
from air.paths import REPO, SOURCE_FILES



class TrainingError(UserError):
    """A problem the user can fix; printed as one line."""


def prepare_results(args, overrides):
    """Checks and creates the results folder ``args.results_dir`` of TrainingOptions ``args``
    (``args.resume`` to continue) for the config fields ``overrides`` (name -> value); saves
    the config and the options beside the checkpoints; returns (config, model_dir, summary_dir)."""
    model_dir = os.path.join(args.results_dir, "model")
    summary_dir = os.path.join(args.results_dir, "summary")
    # Damaged checkpoints count: --resume passes over them, a new run must not overwrite them.
    has_checkpoint = has_checkpoints(model_dir)
    AIRConfig = air_config.AIRConfig
    if args.resume:
        if not has_checkpoint:
            raise TrainingError("--resume: no checkpoint in %s" % model_dir)
        try:
            config = AIRConfig.load(os.path.join(model_dir, air_config.CONFIG_FILENAME))
            differing = sorted(k for k, v in overrides.items()
                               if AIRConfig.from_dict(dict(config.to_dict(), **{k: v})) != config)
        except (ValueError, IOError) as error:
            raise TrainingError("--resume: %s" % error)
        if differing:
            raise TrainingError("--resume: the saved config.json differs in %s; start a new "
                                "--results-dir to change it" % ", ".join(differing))
    else:
        if has_checkpoint:
            raise TrainingError("%s already holds checkpoints: use --resume to continue, or "
                                "another --results-dir" % model_dir)
        used = [name for name in (metrics_log.FILENAME, "model", "summary")
                if os.path.exists(os.path.join(args.results_dir, name))]
        if used:
            raise TrainingError("%s already holds %s of an earlier run (without a checkpoint to "
                                "resume): delete it or choose another --results-dir"
                                % (args.results_dir, ", ".join(used)))
        config = AIRConfig.from_dict(overrides)
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(summary_dir, exist_ok=True)
    save_atomically(config, os.path.join(model_dir, air_config.CONFIG_FILENAME))
    save_atomically(args, os.path.join(model_dir, training_options.FILENAME))
    snapshot_source(os.path.join(args.results_dir, "source"))
    return config, model_dir, summary_dir


def save_atomically(saved, path):
    """Writes ``saved`` (a config or the training options: anything with ``save(path)``) whole
    or not at all: a full disk must not cut short the files beside the checkpoints (a resumed
    run rewrites them)."""
    write_atomically(path, saved.save)


def write_atomically(path, write):
    """Calls ``write(temporary)`` and puts the file in place of ``path`` only once it is whole;
    an OSError names ``path``."""
    temporary = path + ".partial"
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise OSError(error.errno, error.strerror, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def snapshot_source(destination):
    """Copies the running code (package, scripts, requirements) and the git commit.

    A resumed run keeps the first session's snapshot and adds its own code beside it, in
    ``resumed-<date>-<time>/``: the weights come from every session's code.
    """
    if os.path.exists(os.path.join(destination, "air")):
        base = os.path.join(destination, "resumed-" + time.strftime("%Y%m%d-%H%M%S"))
        destination, suffix = base, 1
        while os.path.exists(destination):
            suffix += 1
            destination = "%s-%d" % (base, suffix)
    os.makedirs(destination, exist_ok=True)
    shutil.copytree(os.path.join(REPO, "air"), os.path.join(destination, "air"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in SOURCE_FILES:
        if os.path.isfile(os.path.join(REPO, name)):
            shutil.copy2(os.path.join(REPO, name), destination)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, universal_newlines=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                universal_newlines=True, check=True)
        with open(os.path.join(destination, "GIT_COMMIT"), "w") as f:
            f.write(commit.stdout)
            if status.stdout.strip():
                f.write("uncommitted changes:\n" + status.stdout)
    except (OSError, subprocess.CalledProcessError):
        pass  # Not a git checkout: the copied files are the record.
