"""Trains AIR on multi-MNIST: checkpoints, TensorBoard summaries, held-out accuracy, resume.

    python training.py [--data-dir multi_mnist_data/] [--results-dir air_results/] [--resume]
                       [--max-iterations N | --epochs N] [--<any AIRConfig field> VALUE ...]

Results folder: source/ (snapshot of the running code), model/ (checkpoints + config.json),
summary/ (TensorBoard events: training under their group names, held-out under heldout/),
metrics.csv (one row per held-out evaluation). Ctrl-C / SIGTERM save a checkpoint and exit.
"""
import argparse
import csv
import math
import os
import shutil
import signal
import subprocess
import sys
import time

from air import cli, metrics_log

SOURCE_FILES = ("training.py", "evaluate.py", "multi_mnist.py", "demo.py", "embeddings.py",
                "charts.py", "bench.py", "requirements.txt", "Makefile", "README.md")
METRIC_COLUMNS = ("iteration", "wall_time", "epoch", "loss", "reconstruction", "kl_z_pres",
                  "kl_z_where", "kl_z_what", "train_accuracy", "skipped_updates",
                  "heldout_accuracy", "heldout_accuracy_0", "heldout_accuracy_1",
                  "heldout_accuracy_2", "heldout_discrete_elbo_final_prior", "heldout_overcount",
                  "heldout_undercount")
CHECKPOINT_NAME = "model.ckpt"
MAX_SEED = 2 ** 31 - 1  # numpy's and TensorFlow's seeds must fit
MAX_THREADS = 1024


class TrainingError(cli.UserError):
    """A problem the user can fix; printed as one line."""


def build_parser():
    from air.config import config_fields
    parser = argparse.ArgumentParser(
        description="Train continuous-relaxation AIR on multi-MNIST.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--data-dir", default="multi_mnist_data/",
                     help="folder with train.tfrecords and test.tfrecords (multi_mnist.py)")
    run.add_argument("--results-dir", default="air_results/", help="where everything is written")
    run.add_argument("--resume", action="store_true",
                     help="continue from the latest checkpoint in --results-dir")
    run.add_argument("--epochs", type=cli.number(0.0, exclusive_minimum=True), default=300,
                     help="passes over the training set")
    run.add_argument("--max-iterations", type=cli.integer(minimum=1), default=None,
                     help="stop after this many iterations (overrides --epochs)")
    run.add_argument("--seed", type=cli.integer(0, MAX_SEED), default=None,
                     help="graph, shuffle and sampler seed")
    run.add_argument("--eval-every", type=cli.integer(minimum=1), default=1000,
                     help="iterations between held-out evaluations")
    run.add_argument("--eval-batch-size", type=cli.integer(minimum=1), default=500,
                     help="images per forward pass of the held-out evaluation")
    run.add_argument("--heldout-elbo-samples", type=cli.integer(minimum=1), default=4,
                     metavar="N",
                     help="samples per held-out image of the sampled ELBO of the discrete model "
                          "at the final z_pres prior (metrics.csv heldout_discrete_elbo_final_prior)")
    for group, default in (("scalars", 50), ("variables", 250), ("images", 500),
                           ("gradients", 100)):
        run.add_argument("--%s-every" % group, type=cli.integer(minimum=0), default=default,
                         help="iterations between %s summaries (0: none)" % group)
    run.add_argument("--save-every", type=cli.integer(minimum=1), default=10000,
                     help="iterations between checkpoints")
    run.add_argument("--keep-checkpoints", type=cli.integer(minimum=1), default=5,
                     help="newest checkpoints kept")
    run.add_argument("--progress-seconds", type=cli.number(minimum=0.0), default=5.0,
                     help="seconds between progress lines")
    run.add_argument("--max-skipped-in-a-row", type=cli.integer(minimum=1), default=100,
                     help="stop when this many updates in a row had a non-finite loss")
    run.add_argument("--threads", type=cli.integer(0, MAX_THREADS), default=0,
                     help="TensorFlow intra/inter-op threads (0: TensorFlow's choice)")
    run.add_argument("--stop-at-accuracy", type=cli.number(0.0, 1.0, exclusive_minimum=True),
                     default=None, metavar="A",
                     help="stop once held-out count accuracy has been >= A at --patience "
                          "evaluations in a row (resumed runs count their earlier evaluations)")
    run.add_argument("--patience", type=cli.integer(minimum=1), default=3,
                     help="evaluations in a row at --stop-at-accuracy before stopping")

    model = parser.add_argument_group(
        "model configuration (defaults: the published configuration; see air/config.py)")
    for name, kind, default, help_text in config_fields():
        flag = "--" + name.replace("_", "-")
        shown = list(default) if isinstance(default, tuple) else default
        help_text = "%s (default: %s)" % (help_text, shown)
        if kind is bool:
            model.add_argument(flag, dest=name, type=_parse_bool, metavar="true|false",
                               default=argparse.SUPPRESS, help=help_text)
        elif isinstance(default, tuple):
            model.add_argument(flag, dest=name, type=cli.integer(minimum=1), nargs="+",
                               default=argparse.SUPPRESS, help=help_text)
        else:
            # Ranges are AIRConfig's to check (validate()); the types reject text and NaN.
            parse = {int: cli.integer(), float: cli.number()}.get(kind, kind)
            model.add_argument(flag, dest=name, type=parse, default=argparse.SUPPRESS,
                               help=help_text)
    return parser


def _parse_bool(text):
    value = text.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % text)


def _config_overrides(args):
    """The config fields given on the command line; a --preset brings its own fields first."""
    from air.config import PRESETS, config_fields
    given = {name: getattr(args, name) for name, _, _, _ in config_fields() if hasattr(args, name)}
    if "preset" in given:
        if given["preset"] not in PRESETS:
            raise TrainingError("unknown --preset %r (one of %s)"
                                % (given["preset"], ", ".join(PRESETS)))
        given = dict(PRESETS[given["preset"]], **given)
    return given


def snapshot_source(destination):
    """Copies the running code (package, scripts, requirements) and the git commit.

    A resumed run keeps the first session's snapshot and adds its own code beside it, in
    ``resumed-<date>-<time>/``: the weights come from every session's code.
    """
    root = os.path.dirname(os.path.abspath(__file__))
    if os.path.exists(os.path.join(destination, "air")):
        base = os.path.join(destination, "resumed-" + time.strftime("%Y%m%d-%H%M%S"))
        destination, suffix = base, 1
        while os.path.exists(destination):
            suffix += 1
            destination = "%s-%d" % (base, suffix)
    os.makedirs(destination, exist_ok=True)
    shutil.copytree(os.path.join(root, "air"), os.path.join(destination, "air"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in SOURCE_FILES:
        if os.path.isfile(os.path.join(root, name)):
            shutil.copy2(os.path.join(root, name), destination)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, universal_newlines=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                universal_newlines=True, check=True)
        with open(os.path.join(destination, "GIT_COMMIT"), "w") as f:
            f.write(commit.stdout)
            if status.stdout.strip():
                f.write("uncommitted changes:\n" + status.stdout)
    except (OSError, subprocess.CalledProcessError):
        pass  # Not a git checkout: the copied files are the record.


def count_records(path):
    from air.data import records
    return sum(1 for _ in records.iterate_records(path))


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks between iterations."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name

    def restore(self):
        """Puts back the previous handlers (main() is also called in-process, from tests)."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return "%dh%02dm" % (hours, rest // 60) if hours else "%dm%02ds" % divmod(rest, 60)


def prepare_results(args):
    """Checks and creates the results folder; returns (config, model_dir, summary_dir)."""
    from air.checkpoints import latest_checkpoint
    from air.config import AIRConfig, CONFIG_FILENAME
    model_dir = os.path.join(args.results_dir, "model")
    summary_dir = os.path.join(args.results_dir, "summary")
    has_checkpoint = latest_checkpoint(model_dir) is not None
    overrides = _config_overrides(args)
    if args.resume:
        if not has_checkpoint:
            raise TrainingError("--resume: no checkpoint in %s" % model_dir)
        try:
            config = AIRConfig.load(os.path.join(model_dir, CONFIG_FILENAME))
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
        used = [name for name in ("metrics.csv", "model", "summary")
                if os.path.exists(os.path.join(args.results_dir, name))]
        if used:
            raise TrainingError("%s already holds %s of an earlier run (without a checkpoint to "
                                "resume): delete it or choose another --results-dir"
                                % (args.results_dir, ", ".join(used)))
        try:
            config = AIRConfig.from_dict(overrides)
        except ValueError as error:
            raise TrainingError(error)
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(summary_dir, exist_ok=True)
    config.save(os.path.join(model_dir, CONFIG_FILENAME))
    snapshot_source(os.path.join(args.results_dir, "source"))
    return config, model_dir, summary_dir


def train(args):
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    from air.data import records

    train_path = os.path.join(args.data_dir, "train.tfrecords")
    test_path = os.path.join(args.data_dir, "test.tfrecords")
    for path in (train_path, test_path):
        if not os.path.isfile(path):
            raise TrainingError("missing %s: run `make data` (multi_mnist.py) first" % path)
    height, width = records.image_shape(train_path)
    config, model_dir, summary_dir = prepare_results(args)
    if (height, width) != (config.canvas_height, config.canvas_width):
        raise TrainingError("%s holds %dx%d images but the config expects %dx%d" % (
            train_path, height, width, config.canvas_height, config.canvas_width))

    train_images = count_records(train_path)
    iterations_per_epoch = train_images / float(config.batch_size)
    max_iterations = (args.max_iterations if args.max_iterations is not None
                      else int(math.ceil(args.epochs * iterations_per_epoch)))

    with tf.Graph().as_default():
        _train_graph(args, config, model_dir, summary_dir, train_path, test_path,
                     iterations_per_epoch, max_iterations)


def _train_graph(args, config, model_dir, summary_dir, train_path, test_path,
                 iterations_per_epoch, max_iterations):
    """Builds the training graph in the current default graph and runs the loop."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    from air import summaries
    from air.data import pipeline
    from air.air_model import AIRModel
    from air.checkpoints import latest_checkpoint
    from air.evaluation import HeldOutEvaluator
    from air.optimization import build_train_op

    height, width = config.canvas_height, config.canvas_width
    if args.seed is not None:
        tf.set_random_seed(args.seed)
        np.random.seed(args.seed)
    global_step = tf.train.get_or_create_global_step()
    dataset = pipeline.batched_dataset(train_path, config.batch_size, shuffle=True, repeat=True,
                                      seed=args.seed, height=height, width=width,
                                      drop_remainder=True)
    batch = tf.data.make_one_shot_iterator(dataset).get_next()
    model = AIRModel(batch["image"], config, training=True, true_counts=batch["digits"],
                     global_step=global_step)
    train_ops = build_train_op(model.loss, config, global_step)
    evaluator = HeldOutEvaluator(config, test_path, args.eval_batch_size, global_step)

    summary_ops = {
        "scalars": (args.scalars_every, summaries.scalar_summaries(
            model, train_ops, tf.constant(config.learning_rate))),
        "variables": (args.variables_every, summaries.variable_summaries(model)),
        "gradients": (args.gradients_every, summaries.gradient_summaries(train_ops)),
        "images": (args.images_every, summaries.image_summaries(model)),
    }
    fetches = {"step": train_ops.train_op, "finite": train_ops.update_is_finite,
               "loss": model.loss,
               "terms": [tf.reduce_mean(t) for t in (model.reconstruction_loss, model.kl_z_pres,
                                                     model.kl_z_where, model.kl_z_what)],
               "accuracy": model.accuracy, "skipped": train_ops.skipped_updates}
    saver = tf.train.Saver(max_to_keep=args.keep_checkpoints, save_relative_paths=True)
    session_config = tf.ConfigProto(intra_op_parallelism_threads=args.threads,
                                    inter_op_parallelism_threads=args.threads)

    stop = StopRequest()
    with tf.Session(config=session_config) as session:
        # The project's lookup also finds the checkpoints of a folder that was moved.
        latest = latest_checkpoint(model_dir)
        if args.resume:
            saver.restore(session, latest)
            print("resumed from %s" % latest, flush=True)
        else:
            session.run(tf.global_variables_initializer())
        step = int(session.run(global_step))
        writer = tf.summary.FileWriter(summary_dir, session.graph if step == 0 else None)
        # Events past the resumed step (written before an interruption) are superseded.
        writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), step)
        metrics_path = os.path.join(args.results_dir, "metrics.csv")
        # Rows past the resumed step were written after the last checkpoint: they are redone.
        earlier_rows = metrics_log.read_rows(metrics_path, up_to=step)
        metrics_file = open(metrics_path, "w", newline="")
        metrics = csv.writer(metrics_file)
        columns = metric_columns(earlier_rows)
        metrics.writerow(columns)
        metrics.writerows([row.get(c, "") for c in columns] for row in earlier_rows)
        # Columns only an older version wrote (heldout_elbo) stay empty in the new rows.
        old_only = [""] * (len(columns) - len(METRIC_COLUMNS))
        metrics_file.flush()
        good_streak = metrics_log.accuracy_streak(earlier_rows, args.stop_at_accuracy)

        def save():
            path = saver.save(session, os.path.join(model_dir, CHECKPOINT_NAME), global_step=step)
            writer.flush()
            metrics_file.flush()
            return path

        window = []  # training fetches since the last metrics row
        heldout = {}
        skipped_in_a_row = 0
        start_step, start_time = step, time.time()
        last_progress = 0.0
        exit_message = None
        failure = None
        converged = False
        try:
            while step < max_iterations:
                if stop.signal_name:
                    exit_message = "%s received" % stop.signal_name
                    break
                if args.stop_at_accuracy is not None and good_streak >= args.patience:
                    converged = True
                    break
                run_fetches = dict(fetches)
                for name, (period, op) in summary_ops.items():
                    if period > 0 and step % period == 0:
                        run_fetches[name] = op
                result = session.run(run_fetches)
                for name in summary_ops:
                    if name in result:
                        writer.add_summary(result[name], step)
                step += 1
                if result["finite"]:
                    skipped_in_a_row = 0
                    window.append([result["loss"]] + result["terms"] + [result["accuracy"]])
                else:
                    skipped_in_a_row += 1
                    if skipped_in_a_row >= args.max_skipped_in_a_row:
                        failure = ("%d updates in a row had a non-finite loss or gradient "
                                   "(iterations %d to %d)"
                                   % (skipped_in_a_row, step - skipped_in_a_row + 1, step))
                        break

                if step % args.eval_every == 0 or step == max_iterations:
                    heldout = evaluator.heldout_metrics(session, args.heldout_elbo_samples)
                    heldout["iteration"] = step
                    _write_heldout_summary(tf, writer, heldout, step)
                    means = np.mean(window, axis=0) if window else [float("nan")] * 6
                    by = heldout["count_accuracy_by_digits"]
                    metrics.writerow([step, "%.1f" % time.time(), "%.3f" % (step / iterations_per_epoch)]
                                     + ["%.4f" % v for v in means]
                                     + [int(result["skipped"]), "%.4f" % heldout["count_accuracy"]]
                                     + ["%.4f" % by.get(str(k), float("nan")) for k in range(3)]
                                     + ["%.3f" % heldout["discrete_elbo_final_prior"],
                                        "%.4f" % heldout["overcount"],
                                        "%.4f" % heldout["undercount"]]
                                     + old_only)
                    metrics_file.flush()
                    window = []
                    good_streak = (good_streak + 1 if args.stop_at_accuracy is not None
                                   and heldout["count_accuracy"] >= args.stop_at_accuracy else 0)
                if step % args.save_every == 0:
                    save()

                now = time.time()
                if now - last_progress >= args.progress_seconds or step == max_iterations:
                    last_progress = now
                    rate = (step - start_step) / max(now - start_time, 1e-9)
                    eta = (max_iterations - step) / rate if rate > 0 else float("inf")
                    line = ("it %d/%d  epoch %.2f  %.1f it/s  ETA %s  loss %.1f  skipped %d"
                            % (step, max_iterations, step / iterations_per_epoch, rate,
                               format_duration(eta), result["loss"], result["skipped"]))
                    if heldout:
                        line += "  held-out acc %.4f (it %d)" % (heldout["count_accuracy"],
                                                                heldout["iteration"])
                    print(line, flush=True)
        finally:
            path = save()
            writer.close()
            metrics_file.close()
            stop.restore()
        if failure:
            # Skipped updates change no weight: the checkpoint holds the last finite update's.
            raise TrainingError("%s: stopped and saved %s (weights of the last finite update, "
                                "iteration %d); check the data for NaN or infinite pixels, or "
                                "lower --learning-rate" % (failure, path, step - skipped_in_a_row))
        if exit_message:
            print("%s: saved %s; continue with --resume" % (exit_message, path), flush=True)
        elif converged:
            print("converged: held-out count accuracy >= %g at %d evaluations in a row "
                  "(iteration %d); saved %s" % (args.stop_at_accuracy, args.patience, step, path),
                  flush=True)
        else:
            print("finished %d iterations; saved %s" % (step, path), flush=True)


def metric_columns(earlier_rows):
    """The metrics.csv header of a (resumed) run: METRIC_COLUMNS, then any column the earlier
    rows have beyond them (one an older version wrote, such as the plug-in `heldout_elbo`
    before the sampled ELBO replaced it), so that resuming never drops recorded values."""
    extra = []
    for row in earlier_rows:
        extra += [c for c in row if c not in METRIC_COLUMNS and c not in extra and c]
    return tuple(METRIC_COLUMNS) + tuple(extra)


def _write_heldout_summary(tf, writer, heldout, step):
    values = [tf.Summary.Value(tag="heldout/accuracy/all", simple_value=heldout["count_accuracy"]),
              tf.Summary.Value(tag="heldout/discrete_elbo_final_prior",
                               simple_value=heldout["discrete_elbo_final_prior"])]
    for k, accuracy in sorted(heldout["count_accuracy_by_digits"].items()):
        values.append(tf.Summary.Value(tag="heldout/accuracy/%s_digits" % k, simple_value=accuracy))
    writer.add_summary(tf.Summary(value=values), step)
    writer.flush()


def validate(args):
    """Rejects model flags AIRConfig refuses, naming the flag, before anything is written.

    Ranges of the run flags are checked while parsing (cli.integer, cli.number).
    """
    from air.config import AIRConfig
    if os.path.exists(args.results_dir) and not os.path.isdir(args.results_dir):
        raise TrainingError("--results-dir %s is a file, not a folder" % args.results_dir)
    given = _config_overrides(args)
    for name, value in sorted(given.items()):
        try:
            AIRConfig.from_dict({name: value})
        except ValueError as error:
            raise TrainingError("--%s: %s" % (name.replace("_", "-"), error))
    try:
        AIRConfig.from_dict(given)
    except ValueError as error:  # A combination of values, each valid alone.
        raise TrainingError(error)


def run(args):
    """Validates the options and trains; TrainingError for problems the user can fix."""
    validate(args)
    train(args)
    return 0


def main(argv=None):
    return cli.main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
