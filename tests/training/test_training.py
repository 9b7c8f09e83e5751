"""training.py end to end on the small generated data set: results folder, summaries,
interruption by SIGTERM or SIGINT and --resume, refusal to overwrite a run or a used folder,
--seed repeatability, and the stop after --max-skipped-in-a-row non-finite updates.
"""
import csv
import glob
import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import training
from air.training import checkpoints, environment, metrics_log
from air.data import records
from air.config import AIRConfig, CONFIG_FILENAME

from conftest import REPO, TINY, latest_step
SUBPROCESS_TIMEOUT = 600  # seconds for a training process to start, stop or finish
PROGRESS_LINE = re.compile(r"^it (\d+)/(\d+)  epoch [\d.]+  [\d.]+ it/s  ETA \S+  loss [-\d.]+",
                           re.M)


def read_metrics(results_dir):
    with open(os.path.join(results_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def read_events(summary_dir):
    """{tag: {step: value or summary kind}} of every event file in the folder."""
    found = {}
    for path in sorted(glob.glob(os.path.join(summary_dir, "events.out.tfevents.*"))):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                found.setdefault(value.tag, {})[event.step] = (
                    value.simple_value if kind == "simple_value" else kind)
    return found


def test_results_folder_layout(small_results_dir):
    source = os.path.join(small_results_dir, "source")
    for name in ("training.py", "requirements.txt", "air/__init__.py", "air/model/air_model.py",
                 "air/evaluation/heldout.py"):
        assert os.path.isfile(os.path.join(source, name)), name
    assert not glob.glob(os.path.join(source, "air", "__pycache__"))
    model = os.path.join(small_results_dir, "model")
    assert AIRConfig.load(os.path.join(model, CONFIG_FILENAME)) == AIRConfig()
    assert latest_step(small_results_dir) == 30
    # A checkpoint is its weights only: readers rebuild the graph from config.json.
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(model, "model.ckpt-30*"))) \
        == ["model.ckpt-30.data-00000-of-00001", "model.ckpt-30.index"]

    header, rows = read_metrics(small_results_dir)
    assert tuple(header) == metrics_log.COLUMNS
    assert [int(r[0]) for r in rows] == [15, 30]
    for row in rows:
        values = dict(zip(header, (float(v) if v else math.nan for v in row)))
        assert values["epoch"] == pytest.approx(values["iteration"] * 64 / 300.0, abs=1e-3)
        assert values["loss"] == pytest.approx(
            values["reconstruction"] + values["kl_z_pres"] + values["kl_z_where"]
            + values["kl_z_what"], rel=1e-3)
        for name in ("train_accuracy", "heldout_accuracy", "heldout_accuracy_0"):
            assert 0.0 <= values[name] <= 1.0
        assert values["skipped_updates"] == 0
        elbo = values["heldout_discrete_elbo_final_prior"]
        assert np.isfinite(elbo) and elbo < 0


def test_summaries_hold_the_expected_tags(small_results_dir):
    events = read_events(os.path.join(small_results_dir, "summary"))
    # Every summary group runs at iteration 0 (the periods all divide 0).
    for tag in ("loss/negative_elbo", "loss/reconstruction", "loss/kl_z_pres", "loss/kl_z_where",
                "loss/kl_z_what", "accuracy/all", "accuracy/0_digits", "accuracy/2_digits",
                "steps/average_digits_found", "optimiser/skipped_updates",
                "optimiser/gradient_global_norm", "z_pres/prior_log_odds"):
        assert isinstance(events[tag][0], float), tag
    assert events["attention/image/0"][0] == "image"
    histograms = [tag for tag, steps in events.items() if steps.get(0) == "histo"]
    assert any(t.startswith("variables/air/") for t in histograms)
    assert any(t.startswith("gradients/air/") for t in histograms)
    assert "z_pres/step_1" in histograms and "z_where/scale_step_1" in histograms
    # Held-out evaluation under its own prefix, at the evaluation iterations, matching the CSV.
    header, rows = read_metrics(small_results_dir)
    for row in rows:
        values = dict(zip(header, row))
        step = int(values["iteration"])
        assert events["heldout/accuracy/all"][step] == pytest.approx(
            float(values["heldout_accuracy"]), abs=1e-4)
        assert events["heldout/accuracy/1_digits"][step] == pytest.approx(
            float(values["heldout_accuracy_1"]), abs=1e-4)
        assert events["heldout/discrete_elbo_final_prior"][step] == pytest.approx(
            float(values["heldout_discrete_elbo_final_prior"]), abs=1e-2)


def _common_flags(data_dir, results_dir):
    return (["--data-dir", data_dir, "--results-dir", results_dir, "--seed", "3",
             "--eval-batch-size", "90", "--eval-every", "1000000"] + TINY)


def _printed_losses(text):
    """{iteration: loss} of the progress lines in a training log."""
    return {int(m.group(1)): float(m.group(2)) for m in re.finditer(
        r"^it (\d+)/\d+ .*  loss ([-\d.]+)", text, re.M)}


def interrupt_training(data_dir, root, signum, after_iterations=3):
    """Starts training.py, sends ``signum`` after some iterations: (results dir, log, status)."""
    results = str(root / "run")
    log_path = str(root / "log.txt")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "training.py"] + _common_flags(data_dir, results)
            + ["--max-iterations", "1000000", "--progress-seconds", "0"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + SUBPROCESS_TIMEOUT
        while max(_printed_losses(open(log_path).read()) or [0]) < after_iterations:
            assert process.poll() is None, "training stopped early:\n" + open(log_path).read()
            assert time.time() < deadline, "no progress in %d s" % SUBPROCESS_TIMEOUT
            time.sleep(0.2)
        process.send_signal(signum)
        code = process.wait(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
    return results, open(log_path).read(), code


@pytest.fixture(scope="module")
def interrupted_run(small_data_dir, tmp_path_factory):
    """A real training.py process stopped by SIGTERM after 3 iterations: (results dir, log)."""
    results, log, code = interrupt_training(small_data_dir, tmp_path_factory.mktemp("sigterm"),
                                            signal.SIGTERM)
    assert code == 0, log
    return results, log


def test_sigterm_saves_a_checkpoint(interrupted_run):
    results, log = interrupted_run
    saved = latest_step(results)
    assert saved >= 3
    assert ("SIGTERM received: saved %s; continue with --resume"
            % os.path.join(results, "model", "model.ckpt-%d" % saved)) in log
    assert PROGRESS_LINE.search(log)
    assert max(_printed_losses(log)) <= saved


def test_sigint_saves_a_checkpoint_like_ctrl_c(small_data_dir, tmp_path):
    results, log, code = interrupt_training(small_data_dir, tmp_path, signal.SIGINT,
                                            after_iterations=2)
    assert code == 0, log
    saved = latest_step(results)
    assert saved >= 2
    assert ("SIGINT received: saved %s; continue with --resume"
            % os.path.join(results, "model", "model.ckpt-%d" % saved)) in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log


def test_seed_repeats_the_first_losses(interrupted_run, small_data_dir, tmp_path, capsys):
    _, log = interrupted_run
    twin = str(tmp_path / "twin")
    assert training.main(_common_flags(small_data_dir, twin)
                         + ["--max-iterations", "3", "--progress-seconds", "0"]) == 0
    losses = _printed_losses(capsys.readouterr().out)
    assert sorted(losses) == [1, 2, 3]
    first = _printed_losses(log)
    # Printed with one decimal: equal runs print equal numbers (0.1 allows a last-digit flip).
    for step in (1, 2, 3):
        assert losses[step] == pytest.approx(first[step], abs=0.1)
    assert len(set(losses.values())) > 1  # The losses do change: the comparison means something.


def test_refusals_then_resume_continues(interrupted_run, small_data_dir, capsys):
    results, _ = interrupted_run
    common = _common_flags(small_data_dir, results)
    saved = latest_step(results)
    # A plain start into the folder is refused, in one line, before anything is written.
    assert training.main(common + ["--max-iterations", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "use --resume" in err[0], err
    # So is resuming with a different model configuration.
    assert training.main(common + ["--resume", "--rnn-units", "32"]) == 2
    assert "differs in rnn_units" in capsys.readouterr().err

    # A metrics.csv row of an older version, whose held-out column was the plug-in
    # `heldout_elbo`: resuming keeps that column and its value.
    old_columns = tuple(c if c != "heldout_discrete_elbo_final_prior" else "heldout_elbo"
                        for c in metrics_log.COLUMNS)
    old_values = [str(saved)] + ["-123.4" if c == "heldout_elbo" else "0.5"
                                 for c in old_columns[1:]]
    with open(os.path.join(results, "metrics.csv"), "w") as f:
        f.write(",".join(old_columns) + "\n")
        f.write(",".join(old_values) + "\n")

    # --resume continues from the saved iteration (global step, optimiser state and
    # schedule come from the checkpoint) and finishes the run.
    target = saved + 3
    assert training.main(common + ["--resume", "--max-iterations", str(target),
                                   "--progress-seconds", "60"]) == 0
    out = capsys.readouterr().out
    assert "resumed from %s" % os.path.join(results, "model", "model.ckpt-%d" % saved) in out
    assert "finished %d iterations" % target in out
    assert "it %d/%d" % (target, target) in out
    assert latest_step(results) == target
    # The first session's code stays in source/; the resumed session's is added beside it.
    assert os.path.isfile(os.path.join(results, "source", "air", "model", "air_model.py"))
    assert glob.glob(os.path.join(results, "source", "resumed-*", "air", "model", "air_model.py"))
    checkpoint, _ = checkpoints.find_checkpoint(os.path.join(results, "model"))
    # Adam's optimiser state came back too: its beta1 power (0.9 before the first update,
    # times 0.9 at each) counts every update of both sessions.
    beta1_power = [name for name, _ in tf.train.list_variables(checkpoint)
                   if name.endswith("beta1_power")]
    assert len(beta1_power) == 1, beta1_power
    assert tf.train.load_variable(checkpoint, beta1_power[0]) == pytest.approx(
        0.9 ** (target + 1), rel=1e-4)
    header, rows = read_metrics(results)
    assert tuple(header) == metrics_log.COLUMNS + ("heldout_elbo",)
    assert [int(r[0]) for r in rows] == [saved, target]
    old_row, new_row = [dict(zip(header, row)) for row in rows]
    assert old_row["heldout_elbo"] == "-123.4" and old_row["heldout_discrete_elbo_final_prior"] == ""
    assert new_row["heldout_elbo"] == "" and float(new_row["heldout_discrete_elbo_final_prior"]) < 0
    # The resumed session's summaries append to the same folder, from the saved step on.
    events = read_events(os.path.join(results, "summary"))
    assert events["heldout/accuracy/all"].keys() == {target}
    # Each session that trained says where it ran, from the iteration it started at (the
    # refused starts above wrote nothing).
    sessions = environment.read(results)
    assert [s["iteration"] for s in sessions] == [0, saved]
    for session in sessions:
        assert session["processor"] == environment.processor_name() != ""
        assert session["tensorflow"] == tf.VERSION and session["threads"] == 0
        assert session["python"] == "%d.%d.%d" % sys.version_info[:3]
        assert session["logical_cpus"] == os.cpu_count()


def test_resume_without_a_checkpoint_and_missing_data_are_refused(small_data_dir, tmp_path,
                                                                   capsys):
    code = training.main(["--data-dir", small_data_dir, "--results-dir", str(tmp_path / "r"),
                          "--resume"])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: --resume: no checkpoint in")
    code = training.main(["--data-dir", str(tmp_path), "--results-dir", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.tfrecords" in err[0] and "make data" in err[0]


def test_metric_columns_keep_those_of_an_older_version():
    rows = [{"iteration": "1000", "loss": "3.0", "heldout_elbo": "-150.0"},
            {"iteration": "2000", "loss": "2.0", "heldout_elbo": "-140.0", "other": "1"}]
    assert metrics_log.resumed_columns(rows) == metrics_log.COLUMNS + ("heldout_elbo", "other")
    assert metrics_log.resumed_columns([]) == metrics_log.COLUMNS
    assert metrics_log.resumed_columns([{c: "1" for c in metrics_log.COLUMNS}]) == (
        metrics_log.COLUMNS)


def test_a_metrics_row_has_the_heldout_boxes_and_an_empty_cell_for_a_missing_figure(tmp_path):
    path = str(tmp_path / metrics_log.FILENAME)
    writer = metrics_log.MetricsWriter(path, 0)
    heldout = {"count_accuracy_by_digits": {"0": 1.0, "1": 0.5}, "count_accuracy": 0.75,
               "discrete_elbo_final_prior": -150.0, "overcount": 0.1, "undercount": 0.2,
               "mean_iou": 0.612345, "box_recall_iou50": None, "mean_window_height": 21.25}
    writer.write(10, 1.0, 0.1, [1.0] * 6, 0, heldout)
    writer.close()
    _, rows = metrics_log.read_values(path)
    assert rows[0]["heldout_mean_iou"] == 0.6123 and rows[0]["heldout_window_height"] == 21.25
    assert math.isnan(rows[0]["heldout_box_recall_iou50"])
    assert math.isnan(rows[0]["heldout_accuracy_2"])


def test_a_metrics_file_from_before_the_vimco_column_resumes_with_it_empty(tmp_path):
    path = str(tmp_path / metrics_log.FILENAME)
    old_columns = metrics_log.COLUMNS[:metrics_log.COLUMNS.index("z_pres_gradient_variance_vimco")]
    with open(path, "w") as f:
        f.write(",".join(old_columns) + "\n" + ",".join(["10"] + ["0.5"] * (len(old_columns) - 1))
                + "\n")
    writer = metrics_log.MetricsWriter(path, 10)
    heldout = {"count_accuracy_by_digits": {"0": 1.0, "1": 0.5, "2": 0.25},
               "count_accuracy": 0.5, "discrete_elbo_final_prior": -150.0, "overcount": 0.1,
               "undercount": 0.2, "z_pres_gradient_variance_vimco": 2.5e-7}
    writer.write(20, 1.0, 0.1, [1.0] * 6, 0, heldout)
    writer.close()
    columns, rows = metrics_log.read_values(path)
    assert columns == metrics_log.COLUMNS
    assert [row["iteration"] for row in rows] == [10, 20]
    assert math.isnan(rows[0]["z_pres_gradient_variance_vimco"])
    assert rows[0]["z_pres_gradient_variance_nvil"] == 0.5
    assert rows[1]["z_pres_gradient_variance_vimco"] == pytest.approx(2.5e-7)
    assert math.isnan(rows[1]["z_pres_gradient_variance_nvil"])
    # The box columns came later still: empty in the old row, and where the figures are
    # missing (None: no windows, or no digits) in the new one.
    for column, _ in metrics_log.BOX_COLUMNS:
        assert math.isnan(rows[0][column]) and math.isnan(rows[1][column])
def folder_contents(root):
    """{relative path: bytes or None for folders} of everything under ``root``."""
    found = {}
    for folder, names, files in os.walk(root):
        for name in names:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def test_used_folder_without_checkpoint_is_refused_and_left_untouched(small_data_dir, tmp_path,
                                                                      capsys):
    used = tmp_path / "used"
    (used / "summary").mkdir(parents=True)
    (used / "summary" / "events.out.tfevents.1.host").write_bytes(b"earlier events")
    (used / "metrics.csv").write_text(",".join(metrics_log.COLUMNS) + "\n1000,1,2\n")
    before = folder_contents(str(used))
    code = training.main(["--data-dir", small_data_dir, "--results-dir", str(used),
                          "--max-iterations", "2"] + TINY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "metrics.csv" in err[0] and "summary" in err[0] and "without a checkpoint" in err[0]
    assert folder_contents(str(used)) == before


def nan_data_dir(small_data_dir, destination):
    """A copy of the small data set whose training images are all NaN (held-out ones kept)."""
    import shutil
    os.makedirs(destination)
    data = records.read_records(os.path.join(small_data_dir, "train.tfrecords"))
    examples = []
    for i, count in enumerate(data.digits):
        examples.append(dict(image=np.full_like(data.images[i], np.nan),
                             labels=data.labels[i, :count], indices=data.indices[i, :count],
                             positions=data.positions[i, :count], boxes=data.boxes[i, :count]))
    records.write_examples(os.path.join(destination, "train.tfrecords"), examples)
    shutil.copy(os.path.join(small_data_dir, "test.tfrecords"), destination)
    return destination


def test_max_skipped_in_a_row_stops_with_a_message_and_a_checkpoint(small_data_dir, tmp_path,
                                                                    capsys):
    """Training images of NaN pixels make every loss NaN: the run stops after 4 skips."""
    data = nan_data_dir(small_data_dir, str(tmp_path / "nan_data"))
    results = str(tmp_path / "run")
    code = training.main(["--data-dir", data, "--results-dir", results, "--seed", "1",
                          "--max-iterations", "50", "--max-skipped-in-a-row", "4",
                          "--eval-every", "1000", "--save-every", "1000",
                          "--progress-seconds", "600"] + TINY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    checkpoint = os.path.join(results, "model", "model.ckpt-4")
    assert err == ["error: 4 updates in a row had a non-finite loss or gradient (iterations 1 to "
                   "4): stopped and saved %s (weights of the last finite update, iteration 0); "
                   "check the data for NaN or infinite pixels, or lower --learning-rate"
                   % checkpoint], err
    assert latest_step(results) == 4
    saved = dict((name, tf.train.load_variable(checkpoint, name))
                 for name, _ in tf.train.list_variables(checkpoint))
    assert saved["skipped_updates"] == 4
    # No update reached the optimiser: its powers are still the initial ones, its slots zero,
    # and every weight is finite.
    assert [v for n, v in saved.items() if n.endswith("beta1_power")] == [pytest.approx(0.9)]
    for name, value in saved.items():
        if name.endswith("/Adam") or name.endswith("/Adam_1"):
            assert not np.any(value), name
        assert np.all(np.isfinite(value)), name


def _set_heldout_accuracy(results, value, extra_row_at=None):
    """Rewrites metrics.csv with every held-out accuracy = value (and one stale row)."""
    header, rows = read_metrics(results)
    column = header.index("heldout_accuracy")
    for row in rows:
        row[column] = "%.4f" % value
    if extra_row_at is not None:
        rows.append([str(extra_row_at)] + rows[-1][1:])
    with open(os.path.join(results, "metrics.csv"), "w", newline="") as f:
        csv.writer(f).writerows([header] + rows)


def test_stop_at_accuracy_counts_the_evaluations_before_a_resume(small_data_dir, tmp_path,
                                                                 capsys):
    results = str(tmp_path / "run")
    common = (["--data-dir", small_data_dir, "--results-dir", results, "--seed", "3",
               "--eval-batch-size", "90", "--eval-every", "2", "--progress-seconds", "60"] + TINY)
    assert training.main(common + ["--max-iterations", "4"]) == 0
    capsys.readouterr()
    # Two earlier evaluations at 99%, and a row past the checkpoint (written after the last
    # save of an interrupted session) that the resume must drop.
    _set_heldout_accuracy(results, 0.99, extra_row_at=6)
    # Patience 3: one more evaluation is needed, then the run stops as converged at 6.
    assert training.main(common + ["--resume", "--max-iterations", "100",
                                   "--stop-at-accuracy", "0.3", "--patience", "3"]) in (0,)
    out = capsys.readouterr().out
    header, rows = read_metrics(results)
    iterations = [int(r[0]) for r in rows]
    accuracy = float(rows[-1][header.index("heldout_accuracy")])
    if accuracy >= 0.3:
        assert iterations == [2, 4, 6]
        assert "converged: held-out count accuracy >= 0.3 at 3 evaluations in a row " \
               "(iteration 6)" in out
    else:  # The tiny model missed 30% at iteration 6: the streak restarts, training goes on.
        assert iterations[:3] == [2, 4, 6] and iterations[-1] == 100
    # Already converged: a resume stops at once, without training or new rows.
    _set_heldout_accuracy(results, 0.99)
    assert training.main(common + ["--resume", "--max-iterations", "1000",
                                   "--stop-at-accuracy", "0.98", "--patience", "2"]) == 0
    assert "converged" in capsys.readouterr().out
    assert len(read_metrics(results)[1]) == len(iterations)
    # ... unless --min-iterations is still ahead: then it trains on to there at least.
    end = iterations[-1] + 2
    assert training.main(common + ["--resume", "--max-iterations", str(end), "--min-iterations",
                                   str(end), "--stop-at-accuracy", "0.98", "--patience",
                                   "2"]) == 0
    assert int(read_metrics(results)[1][-1][0]) == end


def test_original_preset_trains_and_a_resume_keeps_its_preset(small_data_dir, tmp_path, capsys):
    results = str(tmp_path / "run")
    common = (["--data-dir", small_data_dir, "--results-dir", results, "--seed", "3",
               "--eval-batch-size", "90", "--progress-seconds", "60"] + TINY)
    assert training.main(common + ["--preset", "original", "--shift-transform", "identity",
                                   "--max-iterations", "2"]) == 0
    config = AIRConfig.load(os.path.join(results, "model", CONFIG_FILENAME))
    assert config.preset == "original" and config.z_where_heads == "separate"
    assert config.shift_transform == "identity"  # explicit flags win over the preset
    capsys.readouterr()
    assert training.main(common + ["--resume", "--preset", "default", "--max-iterations", "3"]) == 2
    err = capsys.readouterr().err
    assert "differs in" in err and "z_where_heads" in err
    assert training.main(common + ["--resume", "--preset", "original", "--shift-transform",
                                   "identity", "--max-iterations", "3"]) == 0


@pytest.mark.parametrize("flag,value", [("--eval-every", "0"), ("--save-every", "0"),
                                        ("--max-iterations", "-5"), ("--patience", "0"),
                                        ("--stop-at-accuracy", "1.5"), ("--epochs", "0"),
                                        ("--preset", "paper")])
def test_bad_options_are_refused_before_anything_is_written(small_data_dir, tmp_path, capsys,
                                                            flag, value):
    results = str(tmp_path / "run")
    assert training.main(["--data-dir", small_data_dir, "--results-dir", results, flag,
                          value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and flag.lstrip("-") in err[0], err
    assert not os.path.exists(results)
