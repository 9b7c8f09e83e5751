"""final_evaluation.json as the reports read it: whole figures of the model at a run's last
evaluation, or none."""
import json
import os

from air.evaluation import final


def _write(directory, text):
    with open(os.path.join(str(directory), final.FILENAME), "w") as f:
        f.write(text)


def test_figures_count_only_for_the_iteration_they_were_measured_at(tmp_path):
    _write(tmp_path, json.dumps({"iteration": 12, "mean_iou": 0.5, "mean_window_height": 21.0}))
    assert final.read_current(str(tmp_path), 12) == {
        "iteration": 12, "mean_iou": 0.5, "mean_window_height": 21.0}
    # metrics.csv gives iterations as floats.
    assert final.read_current(str(tmp_path), 12.0)["mean_iou"] == 0.5
    # Resumed past that end: the new final model has not been measured.
    assert final.read_current(str(tmp_path), 18) == {}


def test_missing_damaged_or_non_finite_figures_read_as_none(tmp_path):
    assert final.read(str(tmp_path)) == {} and final.read_current(str(tmp_path), 12) == {}
    _write(tmp_path, '{"iteration": 12, "mean_iou"')
    assert final.read(str(tmp_path)) == {}
    _write(tmp_path, "[1, 2]")
    assert final.read(str(tmp_path)) == {}
    _write(tmp_path, '{"iteration": 12, "mean_iou": NaN, "mean_window_height": 20.5}')
    assert final.read_current(str(tmp_path), 12) == {"iteration": 12, "mean_window_height": 20.5}


class _CountingEvaluator:
    """Stands in for a HeldOutEvaluator: one image with one digit, boxed by one of its two
    windows (the other is not live); counts its predictions."""

    def __init__(self):
        self.predictions_made = 0

    def predict(self, session):
        import numpy as np
        self.predictions_made += 1
        return {"true_counts": np.array([1]), "true_positions": np.array([[[10.0, 10.0]]]),
                "true_boxes": np.array([[[20.0, 20.0]]]),
                "boxes": np.array([[[10.0, 10.0, 20.0, 10.0], [0.0, 0.0, 5.0, 5.0]]]),
                "live": np.array([[1.0, 0.0]])}


def test_the_final_boxes_are_the_last_evaluations_when_it_is_of_the_final_model():
    evaluator = _CountingEvaluator()
    evaluation = final.FinalEvaluation(config=None, heldout=evaluator)
    last = {"iteration": 30, "mean_iou": 0.7, "box_recall_iou50": 0.8,
            "mean_window_height": 22.0, "count_accuracy": 0.9}
    assert evaluation.figures(None, 30, last) == {
        "iteration": 30, "mean_iou": 0.7, "box_recall_iou50": 0.8, "mean_window_height": 22.0}
    assert evaluator.predictions_made == 0
    # An evaluation of another iteration, or none (a resumed run that had already ended):
    # the held-out set is predicted again. The live window covers half of the digit's box.
    for heldout in ({"iteration": 24, "mean_iou": 0.7}, None):
        assert evaluation.figures(None, 30, heldout) == {
            "iteration": 30, "mean_iou": 0.5, "box_recall_iou50": 1.0,
            "mean_window_height": 10.0}
    assert evaluator.predictions_made == 2
