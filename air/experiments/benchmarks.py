"""The benchmarks of bench.py: a registry of functions ``args -> [Metric]``, the timing helpers,
the model workers each run in a fresh Python (so a peak memory is its own), and the table.

Each benchmark is a function registered under a name with ``@benchmark(name, description)``. It
receives bench.py's parsed command-line arguments and returns a list of ``Metric(name, value,
unit)``. To add one, define a function here and decorate it:

    @benchmark("training", "100 training iterations at the default configuration")
    def bench_training(args):
        ...
        return [Metric("iterations/s", rate, "1/s")]
"""
import collections
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from air import cli, devices, launcher, paths
from air.training.options import TrainingOptions
from air.visualisation.rendering import (DEFAULT_ZOOM, RECONSTRUCTION_ZOOM, WINDOW_ZOOM, Drawing, drawing_panel,
                           reconstruction_panel, window_panel)


# The samples per image of training.py's held-out ELBO, and the K of the `iwae` benchmark.
HELDOUT_ELBO_SAMPLES = TrainingOptions().heldout_elbo_samples
IWAE_SAMPLES = 100

Metric = collections.namedtuple("Metric", ["name", "value", "unit"])
Benchmark = collections.namedtuple("Benchmark", ["name", "description", "function"])

BENCHMARKS = collections.OrderedDict()


def benchmark(name, description):
    """Decorator registering ``function(args) -> [Metric]`` as benchmark ``name``."""
    def register(function):
        if name in BENCHMARKS:
            raise ValueError("benchmark %r registered twice" % name)
        BENCHMARKS[name] = Benchmark(name, description, function)
        return function
    return register


class BenchmarkError(Exception):
    """A benchmark could not run (the message is one line)."""


def _child_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@benchmark("multi_mnist", "multi_mnist.py with default options (60,000 train + 1,000 test images), "
                          "as a fresh process, into a temporary folder")
def bench_multi_mnist(args):
    from air.data import mnist
    mnist_dir = args.mnist_dir
    try:
        mnist.load(mnist_dir)  # Verify (or download) first: the timing covers generation only.
    except mnist.MnistError as e:
        raise BenchmarkError(str(e))
    sizes = {"images_per_digit": 100, "test_set_size": 30} if args.quick else {}
    output = tempfile.mkdtemp(prefix="bench-multi-mnist-")
    try:
        command = launcher.script_command("multi_mnist", mnist_dir=mnist_dir, output_dir=output,
                                          **sizes)
        cpu = _child_cpu_seconds()
        start = time.time()
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True)
        seconds = time.time() - start
        cpu = _child_cpu_seconds() - cpu
        if result.returncode != 0:
            raise BenchmarkError("multi_mnist.py failed: %s" % result.stderr.strip().splitlines()[-1])
        images = sum(int(n) for n in re.findall(r"wrote (\d+) records", result.stderr))
        size = sum(os.path.getsize(os.path.join(output, f)) for f in os.listdir(output))
    finally:
        shutil.rmtree(output, ignore_errors=True)
    return [Metric("wall time", seconds, "s"),
            Metric("images", images, ""),
            Metric("images/s", images / seconds, "1/s"),
            Metric("CPU time (all processes)", cpu, "s"),
            Metric("output size", size / 2.0 ** 20, "MiB")]


@benchmark("demo_latency", "demo.py refresh on one 50x50 drawing (budget 20 ms): test-mode "
                           "inference, and the whole refresh without Tk; the model in "
                           "air_results/model if any, else the default configuration untrained "
                           "(same graph, same cost)")
def bench_demo_latency(args):
    repeats = 20 if args.quick else 200
    rows = benchmark_latency(paths.DEFAULT_RESULTS_MODEL, repeats)
    return [Metric(name, value, unit) for name, value, unit in rows]


def demo_latency(model, canvases, repeats=100, warmup=10):
    """Times ``model.predict`` on single canvases, as the demo runs it on every refresh.

    Returns (median, 90th percentile) in milliseconds over ``repeats`` runs after ``warmup``.
    """
    import numpy as np
    times = []
    for i in range(warmup + repeats):
        canvas = canvases[i % len(canvases)]
        start = time.perf_counter()
        model.predict(canvas)
        if i >= warmup:
            times.append(1000.0 * (time.perf_counter() - start))
    return float(np.median(times)), float(np.percentile(times, 90))


def refresh_latency(model, drawing, repeats=50, zoom=DEFAULT_ZOOM):
    """Times a whole refresh without Tk: stroke, canvas, inference and the Pillow panels.

    Returns (median, 90th percentile) in milliseconds.
    """
    import numpy as np
    times = []
    side = drawing.picture.size[0]
    for i in range(repeats):
        start = time.perf_counter()
        drawing.stroke((side * 0.3, side * (0.2 + 0.005 * i)), (side * 0.5, side * 0.7), 3,
                       erase=bool(i % 2))
        canvas = drawing.canvas()
        result = model.predict(canvas)
        drawing_panel(canvas, result, zoom, True)
        reconstruction_panel(result, RECONSTRUCTION_ZOOM, True)
        for t in range(len(result["live"])):
            window_panel(result, t, WINDOW_ZOOM)
        times.append(1000.0 * (time.perf_counter() - start))
    return float(np.median(times)), float(np.percentile(times, 90))


def benchmark_latency(model_dir=None, repeats=200):
    """The demo's latency figures for bench.py: [(name, value, unit)].

    Uses ``model_dir`` when it holds a model, else an untrained model of the default
    configuration (the same graph, so the same cost).
    """
    cli.import_tensorflow()
    from air.evaluation import model_folder
    from air.training.checkpoints import CheckpointError, find_checkpoint
    from air.config import AIRConfig
    temporary = None
    try:
        try:
            find_checkpoint(model_dir or "")
            source = "trained model in %s" % model_dir
        except CheckpointError:
            temporary = tempfile.mkdtemp(prefix="bench-demo-")
            model_dir = temporary
            model_folder.save_untrained_model(model_dir, AIRConfig())
            source = "untrained default configuration"
        with model_folder.LoadedModel(model_dir) as model:
            height, width = model.canvas_shape
            drawing = Drawing(height, width, DEFAULT_ZOOM)
            canvases = []
            for k in range(10):  # Drawings of one to three strokes.
                drawing.stroke((40 * k + 50, 100), (40 * k + 120, 400), 1 + k % 5)
                canvases.append(drawing.canvas())
            median, p90 = demo_latency(model, canvases, repeats)
            refresh_median, refresh_p90 = refresh_latency(model, drawing, max(10, repeats // 4))
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    print("demo latency measured on the %s" % source, file=sys.stderr)
    return [("inference per refresh, median", median, "ms"),
            ("inference per refresh, 90th percentile", p90, "ms"),
            ("whole refresh without Tk, median", refresh_median, "ms"),
            ("whole refresh without Tk, 90th percentile", refresh_p90, "ms")]


# --- The model: training step and test-mode forward pass (each in a fresh process) ---------

def _records_path(args, workdir, name, images_per_digit, test_set_size, generated):
    """multi_mnist_data/``name`` if present, else that file of a set generated into ``workdir``
    with these sizes (``generated`` describes it). Returns (path, description)."""
    path = os.path.join(paths.DEFAULT_DATA, name)
    if os.path.isfile(path):
        return path, "multi_mnist_data/" + name
    result = subprocess.run(
        launcher.script_command("multi_mnist", mnist_dir=args.mnist_dir, output_dir=workdir,
                                images_per_digit=images_per_digit, test_set_size=test_set_size,
                                workers=1, quiet=True),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise BenchmarkError("generating images failed: %s" % lines[-1])
    return os.path.join(workdir, name), generated


def _model_images_path(args, workdir):
    """A train.tfrecords of real multi-MNIST images: multi_mnist_data/ if present, else a small
    set generated into ``workdir``. Returns (path, description)."""
    return _records_path(args, workdir, "train.tfrecords", 30, 10,
                         "a small set generated by multi_mnist.py")


def _heldout_images_path(args, workdir):
    """The default held-out set (multi_mnist_data/test.tfrecords, 1,000 images) if present, else
    1,000 held-out images generated into ``workdir``. Returns (path, description)."""
    return _records_path(args, workdir, "test.tfrecords", 1, 1000,
                         "1,000 held-out images generated by multi_mnist.py")


def _run_model_worker(args, kind, iterations, warmup, worker="_model_worker",
                      images_path=_model_images_path):
    """Runs ``worker`` (default ``_model_worker``) in a fresh Python, so its peak memory is its
    own, on the records ``images_path(args, workdir)`` names; returns its dict."""
    workdir = tempfile.mkdtemp(prefix="bench-model-")
    try:
        path, source = images_path(args, workdir)
        command = launcher.module_command(__name__, arguments=[
            worker, kind, path, str(iterations), str(warmup)])
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, env=launcher.module_environment())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        errors = result.stderr.strip().splitlines() or ["no output"]
        raise BenchmarkError("%s worker failed: %s" % (kind, errors[-1]))
    figures = json.loads(lines[-1])
    sys.stderr.write("%s measured on the records in %s; load average %.1f at start, %.1f at "
                     "end (%d CPUs)\n" % (kind, os.path.dirname(source) or ".",
                                          figures["load_start"], figures["load_end"],
                                          os.cpu_count()))
    return figures


def _time_calls(run, iterations, warmup):
    """Calls run(i) warmup times, then times iterations calls: rate, latency, CPU, memory."""
    for i in range(warmup):
        run(i)
    times = []
    cpu_start = time.process_time()
    for i in range(iterations):
        before = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - before)
    return _figures(times, time.process_time() - cpu_start)


def _time_in_turn(first, second, iterations, warmup):
    """Calls first() and second() in turn, warmup times each, then times iterations calls of
    each in turn; returns the ``_time_calls`` figures of each."""
    for _ in range(warmup):
        first()
        second()
    calls = {"first": first, "second": second}
    times = {name: [] for name in calls}
    cpu = {name: 0.0 for name in calls}
    for _ in range(iterations):
        for name, call in calls.items():
            cpu_start, start = time.process_time(), time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
            cpu[name] += time.process_time() - cpu_start
    return [_figures(times[name], cpu[name]) for name in ("first", "second")]


def _figures(seconds, cpu_seconds):
    """Takes the wall times of calls and their total CPU time to ``_time_calls``' figures."""
    import numpy as np
    milliseconds = np.array(seconds) * 1000.0
    return {
        "iterations": len(seconds), "per_second": len(seconds) / float(np.sum(seconds)),
        "median_ms": float(np.median(milliseconds)),
        "p90_ms": float(np.percentile(milliseconds, 90)),
        "cpu_ms": cpu_seconds / len(seconds) * 1000.0,
        # ru_maxrss is in KiB on Linux: the peak resident memory of this process only.
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "load_end": os.getloadavg()[0]}


def _model_worker(kind, records_path, iterations, warmup):
    """Times the default configuration in this process; prints one JSON line of figures.

    ``training``: session.run of the train op (Adam step with clipping and the skip of
    non-finite updates, no summaries) on a constant batch of ``batch_size`` images;
    ``training_nvil``, ``training_vimco``: the same with that ``z_pres_estimator`` (NVIL's
    baseline update too; VIMCO's default 5 samples of each image).
    ``forward``: the test-mode model (rounded z_pres, posterior means) on one image at a
    time, fed through a placeholder as the demo does, fetching canvas, boxes and counts.
    """
    cli.quiet_tensorflow()  # a worker's last stderr line is reported: keep it the error
    import numpy as np
    tf = cli.import_tensorflow()
    from air.config import AIRConfig
    from air.data import records
    from air.evaluation.model_folder import build_test_model
    from air.training.train_loop import build_training_graph

    load_start = os.getloadavg()[0]
    estimator = kind.split("_", 1)[1] if kind.startswith("training_") else "concrete"
    config = AIRConfig(z_pres_estimator=estimator)
    images = records.first_images(records_path, config.batch_size)
    if images.shape != (config.batch_size, config.canvas_height, config.canvas_width):
        raise ValueError("expected %d images of %dx%d in %s, got %s" % (
            config.batch_size, config.canvas_height, config.canvas_width, records_path,
            images.shape))
    with tf.Graph().as_default():
        if kind.startswith("training"):
            fetch = build_training_graph(config, images=tf.constant(images)).train_ops.train_op
            placeholder = None
        else:
            placeholder, model = build_test_model(config, batch_size=1)
            fetch = [model.canvas, model.boxes, model.steps.live, model.digit_count]
        with tf.Session(config=devices.session_config()) as session:
            session.run(tf.global_variables_initializer())

            def run(i):
                feed = None if placeholder is None else {placeholder: images[i % len(images)][None]}
                session.run(fetch, feed)

            figures = _time_calls(run, iterations, warmup)
    print(json.dumps(dict(figures, load_start=load_start)))


def _training_metrics(figures):
    """The table rows of a training benchmark."""
    return [Metric("iterations/s", figures["per_second"], "1/s"),
            Metric("time per iteration, median", figures["median_ms"], "ms"),
            Metric("CPU time per iteration (all threads)", figures["cpu_ms"], "ms"),
            Metric("peak resident memory", figures["peak_mib"], "MiB"),
            Metric("load average (1 min) at end", figures["load_end"], "")]


def _training_benchmark(args, kind, worker="_model_worker"):
    """The table rows of ``worker`` timing training iterations of ``kind`` (300, 20 quick)."""
    return _training_metrics(_run_model_worker(args, kind, 20 if args.quick else 300,
                                               3 if args.quick else 30, worker=worker))


@benchmark("training_step", "training step of the default configuration (Adam, clipping, skip "
                            "of non-finite updates; no summaries) on a constant batch of 64 real "
                            "multi-MNIST images, in a fresh process; targets >= 25 it/s on TF 2.x, "
                            ">= 20 on TF 1.15, peak memory < 2 GiB")
def bench_training_step(args):
    return _training_benchmark(args, "training")


@benchmark("training_step_nvil", "training_step with the discrete z_pres estimator "
                                 "(z_pres_estimator=nvil: Bernoulli z_pres, the score-function "
                                 "term, the baseline network and its Adam step)")
def bench_training_step_nvil(args):
    return _training_benchmark(args, "training_nvil")


@benchmark("training_step_vimco", "training_step with z_pres_estimator=vimco (Bernoulli z_pres, "
                                  "the K-sample bound of vimco_samples = 5 samples per image: "
                                  "320 rows a batch)")
def bench_training_step_vimco(args):
    return _training_benchmark(args, "training_vimco")


@benchmark("model_forward", "test-mode forward pass of the default configuration on one 50x50 "
                            "image (fed through a placeholder, as the demo does), in a fresh "
                            "process")
def bench_model_forward(args):
    figures = _run_model_worker(args, "forward", 20 if args.quick else 500,
                                3 if args.quick else 50)
    return [Metric("latency, median", figures["median_ms"], "ms"),
            Metric("latency, 90th percentile", figures["p90_ms"], "ms"),
            Metric("CPU time per image (all threads)", figures["cpu_ms"], "ms"),
            Metric("peak resident memory", figures["peak_mib"], "MiB")]


# --- Training through tf.data and held-out evaluation (training.py's and evaluate.py's graphs) --

def _pipeline_worker(kind, records_path, iterations, warmup):
    """Times training.py's or evaluate.py's work in this process; prints one JSON line.

    ``training``: the graph of training.py's loop without summaries: batches from the
    TFRecords through tf.data (shuffle, repeat, parallel parse, prefetch), the train op and
    the per-iteration fetches (loss, its terms, accuracy, skip counter).
    ``heldout``: HeldOutEvaluator (test mode, batches of 500) over the test.tfrecords beside
    ``records_path``; an iteration is one pass over the file, per_second counts images. In
    turn with each pass, a pass of training.py's held-out evaluation, which adds the sampled
    ELBO of HELDOUT_ELBO_SAMPLES samples per image (``with_elbo_*``), with the shipped model/'s
    weights: the cost of the sampled model grows with the objects it finds, and an untrained
    model finds few.
    """
    cli.quiet_tensorflow()  # a worker's last stderr line is reported: keep it the error
    tf = cli.import_tensorflow()
    from air.config import AIRConfig
    from air.data import records
    from air.evaluation.heldout import HeldOutEvaluator
    from air.training.train_loop import build_training_graph, iteration_fetches

    load_start = os.getloadavg()[0]
    config = AIRConfig()
    images_per_run = config.batch_size
    with tf.Graph().as_default():
        global_step = tf.train.get_or_create_global_step()
        if kind == "training":
            fetches = iteration_fetches(build_training_graph(config, records_path))
        else:
            test_path = os.path.join(os.path.dirname(records_path), "test.tfrecords")
            evaluator = HeldOutEvaluator(config, test_path, 500, global_step)
            images_per_run = sum(1 for _ in records.iterate_records(test_path))
        with tf.Session(config=devices.session_config()) as session:
            session.run(tf.global_variables_initializer())
            if kind == "training":
                figures = _time_calls(lambda i: session.run(fetches), iterations, warmup)
            else:
                from air.training.checkpoints import find_checkpoint, restore_variables
                restore_variables(session, find_checkpoint(paths.SHIPPED_MODEL)[0],
                                  tf.global_variables(scope="air"))
                # In turn, so that a change of the machine's load hits both alike.
                figures, with_elbo = _time_in_turn(
                    lambda: evaluator.count_metrics(session),
                    lambda: evaluator.heldout_metrics(session, HELDOUT_ELBO_SAMPLES),
                    iterations, warmup)
                figures.update(with_elbo_median_ms=with_elbo["median_ms"],
                               with_elbo_cpu_ms=with_elbo["cpu_ms"],
                               load_end=with_elbo["load_end"])
    figures.update(load_start=load_start, images=images_per_run,
                   images_per_second=figures["per_second"] * images_per_run)
    print(json.dumps(figures))


@benchmark("training_pipeline", "training.py's loop without summaries: the default configuration "
                                "fed 64 images per iteration through tf.data from the training "
                                "TFRecords, in a fresh process; target: within 10% of "
                                "training_step")
def bench_training_pipeline(args):
    return _training_benchmark(args, "training", worker="_pipeline_worker")


@benchmark("heldout_evaluation", "held-out evaluation as in training.py: the test-mode model "
                                 "over the whole test.tfrecords (batches of 500, through "
                                 "tf.data, counts and plug-in ELBO), then the same with the "
                                 "sampled ELBO of training.py's default 4 samples per image "
                                 "added, in a fresh process")
def bench_heldout_evaluation(args):
    figures = _run_model_worker(args, "heldout", 2 if args.quick else 10, 1,
                                worker="_pipeline_worker")
    return [Metric("images/s (test mode)", figures["images_per_second"], "1/s"),
            Metric("images per pass", figures["images"], ""),
            Metric("time per pass, median (test mode)", figures["median_ms"], "ms"),
            Metric("time per pass with the sampled ELBO, median", figures["with_elbo_median_ms"],
                   "ms"),
            Metric("added by the sampled ELBO, median wall time",
                   figures["with_elbo_median_ms"] - figures["median_ms"], "ms"),
            Metric("CPU time per pass (test mode)", figures["cpu_ms"], "ms"),
            Metric("added by the sampled ELBO, CPU time",
                   figures["with_elbo_cpu_ms"] - figures["cpu_ms"], "ms"),
            Metric("peak resident memory", figures["peak_mib"], "MiB"),
            Metric("load average (1 min) at end", figures["load_end"], "")]


def _likelihood_worker(kind, records_path, iterations, warmup):
    """Times the importance-weighted bound of the shipped model/ (K = IWAE_SAMPLES, or 5 with
    ``kind`` 'quick') over the records in ``records_path``; prints one JSON line of figures."""
    tf = cli.import_tensorflow()
    tf.logging.set_verbosity(tf.logging.ERROR)
    from air.evaluation import likelihood
    from air.data import records
    from air.training.checkpoints import find_checkpoint, load_config, restore_variables

    load_start = os.getloadavg()[0]
    samples = 5 if kind == "quick" else IWAE_SAMPLES
    checkpoint, config_path = find_checkpoint(paths.SHIPPED_MODEL)
    images = records.read_records(records_path).images
    with tf.Graph().as_default():
        sampler = likelihood.LogWeightSampler(load_config(config_path))
        with tf.Session(config=devices.session_config()) as session:
            restore_variables(session, checkpoint)
            cpu_start, start = time.process_time(), time.perf_counter()
            report = likelihood.iwae_report(sampler.log_weights(session, images, samples))
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
    print(json.dumps(dict(report, seconds=seconds, cpu_seconds=cpu, images=len(images),
                          load_start=load_start, load_end=os.getloadavg()[0],
                          peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)))


@benchmark("iwae", "importance-weighted bound on log p(x) of the shipped model/ with K = 100 "
                   "samples per image over the 1,000 held-out images (the default set's if "
                   "present), as evaluate.py --importance-samples 100 computes it, in a fresh "
                   "process; target < 120 s")
def bench_iwae(args):
    figures = _run_model_worker(args, "quick" if args.quick else "full", 1, 0,
                                worker="_likelihood_worker", images_path=_heldout_images_path)
    return [Metric("wall time", figures["seconds"], "s"),
            Metric("image-samples/s", figures["images"] * figures["iwae_samples"]
                   / figures["seconds"], "1/s"),
            Metric("samples per image (K)", figures["iwae_samples"], ""),
            Metric("images", figures["images"], ""),
            Metric("IWAE bound per image", figures["log_likelihood_iwae"], "nats"),
            Metric("CPU time (all threads)", figures["cpu_seconds"], "s"),
            Metric("peak resident memory", figures["peak_mib"], "MiB"),
            Metric("load average (1 min) at end", figures["load_end"], "")]


# --- Sweeps: trials side by side ---------------------------------------------------------------

def _trial_rates(data_dir, results_root, threads, count, skip, measure):
    """Starts ``count`` training.py trials at once (as sweep.py runs them: default config, no
    summaries, ``threads`` TensorFlow threads each) and returns each one's iterations/s over
    ``measure`` iterations after the first ``skip`` (start-up and graph optimisation)."""
    processes, logs = [], []
    for i in range(count):
        name = "threads-%d-of-%d-trial-%d" % (threads, count, i)
        log_path = os.path.join(results_root, name + ".log")
        options = TrainingOptions(
            data_dir=data_dir, results_dir=os.path.join(results_root, name), seed=i + 1,
            threads=threads, progress_seconds=0.0, max_iterations=skip + measure,
            eval_every=1000000, save_every=1000000, scalars_every=0, variables_every=0,
            images_every=0, gradients_every=0)
        options_path = os.path.join(results_root, name + ".json")
        options.save(options_path)
        command = launcher.training_command(options_path)
        logs.append(log_path)
        with open(log_path, "w") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    marks = [{} for _ in processes]
    pattern = re.compile(r"^it (\d+)/", re.M)
    try:
        while any(p.poll() is None for p in processes):
            now = time.time()
            for i, log_path in enumerate(logs):
                done = [int(n) for n in pattern.findall(open(log_path).read())]
                for mark in (skip, skip + measure):
                    if done and max(done) >= mark and mark not in marks[i]:
                        marks[i][mark] = now
            time.sleep(0.05)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for i, p in enumerate(processes):
        if p.returncode != 0 or len(marks[i]) < 2:
            lines = open(logs[i]).read().strip().splitlines() or ["no output"]
            raise BenchmarkError("trial %d failed: %s" % (i, lines[-1]))
    return [measure / (m[skip + measure] - m[skip]) for m in marks]


@benchmark("sweep_parallel", "sweep.py's trials side by side: total iterations/s of 2 training.py "
                             "trials at once (1 TensorFlow thread each, default configuration, no "
                             "summaries) against one trial alone (1 thread, and all threads); "
                             "target: 2 trials >= 1.3x one trial alone")
def bench_sweep_parallel(args):
    workdir = tempfile.mkdtemp(prefix="bench-sweep-")
    try:
        train_path, _ = _model_images_path(args, workdir)
        data_dir = os.path.dirname(train_path)
        skip, measure = (5, 10) if args.quick else (30, 200)
        alone = _trial_rates(data_dir, workdir, 1, 1, skip, measure)[0]
        alone_all = _trial_rates(data_dir, workdir, 0, 1, skip, measure)[0]
        pair = _trial_rates(data_dir, workdir, 1, 2, skip, measure)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [Metric("one trial alone, 1 thread", alone, "it/s"),
            Metric("one trial alone, all threads", alone_all, "it/s"),
            Metric("2 trials at once, total", sum(pair), "it/s"),
            Metric("speed-up over one trial, 1 thread", sum(pair) / alone, "x"),
            Metric("speed-up over one trial, all threads", sum(pair) / alone_all, "x"),
            Metric("load average (1 min) at end", os.getloadavg()[0], "")]


def machine_info():
    """A description of the machine and software, stored with the results."""
    info = collections.OrderedDict([
        ("platform", platform.platform()),
        ("python", platform.python_version()),
        ("cpus", os.cpu_count()),
        ("load average (1 min) at start", round(os.getloadavg()[0], 2)),
    ])
    try:  # The TensorFlow version without importing TensorFlow.
        import pkg_resources
        for name in ("tensorflow", "tensorflow-gpu"):
            try:
                info[name] = pkg_resources.get_distribution(name).version
            except pkg_resources.DistributionNotFound:
                pass
    except ImportError:
        pass
    return info


def format_value(value):
    if isinstance(value, int):
        return "{:,}".format(value)
    return "{:,.2f}".format(value) if abs(value) < 1000 else "{:,.0f}".format(value)


def format_table(results):
    """A plain-text table: benchmark, metric, value, unit (one row per metric)."""
    rows = [("benchmark", "metric", "value", "unit")]
    for name, entry in results.items():
        if "error" in entry:
            rows.append((name, "error", entry["error"], ""))
        for metric in entry.get("metrics", []):
            rows.append((name, metric["name"], format_value(metric["value"]), metric["unit"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) if i == 2 and k else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- The model workers' entry point: python -m air.experiments.benchmarks WORKER ... ---------

WORKERS = {"_model_worker": _model_worker, "_pipeline_worker": _pipeline_worker,
           "_likelihood_worker": _likelihood_worker}


def worker_main(argv=None):
    """Runs one model worker in this fresh process (``_run_model_worker`` starts it)."""
    import argparse
    parser = argparse.ArgumentParser(description="A model worker of bench.py.")
    parser.add_argument("worker", choices=sorted(WORKERS))
    parser.add_argument("kind")
    parser.add_argument("records_path")
    parser.add_argument("iterations", type=cli.integer(minimum=1))
    parser.add_argument("warmup", type=cli.integer(minimum=0))
    args = parser.parse_args(argv)
    WORKERS[args.worker](args.kind, args.records_path, args.iterations, args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
