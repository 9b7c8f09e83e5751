"""Runs the original project's code (github.com/aakhundov/tf-attend-infer-repeat) on this
repository's data, and takes its test-set summaries to a metrics.csv that charts.py can draw.

The original code is not part of this repository: the caller gives a clone of it. Its Python
files are copied into RESULTS/code (the clone stays untouched, and the run keeps the code it
ran), beside links to our record files under the names the original reads
(multi_mnist_data/common.tfrecords for training, test.tfrecords for its summaries: the record
formats are the same). Its training.py then runs unchanged in a child process,
air/experiments/original_bootstrap.py, which changes only the session options, the end of training and
the seeds (that file's docstring lists each change). The original's own results folder is
RESULTS/original (summaries, parameters every 10,000 iterations); its prints go to
RESULTS/original.log.

The original's code needs TensorFlow 1.x (it imports tf.contrib): stack (a).
"""
import csv
import math
import os
import re
import shutil
import subprocess

from air import launcher, paths
from air.cli import StopSignals, UserError

# Files the original's training.py needs (the check that a folder is a clone of it).
REQUIRED_FILES = ("training.py", "multi_mnist.py", "air/__init__.py", "air/air_model.py",
                  "air/transformer.py")
# Our record files -> the names the original reads, under multi_mnist_data/ of its folder.
DATA_FILES = (("train.tfrecords", "common.tfrecords"), ("test.tfrecords", "test.tfrecords"))
BOOTSTRAP = paths.ORIGINAL_BOOTSTRAP

# metrics.csv columns from the original's test-model summaries (tags after ".../summaries/").
# The accuracies take the names of training.py's held-out columns, so charts.py draws both
# kinds of run side by side; the original counts with a sampled z_pres (docs/departures.md).
SUMMARY_COLUMNS = (
    ("heldout_accuracy", "digit_acc_all_dig"),
    ("heldout_accuracy_0", "digit_acc_0_dig"),
    ("heldout_accuracy_1", "digit_acc_1_dig"),
    ("heldout_accuracy_2", "digit_acc_2_dig"),
    ("original_count_0", "steps_0_dig"),
    ("original_count_1", "steps_1_dig"),
    ("original_count_2", "steps_2_dig"),
    ("original_z_pres_prob_step1_0", "z_pres_prob_1_step_0_dig"),
    ("original_z_pres_prob_step1_1", "z_pres_prob_1_step_1_dig"),
    ("original_z_pres_prob_step1_2", "z_pres_prob_1_step_2_dig"),
    ("original_reconstruction", "rec_loss_all_dig"),
    ("original_loss", "total_loss_all_dig"),
)
# The columns of summary.md: (header, metrics.csv column, format).
TABLE_COLUMNS = (("accuracy", "heldout_accuracy", "%.3f"),
                 ("0 digits", "heldout_accuracy_0", "%.3f"),
                 ("1 digit", "heldout_accuracy_1", "%.3f"),
                 ("2 digits", "heldout_accuracy_2", "%.3f"),
                 ("mean count 0/1/2", ("original_count_0", "original_count_1",
                                       "original_count_2"), "%.2f"),
                 ("z_pres prob., step 1, 0/1/2", ("original_z_pres_prob_step1_0",
                                                  "original_z_pres_prob_step1_1",
                                                  "original_z_pres_prob_step1_2"), "%.2f"),
                 ("reconstruction", "original_reconstruction", "%.1f"),
                 ("loss", "original_loss", "%.1f"))


def check_original_dir(path):
    """Raises a UserError unless ``path`` holds the original's files."""
    if not os.path.isdir(path):
        raise UserError("original code folder %s does not exist (clone "
                        "github.com/aakhundov/tf-attend-infer-repeat)" % path)
    missing = [name for name in REQUIRED_FILES if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise UserError("%s is not a clone of the original code: it lacks %s" % (
            path, ", ".join(missing)))


def python_files(original_dir):
    """The original's .py files that training.py runs (its top folder and air/), as paths
    relative to ``original_dir``."""
    return [os.path.join(folder, name) for folder in ("", "air")
            for name in sorted(os.listdir(os.path.join(original_dir, folder)))
            if name.endswith(".py")]


def check_tensorflow_version(original_dir, tensorflow_version):
    """Raises a UserError when the original's files import tf.contrib and TensorFlow is 2.x
    (which has no tf.contrib), rather than let the run end in the original's traceback."""
    if int(tensorflow_version.split(".")[0]) < 2:
        return
    for relative in python_files(original_dir):
        with open(os.path.join(original_dir, relative)) as f:
            if "tensorflow.contrib" in f.read():
                raise UserError(
                    "the original code imports tensorflow.contrib (%s), which TensorFlow %s "
                    "lacks: run this on TensorFlow 1.15 (stack (a), README)" % (
                        relative, tensorflow_version))


def check_data_dir(path):
    """Raises a UserError unless ``path`` holds our train and test record files."""
    for name, _ in DATA_FILES:
        if not os.path.isfile(os.path.join(path, name)):
            raise UserError("%s not found (make the data with `make data` or multi_mnist.py)"
                            % os.path.join(path, name))


def prepare(original_dir, data_dir, results_dir, overwrite=False):
    """Makes RESULTS/code (the original's .py files and links to the data); returns its path.

    A results folder that already holds a run is refused unless ``overwrite``: the original
    code cannot resume, so a second run starts from scratch.
    """
    check_original_dir(original_dir)
    check_data_dir(data_dir)
    import tensorflow
    check_tensorflow_version(original_dir, tensorflow.__version__)
    if os.path.exists(os.path.join(results_dir, "original")):
        if not overwrite:
            raise UserError("%s already holds a run of the original code (it cannot resume); "
                            "give --overwrite to start again" % results_dir)
    for name in ("code", "original", "original.log", "metrics.csv", "summary.md"):
        path = os.path.join(results_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    code_dir = os.path.join(results_dir, "code")
    os.makedirs(os.path.join(code_dir, "air"))
    for relative in python_files(original_dir):
        shutil.copy2(os.path.join(original_dir, relative), os.path.join(code_dir, relative))
    os.makedirs(os.path.join(code_dir, "multi_mnist_data"))
    for ours, theirs in DATA_FILES:
        os.symlink(os.path.abspath(os.path.join(data_dir, ours)),
                   os.path.join(code_dir, "multi_mnist_data", theirs))
    return code_dir


def child_command(code_dir, results_dir, max_iterations, seed=1, threads=1,
                  mask_transformer_residues=False, progress_seconds=60.0, quiet=True,
                  python=None):
    """The command line of air/experiments/original_bootstrap.py for one run; it is given our
    package's folder for air/cli.py's quiet start-up (it cannot import our ``air``)."""
    return launcher.file_command(
        BOOTSTRAP, python, code_dir=os.path.abspath(code_dir),
        results_folder=os.path.abspath(os.path.join(results_dir, "original")),
        max_iterations=max_iterations, seed=seed, threads=threads,
        progress_seconds=progress_seconds, mask_transformer_residues=mask_transformer_residues,
        quiet=quiet, cli_module=paths.CLI_MODULE if quiet else None)


def run_child(command, log_path, quiet=True):
    """Runs the bootstrap: its stdout (the original's prints) to log_path, its stderr (progress,
    errors) to ours. SIGINT and SIGTERM are passed on, so the original's loop ends cleanly and
    its summaries are flushed. Returns the exit code."""
    environment = dict(os.environ)
    environment.pop("PYTHONPATH", None)  # Our `air` package must not shadow the original's.
    if quiet:
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, env=environment,
                                   start_new_session=True)
        with StopSignals(on_signal=process.send_signal):
            return process.wait()


def read_summaries(summary_dir):
    """Takes the original's summary folder to {iteration: {tag: value}} of its scalars, tags
    without their scopes (".../summaries/digit_acc_all_dig" -> "digit_acc_all_dig")."""
    from air.cli import import_tensorflow
    tf = import_tensorflow()
    values = {}
    if not os.path.isdir(summary_dir):
        return values
    for name in sorted(os.listdir(summary_dir)):
        if not name.startswith("events.out.tfevents"):
            continue
        try:
            for event in tf.train.summary_iterator(os.path.join(summary_dir, name)):
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        tag = re.sub(r"^.*summaries/", "", value.tag)
                        values.setdefault(int(event.step), {})[tag] = value.simple_value
        except tf.errors.DataLossError:  # The last record of a file cut off mid-write.
            pass
    return values


def metrics_rows(summaries):
    """Takes read_summaries' output to metrics.csv rows (dicts), one per iteration that has
    the test-set accuracy, sorted."""
    rows = []
    for iteration in sorted(summaries):
        tags = summaries[iteration]
        if "digit_acc_all_dig" not in tags:
            continue
        row = {"iteration": iteration}
        row.update({column: tags.get(tag, math.nan) for column, tag in SUMMARY_COLUMNS})
        rows.append(row)
    return rows


def write_metrics(rows, path):
    """Writes metrics.csv: iteration, then SUMMARY_COLUMNS (empty where a summary is missing)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration"] + [column for column, _ in SUMMARY_COLUMNS])
        for row in rows:
            writer.writerow([row["iteration"]] + [
                "" if math.isnan(row[column]) else repr(float(row[column]))
                for column, _ in SUMMARY_COLUMNS])


def markdown_table(rows, every, title):
    """summary.md: the rows at multiples of ``every`` iterations (and the last) as a table."""
    chosen = [row for row in rows if row["iteration"] % every == 0]
    if rows and (not chosen or chosen[-1] is not rows[-1]):
        chosen.append(rows[-1])

    def cell(row, columns, fmt):
        columns = (columns,) if isinstance(columns, str) else columns
        return " / ".join("-" if math.isnan(row[c]) else fmt % row[c] for c in columns)

    lines = ["# %s" % title, "",
             "Test-set summaries of the original code (its test model counts with a sampled "
             "z_pres). Columns: count accuracy (all, then per digit count), mean inferred count, "
             "mean z_pres probability at the first step, reconstruction loss and loss per image.",
             "",
             "| iteration | " + " | ".join(h for h, _, _ in TABLE_COLUMNS) + " |",
             "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for row in chosen:
        lines.append("| %d | %s |" % (row["iteration"], " | ".join(
            cell(row, columns, fmt) for _, columns, fmt in TABLE_COLUMNS)))
    return "\n".join(lines) + "\n"


def tabulate(results_dir, every=500, title="The original code"):
    """Rewrites RESULTS/metrics.csv and RESULTS/summary.md from the original's summaries;
    returns the rows."""
    rows = metrics_rows(read_summaries(os.path.join(results_dir, "original", "summary")))
    write_metrics(rows, os.path.join(results_dir, "metrics.csv"))
    with open(os.path.join(results_dir, "summary.md"), "w") as f:
        f.write(markdown_table(rows, every, title))
    return rows
