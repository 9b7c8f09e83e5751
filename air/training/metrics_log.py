"""metrics.csv, one row per held-out evaluation of a training run: its columns, its writer, its
readers, and the stop rule read from it.

training.py (writing, stopping and resuming), sweep.py (the state of a trial) and charts.py (the
curves) all read the file here, so they agree on its columns and on when a run has converged.
"""
import csv
import io
import math
import os

from air.cli import UserError

FILENAME = "metrics.csv"
GRADIENT_VARIANCE_COLUMNS = ("z_pres_gradient_variance_concrete",
                             "z_pres_gradient_variance_nvil", "z_pres_gradient_variance_vimco")
# The held-out boxes (HeldOutEvaluator.heldout_metrics): column -> key of its figure.
BOX_COLUMNS = (("heldout_mean_iou", "mean_iou"), ("heldout_box_recall_iou50", "box_recall_iou50"),
               ("heldout_window_height", "mean_window_height"))
# Later columns go at the end: a resumed run of an older file gets them empty in its old rows.
COLUMNS = ("iteration", "wall_time", "epoch", "loss", "reconstruction", "kl_z_pres",
           "kl_z_where", "kl_z_what", "train_accuracy", "skipped_updates",
           "heldout_accuracy", "heldout_accuracy_0", "heldout_accuracy_1",
           "heldout_accuracy_2", "heldout_discrete_elbo_final_prior", "heldout_overcount",
           "heldout_undercount") + GRADIENT_VARIANCE_COLUMNS + tuple(c for c, _ in BOX_COLUMNS)
# The training fetches averaged over the iterations between two rows, in column order.
TRAINING_MEANS = ("loss", "reconstruction", "kl_z_pres", "kl_z_where", "kl_z_what",
                  "train_accuracy")


class MetricsLogError(UserError):
    """A metrics.csv that is not one training.py wrote; the message is one line."""


def read_rows(path, up_to=None):
    """The rows of a metrics.csv as dicts (column: text), optionally only to an iteration."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("iteration")]
    if up_to is not None:
        rows = [row for row in rows if int(row["iteration"]) <= up_to]
    return rows


def read_values(path, strict=True):
    """Takes a metrics.csv to (columns, rows as dicts of floats sorted by iteration).

    Empty cells are NaN. A run that crashed after logging rows it had not checkpointed, and
    was resumed by an older version, can repeat iterations: the later row (the resumed run's)
    supersedes the earlier. No file gives no columns and no rows. Text that is not a number
    is a MetricsLogError, or with ``strict=False`` NaN (a file being written as it is read,
    as sweep.py reads its running trials', can end in half a line).
    """
    if not os.path.isfile(path):
        return (), []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "iteration" not in reader.fieldnames:
            if not strict:
                return (), []
            raise MetricsLogError("%s has no `iteration` column: not a training metrics file"
                                  % path)
        by_iteration = {}
        for row in reader:
            values = {k: _number(v, strict, path, reader.line_num)
                      for k, v in row.items() if k is not None}
            if not math.isnan(values["iteration"]):
                by_iteration[values["iteration"]] = values
        columns = tuple(reader.fieldnames)
    return columns, [by_iteration[k] for k in sorted(by_iteration)]


def _number(text, strict, path, line):
    """A cell of metrics.csv as a float (NaN when empty); see read_values for ``strict``."""
    if text in ("", None):
        return math.nan
    try:
        return float(text)
    except ValueError as error:
        if strict:
            raise MetricsLogError("%s line %d: %s" % (path, line, error))
        return math.nan


def read_columns(path):
    """Takes a metrics.csv to {column: float numpy array}, rows as ``read_values`` gives them."""
    import numpy as np
    columns, rows = read_values(path)
    return {name: np.array([row.get(name, math.nan) for row in rows], np.float64)
            for name in columns}


def first_iteration_at(iterations, values, level):
    """The first evaluated iteration whose value reached ``level`` (None if none did)."""
    for iteration, value in zip(iterations, values):
        if value >= level:
            return int(iteration)
    return None


def runs_table(runs, level=0.98):
    """Takes [(label, read_columns(...))] to a Markdown table of each run: length, speed, when
    it reached ``level``, final accuracy.

    Wall time and iterations/s span the first to the last held-out evaluation (metrics.csv
    holds no earlier timestamp), so they leave out the first --eval-every iterations.
    Columns a metrics file lacks are shown as "-".
    """
    lines = ["| run | iterations | wall time (first to last evaluation) | iterations/s | "
             "first iteration at >= %g%% | final held-out accuracy: all / 0 / 1 / 2 digits |"
             % (100 * level), "|---|---|---|---|---|---|"]
    import numpy as np
    missing = np.array([])
    for label, metrics in runs:
        iterations = metrics["iteration"]
        if not len(iterations):
            continue
        times = metrics.get("wall_time", missing)
        if len(times) and times[-1] > times[0]:
            span = times[-1] - times[0]
            wall = "%.0f min" % (span / 60.0)
            rate = "%.1f" % ((iterations[-1] - iterations[0]) / span)
        else:
            wall, rate = "-", "-"
        first = (first_iteration_at(iterations, metrics["heldout_accuracy"], level)
                 if "heldout_accuracy" in metrics else "-")
        final = " / ".join("%.3f" % metrics[c][-1] if c in metrics else "-" for c in (
            "heldout_accuracy", "heldout_accuracy_0", "heldout_accuracy_1", "heldout_accuracy_2"))
        lines.append("| %s | %d | %s | %s | %s | %s |" % (
            label, iterations[-1], wall, rate, "never" if first is None else first, final))
    return "\n".join(lines) + "\n"


def stop_rule_met(streak, iteration, options):
    """The stop rule of a run with TrainingOptions ``options`` that is at ``iteration`` with
    ``streak`` evaluations in a row at or above --stop-at-accuracy: at least --patience of
    them, and not before --min-iterations."""
    return (options.stop_at_accuracy is not None and streak >= options.patience
            and iteration >= options.min_iterations)


def accuracy_streak(rows, threshold):
    """How many of the last rows in a row have held-out accuracy >= threshold (0 without one)."""
    streak = 0
    if threshold is None:
        return streak
    for row in reversed(rows):
        if not float(row["heldout_accuracy"]) >= threshold:  # NaN also ends the streak
            break
        streak += 1
    return streak


def resumed_columns(earlier_rows):
    """The header of a (resumed) run: COLUMNS, then any column the earlier rows have beyond
    them (one an older version wrote, such as the plug-in `heldout_elbo` before the sampled
    ELBO replaced it), so that resuming never drops recorded values."""
    extra = []
    for row in earlier_rows:
        extra += [c for c in row if c not in COLUMNS and c not in extra and c]
    return tuple(COLUMNS) + tuple(extra)


class MetricsWriter:
    """Writes a run's metrics.csv: on resume the earlier rows up to the resumed iteration (those
    past it were written after the last checkpoint and are redone), then one row per call.

    No row is ever half-written, even when the disk fills: the file is rewritten under a
    temporary name and renamed into place (the earlier rows are never lost), and each later
    row is appended in one write that, when it fails, is cut off again before the error
    (an OSError naming the file) is raised.
    """

    def __init__(self, path, resumed_step):
        self.path = path
        self.earlier_rows = read_rows(path, up_to=resumed_step)
        columns = resumed_columns(self.earlier_rows)
        # Columns only an older version wrote (heldout_elbo) stay empty in the new rows.
        self._old_only = [""] * (len(columns) - len(COLUMNS))
        text = _csv_text([columns] + [[row.get(c, "") for c in columns]
                                      for row in self.earlier_rows])
        temporary = path + ".partial"
        try:
            with open(temporary, "w", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except OSError as error:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise OSError(error.errno, error.strerror, path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._length = os.fstat(self._fd).st_size

    def write(self, step, wall_time, epoch, training_means, skipped_updates, heldout):
        """One row: ``training_means`` in TRAINING_MEANS order, ``heldout`` as
        HeldOutEvaluator.heldout_metrics gives it."""
        by_count = heldout["count_accuracy_by_digits"]
        self._append(_csv_text([
            [step, "%.1f" % wall_time, "%.3f" % epoch]
            + ["%.4f" % v for v in training_means]
            + [int(skipped_updates), "%.4f" % heldout["count_accuracy"]]
            + ["%.4f" % by_count.get(str(k), math.nan) for k in range(3)]
            + ["%.3f" % heldout["discrete_elbo_final_prior"], "%.4f" % heldout["overcount"],
               "%.4f" % heldout["undercount"]]
            # Estimators the run did not measure (air/training/gradient_noise.py) stay empty.
            + ["%.6g" % heldout[c] if c in heldout else "" for c in GRADIENT_VARIANCE_COLUMNS]
            # None (no windows, or no digits) is an empty cell.
            + ["" if heldout.get(key) is None else "%.4f" % heldout[key]
               for _, key in BOX_COLUMNS]
            + self._old_only]))

    def _append(self, text):
        data = text.encode("utf-8")
        try:
            written = 0
            while written < len(data):  # os.write may write part of it (a disk filling up)
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)  # Some file systems report a full disk only here.
        except OSError as error:
            os.ftruncate(self._fd, self._length)
            raise OSError(error.errno, error.strerror, self.path)
        self._length += len(data)

    def flush(self):
        """Nothing to do: each row is on disk when ``write`` returns."""

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _csv_text(rows):
    """Rows as the text of CSV lines."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()
