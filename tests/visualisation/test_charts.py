"""charts.py and air/visualisation/plots.py: PNGs from a real training run, metrics parsing, drawing."""
import os
import shutil

import numpy as np
import pytest
from matplotlib.colors import to_rgb

import charts
from air.training import metrics_log
from air.visualisation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    """[H, W, channels] float pixels of a PNG, after checking it is one."""
    import matplotlib.image
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, path
    return matplotlib.image.imread(path)


def assert_drawn(path):
    pixels = read_png(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert np.std(pixels[..., :3]) > 0.01, "%s is blank" % path


def write_metrics(path, rows, columns=("iteration", "loss", "heldout_accuracy")):
    with open(path, "w") as f:
        f.write(",".join(columns) + "\n")
        for row in rows:
            f.write(",".join(str(v) for v in row) + "\n")


def test_charts_of_a_real_run(small_results_dir, small_data_dir, tmp_path, capsys):
    # The layout of `make train`: the results folder beside multi_mnist_data/, where the
    # samples' record file is found without --data.
    run = tmp_path / "results"
    shutil.copytree(small_results_dir, str(run), ignore=shutil.ignore_patterns("source"))
    (tmp_path / "multi_mnist_data").mkdir()
    shutil.copy(os.path.join(small_data_dir, "test.tfrecords"), str(tmp_path / "multi_mnist_data"))
    code = charts.main(["--results-dir", str(run), "--samples", "4"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    for name in ("accuracy.png", "losses.png", "samples.png"):
        path = os.path.join(str(run), "charts", name)
        assert "wrote %s" % path in printed
        assert os.path.getsize(path) > 1000
        assert_drawn(path)


def test_samples_are_skipped_without_data_or_checkpoint(small_results_dir, tmp_path, capsys):
    run = tmp_path / "results"
    os.makedirs(str(run / "model"))
    shutil.copy(os.path.join(small_results_dir, "metrics.csv"), str(run))
    cwd = os.getcwd()
    os.chdir(str(tmp_path))  # No multi_mnist_data/ here either.
    try:
        assert charts.main(["--results-dir", str(run), "--output-dir", "a"]) == 0
        assert "samples skipped: no checkpoint in" in capsys.readouterr().out
        os.rmdir(str(run / "model"))
        assert charts.main(["--results-dir", str(run), "--output-dir", "b"]) == 0
        assert "samples skipped: no checkpoint in" in capsys.readouterr().out
        shutil.copytree(os.path.join(small_results_dir, "model"), str(run / "model"))
        assert charts.main(["--results-dir", str(run), "--output-dir", "c"]) == 0
        assert "samples skipped: no multi_mnist_data/test.tfrecords" in capsys.readouterr().out
    finally:
        os.chdir(cwd)
    assert sorted(os.listdir(str(tmp_path / "c"))) == ["accuracy.png", "losses.png", "runs.md"]


def test_compared_runs_are_one_labelled_line_each(small_results_dir, tmp_path, capsys):
    other = tmp_path / "other_run"
    other.mkdir()
    write_metrics(str(other / "metrics.csv"), [(10, 900.0, 0.1), (20, 700.0, 0.4)])
    code = charts.main(["--results-dir", small_results_dir, "--compare", str(other),
                        "--output-dir", str(tmp_path / "c"), "--samples", "0"])
    assert code == 0
    assert sorted(os.listdir(str(tmp_path / "c"))) == ["accuracy.png", "losses.png", "runs.md"]
    capsys.readouterr()

    runs = charts.load_runs([small_results_dir, str(other)])
    figure = plots.accuracy_figure(runs)
    overall, *subsets = figure.axes
    assert len(subsets) == 3
    # The large panel spans the width; the three small ones share the row below.
    assert overall.get_position().width > 2.5 * subsets[0].get_position().width
    assert all(s.get_position().y1 < overall.get_position().y0 for s in subsets)
    labels = [line.get_label() for line in overall.get_lines()]
    assert labels == [os.path.basename(small_results_dir), "other_run"]
    np.testing.assert_array_equal(overall.get_lines()[1].get_xdata(), [10, 20])
    np.testing.assert_allclose(overall.get_lines()[1].get_ydata(), [0.1, 0.4])
    # The other run has no per-digit columns: those panels show only the first run.
    assert [len(s.get_lines()) for s in subsets] == [1, 1, 1]
    # Losses: the held-out panel shows the negative ELBO (the CSV holds the ELBO).
    loss_axes = plots.loss_figure(runs).axes
    assert len(loss_axes) == len(plots.LOSS_PANELS)
    heldout = loss_axes[-1].get_lines()[0]
    np.testing.assert_allclose(heldout.get_ydata(),
                               -runs[0][1]["heldout_discrete_elbo_final_prior"])
    assert "sampled, final prior" in loss_axes[-1].get_title()


def test_old_metrics_show_their_plug_in_elbo_dashed_and_labelled(tmp_path):
    """A metrics.csv from before the sampled ELBO has `heldout_elbo` (the plug-in value)."""
    old = tmp_path / "old_run"
    old.mkdir()
    write_metrics(str(old / "metrics.csv"), [(10, 900.0, 0.1, -300.0), (20, 700.0, 0.4, -250.0)],
                  columns=("iteration", "loss", "heldout_accuracy", "heldout_elbo"))
    new = tmp_path / "new_run"
    new.mkdir()
    write_metrics(str(new / "metrics.csv"), [(10, 800.0, 0.2, -320.0)],
                  columns=("iteration", "loss", "heldout_accuracy",
                           "heldout_discrete_elbo_final_prior"))
    runs = charts.load_runs([str(old), str(new)])
    old_line, new_line = plots.loss_figure(runs).axes[-1].get_lines()
    assert old_line.get_label() == "old_run (old: plug-in at means)"
    assert old_line.get_linestyle() == "--"
    np.testing.assert_allclose(old_line.get_ydata(), [300.0, 250.0])
    assert new_line.get_label() == "new_run" and new_line.get_linestyle() == "-"
    np.testing.assert_allclose(new_line.get_ydata(), [320.0])


def test_read_columns_keeps_the_rows_of_the_resumed_run(tmp_path):
    path = str(tmp_path / "metrics.csv")
    # Rows at 3000 and 4000 were logged, then the run crashed and resumed from 2000.
    write_metrics(path, [(1000, 5.0, 0.1), (2000, 4.0, 0.2), (3000, 3.0, 0.3), (4000, 2.0, "nan"),
                         (3000, 3.5, 0.35), (4000, 2.5, 0.45)])
    metrics = metrics_log.read_columns(path)
    np.testing.assert_array_equal(metrics["iteration"], [1000, 2000, 3000, 4000])
    np.testing.assert_array_equal(metrics["loss"], [5.0, 4.0, 3.5, 2.5])
    np.testing.assert_array_equal(metrics["heldout_accuracy"], [0.1, 0.2, 0.35, 0.45])
    write_metrics(path, [], columns=("it", "loss"))
    with pytest.raises(metrics_log.MetricsLogError, match="no `iteration` column"):
        metrics_log.read_columns(path)


def test_read_values_of_a_file_being_written(tmp_path):
    """sweep.py reads the metrics.csv of running trials: a half-written last line is NaN
    there (strict=False), and an error for charts.py (strict, the default)."""
    path = str(tmp_path / "metrics.csv")
    with open(path, "w") as f:
        f.write("iteration,loss,heldout_accuracy\n1000,5.0,0.1\n2000,4.0,0.2\n3000,na")
    columns, rows = metrics_log.read_values(path, strict=False)
    assert columns == ("iteration", "loss", "heldout_accuracy")
    assert [row["iteration"] for row in rows] == [1000.0, 2000.0, 3000.0]
    assert np.isnan(rows[-1]["loss"]) and np.isnan(rows[-1]["heldout_accuracy"])
    with pytest.raises(metrics_log.MetricsLogError, match="line 4"):
        metrics_log.read_values(path)
    with open(path, "w") as f:
        f.write("itera")  # the header itself, half written
    assert metrics_log.read_values(path, strict=False) == ((), [])
    assert metrics_log.read_values(str(tmp_path / "missing.csv")) == ((), [])


def test_pick_samples_takes_turns_over_digit_counts():
    digits = np.array([2, 2, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(plots.pick_samples(digits, 5), [2, 3, 0, 5, 6])
    assert len(plots.pick_samples(digits, 100)) == 7


def test_attention_boxes_are_drawn_in_step_colours():
    image = np.zeros([50, 50])
    boxes = np.array([[[10, 12, 20, 20], [30, 5, 10, 10], [0, 0, 5, 5]]], np.float32)
    live = np.array([[1, 1, 0]])
    figure = plots.samples_figure(image[None], image[None], boxes, live, true_counts=[2])
    original, reconstruction = figure.axes
    patches = original.patches
    assert len(patches) == 2  # The third step found nothing.
    for patch, box, colour in zip(patches, boxes[0], ("red", "lime", "blue")):
        # imshow centres pixel i on i, so the box of pixels [x, x + w) starts at x - 0.5.
        assert patch.get_xy() == pytest.approx((box[0] - 0.5, box[1] - 0.5))
        assert (patch.get_width(), patch.get_height()) == (box[2], box[3])
        assert patch.get_edgecolor()[:3] == pytest.approx(to_rgb(colour))
    assert original.get_title(loc="left") == "2 digits, found 2"
    assert not reconstruction.patches


def test_bad_inputs_give_one_line_errors(small_results_dir, tmp_path, capsys):
    cases = [
        (["--results-dir", str(tmp_path / "missing")], "does not exist"),
        (["--results-dir", str(tmp_path)], "has no metrics.csv"),
        (["--results-dir", small_results_dir, "--data", str(tmp_path / "x.tfrecords"),
          "--output-dir", str(tmp_path / "c")], "data file"),
    ]
    for argv, fragment in cases:
        assert charts.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    # A run that has not reached its first evaluation yet.
    write_metrics(str(tmp_path / "metrics.csv"), [])
    assert charts.main(["--results-dir", str(tmp_path)]) == 2
    assert "no metrics rows yet" in capsys.readouterr().err


def test_runs_table_reports_first_iteration_at_98_percent_and_speed():
    import numpy as np
    metrics = {
        "iteration": np.array([1000.0, 2000.0, 3000.0]),
        "wall_time": np.array([100.0, 200.0, 300.0]),
        "heldout_accuracy": np.array([0.5, 0.985, 0.99]),
        "heldout_accuracy_0": np.array([1.0, 1.0, 1.0]),
        "heldout_accuracy_1": np.array([0.2, 0.97, 0.98]),
        "heldout_accuracy_2": np.array([0.3, 0.99, 0.99]),
    }
    never = dict(metrics, heldout_accuracy=np.array([0.3, 0.35, 0.4]))
    table = metrics_log.runs_table([("good", metrics), ("stuck", never)])
    rows = table.strip().splitlines()
    assert len(rows) == 4
    # 2000 iterations in 200 s between the first and last evaluation: 10 it/s.
    assert rows[2] == "| good | 3000 | 3 min | 10.0 | 2000 | 0.990 / 1.000 / 0.980 / 0.990 |"
    assert "| never |" in rows[3]
