"""The tables and figures of a sweep (sweep.csv, sweep.md, sweep.png, sweep_by_count.png and,
where trials measured them, sweep_gradient_variance.png and sweep_windows.png), read from each
trial's metrics.csv (and the figures of its final model, final_evaluation.json, where it has
them), so they can be rewritten at any time, also while trials still run.

A report folder keeps its study. Every trial it reports leaves a record there,
``trials/<variant>/seed-<N>/`` (the trial's metrics.csv, model/config.json and
final_evaluation.json: a few kB, no checkpoint), and a rewritten report shows every trial it
has shown before: from the trial's folder where that has evaluations, else from its record, else (trials reported before records
were kept) as the row the earlier sweep.csv gave it. So a study committed with its report
folder can be extended from a fresh clone, on another machine, whose runs/ is empty.
"""
import collections
import csv
import itertools
import math
import os
import re
import shutil

import numpy as np

from air.evaluation import final
from air.training import environment, metrics_log
from air.training.checkpoints import load_config
from air.config import CONFIG_FILENAME, prior_window_height
from air.training.metrics_log import first_iteration_at
from air.experiments.sweep import (Trial, read_metrics, state_of_evaluations, trial_state,
                       variant_config, variant_from_name)

TRIAL_COLUMNS = ("variant", "seed", "state", "iterations", "first_iteration_at_target",
                 "first_iteration_at_target_0", "first_iteration_at_target_1",
                 "first_iteration_at_target_2", "prior_log_odds_at_target", "accuracy",
                 "accuracy_0", "accuracy_1", "accuracy_2", "failure_mode", "training_hours",
                 "mean_iou", "mean_window_height", "extrapolation_accuracy")
# The figures of a trial's final model (air/evaluation/final.py) its row shows.
FINAL_COLUMNS = ("mean_iou", "mean_window_height", "extrapolation_accuracy")


def training_hours(rows):
    """Wall time between the evaluations, in hours; a gap over 5x the median (a stop and a
    later resume) counts as one median gap."""
    times = [r["wall_time"] for r in rows if math.isfinite(r["wall_time"])]
    if len(times) < 2:
        return 0.0
    gaps = np.diff(times)
    median = float(np.median(gaps))
    gaps = np.where(gaps > 5 * median, median, gaps)
    # The first evaluation's own interval is not in the diffs: count one median for it.
    return float(np.sum(gaps) + median) / 3600.0


def trained_config(trial):
    """The AIRConfig a trial trained with: the config.json it saved (so a later change of the
    presets does not rewrite its figures), or its variant's before it has saved one."""
    path = os.path.join(trial.directory, "model", CONFIG_FILENAME)
    return load_config(path) if os.path.isfile(path) else variant_config(trial.variant)


def failure_mode(row):
    """Names how the last evaluation miscounts: 'n+1' (too many objects) or 'n-1' (too few).

    Without the over/under-count columns (metrics of older runs) it falls back to the
    per-count accuracies: 'n+1' when one-digit images fare worse than two-digit ones.
    """
    over, under = row.get("heldout_overcount", math.nan), row.get("heldout_undercount", math.nan)
    if math.isfinite(over) and math.isfinite(under):
        return "n+1" if over >= under else "n-1"
    return "n+1" if row["heldout_accuracy_1"] < row["heldout_accuracy_2"] else "n-1"


def milestones(max_iterations):
    """The iterations at which the tables show each trial's accuracy: multiples of a round step
    (1, 2 or 5 times a power of ten), at most five of them up to ``max_iterations``."""
    step, factors = 1, itertools.cycle((2, 2.5, 2))  # 1, 2, 5, 10, 20, 50, ...
    while step * 5 < max_iterations:
        step = int(step * next(factors))
    return list(range(step, max_iterations + 1, step))


def accuracy_at(rows, iteration):
    """Held-out accuracy at the last evaluation at or before ``iteration``; None when the trial
    has not reached ``iteration`` or was not evaluated by then."""
    if not rows or rows[-1]["iteration"] < iteration:
        return None
    earlier = [r for r in rows if r["iteration"] <= iteration]
    return earlier[-1]["heldout_accuracy"] if earlier else None


def milestone_column(iteration):
    return "accuracy_at_%d" % iteration


def trial_row(trial, rows, options, target, at):
    """One sweep.csv row (a dict keyed by TRIAL_COLUMNS and the milestone columns ``at``) of a
    trial (a trial folder or a record) whose metrics.csv has the ``rows`` of read_metrics, its
    state read from those evaluations ('new' without)."""
    state = state_of_evaluations(rows, options) if rows else "new"
    row = {"variant": trial.variant.name, "seed": trial.seed, "state": state,
           "iterations": int(rows[-1]["iteration"]) if rows else 0,
           "training_hours": round(training_hours(rows), 2), "failure_mode": ""}
    iterations = [r["iteration"] for r in rows]
    last = rows[-1] if rows else {}
    # Overall, then per digit count: which images held a trial below the target, and until
    # when (the n+1 mode shows as one-digit images reaching it last).
    for suffix in ("", "_0", "_1", "_2"):
        key = "heldout_accuracy" + suffix
        row["first_iteration_at_target" + suffix] = first_iteration_at(
            iterations, [r.get(key, math.nan) for r in rows], target)
        row["accuracy" + suffix] = last.get(key)
    # Where the z_pres prior's annealing was when the trial first counted well enough: how much
    # of its pace the schedule sets.
    first = row["first_iteration_at_target"]
    row["prior_log_odds_at_target"] = None if first is None else round(
        trained_config(trial).z_pres_prior_log_odds_at(first), 1)
    if state == "finished":
        row["failure_mode"] = failure_mode(last)
    figures = final.read_current(trial.directory, row["iterations"]) if rows else {}
    row.update({name: figures.get(name) for name in FINAL_COLUMNS})
    for iteration in at:
        row[milestone_column(iteration)] = accuracy_at(rows, iteration)
    return row


def variant_summary(rows, target):
    """Per variant: trials ended, converged and not ended yet, and the first iterations at the
    target of the converged ones."""
    summary = {}
    for row in rows:
        entry = summary.setdefault(row["variant"], {"ended": 0, "converged": 0, "not_ended": 0,
                                                    "iterations": [], "failures": []})
        if row["state"] in ("converged", "finished"):
            entry["ended"] += 1
            if row["state"] == "converged":
                entry["converged"] += 1
                entry["iterations"].append(row["first_iteration_at_target"])
            else:
                entry["failures"].append(row["failure_mode"])
        else:
            entry["not_ended"] += 1
    return summary


RECORDS_FOLDER = "trials"
COUNT_FIGURE = "sweep_by_count.png"
GRADIENT_FIGURE = "sweep_gradient_variance.png"
WINDOW_FIGURE = "sweep_windows.png"
_INTEGER_COLUMNS = {"seed", "iterations", "first_iteration_at_target",
                    "first_iteration_at_target_0", "first_iteration_at_target_1",
                    "first_iteration_at_target_2"}
_TEXT_COLUMNS = {"variant", "state", "failure_mode"}


def record_of(trial, report_dir):
    """The Trial of a trial's record in report_dir (the folder may not exist)."""
    return trial._replace(directory=os.path.join(report_dir, RECORDS_FOLDER, trial.variant.name,
                                                 "seed-%d" % trial.seed))


def save_record(trial, report_dir):
    """Copies a trial's metrics.csv, model/config.json, final_evaluation.json and
    environment.json (those it has) to its record."""
    record = record_of(trial, report_dir).directory
    if os.path.abspath(record) == os.path.abspath(trial.directory):
        return
    os.makedirs(os.path.join(record, "model"), exist_ok=True)
    for name in (metrics_log.FILENAME, os.path.join("model", CONFIG_FILENAME), final.FILENAME,
                 environment.FILENAME):
        if os.path.isfile(os.path.join(trial.directory, name)):
            shutil.copyfile(os.path.join(trial.directory, name), os.path.join(record, name))


def recorded_trials(report_dir):
    """The trials that have a record in report_dir, as Trials whose directory is the record."""
    root = os.path.join(report_dir, RECORDS_FOLDER)
    found = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else ():
        seeds = [int(m.group(1)) for m in (re.fullmatch(r"seed-(\d+)", folder)
                                           for folder in os.listdir(os.path.join(root, name)))
                 if m]
        for seed in sorted(seeds):
            directory = os.path.join(root, name, "seed-%d" % seed)
            # The saved config reads a folder named in an earlier spelling as it was meant.
            config = os.path.join(directory, "model", CONFIG_FILENAME)
            variant = variant_from_name(name, load_config(config) if os.path.isfile(config)
                                        else None)
            found.append(Trial(variant, seed, directory))
    return found


def earlier_rows(report_dir):
    """The rows of the sweep.csv in report_dir (none without one), typed as trial_row's, but for
    those of trials not started then: a live sweep reports those too, and they have nothing to
    keep."""
    path = os.path.join(report_dir, "sweep.csv")
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        rows = [{column: (text if column in _TEXT_COLUMNS else None if text == ""
                          else int(text) if column in _INTEGER_COLUMNS else float(text))
                 for column, text in row.items()} for row in csv.DictReader(f)]
    return [row for row in rows if row["state"] != "new"]


# A trial of a report with the rows of its metrics.csv (sweep.read_metrics), read once a report.
TrialMetrics = collections.namedtuple("TrialMetrics", "trial metrics")


def study(trials, report_dir):
    """What a report in report_dir shows, one entry per trial: a TrialMetrics (the given trial,
    read from its folder where that has evaluations and from its record otherwise; a recorded
    trial not given) or, for a trial in neither, the row the earlier sweep.csv gave it (its
    curve is lost; rows of trials not started then are dropped). In the earlier sweep.csv's
    order, new trials after."""
    sources = collections.OrderedDict(((row["variant"], row["seed"]), row)
                                      for row in earlier_rows(report_dir))
    given_with_evaluations = set()
    for trial in trials:
        key = (trial.variant.name, trial.seed)
        metrics = read_metrics(trial.directory)
        if metrics:
            given_with_evaluations.add(key)
            sources[key] = TrialMetrics(trial, metrics)
        else:
            sources.setdefault(key, TrialMetrics(trial, metrics))
    for record in recorded_trials(report_dir):
        key = (record.variant.name, record.seed)
        if key not in given_with_evaluations:
            sources[key] = TrialMetrics(record, read_metrics(record.directory))
    return list(sources.values())


def ended_in_report(trials, options, report_dir):
    """The trials without a folder of theirs (sweep.trial_state 'new') that ended as the report
    in report_dir has them: by their record, else by the earlier sweep.csv."""
    earlier = {(r["variant"], r["seed"]): r["state"] for r in earlier_rows(report_dir)}
    ended = []
    for trial in (t for t in trials if trial_state(t, options) == "new"):
        recorded = read_metrics(record_of(trial, report_dir).directory)
        state = (state_of_evaluations(recorded, options) if recorded
                 else earlier.get((trial.variant.name, trial.seed)))
        if state in ("converged", "finished"):
            ended.append(trial)
    return ended


def write_report(trials, options, report_dir, target):
    """Writes sweep.csv, sweep.md and the figures into report_dir, for the given trials and
    every trial reported there before (see ``study``), and the given trials' records; returns
    the trial rows."""
    entries = study(trials, report_dir)
    runs = [e for e in entries if isinstance(e, TrialMetrics)]
    carried = [e for e in entries if not isinstance(e, TrialMetrics)]
    for run in runs:
        if run.metrics:
            save_record(run.trial, report_dir)  # a no-op for a record itself
    at = milestones(options.max_iterations)
    rows = [trial_row(e.trial, e.metrics, options, target, at)
            if isinstance(e, TrialMetrics) else e for e in entries]
    with open(os.path.join(report_dir, "sweep.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, TRIAL_COLUMNS + tuple(milestone_column(i) for i in at),
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    with open(os.path.join(report_dir, "sweep.md"), "w") as f:
        f.write(markdown_report(rows, options, target, at, carried))
    plot_curves(runs, os.path.join(report_dir, "sweep.png"), target, options.max_iterations, rows)
    plot_count_curves(count_panels(runs, rows, options.max_iterations),
                      os.path.join(report_dir, COUNT_FIGURE), target, options.max_iterations)
    panels = gradient_variance_panels(runs, rows)
    if panels:  # Studies from before the probe have no curves to draw.
        plot_gradient_variance(panels, os.path.join(report_dir, GRADIENT_FIGURE),
                               options.max_iterations)
    panels = window_panels(runs, rows, options.max_iterations)
    if panels:  # Nor studies from before metrics.csv had the boxes.
        plot_window_curves(panels, os.path.join(report_dir, WINDOW_FIGURE),
                           options.max_iterations)
    return rows


def _percent(value):
    return "-" if value is None or not math.isfinite(value) else "%.1f" % (100 * value)


def _iterations(count):
    """10000 -> '10k'; counts that are not whole thousands as they are."""
    return "%dk" % (count // 1000) if count and count % 1000 == 0 else "%d" % count


def _median(values, pattern):
    """The median of the numbers among ``values`` in ``pattern``, "-" without any."""
    numbers = [v for v in values if v is not None and math.isfinite(v)]
    return pattern % np.median(numbers) if numbers else "-"


def _figure(value, pattern):
    return "-" if value is None or not math.isfinite(value) else pattern % value


def markdown_report(rows, options, target, at, carried=()):
    """The sweep as Markdown: per-variant summary, then one line per trial (grouped by variant)
    with its accuracy at the milestone iterations ``at`` and the figures of its final model; a
    note names the ``carried`` rows."""
    lines = ["# Sweep", "",
             "Each trial ends when its held-out count accuracy has been >= %g%% at %d evaluations "
             "in a row%s (converged) or at %d iterations (finished without converging). "
             "\"-\": not evaluated (a trial that ended earlier or has not got there yet). Mean "
             "IoU (of the boxes matched to the true digits), window height and 3-digit accuracy "
             "(trained on 0-2 digits) are the final model's, on the held-out set and on 3-digit "
             "images; \"-\" for trials that did not measure them."
             % (100 * target, options.patience,
                ", not before %d iterations" % options.min_iterations
                if options.min_iterations else "", options.max_iterations), "",
             "| variant | converged of ended | not ended yet | median first it. >= %g%% | "
             "max | failure modes | median mean IoU | median 3-digit accuracy, %% |"
             % (100 * target), "|---|---|---|---|---|---|---|---|"]
    summary = variant_summary(rows, target)
    for name, entry in summary.items():
        iterations = entry["iterations"]
        ended = [r for r in rows if r["variant"] == name
                 and r["state"] in ("converged", "finished")]
        lines.append("| %s | %d of %d | %d | %s | %s | %s | %s | %s |" % (
            name, entry["converged"], entry["ended"], entry["not_ended"],
            "%d" % np.median(iterations) if iterations else "",
            "%d" % max(iterations) if iterations else "",
            ", ".join(sorted(entry["failures"])),
            _median([r.get("mean_iou") for r in ended], "%.2f"),
            _median([100 * r["extrapolation_accuracy"] for r in ended
                     if r.get("extrapolation_accuracy") is not None], "%.1f")))
    lines += ["", "| variant | seed | state | iterations | first it. >= %g%% | z_pres prior "
              "log-odds then | ... on 0 / 1 / 2 digits | accuracy at %s, %% | last accuracy "
              "(0 / 1 / 2 digits), %% | failure mode | hours | mean IoU | window px | 3-digit "
              "accuracy, %% |" % (100 * target, " / ".join(_iterations(i) for i in at)),
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    variants = list(summary)
    # Grouped by variant (in the grid's order), so that a variant's seeds read as one block.
    for r in sorted(rows, key=lambda r: (variants.index(r["variant"]), r["seed"])):
        lines.append(_trial_line(r, at))
    if carried:
        seeds = collections.OrderedDict()
        for r in carried:
            seeds.setdefault(r["variant"], []).append(str(r["seed"]))
        lines += ["", "Kept as an earlier sweep.csv gave them (reported before trials left "
                  "records here; their curves in sweep.png are the accuracies at the milestones "
                  "above): %s." % "; ".join(
                      "%s seed%s %s" % (name, "s" if len(numbers) > 1 else "", ", ".join(numbers))
                      for name, numbers in seeds.items())]
    return "\n".join(lines) + "\n"


def _trial_line(r, at):
    """The line of one sweep.csv row in the table of trials (milestones ``at``)."""
    last = "-"
    if r["accuracy"] is not None:
        last = "%s (%s / %s / %s)" % (_percent(r["accuracy"]), _percent(r["accuracy_0"]),
                                      _percent(r["accuracy_1"]), _percent(r["accuracy_2"]))
    return "| %s | %d | %s | %d | %s | %s | %s | %s | %s | %s | %.2f | %s | %s | %s |" % (
        r["variant"], r["seed"], r["state"], r["iterations"],
        r["first_iteration_at_target"] or "",
        "" if r["prior_log_odds_at_target"] is None else "%.1f" % r["prior_log_odds_at_target"],
        " / ".join("-" if r["first_iteration_at_target_%d" % c] is None
                   else _iterations(r["first_iteration_at_target_%d" % c]) for c in range(3)),
        " / ".join(_percent(r[milestone_column(i)]) for i in at), last,
        r["failure_mode"], r["training_hours"], _figure(r.get("mean_iou"), "%.2f"),
        _figure(r.get("mean_window_height"), "%.1f"),
        _percent(r.get("extrapolation_accuracy")))


def _wrapped(title, width=50):
    """A panel title broken at the '+' of a long variant name, so neighbours do not overlap."""
    lines = []
    for part in title.split("+"):
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += "+" + part
        else:
            lines.append(part if not lines else "+" + part)
    return "\n".join(lines)


def _accuracy_axis(axis, title, target, max_iterations, iteration_ticks):
    """The frame both figures give an accuracy panel: the target as a dashed line (drawn after
    the trials' lines), accuracy 0-1 against iterations 0-max_iterations, a light grid."""
    axis.axhline(target, color="grey", linestyle="--", linewidth=0.8)
    _iterations_axis(axis, title, max_iterations, iteration_ticks)
    axis.set_ylim(0, 1.02)


def _iterations_axis(axis, title, max_iterations, iteration_ticks):
    """Every panel's frame: its title (broken at '+'), iterations 0-max_iterations, a light
    grid."""
    axis.set_title(_wrapped(title), fontsize=9)
    axis.set_xlim(0, max_iterations)
    axis.xaxis.set_major_formatter(iteration_ticks)
    axis.grid(alpha=0.3)


def plot_curves(runs, path, target, max_iterations, rows):
    """Held-out accuracy against iteration of the TrialMetrics ``runs``: one panel per variant,
    one line per seed, every panel from 0 to ``max_iterations`` so that the panels compare at a
    glance; then a panel of each trial's first iteration at the target (sweep.csv ``rows``), one
    line per variant."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    variants = list(collections.OrderedDict((r["variant"], None) for r in rows))
    recorded = {(run.trial.variant.name, run.trial.seed) for run in runs}
    panels = len(variants) + 1
    columns = min(3, panels)
    grid_rows = int(math.ceil(panels / float(columns)))
    figure, axes = plt.subplots(grid_rows, columns, figsize=(5 * columns, 3.6 * grid_rows),
                                squeeze=False)
    iteration_ticks = FuncFormatter(lambda value, _: _iterations(int(value)))
    for index, name in enumerate(variants):
        axis = axes[index // columns][index % columns]
        for trial, metrics in (r for r in runs if r.trial.variant.name == name and r.metrics):
            axis.plot([r["iteration"] for r in metrics], [r["heldout_accuracy"] for r in metrics],
                      label="seed %d" % trial.seed, linewidth=1)
        # Rows without a record: only the milestones' and the last accuracy are known.
        for row in (r for r in rows if r["variant"] == name
                    and (r["variant"], r["seed"]) not in recorded):
            points = [(i, row.get(milestone_column(i))) for i in milestones(max_iterations)
                      if i < row["iterations"]] + [(row["iterations"], row["accuracy"])]
            points = [(i, a) for i, a in points if a is not None]
            axis.plot([i for i, _ in points], [a for _, a in points], ":", marker=".",
                      label="seed %d (milestones)" % row["seed"], linewidth=1)
        _accuracy_axis(axis, name, target, max_iterations, iteration_ticks)
        axis.set_xlabel("iteration")
        if index % columns == 0:
            axis.set_ylabel("held-out count accuracy")
        if axis.lines[:-1]:
            axis.legend(fontsize=8, ncol=2, loc="lower right")
    plot_first_iterations(axes[len(variants) // columns][len(variants) % columns], variants,
                           rows, target, max_iterations, iteration_ticks)
    for index in range(panels, grid_rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def count_panels(runs, rows, max_iterations):
    """What sweep_by_count.png shows of the TrialMetrics ``runs``, per variant (in the order of
    the sweep.csv ``rows``) that has trials with evaluations (carried rows have no per-count
    curves): a panel each for the one-digit and the two-digit images, as a dict with its title,
    one line (label, iterations, accuracies) per seed, and the z_pres prior's log-odds of the
    variant's schedule (of its first trial's saved config) as (iterations, log-odds)."""
    by_variant = collections.OrderedDict((r["variant"], []) for r in rows)
    for run in (r for r in runs if r.metrics):
        by_variant.setdefault(run.trial.variant.name, []).append(run)
    panels = []
    iterations = [int(i) for i in np.linspace(0, max_iterations, 181)]
    for name, variant_runs in ((n, r) for n, r in by_variant.items() if r):
        schedule = trained_config(variant_runs[0].trial)
        prior = (iterations, [schedule.z_pres_prior_log_odds_at(i) for i in iterations])
        for count, words in ((1, "one-digit"), (2, "two-digit")):
            key = "heldout_accuracy_%d" % count
            panels.append({"title": "%s: %s images" % (name, words), "prior": prior, "lines": [
                ("seed %d" % trial.seed, [r["iteration"] for r in metrics],
                 [r.get(key, math.nan) for r in metrics]) for trial, metrics in variant_runs]})
    return panels


def plot_count_curves(panels, path, target, max_iterations):
    """Draws ``count_panels``: two panels a row, held-out accuracy on the left axis and the
    prior's log-odds (dotted) on the right one, so that when each trial left the n+1 mode reads
    against where the annealing was."""
    def draw(axis, panel, index, iteration_ticks):
        for label, iterations, accuracies in panel["lines"]:
            axis.plot(iterations, accuracies, label=label, linewidth=1)
        _accuracy_axis(axis, panel["title"], target, max_iterations, iteration_ticks)
        if index % 2 == 0:
            axis.set_ylabel("held-out accuracy")
        if panel["lines"]:
            # Left of the middle: where every trial is still at 0 and the schedule high.
            axis.legend(fontsize=8, ncol=2, loc="center left")
        if panel["prior"]:
            prior = axis.twinx()
            prior.plot(*panel["prior"], color="black", linestyle=":", linewidth=1)
            prior.set_ylim(-22, 10)
            if index % 2 == 1:
                prior.set_ylabel("z_pres prior log-odds (dotted)", fontsize=8)
    _two_column_figure(
        panels or [{"title": "no trial has evaluations yet", "prior": None, "lines": []}],
        path, draw)


def _two_column_figure(panels, path, draw):
    """Draws ``panels`` into the PNG ``path``, two a row, each by ``draw(axis, panel, index,
    iteration_ticks)``; the bottom row's x axes say "iteration", cells without a panel stay
    blank."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    grid_rows = int(math.ceil(len(panels) / 2.0))
    figure, axes = plt.subplots(grid_rows, 2, figsize=(10, 3.2 * grid_rows), squeeze=False)
    iteration_ticks = FuncFormatter(lambda value, _: _iterations(int(value)))
    for index, panel in enumerate(panels):
        axis = axes[index // 2][index % 2]
        draw(axis, panel, index, iteration_ticks)
        if index // 2 == grid_rows - 1:
            axis.set_xlabel("iteration")
    for index in range(len(panels), grid_rows * 2):
        axes[index // 2][index % 2].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def gradient_variance_panels(runs, rows):
    """What sweep_gradient_variance.png shows of the TrialMetrics ``runs``: a panel per variant
    (in the order of the sweep.csv ``rows``) whose trials measured the gradient variance of the
    z_pres network, as a dict with its title and one line (seed, estimator, trained, iterations,
    variances) per trial and estimator measured, ``trained`` telling the estimator the trial
    trains with from the ones probed on its weights; evaluations without a positive finite
    value (not measured there) are left out of a line."""
    panels = collections.OrderedDict((r["variant"], []) for r in rows)
    for run in (r for r in runs if r.metrics):
        trained = trained_config(run.trial).z_pres_estimator
        for column in metrics_log.GRADIENT_VARIANCE_COLUMNS:
            points = [(r["iteration"], r[column]) for r in run.metrics
                      if math.isfinite(r.get(column, math.nan)) and r[column] > 0]
            if points:
                estimator = column[len("z_pres_gradient_variance_"):]
                panels.setdefault(run.trial.variant.name, []).append(
                    (run.trial.seed, estimator, estimator == trained,
                     [i for i, _ in points], [v for _, v in points]))
    return [{"title": name, "lines": lines} for name, lines in panels.items() if lines]


def plot_gradient_variance(panels, path, max_iterations):
    """Draws ``gradient_variance_panels`` on a log scale, two panels a row: a colour per seed,
    a solid line for the estimator the trial trains with and a dashed one for an estimator
    probed on the same weights, so that the estimators' noise compares within a panel and the
    variants' across them."""
    def draw(axis, panel, index, iteration_ticks):
        seeds = sorted({line[0] for line in panel["lines"]})
        for seed, estimator, trained, iterations, variances in panel["lines"]:
            axis.plot(iterations, variances, "-" if trained else "--", linewidth=1,
                      color="C%d" % (seeds.index(seed) % 10),
                      label="seed %d, %s%s" % (seed, estimator, "" if trained else " (probe)"))
        axis.set_yscale("log")
        _iterations_axis(axis, panel["title"], max_iterations, iteration_ticks)
        axis.legend(fontsize=7, ncol=2, loc="lower left")
        if index % 2 == 0:
            axis.set_ylabel("z_pres gradient variance")
    _two_column_figure(panels, path, draw)


def window_panels(runs, rows, max_iterations):
    """What sweep_windows.png shows of the TrialMetrics ``runs``, per variant (in the order of
    the sweep.csv ``rows``) whose trials measured their held-out boxes: a panel for the mean
    IoU of the boxes matched to the true digits and one for the mean height of the windows,
    as dicts with a title, a y label, y limits, one line (label, iterations, values) per seed
    and, in the height panel, the window of the scale prior's mean (of the variant's schedule,
    its first trial's saved config) as (iterations, pixels)."""
    by_variant = collections.OrderedDict((r["variant"], []) for r in rows)
    for run in (r for r in runs if r.metrics):
        if any(math.isfinite(r.get("heldout_mean_iou", math.nan)) for r in run.metrics):
            by_variant.setdefault(run.trial.variant.name, []).append(run)
    iterations = [int(i) for i in np.linspace(0, max_iterations, 181)]
    panels = []
    for name, variant_runs in ((n, r) for n, r in by_variant.items() if r):
        schedule = trained_config(variant_runs[0].trial)
        for column, label, limits, prior in (
                ("heldout_mean_iou", "mean IoU of matched boxes", (0, 1), None),
                ("heldout_window_height", "window height, px (prior's: dotted)",
                 (0, schedule.canvas_height),
                 (iterations, [prior_window_height(schedule, i) for i in iterations]))):
            panels.append({"title": name, "label": label, "limits": limits, "prior": prior,
                           "lines": [("seed %d" % run.trial.seed,
                                      [r["iteration"] for r in run.metrics],
                                      [r.get(column, math.nan) for r in run.metrics])
                                     for run in variant_runs]})
    return panels


def plot_window_curves(panels, path, max_iterations):
    """Draws ``window_panels``, two panels a row (a variant's IoU beside its window height):
    whether a schedule of the window-scale prior tightens the boxes, and when."""
    def draw(axis, panel, index, iteration_ticks):
        for label, iterations, values in panel["lines"]:
            axis.plot(iterations, values, label=label, linewidth=1)
        if panel["prior"]:
            axis.plot(*panel["prior"], color="black", linestyle=":", linewidth=1)
        _iterations_axis(axis, panel["title"], max_iterations, iteration_ticks)
        axis.set_ylim(*panel["limits"])
        axis.set_ylabel(panel["label"], fontsize=8)
        axis.legend(fontsize=8, ncol=2, loc="lower right")
    _two_column_figure(panels, path, draw)


def plot_first_iterations(axis, variants, rows, target, max_iterations, iteration_ticks):
    """One line per variant: a dot at each converged trial's first iteration at the target,
    a cross at max_iterations for each trial that ended without converging; trials not ended
    are left out (their first iteration is not known yet)."""
    for line, name in enumerate(variants):
        trials = [r for r in rows if r["variant"] == name]
        firsts = [r["first_iteration_at_target"] for r in trials if r["state"] == "converged"]
        failed = [r for r in trials if r["state"] == "finished"]
        axis.plot(firsts, [line] * len(firsts), "o", color="C0", alpha=0.6)
        axis.plot([max_iterations] * len(failed), [line] * len(failed), "x", color="C3")
        if firsts:
            axis.plot([np.median(firsts)], [line], "|", color="black", markersize=16)
        # The names go inside the panel (as tick labels they would widen the figure's margin),
        # broken at '+' so that a long one stays within it.
        axis.text(0.01 * max_iterations, line - 0.25, _wrapped(name, width=56), fontsize=8,
                  va="bottom")
    axis.set_yticks([])
    axis.set_ylim(len(variants) - 0.4, -0.8)
    axis.set_xlim(0, max_iterations * 1.03)
    axis.xaxis.set_major_formatter(iteration_ticks)
    axis.set_xlabel("first iteration at >= %g%% (| median; x: not converged)" % (100 * target))
    axis.set_title("iterations to the target, per trial", fontsize=9)
    axis.grid(alpha=0.3, axis="x")
