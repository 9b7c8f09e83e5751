"""The figures of a training run's final model, written when the run ends (training.py
--final-evaluation) into final_evaluation.json beside metrics.csv, where sweep.py's reports
read them: checkpoints are not kept with a study's records, so what only the model can tell is
measured before they are left behind.

* On the held-out set: the mean IoU of the boxes matched to the true digits, the recall at IoU
  0.5 and the mean height of the live windows (what the window-scale prior shapes).
* With --extrapolation-data, a record file of images with more digits than the model was
  trained on (sweep.py makes one of 3-digit images): the count accuracy there. Test mode runs
  max_steps one above the file's largest count, so that a model can also count too many: with
  max_steps 3, every 3-digit image read as "as many as it can" would count as right.
"""
import json
import math
import os


FILENAME = "final_evaluation.json"
# The held-out figures of the final model (heldout.box_figures, part of heldout_metrics).
BOX_KEYS = ("mean_iou", "box_recall_iou50", "mean_window_height")


def extrapolation_steps(config, path):
    """The max_steps that counts the images of ``path``: one above its largest digit count, and
    never fewer than the model's own."""
    from air.data import records
    largest = max((records.decode_example(s)["digits"] for s in records.iterate_records(path)),
                  default=0)
    return max(config.max_steps, int(largest) + 1)


class FinalEvaluation:
    """Builds, in the current default graph, what the final figures need beside the run's own
    held-out evaluator (a HeldOutEvaluator): the test-mode model on the extrapolation file, on
    the same variables, with max_steps raised (``extrapolation_steps``)."""

    def __init__(self, config, heldout, extrapolation_path=None, batch_size=500):
        from air.evaluation.heldout import HeldOutEvaluator
        self.heldout = heldout
        self.extrapolation = None
        if extrapolation_path:
            counting = config.replace(max_steps=extrapolation_steps(config, extrapolation_path))
            self.extrapolation = HeldOutEvaluator(counting, extrapolation_path, batch_size)

    def figures(self, session, iteration, heldout=None):
        """The final figures (a dict) of the model in ``session`` at ``iteration``. ``heldout``,
        the run's last held-out evaluation (``HeldOutEvaluator.heldout_metrics``), gives the box
        figures when it is of the same iteration; the held-out set is predicted again if not."""
        from air.evaluation.heldout import box_figures, count_metrics
        if not heldout or heldout.get("iteration") != iteration:
            heldout = box_figures(self.heldout.predict(session))
        figures = {key: heldout[key] for key in BOX_KEYS}
        figures["iteration"] = int(iteration)
        if self.extrapolation is not None:
            steps = self.extrapolation.config.max_steps
            counts = count_metrics(self.extrapolation.predict(session), steps)
            figures.update(extrapolation_images=counts["images"], extrapolation_max_steps=steps,
                           extrapolation_accuracy=counts["count_accuracy"],
                           extrapolation_accuracy_by_digits=counts["count_accuracy_by_digits"])
        return figures

    def write(self, session, iteration, results_dir, heldout=None):
        """Writes the figures to results_dir/final_evaluation.json (whole or not at all)."""
        path = os.path.join(results_dir, FILENAME)
        figures = self.figures(session, iteration, heldout)
        with open(path + ".partial", "w") as f:
            f.write(json.dumps(figures, indent=2, sort_keys=True) + "\n")
        os.replace(path + ".partial", path)


def read(directory):
    """The final figures of the run (or record) in ``directory``: a dict, empty when it has
    none (a run that has not ended, or one from before runs wrote them) or they do not read."""
    path = os.path.join(directory, FILENAME)
    try:
        with open(path) as f:
            figures = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(figures, dict):
        return {}
    return {k: v for k, v in figures.items()
            if not (isinstance(v, float) and not math.isfinite(v))}


def read_current(directory, iteration):
    """The final figures in ``directory`` if they are of the model at ``iteration`` (a run's
    last held-out evaluation), else {}: a run resumed past an earlier end has not measured its
    new final model yet."""
    figures = read(directory)
    return figures if figures.get("iteration") == iteration else {}
