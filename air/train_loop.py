"""The training loop of training.py: the training graph, the loop with its summaries, held-out
evaluations, checkpoints and metrics.csv rows, and the stop on a signal or at convergence.

``build_training_graph`` is also what bench.py times, so the benchmark measures this graph.
"""
import collections
import math
import os
import signal
import time

from air import cli, metrics_log
from air.checkpoints import CHECKPOINT_PREFIX
from air.data import records
from air.run_folder import TrainingError, prepare_results

# The training graph: the model on a batch, its train op and the global step that drives the
# z_pres prior schedule.
TrainingGraph = collections.namedtuple("TrainingGraph", ["global_step", "model", "train_ops"])


def build_training_graph(config, train_path=None, images=None, seed=None):
    """Builds the training graph in the current default graph: batches of ``train_path``
    (shuffled and repeated through tf.data, seeded by ``seed``) or the fixed ``images``
    [B, H, W] tensor; returns a TrainingGraph."""
    import tensorflow.compat.v1 as tf
    from air.air_model import AIRModel
    from air.data import pipeline
    from air.optimization import build_train_op
    global_step = tf.train.get_or_create_global_step()
    true_counts = None
    if images is None:
        dataset = pipeline.batched_dataset(
            train_path, config.batch_size, shuffle=True, repeat=True, seed=seed,
            height=config.canvas_height, width=config.canvas_width, drop_remainder=True)
        batch = tf.data.make_one_shot_iterator(dataset).get_next()
        images, true_counts = batch["image"], batch["digits"]
    model = AIRModel(images, config, training=True, true_counts=true_counts,
                     global_step=global_step)
    return TrainingGraph(global_step, model, build_train_op(model.loss, config, global_step))


def iteration_fetches(graph):
    """What every training iteration runs and reads: the update, whether it was finite, the
    loss, the mean of each loss term, the batch's count accuracy, the skipped-update count."""
    import tensorflow.compat.v1 as tf
    model, train_ops = graph.model, graph.train_ops
    return {"step": train_ops.train_op, "finite": train_ops.update_is_finite,
            "loss": model.loss,
            "terms": [tf.reduce_mean(t) for t in (model.reconstruction_loss, model.kl_z_pres,
                                                  model.kl_z_where, model.kl_z_what)],
            "accuracy": model.accuracy, "skipped": train_ops.skipped_updates}


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


def train(args):
    """Trains as training.py's parsed ``args`` say: checks the data, prepares the results
    folder, then runs the loop in a fresh graph. TrainingError for problems the user can fix."""
    tf = cli.import_tensorflow()
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

    train_images = sum(1 for _ in records.iterate_records(train_path))
    iterations_per_epoch = train_images / float(config.batch_size)
    max_iterations = (args.max_iterations if args.max_iterations is not None
                      else int(math.ceil(args.epochs * iterations_per_epoch)))
    with tf.Graph().as_default():
        _run(args, config, model_dir, summary_dir, train_path, test_path, iterations_per_epoch,
             max_iterations)


def _run(args, config, model_dir, summary_dir, train_path, test_path, iterations_per_epoch,
         max_iterations):
    """Builds the training graph in the current default graph and runs the loop."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    from air import summaries
    from air.checkpoints import latest_checkpoint
    from air.evaluation import HeldOutEvaluator

    if args.seed is not None:
        tf.set_random_seed(args.seed)
        np.random.seed(args.seed)
    graph = build_training_graph(config, train_path, seed=args.seed)
    model, global_step = graph.model, graph.global_step
    evaluator = HeldOutEvaluator(config, test_path, args.eval_batch_size, global_step)
    summary_ops = {
        "scalars": (args.scalars_every, summaries.scalar_summaries(
            model, graph.train_ops, tf.constant(config.learning_rate))),
        "variables": (args.variables_every, summaries.variable_summaries(model)),
        "gradients": (args.gradients_every, summaries.gradient_summaries(graph.train_ops)),
        "images": (args.images_every, summaries.image_summaries(model)),
    }
    fetches = iteration_fetches(graph)
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
        metrics = metrics_log.MetricsWriter(
            os.path.join(args.results_dir, metrics_log.FILENAME), step)
        good_streak = metrics_log.accuracy_streak(metrics.earlier_rows, args.stop_at_accuracy)

        def save():
            path = saver.save(session, os.path.join(model_dir, CHECKPOINT_PREFIX),
                              global_step=step)
            writer.flush()
            metrics.flush()
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
                    means = (np.mean(window, axis=0) if window
                             else [float("nan")] * len(metrics_log.TRAINING_MEANS))
                    metrics.write(step, time.time(), step / iterations_per_epoch, means,
                                  result["skipped"], heldout)
                    window = []
                    good_streak = (good_streak + 1 if args.stop_at_accuracy is not None
                                   and heldout["count_accuracy"] >= args.stop_at_accuracy else 0)
                if step % args.save_every == 0:
                    save()

                now = time.time()
                if now - last_progress >= args.progress_seconds or step == max_iterations:
                    last_progress = now
                    print(_progress_line(step, max_iterations, iterations_per_epoch,
                                         (step - start_step) / max(now - start_time, 1e-9),
                                         result, heldout), flush=True)
        finally:
            path = save()
            writer.close()
            metrics.close()
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


def _progress_line(step, max_iterations, iterations_per_epoch, rate, result, heldout):
    """The periodic progress line: iteration, epoch, speed, ETA, loss, last held-out accuracy."""
    eta = (max_iterations - step) / rate if rate > 0 else float("inf")
    line = ("it %d/%d  epoch %.2f  %.1f it/s  ETA %s  loss %.1f  skipped %d"
            % (step, max_iterations, step / iterations_per_epoch, rate, format_duration(eta),
               result["loss"], result["skipped"]))
    if heldout:
        line += "  held-out acc %.4f (it %d)" % (heldout["count_accuracy"], heldout["iteration"])
    return line


def _write_heldout_summary(tf, writer, heldout, step):
    values = [tf.Summary.Value(tag="heldout/accuracy/all", simple_value=heldout["count_accuracy"]),
              tf.Summary.Value(tag="heldout/discrete_elbo_final_prior",
                               simple_value=heldout["discrete_elbo_final_prior"])]
    for k, accuracy in sorted(heldout["count_accuracy_by_digits"].items()):
        values.append(tf.Summary.Value(tag="heldout/accuracy/%s_digits" % k, simple_value=accuracy))
    writer.add_summary(tf.Summary(value=values), step)
    writer.flush()
