"""The training loop of training.py: the training graph, the loop with its summaries, held-out
evaluations, checkpoints and metrics.csv rows, and the stop on a signal or at convergence.

``build_training_graph`` is also what bench.py times, so the benchmark measures this graph.
"""
import collections
import math
import os
import time

from air import cli, devices
from air.training import environment, metrics_log, write_failures
from air.training.checkpoints import CHECKPOINT_PREFIX
from air.data import records
from air.training.run_folder import TrainingError, prepare_results

# The training graph: the model on a batch, its train op and the global step that drives the
# z_pres prior schedule.
TrainingGraph = collections.namedtuple("TrainingGraph", ["global_step", "model", "train_ops"])


def build_training_graph(config, train_path=None, images=None, seed=None):
    """Builds the training graph in the current default graph: batches of ``train_path``
    (shuffled and repeated through tf.data, seeded by ``seed``) or the fixed ``images``
    [B, H, W] tensor; returns a TrainingGraph."""
    import tensorflow.compat.v1 as tf
    from air.model.air_model import AIRModel
    from air.data import pipeline
    from air.training.optimization import build_objective_train_op
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
    return TrainingGraph(global_step, model,
                         build_objective_train_op(model.objective, config, global_step))


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


def train(args, config_fields):
    """Trains as TrainingOptions ``args`` (air/training/options.py) say, with the model config
    of the fields ``config_fields`` (name -> value; a resumed run checks them against its
    saved config): checks the data, prepares the results folder, then runs the loop in a
    fresh graph. TrainingError for problems the user can fix."""
    tf = cli.import_tensorflow()
    train_path = os.path.join(args.data_dir, "train.tfrecords")
    test_path = os.path.join(args.data_dir, "test.tfrecords")
    for path in (train_path, test_path):
        if not os.path.isfile(path):
            raise TrainingError("missing %s: run `make data` (multi_mnist.py) first" % path)
    if args.extrapolation_data and not os.path.isfile(args.extrapolation_data):
        raise TrainingError("--extrapolation-data %s: no such file" % args.extrapolation_data)
    # Read before prepare_results writes anything, so that an unreadable file leaves no folder.
    shapes = {path: records.image_shape(path)
              for path in filter(None, (train_path, args.extrapolation_data))}
    with write_failures.reported(os.path.join(args.results_dir, "model")):
        config, model_dir, summary_dir = prepare_results(args, config_fields)
    for path, shape in shapes.items():
        mismatch = records.shape_mismatch(path, shape, (config.canvas_height, config.canvas_width))
        if mismatch:
            raise TrainingError(mismatch)

    train_images = sum(1 for _ in records.iterate_records(train_path))
    iterations_per_epoch = train_images / float(config.batch_size)
    max_iterations = (args.max_iterations if args.max_iterations is not None
                      else int(math.ceil(args.epochs * iterations_per_epoch)))
    with tf.Graph().as_default(), write_failures.reported(model_dir):
        _run(args, config, model_dir, summary_dir, train_path, test_path, iterations_per_epoch,
             max_iterations)


def _run(args, config, model_dir, summary_dir, train_path, test_path, iterations_per_epoch,
         max_iterations):
    """Builds the training graph in the current default graph and runs the loop."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    from air.training.checkpoints import checkpoint_to_resume
    from air.evaluation.heldout import HeldOutEvaluator

    if args.seed is not None:
        tf.set_random_seed(args.seed)
        np.random.seed(args.seed)
    # Built in this order, always: with a seed, each random op's stream follows from its place.
    graph = build_training_graph(config, train_path, seed=args.seed)
    evaluator = HeldOutEvaluator(config, test_path, args.eval_batch_size, graph.global_step)
    summary_ops = _summary_ops(args, graph)
    fetches = iteration_fetches(graph)
    saver = tf.train.Saver(max_to_keep=args.keep_checkpoints, save_relative_paths=True)
    # Built last: its ops come after every op of the run's own graph.
    probe = _gradient_noise_probe(args, config, train_path, graph.global_step)
    final = _final_evaluation(args, config, evaluator)
    session_config = devices.session_config(args.threads, args.gpu_memory_fraction,
                                            args.device or None)

    # The newest checkpoint that reads completely, past any that a failed save left damaged.
    latest = checkpoint_to_resume(model_dir) if args.resume else None
    stop = cli.StopSignals()  # checked between iterations
    with tf.Session(config=session_config) as session:
        if args.resume:
            saver.restore(session, latest)
            print("resumed from %s" % latest, flush=True)
        else:
            session.run(tf.global_variables_initializer())
        step = int(session.run(graph.global_step))
        environment.record_session(args.results_dir, step, args.threads)
        writer = tf.summary.FileWriter(summary_dir, session.graph if step == 0 else None)
        # Events past the resumed step (written before an interruption) are superseded.
        writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), step)
        metrics = metrics_log.MetricsWriter(
            os.path.join(args.results_dir, metrics_log.FILENAME), step)
        loop = _Loop(args, session, saver, model_dir, writer, metrics, step,
                     iterations_per_epoch, max_iterations, probe)
        try:
            ending = loop.run(fetches, summary_ops, evaluator, stop)
            path = loop.save()
            if final is not None and ending in ("converged", "finished"):
                final.write(session, loop.step, args.results_dir, loop.heldout)
        except BaseException as error:
            # A run stopped by an error saves what it has, unless the error is a failed write:
            # another save would only fail again, and leave more partial files.
            if write_failures.describe(error) is None:
                loop.save()
            raise
        finally:
            stop.restore()
            metrics.close()
            writer.close()
        _report(ending, path, loop, args, stop.signal_name)


def _gradient_noise_probe(args, config, train_path, global_step):
    """The GradientNoiseProbe of --gradient-variance-draws on the first training batch, or None."""
    if args.gradient_variance_draws < 2:
        return None
    from air.training.gradient_noise import GradientNoiseProbe
    return GradientNoiseProbe(config, records.first_images(train_path, config.batch_size),
                              global_step, args.gradient_variance_draws)


def _final_evaluation(args, config, evaluator):
    """The FinalEvaluation of --final-evaluation (beside the run's held-out evaluator), or None."""
    if not args.final_evaluation:
        return None
    from air.evaluation.final import FinalEvaluation
    return FinalEvaluation(config, evaluator, args.extrapolation_data or None,
                           args.eval_batch_size)


def _summary_ops(args, graph):
    """The TensorBoard summaries by kind: name -> (iterations between them, summary op)."""
    import tensorflow.compat.v1 as tf
    from air.training import summaries
    model, train_ops = graph.model, graph.train_ops
    return {
        "scalars": (args.scalars_every, summaries.scalar_summaries(
            model, train_ops, tf.convert_to_tensor(train_ops.learning_rate))),
        "variables": (args.variables_every, summaries.variable_summaries(model)),
        "gradients": (args.gradients_every, summaries.gradient_summaries(train_ops)),
        "images": (args.images_every, summaries.image_summaries(model)),
    }


class _Loop:
    """The iterations of one training run in an open session, with its evaluations, metrics
    rows, summaries and checkpoints; ``run`` says why it ended."""

    def __init__(self, args, session, saver, model_dir, writer, metrics, step,
                 iterations_per_epoch, max_iterations, probe=None):
        self.probe = probe
        self.args, self.session, self.saver, self.model_dir = args, session, saver, model_dir
        self.writer, self.metrics = writer, metrics
        self.step, self.iterations_per_epoch = step, iterations_per_epoch
        self.max_iterations = max_iterations
        # Evaluations before a resume count towards --patience (metrics.csv keeps them).
        self.good_streak = metrics_log.accuracy_streak(metrics.earlier_rows,
                                                       args.stop_at_accuracy)
        self.window = []  # training fetches since the last metrics row
        self.heldout = {}
        self.skipped_in_a_row = 0
        self.failure = None

    def save(self):
        """Writes a checkpoint at the current step, flushes summaries and metrics; its path."""
        # No .meta: every reader rebuilds the graph from config.json, and serialising the
        # training graph cost more than writing the weights of a small model.
        path = self.saver.save(self.session, os.path.join(self.model_dir, CHECKPOINT_PREFIX),
                               global_step=self.step, write_meta_graph=False)
        self.writer.flush()
        self.metrics.flush()
        return path

    def run(self, fetches, summary_ops, evaluator, stop):
        """Iterates until the end; returns "signal", "converged", "failure" or "finished"."""
        args = self.args
        start_step, start_time = self.step, time.time()
        last_progress = 0.0
        while self.step < self.max_iterations:
            if stop.signal_name:
                return "signal"
            if metrics_log.stop_rule_met(self.good_streak, self.step, args):
                return "converged"
            result = self._iterate(fetches, summary_ops)
            if self.failure:
                return "failure"
            if self.step % args.eval_every == 0 or self.step == self.max_iterations:
                self._evaluate(evaluator, result)
            if self.step % args.save_every == 0:
                self.save()
            now = time.time()
            if (now - last_progress >= args.progress_seconds
                    or self.step == self.max_iterations):
                last_progress = now
                rate = (self.step - start_step) / max(now - start_time, 1e-9)
                print(_progress_line(self.step, self.max_iterations, self.iterations_per_epoch,
                                     rate, result, self.heldout), flush=True)
        return "finished"

    def _iterate(self, fetches, summary_ops):
        """One update (with the summaries due at this step); a run of non-finite updates
        longer than --max-skipped-in-a-row sets ``failure``."""
        run_fetches = dict(fetches)
        for name, (period, op) in summary_ops.items():
            if period > 0 and self.step % period == 0:
                run_fetches[name] = op
        result = self.session.run(run_fetches)
        for name in summary_ops:
            if name in result:
                self.writer.add_summary(result[name], self.step)
        self.step += 1
        if result["finite"]:
            self.skipped_in_a_row = 0
            self.window.append([result["loss"]] + result["terms"] + [result["accuracy"]])
        else:
            self.skipped_in_a_row += 1
            if self.skipped_in_a_row >= self.args.max_skipped_in_a_row:
                self.failure = ("%d updates in a row had a non-finite loss or gradient "
                                "(iterations %d to %d)" % (
                                    self.skipped_in_a_row,
                                    self.step - self.skipped_in_a_row + 1, self.step))
        return result

    def _evaluate(self, evaluator, result):
        """A held-out evaluation: its summary, a metrics.csv row, the --patience streak."""
        import numpy as np
        import tensorflow.compat.v1 as tf
        args = self.args
        heldout = evaluator.heldout_metrics(self.session, args.heldout_elbo_samples)
        heldout["iteration"] = self.step
        if self.probe is not None:
            heldout.update(self.probe.measure(self.session))
        _write_heldout_summary(tf, self.writer, heldout, self.step)
        means = (np.mean(self.window, axis=0) if self.window
                 else [float("nan")] * len(metrics_log.TRAINING_MEANS))
        self.metrics.write(self.step, time.time(), self.step / self.iterations_per_epoch, means,
                           result["skipped"], heldout)
        self.window = []
        self.heldout = heldout
        good = (args.stop_at_accuracy is not None
                and heldout["count_accuracy"] >= args.stop_at_accuracy)
        self.good_streak = self.good_streak + 1 if good else 0


def _report(ending, path, loop, args, signal_name):
    """Says how the run ended; a run of non-finite updates is a TrainingError."""
    if ending == "failure":
        # Skipped updates change no weight: the checkpoint holds the last finite update's.
        raise TrainingError("%s: stopped and saved %s (weights of the last finite update, "
                            "iteration %d); check the data for NaN or infinite pixels, or "
                            "lower --learning-rate"
                            % (loop.failure, path, loop.step - loop.skipped_in_a_row))
    if ending == "signal":
        print("%s received: saved %s; continue with --resume" % (signal_name, path),
              flush=True)
    elif ending == "converged":
        print("converged: held-out count accuracy >= %g at %d evaluations in a row "
              "(iteration %d); saved %s" % (args.stop_at_accuracy, args.patience, loop.step,
                                            path), flush=True)
    else:
        print("finished %d iterations; saved %s" % (loop.step, path), flush=True)


def _progress_line(step, max_iterations, iterations_per_epoch, rate, result, heldout):
    """The periodic progress line: iteration, epoch, speed, ETA, loss, last held-out accuracy."""
    eta = (max_iterations - step) / rate if rate > 0 else float("inf")
    line = ("it %d/%d  epoch %.2f  %.1f it/s  ETA %s  loss %.1f  skipped %d"
            % (step, max_iterations, step / iterations_per_epoch, rate, cli.format_duration(eta),
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
    for column, key in metrics_log.BOX_COLUMNS:
        if heldout.get(key) is not None:
            values.append(tf.Summary.Value(tag="heldout/boxes/" + column[len("heldout_"):],
                                           simple_value=heldout[key]))
    for name in metrics_log.GRADIENT_VARIANCE_COLUMNS:
        if name in heldout:
            values.append(tf.Summary.Value(tag="z_pres_gradient_variance/" + name.split("_")[-1],
                                           simple_value=heldout[name]))
    writer.add_summary(tf.Summary(value=values), step)
    writer.flush()
