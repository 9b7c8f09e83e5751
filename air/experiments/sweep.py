"""Seed sweeps: a grid of training.py runs (variants x seeds), each in its own results folder.

A *variant* is a preset plus field changes, written ``PRESET[:FIELD=VALUE[,FIELD=VALUE...]]``
(``default``, ``original``, ``original:lstm_input=image_and_latents``). A *trial* is one
variant trained from one seed into ``OUTPUT/<variant folder>/seed-<N>/``. The state of a
trial is read from its folder alone (checkpoint, metrics.csv), so a sweep that was stopped
is resumed by running the same command again: finished trials are skipped, interrupted ones
continue from their last checkpoint.

Trials run either as local processes (``run_local``) or as Ray tasks (``run_on_ray``): the
same command line, log file and stop handling either way; only the launch differs.
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import threading
import time

from air import devices, launcher, paths
from air.evaluation import final
from air.training import metrics_log
from air.training import options as training_options
from air.training.checkpoints import has_checkpoints
from air.cli import UserError, first_line, format_duration
from air.config import (PRESETS, AIRConfig, FlagError, config_fields, overrides_from_args,
                        add_flags as add_config_flags)

LOG_NAME = "training.log"

Variant = collections.namedtuple("Variant", ["name", "preset", "changes"])
Trial = collections.namedtuple("Trial", ["variant", "seed", "directory"])

# The files a trial is launched with, in its folder: its TrainingOptions and its model config.
OPTIONS_NAME = "trial_options.json"
CONFIG_NAME = "trial_config.json"
# The training options that are the sweep's to set per trial, never the user's.
PER_TRIAL_OPTIONS = ("results_dir", "resume", "seed")


class SweepError(UserError):
    """A problem with the sweep's input that the user can fix; the message is one line."""


def parse_seeds(text):
    """Takes '1-10', '3', '1,4,7-9' to a sorted list of distinct non-negative seeds."""
    seeds = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(p) for p in part.split("-", 1))
            else:
                first = last = int(part)
        except ValueError:
            raise SweepError("bad seed range %r: expected e.g. 1-10 or 1,4,7-9" % text)
        if first < 0 or last < first:
            raise SweepError("bad seed range %r: seeds are >= 0, ranges go upwards" % text)
        seeds.update(range(first, last + 1))
    return sorted(seeds)


def _parse_value(name, kind, text):
    """Takes the text of one FIELD=VALUE to a value of the field's type."""
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if kind in (int, float):
            return kind(text)
        if kind is str:
            return text
        return tuple(int(v) for v in text.split("/"))  # Tuples of ints: 512/256.
    except ValueError:
        raise SweepError("bad value %r for %s" % (text, name))


# Short names of the convergence study's variants beyond the presets, each a fixed set of fields
# (never relative to a default that may change), so a name means the same graph in every report.
STUDY_VARIANTS = collections.OrderedDict([
    ("window-20px", "first-default:scale_prior_mean=-0.4"),
    ("fast-anneal", "first-default:z_pres_prior_odds_decay_steps=2000"),
    ("original-fast", "original:z_pres_prior_odds_decay_steps=2000"),
])

# Variant names were once written relative to the default of their time: the folders and
# reports of the study (docs/study) spell today's 'first-default' as 'default'.
EARLIER_MEANINGS = {"default": "first-default"}


def named_variants():
    """Every short variant name (the presets, then STUDY_VARIANTS) with its AIRConfig."""
    named = collections.OrderedDict((name, AIRConfig.from_preset(name)) for name in PRESETS)
    for name, spec in STUDY_VARIANTS.items():
        named[name] = variant_config(_parse_as_written(spec))
    return named


def same_graph(config, other):
    """True when two AIRConfigs agree in every field but the name of their preset."""
    first, second = config.to_dict(), other.to_dict()
    first.pop("preset")
    second.pop("preset")
    return first == second


def _differences(config, named):
    """The fields (in AIRConfig's order) in which a config differs from a named one, with values."""
    first, second = config.to_dict(), named.to_dict()
    return [(k, config_value) for k, config_value in ((k, getattr(config, k)) for k in first)
            if k != "preset" and first[k] != second[k]]


def short_name(config, written=None):
    """The shortest name of a config: the short name (named_variants) it differs from in the
    fewest fields, followed by those fields ('original-fast+lstm_input=image_and_latents'); or
    ``written`` (a Variant) when that names no more fields."""
    best = None
    for name, named in named_variants().items():
        changes = _differences(config, named)
        if best is None or len(changes) < len(best[1]):
            best = (name, changes)
    if written is not None and len(written.name.split("+")) - 1 <= len(best[1]):
        return written.name
    return best[0] + "".join("+%s=%s" % (k, _format_value(v)) for k, v in best[1])


def parse_variant(spec):
    """Takes 'NAME[:FIELD=VALUE,...]' to a Variant, checking it makes a valid AIRConfig. NAME is
    a preset or a STUDY_VARIANTS name; a variant with changes is named by short_name, so one
    graph has one name ('default:scale_prior_mean=-1.0,z_pres_prior_odds_decay_steps=3000' is
    'first-default')."""
    variant = _parse_as_written(spec)
    if spec.partition(":")[2].strip(" ,"):
        return variant._replace(name=short_name(variant_config(variant), variant))
    return variant


def _parse_as_written(spec):
    """parse_variant without the short names: the Variant named as ``spec`` spells it."""
    preset, _, rest = spec.partition(":")
    base = []
    if preset in STUDY_VARIANTS:
        study = _parse_as_written(STUDY_VARIANTS[preset])
        preset, base = study.preset, list(study.changes)
    elif preset not in PRESETS:
        raise SweepError("unknown preset %r in variant %r (one of %s)"
                         % (preset, spec, ", ".join(list(PRESETS) + list(STUDY_VARIANTS))))
    kinds = {name: kind for name, kind, _, _ in config_fields()}
    changes = []
    for item in filter(None, (p.strip() for p in rest.split(","))):
        name, equals, text = item.partition("=")
        if not equals:
            raise SweepError("bad change %r in variant %r: expected FIELD=VALUE" % (item, spec))
        if name not in kinds or name == "preset":
            raise SweepError("unknown config field %r in variant %r" % (name, spec))
        changes.append((name, _parse_value(name, kinds[name], text)))
    name = spec.partition(":")[0] + "".join("+%s=%s" % (k, _format_value(v)) for k, v in changes)
    changed = dict(base)
    changed.update(changes)
    variant = Variant(name=name, preset=preset, changes=tuple(changed.items()))
    try:
        variant_config(variant)
    except ValueError as error:
        raise SweepError("variant %r: %s" % (spec, error))
    return variant


def variant_from_name(name, trained=None):
    """The Variant of a variant folder's name ('original+lstm_input=image_and_latents'): the
    inverse of the name parse_variant gives. With ``trained``, the AIRConfig the trial saved,
    a name in an earlier spelling (EARLIER_MEANINGS) is read as it was meant when it was
    written: the reading whose fields are the trained ones."""
    preset, *changes = re.split(r"\+(?=[a-z_0-9]+=)", name)
    readings = [preset] + ([EARLIER_MEANINGS[preset]] if preset in EARLIER_MEANINGS else [])
    variants = [parse_variant(p + ":" + ",".join(changes)) for p in readings]
    if trained is not None:
        for variant in variants:
            if same_graph(variant_config(variant), trained):
                return variant
    return variants[0]


def variant_config(variant):
    """The AIRConfig that a variant's trials train with."""
    return AIRConfig.from_preset(variant.preset, **dict(variant.changes))


def _format_value(value):
    if isinstance(value, tuple):
        return "/".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def make_trials(variants, seeds, output_dir):
    """The grid, seed-major (every variant of seed 1 first), so early results cover all variants."""
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SweepError("variant given twice: %s" % ", ".join(duplicates))
    return [Trial(v, seed, os.path.join(output_dir, v.name, "seed-%d" % seed))
            for seed in seeds for v in variants]


def read_metrics(directory):
    """The rows of a trial's metrics.csv as dicts of floats (see metrics_log.read_values); the
    trial may be writing it, so a half-written line gives NaN rather than an error."""
    return metrics_log.read_values(os.path.join(directory, metrics_log.FILENAME),
                                   strict=False)[1]


def trial_state(trial, options):
    """'new', 'partial' (has a checkpoint), 'converged' or 'finished' (no more to do)."""
    # Damaged checkpoints count: the trial's --resume passes over them to a complete one.
    if not has_checkpoints(os.path.join(trial.directory, "model")):
        return "new"
    return state_of_evaluations(read_metrics(trial.directory), options)


def state_of_evaluations(rows, options):
    """'finished', 'converged' or 'partial', read from a trial's metrics.csv rows alone."""
    if rows and rows[-1]["iteration"] >= options.max_iterations:
        return "finished"
    if rows and metrics_log.stop_rule_met(
            metrics_log.accuracy_streak(rows, options.stop_at_accuracy), rows[-1]["iteration"],
            options):
        return "converged"
    return "partial"


def final_figures_current(trial):
    """True if the trial's final_evaluation.json is of its last held-out evaluation."""
    rows = read_metrics(trial.directory)
    return bool(rows and final.read_current(trial.directory, rows[-1]["iteration"]))


def last_iteration(trial):
    """The iteration of a trial's last held-out evaluation (0 before the first)."""
    rows = read_metrics(trial.directory)
    return int(rows[-1]["iteration"]) if rows else 0


def progress_line(trials, options, start_iterations, elapsed):
    """The sweep's status line: trials ended, the trials that advanced since the sweep began
    (``start_iterations``: trial folder -> last_iteration then) with their last evaluation,
    the speed of all of them together over ``elapsed`` seconds, and the time left at most
    (every trial not ended run to max_iterations; the ones that converge end sooner).
    Iterations are read at evaluations, so a trial's progress shows in steps of eval_every."""
    ended, advancing, done, left = 0, [], 0, 0
    for trial in trials:
        rows = read_metrics(trial.directory)
        iteration = int(rows[-1]["iteration"]) if rows else 0
        # A resumed trial rewrites metrics.csv from its checkpoint, a little behind: not negative.
        done += max(0, iteration - start_iterations[trial.directory])
        # From the rows already read: an ended trial always has its checkpoints.
        if state_of_evaluations(rows, options) in ("converged", "finished"):
            ended += 1
            continue
        left += options.max_iterations - iteration
        if iteration > start_iterations[trial.directory]:
            advancing.append("%s seed %d at %d (%.1f%%)" % (
                trial.variant.name, trial.seed, iteration, 100 * rows[-1]["heldout_accuracy"]))
    rate = done / elapsed if elapsed > 0 else 0.0
    return ("sweep: %d of %d ended; %s; %.1f it/s in all; at most %s left" % (
        ended, len(trials), ", ".join(advancing) or "no evaluation yet", rate,
        format_duration(left / rate if rate > 0 else float("inf"))))


def trial_error(trial):
    """The last ``error:`` line of a trial's training.log (say, a --resume that found no
    complete checkpoint), or None."""
    path = os.path.join(trial.directory, LOG_NAME)
    if not os.path.isfile(path):
        return None
    with open(path, errors="replace") as f:
        errors = [line.strip() for line in f if line.startswith("error: ")]
    return errors[-1] if errors else None


def every(seconds, stop_event, action):
    """Calls ``action()`` every ``seconds`` in a daemon thread until ``stop_event`` is set (a
    daemon: a sweep that ends or is interrupted does not wait for its next call)."""
    def loop():
        while not stop_event.wait(seconds):
            action()
    threading.Thread(target=loop, daemon=True).start()


def parse_training_args(text):
    """Takes sweep.py's --training-args (training.py flags, as one string) to the changes they
    make: (training options: name -> value, model config fields: name -> value)."""
    parser = argparse.ArgumentParser(prog="--training-args", add_help=False)
    parser.error = _raise_training_args_error
    training_options.add_flags(parser)
    add_config_flags(parser)
    args = parser.parse_args(text.split())
    changes = training_options.given(args)
    per_trial = sorted(set(changes) & set(PER_TRIAL_OPTIONS))
    if per_trial:
        raise SweepError("--training-args: %s set by the sweep for each trial" % ", ".join(
            "--" + name.replace("_", "-") for name in per_trial))
    try:
        return changes, overrides_from_args(args)
    except FlagError as error:
        raise SweepError("--training-args: %s" % error)


def _raise_training_args_error(message):
    raise SweepError("--training-args: %s" % message)


def launch_files(trial, options, config_changes, resume):
    """Writes the options file and the config file that launch a trial into its folder
    (absolute paths: Ray workers run elsewhere); returns (options path, config path)."""
    trial_options = options.replace(
        results_dir=os.path.abspath(trial.directory), data_dir=os.path.abspath(options.data_dir),
        seed=trial.seed, resume=resume)
    options_path = os.path.join(trial.directory, OPTIONS_NAME)
    config_path = os.path.join(trial.directory, CONFIG_NAME)
    trial_options.save(options_path)
    variant_config(trial.variant).replace(**dict(config_changes or {})).save(config_path)
    return options_path, config_path


def prepare_trial(trial, options, python, config_changes=None):
    """The command that continues a trial, or None when it has nothing left to do: training.py
    on the trial's launch files (``launch_files``; ``config_changes`` on the variant's config).

    A folder without a checkpoint is a trial that died before its first save: it is
    started again from scratch (the folder is the sweep's own). An ended trial whose final
    model has not been measured (it ended before trials wrote final_evaluation.json) is
    resumed with ``options.final_evaluation``: it ends at once and writes the figures.
    """
    state = trial_state(trial, options)
    if state in ("converged", "finished"):
        if not (options.final_evaluation and not final_figures_current(trial)):
            return None
        state = "partial"
    if state == "new" and os.path.exists(trial.directory):
        shutil.rmtree(trial.directory)
    os.makedirs(trial.directory, exist_ok=True)
    options_path, config_path = launch_files(trial, options, config_changes,
                                             resume=(state == "partial"))
    return launcher.training_command(options_path, config_path, python)


class SweepLock:
    """Holds OUTPUT/sweep.lock while a sweep runs there, so a second sweep on the same folder
    stops with an error instead of training the same trials twice."""

    def __init__(self, output_dir):
        self.path = os.path.join(output_dir, "sweep.lock")

    def __enter__(self):
        if os.path.isfile(self.path):
            with open(self.path) as f:
                text = f.read().strip()
            if text.isdigit() and _process_alive(int(text)):
                raise SweepError("another sweep (process %s) is running in %s"
                                 % (text, os.path.dirname(self.path)))
        with open(self.path, "w") as f:
            f.write("%d\n" % os.getpid())
        return self

    def __exit__(self, *exc):
        if os.path.isfile(self.path):
            os.remove(self.path)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def run_trial_process(command, log_path, stop_event=None, poll_seconds=0.5, environment=None):
    """Runs one training command with its output appended to log_path; returns the exit code.

    When ``stop_event`` is set (or on KeyboardInterrupt, which is how Ray cancels a task)
    the trial gets SIGTERM, so it saves a checkpoint and exits before this returns.
    ``environment``: variables set for the trial (its GPU, see devices.trial_environments).
    """
    environment = environment or {}
    with open(log_path, "a") as log:
        log.write("\n$ %s\n" % " ".join(["%s=%s" % item for item in sorted(environment.items())]
                                         + list(command)))
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True,
                                   env=dict(os.environ, **environment) if environment else None)
        try:
            while process.poll() is None:
                if stop_event is not None and stop_event.is_set():
                    process.send_signal(signal.SIGTERM)
                    return process.wait()
                time.sleep(poll_seconds)
        except KeyboardInterrupt:
            process.send_signal(signal.SIGTERM)
            process.wait()
            raise
    return process.returncode


def run_local(jobs, parallel, stop_event, report, gpus=()):
    """Runs (trial, command) jobs as local processes, ``parallel`` at a time.

    ``report(trial, exit_code)`` is called as each ends. Stops starting new trials once
    ``stop_event`` is set; the running ones are sent SIGTERM and waited for. Each of the
    ``parallel`` slots trials run in has its GPU of ``gpus`` (devices.trial_environments).
    """
    pending = list(jobs)
    lock = threading.Lock()

    def worker(environment):
        while not stop_event.is_set():
            with lock:
                if not pending:
                    return
                trial, command = pending.pop(0)
            code = run_trial_process(command, os.path.join(trial.directory, LOG_NAME), stop_event,
                                     environment=environment)
            report(trial, code)

    slots = max(1, min(parallel, len(jobs)))
    threads = [threading.Thread(target=worker, args=(environment,))
               for environment in devices.trial_environments(slots, list(gpus))]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(0.2)


def run_on_ray(jobs, parallel, stop_event, report, address=None, gpus_per_trial=0.0):
    """Runs the same jobs as Ray tasks of one CPU and ``gpus_per_trial`` GPUs each (a local
    cluster of ``parallel`` CPUs, or the existing cluster at ``address``). A trial's log and
    folder must be reachable from the node that runs it (one machine, or a shared file
    system)."""
    ray = require_ray()
    # Workers import this module to run a trial: the checkout must be on their path.
    runtime_env = {"env_vars": {"PYTHONPATH": paths.REPO}}
    try:
        if address:
            ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
        else:
            ray.init(num_cpus=parallel, include_dashboard=False, log_to_driver=False,
                     object_store_memory=80 * 1024 * 1024, runtime_env=runtime_env)
    except Exception as error:  # Ray raises several types for an unreachable cluster.
        raise SweepError("cannot start or join a Ray cluster%s: %s"
                         % (" at " + address if address else "", first_line(error)))
    try:
        check_gpu_request(ray.cluster_resources(), gpus_per_trial)
        remote = ray.remote(**ray_task_options(gpus_per_trial))(run_trial_process)
        running = {remote.remote(command, os.path.join(trial.directory, LOG_NAME)): trial
                   for trial, command in jobs}
        cancelled = False
        while running:
            if stop_event.is_set() and not cancelled:
                for ref in running:  # KeyboardInterrupt in the task: SIGTERM to the trial.
                    ray.cancel(ref)
                cancelled = True
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in done:
                trial = running.pop(ref)
                try:
                    code = ray.get(ref)
                except Exception:  # Cancelled before or while it ran.
                    code = None
                report(trial, code)
    finally:
        ray.shutdown()


def ray_task_options(gpus_per_trial):
    """The resources a trial asks of Ray: one CPU, and ``gpus_per_trial`` GPUs (a fraction
    lets trials share one; Ray sets CUDA_VISIBLE_DEVICES in the task to the GPUs it gives)."""
    return {"num_cpus": 1, "num_gpus": gpus_per_trial, "max_retries": 0}


def check_gpu_request(resources, gpus_per_trial):
    """Raises SweepError when a Ray cluster's ``resources`` hold fewer GPUs than one trial
    asks for: no node could run it, and the trials would wait for ever."""
    gpus = resources.get("GPU", 0)
    if gpus_per_trial > gpus:
        raise SweepError("--gpus-per-trial %g: the Ray cluster has %g GPUs" % (
            gpus_per_trial, gpus))


def require_ray():
    """The ray module, or a SweepError saying how to get it."""
    try:
        import ray
    except ImportError:
        raise SweepError("Ray is not installed in this Python (it needs Python >= 3.9; "
                         "pip install ray, or run without --ray)")
    return ray


def check_reachable(address, timeout=5.0):
    """Raises SweepError unless a TCP connection to a Ray head's 'host:port' opens.

    Ray itself retries an unreachable head for minutes before it gives up.
    """
    import socket
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    host = host.replace("ray://", "")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (ValueError, OSError) as error:
        raise SweepError("cannot reach a Ray cluster at %s (expected HOST:PORT of a running "
                         "head node, started with `ray start --head`): %s"
                         % (address, first_line(error)))


# The held-out set of extrapolation (trained on 0-2 digits, counting 3): MNIST test digits, a
# seed of its own, made once per sweep output folder and number of images.
EXTRAPOLATION_DIGITS = 3
EXTRAPOLATION_SEED = 3


def extrapolation_set(output_dir, images, configs, python, mnist_dir=None):
    """The record file of ``images`` 3-digit test images the trials' final models count
    (training.py --extrapolation-data), made by multi_mnist.py on the canvas of the AIRConfigs
    ``configs`` unless an earlier sweep in ``output_dir`` made it; SweepError when it cannot."""
    canvases = sorted({(c.canvas_height, c.canvas_width) for c in configs})
    if len(canvases) != 1:
        raise SweepError("--extrapolation-images: the trials' canvases differ (%s); give 0 to "
                         "go without" % ", ".join("%dx%d" % c for c in canvases))
    folder = os.path.join(output_dir, "extrapolation-%d-digits-%d" % (EXTRAPOLATION_DIGITS,
                                                                       images))
    path = os.path.join(folder, "test.tfrecords")
    if os.path.isfile(path):
        return os.path.abspath(path)
    height, width = canvases[0]
    command = launcher.script_command(
        "multi_mnist", python, mnist_dir=mnist_dir, output_dir=folder,
        min_digits=EXTRAPOLATION_DIGITS, max_digits=EXTRAPOLATION_DIGITS, images_per_digit=0,
        test_set_size=images, seed=EXTRAPOLATION_SEED, height=height, width=width, workers=1,
        quiet=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    if result.returncode != 0 or not os.path.isfile(path):
        errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
        raise SweepError("--extrapolation-images: multi_mnist.py could not make the 3-digit set "
                         "(%s); give --mnist-dir, or 0 to go without"
                         % (errors[-1][len("error: "):] if errors else "exit %s"
                            % result.returncode))
    return os.path.abspath(path)


def python_runs(python):
    """True if ``python`` starts and can import TensorFlow (the interpreter for training.py)."""
    return launcher.can_import(python, "tensorflow")
