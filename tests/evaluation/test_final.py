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
