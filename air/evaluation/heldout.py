"""Held-out evaluation: runs the test-mode model over a whole record file and scores it.

Used by training.py (periodic held-out accuracy and sampled ELBO) and evaluate.py (the full
report: counts, boxes matched to the true digits, ELBO and importance-weighted bound). Finding
and restoring the checkpoint to evaluate is air/training/checkpoints.py's job; the likelihood maths is
air/evaluation/likelihood.py's.
"""
import json
import re

import numpy as np
import tensorflow.compat.v1 as tf

from air.evaluation import likelihood
from air.evaluation.model_folder import test_mode_outputs
from air.model.air_model import AIRModel
from air.data import pipeline, records


class HeldOutEvaluator:
    """Builds a test-mode AIRModel (z_pres rounded, posterior means) over one record file, and
    the sampled discrete model of air/evaluation/likelihood.py on the same variables.

    Args:
        config: the model's ``AIRConfig``.
        path: the ``.tfrecords`` file to evaluate on (every record, once per run).
        batch_size: images per forward pass of the test-mode model.
        global_step: optional step tensor, so the plug-in ELBO uses the z_pres prior of that
            iteration (the sampled ELBO always uses the end of the schedule).
        scope: variable scope of the model to evaluate (its variables are reused).
        seed: seed of the sampled model (see ``likelihood.LogWeightSampler``).
    """

    def __init__(self, config, path, batch_size=500, global_step=None, scope="air", seed=0):
        self.config = config
        self.path = path
        dataset = pipeline.batched_dataset(
            path, batch_size, shuffle=False, repeat=False, with_metadata=True,
            height=config.canvas_height, width=config.canvas_width)
        self._iterator = tf.data.make_initializable_iterator(dataset)
        batch = self._iterator.get_next()
        self.model = AIRModel(batch["image"], config, training=False, true_counts=batch["digits"],
                              global_step=global_step, scope=scope)
        self.sampler = likelihood.LogWeightSampler(config, seed=seed, scope=scope)
        self._fetches = dict(
            test_mode_outputs(self.model, ("digit_count", "negative_elbo", "boxes", "live")),
            z_pres_log_odds=self.model.steps.z_pres_log_odds,
            attempted=self.model.steps.attempted, images=batch["image"], true_counts=batch["digits"],
            true_positions=batch["positions"], true_boxes=batch["boxes"])

    def predict(self, session):
        """Runs over the whole file; returns per-image numpy arrays (see ``_fetches``).

        True positions and boxes are padded with -1 to the largest count in the file.
        """
        session.run(self._iterator.initializer)
        parts = []
        while True:
            try:
                parts.append(session.run(self._fetches))
            except tf.errors.OutOfRangeError:
                break
        if not parts:
            raise ValueError("no records in %s" % self.path)
        result = {}
        for name in self._fetches:
            arrays = [p[name] for p in parts]
            if name.startswith("true_") and arrays[0].ndim > 1:
                width = max(a.shape[1] for a in arrays)
                arrays = [np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2),
                                 constant_values=records.PAD) for a in arrays]
            result[name] = np.concatenate(arrays)
        return result

    def count_metrics(self, session):
        """Count accuracy overall and per true count, confusion matrix and plug-in ELBO."""
        return count_metrics(self.predict(session), self.config.max_steps)

    def heldout_metrics(self, session, elbo_samples):
        """training.py's figures: ``count_metrics``, ``box_metrics``, ``mean_window_height``
        and ``discrete_elbo_final_prior``, the mean sampled ELBO of the discrete model from
        ``elbo_samples`` samples per image."""
        predictions = self.predict(session)
        metrics = count_metrics(predictions, self.config.max_steps)
        metrics.update(box_figures(predictions))
        log_weights = self.sampler.log_weights(session, predictions["images"], elbo_samples)
        metrics["discrete_elbo_final_prior"] = float(np.mean(likelihood.elbo_per_image(log_weights)))
        return metrics

    def report(self, session, elbo_samples, iwae_samples=None, with_log_odds=False):
        """evaluate.py's report (``REPORT_KEYS``): counts, boxes, the sampled ELBO from
        ``elbo_samples`` and, with ``iwae_samples``, the importance-weighted bound; with
        ``with_log_odds`` also ``z_pres_log_odds`` (``z_pres_log_odds_by_count``)."""
        predictions = self.predict(session)
        report = evaluation_report(predictions, self.config.max_steps, likelihood.likelihood_report(
            session, self.sampler, predictions["images"], elbo_samples, iwae_samples))
        if with_log_odds:
            report["z_pres_log_odds"] = z_pres_log_odds_by_count(predictions)
        return report


def count_metrics(predictions, max_steps):
    """Takes ``HeldOutEvaluator.predict`` output to a dict of count-accuracy metrics."""
    true_counts = predictions["true_counts"].astype(np.int64)
    found = predictions["digit_count"].astype(np.int64)
    correct = true_counts == found
    by_digits = {}
    for k in np.unique(true_counts):
        by_digits[str(int(k))] = float(np.mean(correct[true_counts == k]))
    size = max(max_steps, int(true_counts.max())) + 1
    confusion = np.zeros([size, max_steps + 1], np.int64)
    np.add.at(confusion, (true_counts, found), 1)
    return {
        "images": int(len(true_counts)),
        "count_accuracy": float(np.mean(correct)),
        # How the wrong counts are wrong: the "one digit read as two" mode is an over-count.
        "overcount": float(np.mean(found > true_counts)),
        "undercount": float(np.mean(found < true_counts)),
        "count_accuracy_by_digits": by_digits,
        "confusion": confusion.tolist(),
        # Not an ELBO: the reconstruction at the posterior means plus the KLs of test mode.
        "plugin_elbo_at_means": float(-np.mean(predictions["negative_elbo"])),
    }


def box_iou(boxes_a, boxes_b):
    """Takes boxes [N, 4] and [M, 4] (x_min, y_min, width, height) to their IoU matrix [N, M].

    Boxes without area have IoU 0 with everything (also with themselves).
    """
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    ax0, ay0 = a[:, None, 0], a[:, None, 1]
    ax1, ay1 = ax0 + a[:, None, 2], ay0 + a[:, None, 3]
    bx0, by0 = b[None, :, 0], b[None, :, 1]
    bx1, by1 = bx0 + b[None, :, 2], by0 + b[None, :, 3]
    overlap_x = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0.0, None)
    overlap_y = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0.0, None)
    intersection = overlap_x * overlap_y
    area_a = np.clip(a[:, None, 2], 0.0, None) * np.clip(a[:, None, 3], 0.0, None)
    area_b = np.clip(b[None, :, 2], 0.0, None) * np.clip(b[None, :, 3], 0.0, None)
    union = area_a + area_b - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0.0, intersection / np.where(union > 0.0, union, 1.0), 0.0)


def match_boxes(predicted, true):
    """Optimal one-to-one matching of predicted to true boxes (largest total IoU).

    Takes boxes [P, 4] and [M, 4] to (predicted index [K], true index [K], IoU [K]) with
    K = min(P, M), found by the Hungarian algorithm (scipy's linear_sum_assignment).
    """
    from scipy.optimize import linear_sum_assignment
    iou = box_iou(predicted, true)
    if iou.size == 0:
        empty = np.zeros([0], np.int64)
        return empty, empty, np.zeros([0])
    rows, columns = linear_sum_assignment(-iou)
    return rows, columns, iou[rows, columns]


def box_metrics(predictions, iou_threshold=0.5):
    """Takes ``HeldOutEvaluator.predict`` output to the localisation metrics.

    In each image the live predicted boxes are matched to the true digit boxes (the crop
    rectangles of the records: positions x, y and boxes width, height) by ``match_boxes``.

    Returns:
        ``mean_iou``: mean IoU over all matched pairs (None when no image has both a
        predicted and a true box); ``box_recall_iou50``: the fraction of all true digits
        matched with IoU >= ``iou_threshold`` (None when there are no digits).
    """
    matched_ious = []
    true_total = 0
    for i in range(len(predictions["true_counts"])):
        count = int(predictions["true_counts"][i])
        true = np.concatenate([predictions["true_positions"][i, :count],
                               predictions["true_boxes"][i, :count]], axis=1)
        predicted = predictions["boxes"][i][predictions["live"][i] > 0.5]
        matched_ious.append(match_boxes(predicted, true)[2])
        true_total += count
    ious = np.concatenate(matched_ious) if matched_ious else np.zeros([0])
    return {
        "mean_iou": float(np.mean(ious)) if ious.size else None,
        "box_recall_iou50": (float(np.sum(ious >= iou_threshold)) / true_total
                             if true_total else None),
    }


OUTCOMES = ("right", "over", "under")


def by_count_and_outcome(predictions, cell_value):
    """Takes ``HeldOutEvaluator.predict`` output and ``cell_value(images)`` (a boolean mask [N]
    of the images of one cell to a value or None) to {true count: {"right" | "over" | "under":
    value}}: the images of each true count, split by how they were counted."""
    true_counts = predictions["true_counts"].astype(np.int64)
    found = predictions["digit_count"].astype(np.int64)
    outcome = np.where(found == true_counts, 0, np.where(found > true_counts, 1, 2))
    return {str(int(k)): {name: cell_value((true_counts == k) & (outcome == index))
                          for index, name in enumerate(OUTCOMES)}
            for k in np.unique(true_counts)}


def mean_window_height(predictions):
    """The mean height in pixels of the live windows of ``HeldOutEvaluator.predict`` output
    (None without any)."""
    heights = predictions["boxes"][..., 3][predictions["live"] > 0.5]
    return float(np.mean(heights)) if heights.size else None


def box_figures(predictions):
    """``box_metrics`` and ``mean_window_height`` of ``HeldOutEvaluator.predict`` output, in
    one dict: the box figures of every held-out evaluation and of a run's final model."""
    return dict(box_metrics(predictions), mean_window_height=mean_window_height(predictions))


def window_size_metrics(predictions):
    """Takes ``HeldOutEvaluator.predict`` output to the mean height in pixels of the live
    windows, by true count and by how the image was counted, and of the true digit boxes.

    A digit split between two windows (the "n+1" mode) shows as over-counted images whose
    windows are smaller than those of images counted right. Returns ``window_height``:
    {true count: {"right" | "over" | "under": mean height, or None without such windows}}
    and ``true_digit_height`` (None without digits).
    """
    heights = predictions["boxes"][..., 3]
    live = predictions["live"] > 0.5

    def mean_height(images):
        windows = heights[images][live[images]]
        return float(np.mean(windows)) if windows.size else None

    by_count = by_count_and_outcome(predictions, mean_height)
    true_counts = predictions["true_counts"].astype(np.int64)
    true_heights = [predictions["true_boxes"][i, :count, 1]
                    for i, count in enumerate(true_counts)]
    true_heights = np.concatenate(true_heights) if len(true_heights) else np.zeros([0])
    return {"window_height": by_count,
            "true_digit_height": float(np.mean(true_heights)) if true_heights.size else None}


def z_pres_log_odds_by_count(predictions):
    """Takes ``HeldOutEvaluator.predict`` output to the posterior z_pres log-odds of each step,
    {true count: [(median, min, max) over the images whose step t was attempted, or None]}.

    A presence saturated at 1 shows here where the probabilities cannot: every gradient that
    could turn a step off scales with sigmoid(-a), about exp(-a), which float32 rounds away
    from the probability above log-odds 17 but not from the gradient.
    """
    true_counts = predictions["true_counts"].astype(np.int64)
    log_odds = predictions["z_pres_log_odds"].astype(np.float64)
    attempted = predictions["attempted"] > 0.5

    def summary(values):
        return ([float(np.median(values)), float(np.min(values)), float(np.max(values))]
                if values.size else None)

    return {str(int(k)): [summary(log_odds[(true_counts == k) & attempted[:, t], t])
                          for t in range(log_odds.shape[1])]
            for k in np.unique(true_counts)}


def elbo_by_outcome(predictions, elbo_per_image):
    """Takes ``HeldOutEvaluator.predict`` output and the ELBO of each of its images [N] to the
    mean ELBO per image {true count: {"right" | "over" | "under": mean, or None without such
    images}}.

    Whether a wrong count is the model's best explanation or a local optimum shows here: in the
    n+1 mode the one-digit images read as two score far below those read as one.
    """
    elbo_per_image = np.asarray(elbo_per_image, np.float64)
    return by_count_and_outcome(predictions, lambda images: float(
        np.mean(elbo_per_image[images])) if images.any() else None)


# Keys of evaluate.py's JSON report, in order (docs/likelihood.md gives their meaning).
REPORT_KEYS = ("images", "count_accuracy", "count_accuracy_by_digits", "confusion", "mean_iou",
               "box_recall_iou50", "window_height", "true_digit_height"
               ) + likelihood.REPORT_KEYS + ("elbo_by_outcome", "plugin_elbo_at_means")


def evaluation_report(predictions, max_steps, likelihood_figures):
    """Count and box metrics of ``HeldOutEvaluator.predict`` output and the figures of
    ``likelihood.likelihood_report`` (with its ``elbo_per_image``), keyed by ``REPORT_KEYS``."""
    metrics = count_metrics(predictions, max_steps)
    metrics.update(box_metrics(predictions))
    metrics.update(window_size_metrics(predictions))
    metrics.update(likelihood_figures)
    metrics["elbo_by_outcome"] = elbo_by_outcome(predictions, likelihood_figures["elbo_per_image"])
    return {key: metrics[key] for key in REPORT_KEYS}


def format_report(report, checkpoint=None, step=None, data_path=None):
    """Takes an evaluation report to the printed table (a string)."""
    lines = []
    if checkpoint is not None:
        lines.append("model   %s%s" % (checkpoint, "" if step is None else
                                       " (iteration %d)" % step))
    if data_path is not None:
        lines.append("data    %s (%d images)" % (data_path, report["images"]))
    confusion = report["confusion"]
    predicted = len(confusion[0])
    lines.append("")
    lines.append("digits  images  accuracy  | found: " + " ".join("%5d" % k for k in range(predicted)))
    for true_count, row in enumerate(confusion):
        images = sum(row)
        if images == 0:
            continue
        accuracy = report["count_accuracy_by_digits"].get(str(true_count), float("nan"))
        lines.append("%-6d  %6d  %8.4f  |        " % (true_count, images, accuracy)
                     + " ".join("%5d" % n for n in row))
    lines.append("all     %6d  %8.4f" % (report["images"], report["count_accuracy"]))
    lines.append("")
    lines.append("mean IoU of matched boxes        %s" % _optional(report["mean_iou"], "%.4f"))
    lines.append("true digits found at IoU >= 0.5  %s" % _optional(report["box_recall_iou50"],
                                                                  "%.4f"))
    lines.append("")
    lines.append("mean window height (px) by how the image was counted; true digits %s px"
                 % _optional(report["true_digit_height"], "%.1f"))
    lines.extend(_outcome_table(report["window_height"], "%.1f"))
    lines.append("")
    lines.append("discrete model, z_pres prior log-odds %.2f (end of the schedule), seed %d:"
                 % (report["z_pres_prior_log_odds"], report["seed"]))
    lines.append("ELBO per image                   %s  (%d samples; Monte Carlo error %s)" % (
        _with_stderr(report["elbo"], report["elbo_stderr"]), report["elbo_samples"],
        _optional(report["elbo_monte_carlo_stderr"], "%.2f")))
    if report["log_likelihood_iwae"] is not None:
        lines.append("log p(x) >= (IWAE bound)         %s  (%d samples)" % (
            _with_stderr(report["log_likelihood_iwae"], report["log_likelihood_iwae_stderr"]),
            report["iwae_samples"]))
    lines.append("plug-in ELBO at the means        %.2f  (not a bound)"
                 % report["plugin_elbo_at_means"])
    lines.append("")
    lines.append("mean ELBO per image by how the image was counted")
    lines.extend(_outcome_table(report["elbo_by_outcome"], "%.1f"))
    if report.get("z_pres_log_odds") is not None:
        lines.append("")
        lines.append("z_pres posterior log-odds per step, median (min .. max) of attempted steps")
        by_count = report["z_pres_log_odds"]
        steps = max(len(v) for v in by_count.values())
        lines.append("digits  " + "  ".join("%22s" % ("step %d" % (t + 1)) for t in range(steps)))
        for true_count, values in sorted(by_count.items(), key=lambda i: int(i[0])):
            lines.append("%-6s  " % true_count + "  ".join(
                "%22s" % ("n/a" if v is None else "%.1f (%.1f .. %.1f)" % tuple(v))
                for v in values))
    return "\n".join(lines)


def _outcome_table(by_count, pattern):
    """Lines of a {true count: {outcome: value or None}} table, one row per true count."""
    lines = ["digits  " + "  ".join("%7s" % name for name in OUTCOMES)]
    for true_count, values in sorted(by_count.items(), key=lambda i: int(i[0])):
        lines.append("%-6s  " % true_count + "  ".join(
            "%7s" % _optional(values[name], pattern) for name in OUTCOMES))
    return lines


def _with_stderr(value, stderr):
    """'value +- stderr' (standard error over images), or the value alone for one image."""
    return "%.2f" % value if stderr is None else "%.2f +- %.2f" % (value, stderr)


def report_json(report):
    """The report as indented JSON text, each confusion row on one line."""
    text = json.dumps(report, indent=2)
    # Innermost lists of numbers (the confusion rows) on one line each.
    return re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]",
                  lambda m: "[%s]" % ", ".join(v.strip() for v in m.group(1).split(",")),
                  text) + "\n"


def _optional(value, pattern):
    return "n/a" if value is None else pattern % value
