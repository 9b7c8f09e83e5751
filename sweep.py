"""Trains a grid of variants x seeds with training.py, locally or on Ray, and tabulates it.

    python sweep.py --seeds 1-10 --variant default --variant original \\
        [--variant original:lstm_input=image_and_latents] [--output-dir runs/sweep] \\
        [--parallel 2] [--ray [--address HOST:PORT]] [--python PATH] [--report-only]

Each trial is a training.py run in OUTPUT/<variant>/seed-<N>/ (log in training.log). Running
the same command again resumes unfinished trials and skips finished ones; trials that ended in
the report folder's records (another machine's runs) are skipped too. A status line every
--progress-seconds gives the trials' last evaluations, the speed and the time left at most.
SIGINT/SIGTERM stop the trials (each saves a checkpoint) and write the tables. Output:
sweep.csv (one row per trial), sweep.md (per variant: converged of ended, median and max first
iteration at the target accuracy; per trial: accuracy by digit count, failure mode, hours),
sweep.png (accuracy curves, one panel per variant), sweep_by_count.png (the accuracy on one- and
on two-digit images beside the z_pres prior's schedule), and a record of each trial
(REPORT/trials/<variant>/seed-<N>/: its metrics.csv and config.json) from which a later report,
anywhere, shows it again. Each trial's final model is measured as it ends (held-out mean IoU and
window height; count accuracy on --extrapolation-images 3-digit images) into its record.
"""
import argparse
import os
import sys
import threading
import time

from air import cli, devices
from air.experiments import sweep
from air.experiments.sweep_report import ended_in_report, write_report
from air.training import options as training_options

# The training options every trial shares, as sweep.py flags: shorter runs than training.py's
# defaults, one thread each (trials run side by side), a target accuracy to stop at.
TRIAL_DEFAULTS = {"data_dir": "multi_mnist_data/", "max_iterations": 45000,
                  "stop_at_accuracy": 0.98, "patience": 3, "eval_every": 1000,
                  "save_every": 5000, "threads": 1}


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train a grid of AIR variants x seeds (training.py runs) and tabulate them.",
        formatter_class=cli.HelpFormatter)
    parser.add_argument("--seeds", default="1-10", help="seeds, e.g. 1-10 or 1,3,5-7")
    parser.add_argument("--variant", action="append", metavar="NAME[:FIELD=VALUE,...]",
                        help="a preset (default, first-default, original) or a study variant "
                             "(window-20px, fast-anneal, original-fast; docs/study.md) with "
                             "optional config changes; repeatable (default: default and original)")
    parser.add_argument("--output-dir", default="runs/sweep", help="one folder per trial in here")
    training_options.add_flags(parser, names=TRIAL_DEFAULTS, defaults=TRIAL_DEFAULTS)
    cli.add_numeric_options(parser, [
        ("--parallel", cli.integer(1, 1024), 2, "trials at a time (CPUs of the local Ray cluster)"),
        ("--gpus-per-trial", cli.number(0.0), 0.0,
         "GPUs each Ray trial requests (0.5: two share one); local trials get the visible GPUs "
         "in turn"),
        ("--progress-seconds", cli.number(minimum=0.0), 600.0,
         "seconds between status lines (trials' last evaluations, speed, time left); 0: none"),
        ("--extrapolation-images", cli.integer(0, 100000), 500,
         "3-digit test images (made once in --output-dir by multi_mnist.py) each trial's final "
         "model counts, for the reports' 3-digit accuracy; 0: none"),
    ])
    parser.add_argument("--mnist-dir", default=None,
                        help="the MNIST files of the 3-digit set (default: multi_mnist.py's)")
    parser.add_argument("--ray", action="store_true",
                        help="run the trials as Ray tasks (Python >= 3.9 with ray installed)")
    parser.add_argument("--address", default=None,
                        help="join the Ray cluster at HOST:PORT instead of starting one "
                             "(implies --ray; trials must see the same paths, e.g. NFS)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs training.py (e.g. the TF 1.15 venv's)")
    parser.add_argument("--training-args", default="",
                        help="further training.py arguments, as one string")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite the tables and figure from the trial folders; "
                             "trials without an evaluation are left out, so one report can "
                             "join grids run with different seeds")
    parser.add_argument("--report-dir", default=None,
                        help="where sweep.csv, sweep.md and the figures go (default: "
                             "--output-dir), with a record of each trial (metrics.csv, "
                             "config.json): a report there keeps every trial it showed before, "
                             "and trials ended in it are not run again")
    return parser


def validate(args):
    """Checks what the parser cannot: the data, Ray, the cluster, the interpreter."""
    if not args.report_only:
        for name in ("train.tfrecords", "test.tfrecords"):
            if not os.path.isfile(os.path.join(args.data_dir, name)):
                raise sweep.SweepError("missing %s in %s: run `make data` (multi_mnist.py) first"
                                       % (name, args.data_dir))
        if args.ray or args.address:
            sweep.require_ray()
        if args.address:
            sweep.check_reachable(args.address)
        if not sweep.python_runs(args.python):
            raise sweep.SweepError("--python %s does not run or cannot import tensorflow"
                                   % args.python)


def run(args):
    variants = [sweep.parse_variant(v) for v in (args.variant or ["default", "original"])]
    trials = sweep.make_trials(variants, sweep.parse_seeds(args.seeds), args.output_dir)
    option_changes, config_changes = sweep.parse_training_args(args.training_args)
    # Not from_args: --progress-seconds is the sweep's status line here, not the trials'.
    try:
        options = training_options.TrainingOptions(
            **{name: getattr(args, name) for name in TRIAL_DEFAULTS}).replace(**option_changes)
    except ValueError as error:  # options that do not go together (--min-iterations, say)
        raise sweep.SweepError("--training-args: %s" % error)
    validate(args)
    os.makedirs(args.output_dir, exist_ok=True)
    report_dir = args.report_dir or args.output_dir
    os.makedirs(report_dir, exist_ok=True)
    if not args.report_only:
        # Trials that ended where no folder of theirs is left (another machine) stay ended.
        total = len(trials)
        elsewhere = ended_in_report(trials, options, report_dir)
        trials = [t for t in trials if t not in elsewhere]
        with sweep.SweepLock(args.output_dir):
            options = _with_final_evaluation(args, options, variants, config_changes)
            jobs = [(t, c) for t, c in ((t, sweep.prepare_trial(t, options, args.python,
                                                                  config_changes))
                                        for t in trials) if c is not None]
            print("sweep: %d trials, %d to run, %d already ended%s"
                  % (total, len(jobs), total - len(jobs),
                     " (%d of them in the report in %s)" % (len(elsewhere), report_dir)
                     if elsewhere else ""), flush=True)
            _run_jobs(args, jobs, options, trials, report_dir)
    else:
        trials = [t for t in trials if sweep.read_metrics(t.directory)]
    rows = write_report(trials, options, report_dir, args.stop_at_accuracy)
    ended = sum(r["state"] in ("converged", "finished") for r in rows)
    print("sweep: %d of %d trials ended; tables in %s"
          % (ended, len(rows), os.path.join(report_dir, "sweep.md")), flush=True)


def _with_final_evaluation(args, options, variants, config_changes):
    """The trials' options with the figures of their final models (final_evaluation.json):
    held-out boxes and windows, and the count accuracy on the 3-digit set."""
    extrapolation = ""
    if args.extrapolation_images:
        configs = [sweep.variant_config(v).replace(**config_changes) for v in variants]
        extrapolation = sweep.extrapolation_set(args.output_dir, args.extrapolation_images,
                                                configs, args.python, args.mnist_dir)
    return options.replace(final_evaluation=True, extrapolation_data=extrapolation)


def _run_jobs(args, jobs, options, trials, report_dir):
    """Runs the jobs, printing one line per ended trial (rewriting the tables each time) and a
    status line every --progress-seconds."""
    if not jobs:
        return
    start = time.time()
    lock = threading.Lock()
    ended = []
    start_iterations = {t.directory: sweep.last_iteration(t) for t in trials}
    all_ended = threading.Event()

    def progress():
        with lock:
            print(sweep.progress_line(trials, options, start_iterations, time.time() - start),
                  flush=True)

    def report(trial, code):
        with lock:
            ended.append(trial)
            state = sweep.trial_state(trial, options)
            print("sweep: [%d/%d] %s seed %d: %s (exit %s), %.1f h into the sweep"
                  % (len(ended), len(jobs), trial.variant.name, trial.seed, state, code,
                     (time.time() - start) / 3600.0), flush=True)
            error = sweep.trial_error(trial) if code else None
            if error:  # The trial's own one line says why (a damaged checkpoint, a full disk).
                print("sweep:   %s" % error, flush=True)
            write_report(trials, options, report_dir, args.stop_at_accuracy)

    if args.progress_seconds:
        sweep.every(args.progress_seconds, all_ended, progress)
    with cli.StopSignals() as stop:
        if args.ray or args.address:
            sweep.run_on_ray(jobs, args.parallel, stop.event, report, args.address,
                             args.gpus_per_trial)
        else:
            sweep.run_local(jobs, args.parallel, stop.event, report, devices.visible_gpus())
    all_ended.set()
    if stop.signal_name:
        print("sweep: %s received: trials saved their checkpoints; run the same command to "
              "resume" % stop.signal_name, flush=True)


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
