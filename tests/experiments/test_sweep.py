"""sweep.py: the grid, the tables against each trial's metrics.csv, resuming, Ray, bad input."""
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from air.experiments import sweep
from air.training import metrics_log
from air.config import AIRConfig
from air.training.options import TrainingOptions
from conftest import REPO

# A tiny model, so that a trial is mostly TensorFlow's start-up.
TINY = ("--rnn-units 16 --vae-latent 4 --vae-recognition-units 16 --vae-generative-units 16 "
        "--z-where-hidden-units 8 --z-pres-hidden-units 8 --batch-size 8 --eval-batch-size 45 "
        "--progress-seconds 0 --scalars-every 0 --variables-every 0 --images-every 0 "
        "--gradients-every 0 --gradient-variance-draws 0")


def _sweep(args, data_dir, output_dir, timeout=600, **kwargs):
    # Without the 3-digit set, unless ``args`` ask for it (the last flag given counts).
    command = [sys.executable, os.path.join(REPO, "sweep.py"), "--data-dir", data_dir,
               "--output-dir", output_dir, "--training-args", TINY,
               "--extrapolation-images", "0"] + args
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, cwd=REPO, **kwargs)


def _metrics(directory):
    with open(os.path.join(directory, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_seed_ranges():
    assert sweep.parse_seeds("1-3") == [1, 2, 3]
    assert sweep.parse_seeds("5, 1,2-3") == [1, 2, 3, 5]
    for bad in ("3-1", "a", "1-", "-2", ""):
        with pytest.raises(sweep.SweepError, match="seed range"):
            sweep.parse_seeds(bad)


def test_variants_name_their_changes_and_are_checked():
    variant = sweep.parse_variant("original:lstm_input=image_and_latents,rnn_units=32")
    assert variant.preset == "original"
    assert variant.changes == (("lstm_input", "image_and_latents"), ("rnn_units", 32))
    assert variant.name == "original+lstm_input=image_and_latents+rnn_units=32"
    assert sweep.parse_variant("default:vae_recognition_units=64/32").changes == (
        ("vae_recognition_units", (64, 32)),)
    for bad, message in (("paper", "unknown preset"), ("default:rnn_unit=3", "unknown config"),
                         ("default:rnn_units=many", "bad value"),
                         ("default:lstm_input=pixels", "lstm_input"),
                         ("default:rnn_units", "FIELD=VALUE"), ("default:preset=original",
                                                               "unknown config")):
        with pytest.raises(sweep.SweepError, match=message):
            sweep.parse_variant(bad)
    with pytest.raises(sweep.SweepError, match="twice"):
        sweep.make_trials([sweep.parse_variant("default")] * 2, [1], "out")


def test_a_trial_is_launched_with_its_options_and_config_files(tmp_path):
    options = TrainingOptions(data_dir=str(tmp_path), max_iterations=500, stop_at_accuracy=0.98,
                              eval_every=100, save_every=200, threads=1)
    changes, config_changes = sweep.parse_training_args("--scalars-every 0 --rnn-units 32")
    assert changes == {"scalars_every": 0} and config_changes == {"rnn_units": 32}
    trial = sweep.make_trials([sweep.parse_variant("original:shift_transform=identity")], [4],
                              str(tmp_path))[0]
    os.makedirs(os.path.join(trial.directory, "model"))
    with open(os.path.join(trial.directory, "model", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model.ckpt-100"\n')
    open(os.path.join(trial.directory, "model", "model.ckpt-100.index"), "w").close()
    command = sweep.prepare_trial(trial, options.replace(**changes), "python", config_changes)
    assert command[:2] == ["python", os.path.join(REPO, "training.py")]
    assert command[2:] == ["--options-file", os.path.join(trial.directory, sweep.OPTIONS_NAME),
                           "--config-file", os.path.join(trial.directory, sweep.CONFIG_NAME)]
    launched = TrainingOptions.load(command[3])
    assert launched == options.replace(results_dir=os.path.abspath(trial.directory), seed=4,
                                       resume=True, scalars_every=0)
    assert AIRConfig.load(command[5]) == AIRConfig.from_preset(
        "original", shift_transform="identity", rnn_units=32)
    assert trial.directory == os.path.join(str(tmp_path), "original+shift_transform=identity",
                                           "seed-4")
    for bad, message in (("--seed 3", "--seed set by the sweep"), ("--rnn-units 0", "rnn-units"),
                         ("--no-such-flag", "unrecognized"), ("--eval-every x", "eval-every")):
        with pytest.raises(sweep.SweepError, match=message):
            sweep.parse_training_args(bad)


@pytest.mark.parametrize("args,message", [
    (["--variant", "paper"], "unknown preset"),
    (["--variant", "default:rnn_unit=4"], "unknown config field"),
    (["--seeds", "5-2"], "seed range"),
    (["--parallel", "0"], "--parallel"),
    (["--max-iterations", "-5"], "--max-iterations"),
    (["--stop-at-accuracy", "1.5"], "--stop-at-accuracy"),
    (["--address", "127.0.0.1:9"], "cannot reach a Ray cluster at 127.0.0.1:9"),
    (["--python", "/nonexistent/python"], "does not run"),
    (["--extrapolation-images", "-1"], "--extrapolation-images"),
])
def test_bad_input_is_one_error_line(small_data_dir, tmp_path, args, message):
    if "--address" in args and sys.version_info < (3, 9):
        message = "Ray is not installed"
    result = _sweep(["--seeds", "1", "--max-iterations", "10"] + args, small_data_dir,
                    str(tmp_path / "out"), timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not os.path.exists(str(tmp_path / "out" / "default"))


def _check_tables(output_dir, trials_expected, report_dir=None):
    report_dir = report_dir or output_dir
    with open(os.path.join(report_dir, "sweep.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], int(r["seed"])) for r in rows] == trials_expected
    for row in rows:
        metrics = _metrics(os.path.join(output_dir, row["variant"], "seed-%s" % row["seed"]))
        assert row["state"] == "finished"
        assert int(row["iterations"]) == int(metrics[-1]["iteration"])
        for column, key in (("accuracy", "heldout_accuracy"), ("accuracy_1", "heldout_accuracy_1")):
            assert float(row[column]) == pytest.approx(float(metrics[-1][key]))
        for suffix in ("", "_0", "_1", "_2"):
            firsts = [int(m["iteration"]) for m in metrics
                      if float(m["heldout_accuracy" + suffix]) >= 0.98]
            assert row["first_iteration_at_target" + suffix] == (str(firsts[0]) if firsts else "")
        assert row["failure_mode"] in ("n+1", "n-1")
        # Accuracy at the milestones (every 5 of 12 iterations): the evaluation at or before.
        for milestone in (5, 10):
            before = [m for m in metrics if int(m["iteration"]) <= milestone]
            value = row["accuracy_at_%d" % milestone]
            if before:
                assert float(value) == pytest.approx(float(before[-1]["heldout_accuracy"]))
            else:
                assert value == "", (row, milestone)
    with open(os.path.join(report_dir, "sweep.md")) as f:
        report = f.read()
    positions = {(variant, seed): report.index("| %s | %d | finished |" % (variant, seed))
                 for variant, seed in trials_expected}
    # One block of lines per variant, in the grid's order, its seeds ascending.
    variants = list(dict.fromkeys(variant for variant, _ in trials_expected))
    assert sorted(positions, key=positions.get) == sorted(
        positions, key=lambda trial: (variants.index(trial[0]), trial[1]))
    for figure in ("sweep.png", "sweep_by_count.png"):
        with open(os.path.join(report_dir, figure), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_local_grid_end_to_end_and_rerun_skips_finished_trials(small_data_dir, tmp_path):
    output = str(tmp_path / "sweep")
    args = ["--seeds", "1-2", "--variant", "default", "--variant", "original",
            "--max-iterations", "12", "--eval-every", "6", "--save-every", "6"]
    result = _sweep(args + ["--progress-seconds", "1"], small_data_dir, output)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 trials, 4 to run" in result.stdout
    assert re.search(r"^sweep: \[4/4\] \S+ seed \d: \w+ \(exit 0\), \d+\.\d h into the sweep$",
                     result.stdout, re.MULTILINE), result.stdout
    # Each trial takes seconds (TensorFlow's start-up), so status lines come in between.
    assert re.search(r"^sweep: \d of 4 ended; .*it/s in all; at most \S+ left$", result.stdout,
                     re.MULTILINE), result.stdout
    expected = [("default", 1), ("original", 1), ("default", 2), ("original", 2)]
    _check_tables(output, expected)
    original = os.path.join(output, "original", "seed-1", "model", "config.json")
    with open(original) as f:
        assert '"preset": "original"' in f.read()
    stamps = {d: os.path.getmtime(os.path.join(output, v, "seed-%d" % s, "metrics.csv"))
              for d, (v, s) in enumerate(expected)}
    again = _sweep(args, small_data_dir, output)
    assert again.returncode == 0 and "4 trials, 0 to run, 4 already ended" in again.stdout
    assert stamps == {d: os.path.getmtime(os.path.join(output, v, "seed-%d" % s, "metrics.csv"))
                      for d, (v, s) in enumerate(expected)}
    # A report of a wider grid, elsewhere: trials never started are left out, none is run.
    report_dir = str(tmp_path / "report")
    wider = _sweep(["--report-only", "--report-dir", report_dir, "--seeds", "1-5", "--variant",
                    "default", "--variant", "original", "--variant", "original:rnn_units=8",
                    "--max-iterations", "12"], small_data_dir, output)
    assert wider.returncode == 0, wider.stdout + wider.stderr
    assert "4 of 4 trials ended" in wider.stdout
    _check_tables(output, expected, report_dir)
    assert not os.path.exists(os.path.join(output, "original+rnn_units=8"))
    # Another machine: the report folder without the trial folders. The trials it shows ended
    # are not run again, and its report still shows them.
    elsewhere = _sweep(args + ["--report-dir", report_dir], small_data_dir,
                       str(tmp_path / "elsewhere"))
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    assert ("4 trials, 0 to run, 4 already ended (4 of them in the report in %s)" % report_dir
            in elsewhere.stdout)
    assert not os.path.exists(str(tmp_path / "elsewhere" / "default"))
    _check_tables(output, expected, report_dir)


def test_sigterm_stops_the_trials_and_the_same_command_resumes(small_data_dir, tmp_path):
    output = str(tmp_path / "sweep")
    command = [sys.executable, os.path.join(REPO, "sweep.py"), "--data-dir", small_data_dir,
               "--output-dir", output, "--training-args", TINY, "--seeds", "3",
               "--variant", "default", "--max-iterations", "100000", "--eval-every", "10",
               "--save-every", "100000"]
    log = os.path.join(output, "default", "seed-3", "training.log")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, cwd=REPO)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if os.path.isfile(log) and "it 20/" in open(log).read():
                break
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, out
    assert "SIGTERM received" in out
    with open(log) as f:
        assert "SIGTERM received: saved" in f.read()
    trial = sweep.make_trials([sweep.parse_variant("default")], [3], output)[0]
    stopped_at = int(_metrics(trial.directory)[-1]["iteration"])
    assert stopped_at >= 20
    # Rerun with an end in reach: it continues from the checkpoint instead of starting anew.
    end = stopped_at + 20
    result = _sweep(["--seeds", "3", "--variant", "default", "--max-iterations", str(end),
                     "--eval-every", "10", "--save-every", "100000"], small_data_dir, output)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 to run" in result.stdout
    with open(log) as f:
        assert "resumed from" in f.read()
    rows = _metrics(trial.directory)
    assert int(rows[-1]["iteration"]) == end
    iterations = [int(r["iteration"]) for r in rows]
    assert iterations == sorted(set(iterations))  # no row written twice


def test_ray_local_cluster_runs_the_same_grid_where_ray_exists(small_data_dir, tmp_path):
    """Stack (b) runs the grid on a local Ray cluster; stack (a), Python 3.7, has no Ray and
    says so in one line."""
    output = str(tmp_path / "ray")
    result = _sweep(["--ray", "--parallel", "2", "--seeds", "1", "--variant", "default",
                     "--variant", "original:lstm_input=image_and_latents",
                     "--max-iterations", "12", "--eval-every", "6", "--save-every", "6"],
                    small_data_dir, output)
    if sys.version_info < (3, 9):
        assert result.returncode == 2
        assert result.stderr.strip().startswith("error: Ray is not installed")
        assert not os.path.exists(os.path.join(output, "default"))
        return
    assert result.returncode == 0, result.stdout + result.stderr
    _check_tables(output, [("default", 1), ("original+lstm_input=image_and_latents", 1)])


def test_failure_mode_reads_over_and_under_counts():
    import numpy as np
    from air.evaluation.heldout import count_metrics
    from air.experiments.sweep_report import failure_mode
    # Two one-digit images read as two, one two-digit image read as one.
    metrics = count_metrics({"true_counts": np.array([0, 1, 1, 2, 2]),
                             "digit_count": np.array([0, 2, 2, 1, 2]),
                             "negative_elbo": np.zeros(5)}, max_steps=3)
    assert metrics["overcount"] == pytest.approx(0.4)
    assert metrics["undercount"] == pytest.approx(0.2)
    row = {"heldout_overcount": metrics["overcount"], "heldout_undercount": metrics["undercount"],
           "heldout_accuracy_1": 0.0, "heldout_accuracy_2": 0.5}
    assert failure_mode(row) == "n+1"
    assert failure_mode(dict(row, heldout_overcount=0.1)) == "n-1"
    # Older metrics without the columns: one-digit images worse than two-digit ones.
    nan = float("nan")
    assert failure_mode(dict(row, heldout_overcount=nan, heldout_undercount=nan)) == "n+1"


def test_milestones_are_round_and_at_most_five():
    from air.experiments.sweep_report import milestones
    assert milestones(45000) == [10000, 20000, 30000, 40000]
    assert milestones(12) == [5, 10]
    assert milestones(100) == [20, 40, 60, 80, 100]
    assert milestones(1) == [1]


def test_docs_quote_the_study_tables_as_sweep_wrote_them():
    """Every table line of the study's reports (docs/study/**/sweep.md, written by
    ``sweep.py --report-only``) is quoted as it is, so no figure is retyped: the grid's and the
    candidate defaults' in the study's page (docs/study.md), the others there or in the study's
    record (docs/study/README.md)."""
    def lines_of(path):
        with open(os.path.join(REPO, path)) as f:
            return [line.rstrip("\n") for line in f]
    readme = set(lines_of(os.path.join("docs", "study.md")))
    record = set(lines_of(os.path.join("docs", "study", "README.md")))
    # The z_pres estimators' study is quoted on its own page.
    record |= set(lines_of(os.path.join("docs", "estimators.md")))
    in_readme = {os.path.join("docs", "study", "sweep.md"),
                 os.path.join("docs", "study", "candidate-window", "sweep.md"),
                 os.path.join("docs", "study", "window-fast", "sweep.md")}
    reports = []
    for folder, _, files in os.walk(os.path.join(REPO, "docs", "study")):
        reports += [os.path.relpath(os.path.join(folder, name), REPO)
                    for name in files if name == "sweep.md"]
    assert in_readme <= set(reports) and len(reports) >= 3
    for report in reports:
        rows = [line for line in lines_of(report) if line.startswith("| ")]
        assert len(rows) >= 4, report
        quoted = readme if report in in_readme else readme | record
        missing = [row for row in rows if row not in quoted]
        assert not missing, "%s: not quoted: %s" % (report, missing[:3])


def _fake_trial(root, variant, seed, accuracies, eval_every=1000, checkpoint=True):
    """A trial folder with a metrics.csv of held-out accuracies at every eval_every iterations
    and, with ``checkpoint``, a checkpoint index naming the last of them. Every miscount is one
    object too many (the n+1 mode)."""
    trial = sweep.Trial(sweep.parse_variant(variant), seed,
                        str(root / variant / ("seed-%d" % seed)))
    os.makedirs(os.path.join(trial.directory, "model"))
    with open(os.path.join(trial.directory, "metrics.csv"), "w") as f:
        f.write("iteration,wall_time,heldout_accuracy,heldout_overcount,heldout_undercount\n")
        for index, accuracy in enumerate(accuracies, 1):
            f.write("%d,%d,%g,%g,0\n" % (index * eval_every, index * 100, accuracy, 1 - accuracy))
    if checkpoint:
        prefix = "model.ckpt-%d" % (len(accuracies) * eval_every)
        with open(os.path.join(trial.directory, "model", "checkpoint"), "w") as f:
            f.write('model_checkpoint_path: "%s"\n' % prefix)
        open(os.path.join(trial.directory, "model", prefix + ".index"), "w").close()
    return trial


def test_progress_line_counts_ended_trials_speed_and_time_left(tmp_path):
    options = TrainingOptions(data_dir="", max_iterations=10000, stop_at_accuracy=0.98,
                           patience=3, eval_every=1000, save_every=5000, threads=1)
    converged = _fake_trial(tmp_path, "default", 1, [0.5, 0.99, 0.99, 0.99])
    running = _fake_trial(tmp_path, "original", 1, [0.2, 0.4, 0.6])
    waiting = _fake_trial(tmp_path, "default", 2, [], checkpoint=False)
    trials = [converged, running, waiting]
    assert [sweep.last_iteration(t) for t in trials] == [4000, 3000, 0]
    # Since the sweep began: the converged trial went 2,000 -> 4,000, the running one
    # 1,000 -> 3,000; 4,000 iterations in 100 s. Left at most: 7,000 + 10,000 iterations.
    start = {converged.directory: 2000, running.directory: 1000, waiting.directory: 0}
    line = sweep.progress_line(trials, options, start, 100.0)
    assert line == ("sweep: 1 of 3 ended; original seed 1 at 3000 (60.0%); 40.0 it/s in all; "
                    "at most 7m05s left")
    assert sweep.progress_line(trials, options, {t.directory: sweep.last_iteration(t)
                                                 for t in trials}, 100.0) == (
        "sweep: 1 of 3 ended; no evaluation yet; 0.0 it/s in all; at most ? left")


def test_trial_rows_give_the_z_pres_prior_where_each_trial_first_reached_the_target(tmp_path):
    import math
    from air.experiments.sweep_report import markdown_report, trial_row
    options = TrainingOptions(data_dir="", max_iterations=10000, stop_at_accuracy=0.98,
                           patience=3, eval_every=1000, save_every=5000, threads=1)
    faster = _fake_trial(tmp_path, "original:z_pres_prior_odds_decay_steps=2000", 1,
                         [0.5, 0.9, 0.97, 0.99, 0.99, 0.99])
    slower = _fake_trial(tmp_path, "default:z_pres_prior_odds_decay_steps=3000", 1,
                         [0.5, 0.9, 0.99, 0.99, 0.99])
    never = _fake_trial(tmp_path, "default", 2, [0.5] * 4)
    saved = _fake_trial(tmp_path, "default", 3, [0.99, 0.99, 0.99])
    AIRConfig(z_pres_prior_odds_decay_steps=500).save(
        os.path.join(saved.directory, "model", "config.json"))
    rows = [trial_row(t, sweep.read_metrics(t.directory), options, 0.98, [5000])
            for t in (faster, slower, never, saved)]
    # Odds 1e4 falling tenfold every 2,000 (plus the original's 1e-9) or 3,000 iterations.
    assert rows[0]["prior_log_odds_at_target"] == round(math.log(1e2 + 1e-9), 1) == 4.6
    assert rows[1]["prior_log_odds_at_target"] == round(math.log(1e3), 1) == 6.9
    assert rows[2]["prior_log_odds_at_target"] is None
    # A trial's saved config.json, not its variant's current preset: 1e4 / 10^2 at 1,000.
    assert rows[3]["prior_log_odds_at_target"] == round(math.log(1e2), 1)
    report = markdown_report(rows, options, 0.98, [5000])
    assert "| converged | 6000 | 4000 | 4.6 |" in report
    assert "| default | 2 | partial | 4000 |  |  |" in report


def test_first_iteration_panel_plots_converged_dots_unconverged_crosses_and_medians():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    from air.experiments.sweep_report import plot_first_iterations
    rows = [{"variant": "a", "state": "converged", "first_iteration_at_target": 20000},
            {"variant": "a", "state": "converged", "first_iteration_at_target": 30000},
            {"variant": "a", "state": "finished", "first_iteration_at_target": None},
            {"variant": "a", "state": "partial", "first_iteration_at_target": 12000},
            {"variant": "b", "state": "new", "first_iteration_at_target": None}]
    long_name = "default+z_pres_estimator=nvil+nvil_variance_normalisation=false+vimco_samples=2"
    rows.append({"variant": long_name, "state": "finished", "first_iteration_at_target": None})
    figure, axis = plt.subplots()
    plot_first_iterations(axis, ["a", "b", long_name], rows, 0.98, 45000, NullFormatter())
    plotted = [(list(line.get_xdata()), list(line.get_ydata()), line.get_marker())
               for line in axis.lines]
    labels = [text.get_text() for text in axis.texts]
    plt.close(figure)
    assert plotted == [([20000, 30000], [0, 0], "o"), ([45000], [0], "x"), ([25000.0], [0], "|"),
                       ([], [], "o"), ([], [], "x"), ([], [], "o"), ([45000], [2], "x")]
    # A long name is broken at '+' into lines that fit the panel.
    assert labels[:2] == ["a", "b"]
    assert labels[2].replace("\n", "") == long_name
    assert labels[2].count("\n") == 1 and all(len(l) <= 56 for l in labels[2].split("\n"))


def test_count_panels_show_each_trials_one_and_two_digit_accuracy_beside_its_prior(tmp_path):
    from air.experiments.sweep_report import TrialMetrics, count_panels, plot_count_curves
    first = _fake_trial(tmp_path, "original", 2, [0.1, 0.5])
    second = _fake_trial(tmp_path, "original", 1, [0.2, 0.6])
    for trial, per_count in ((first, [(0.3, 0.9), (0.6, 0.95)]), (second, [(0.4, 0.8), (0.7, 1)])):
        path = os.path.join(trial.directory, "metrics.csv")
        with open(path) as f:
            lines = f.read().splitlines()
        with open(path, "w") as f:
            f.write(lines[0] + ",heldout_accuracy_1,heldout_accuracy_2\n")
            f.writelines("%s,%g,%g\n" % ((line,) + pair) for line, pair in zip(lines[1:], per_count))
    AIRConfig(z_pres_prior_odds_decay_steps=500).save(
        os.path.join(first.directory, "model", "config.json"))
    not_started = _fake_trial(tmp_path, "default", 1, [], checkpoint=False)
    # Rows as sweep.csv orders them: default first, but it has no evaluations, so no panel.
    rows = [{"variant": "default"}, {"variant": "original"}]
    panels = count_panels([TrialMetrics(t, sweep.read_metrics(t.directory))
                           for t in (not_started, first, second)], rows, 9000)
    assert [p["title"] for p in panels] == ["original: one-digit images",
                                            "original: two-digit images"]
    assert panels[0]["lines"] == [("seed 2", [1000, 2000], [0.3, 0.6]),
                                  ("seed 1", [1000, 2000], [0.4, 0.7])]
    assert panels[1]["lines"] == [("seed 2", [1000, 2000], [0.9, 0.95]),
                                  ("seed 1", [1000, 2000], [0.8, 1.0])]
    # The schedule of the variant's first trial's saved config: 1e4 falling tenfold every 500
    # iterations, at its floor of 1e-9 from 6,500 on.
    iterations, log_odds = panels[0]["prior"]
    assert iterations[0] == 0 and iterations[-1] == 9000
    assert log_odds[0] == pytest.approx(math.log(1e4))
    assert log_odds[iterations.index(1000)] == pytest.approx(math.log(1e2))
    assert log_odds[-1] == pytest.approx(math.log(1e-9))
    path = str(tmp_path / "by_count.png")
    plot_count_curves(panels, path, 0.98, 9000)
    plot_count_curves([], str(tmp_path / "empty.png"), 0.98, 9000)
    for figure in (path, str(tmp_path / "empty.png")):
        with open(figure, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_variant_folder_names_read_back_as_their_variants():
    for spec in ("default", "original:lstm_input=image_and_latents,scale_prior_variance=0.25",
                 "default:vae_recognition_units=64/32", "original:z_pres_prior_odds_floor=1e+20"):
        variant = sweep.parse_variant(spec)
        assert sweep.variant_from_name(variant.name) == variant


def _options():
    return TrainingOptions(data_dir="", max_iterations=10000, stop_at_accuracy=0.98,
                           patience=3, eval_every=1000, save_every=5000, threads=1)


def test_a_trial_run_past_convergence_is_converged_only_from_min_iterations(tmp_path):
    from air.experiments.sweep_report import markdown_report, trial_row
    trial = _fake_trial(tmp_path, "default", 1, [0.5, 0.99, 0.99, 0.99])  # 1,000 to 4,000
    rows = sweep.read_metrics(trial.directory)
    assert sweep.trial_state(trial, _options()) == "converged"
    later = _options().replace(min_iterations=6000)
    assert sweep.trial_state(trial, later) == "partial"
    assert sweep.trial_state(trial, _options().replace(min_iterations=4000)) == "converged"
    # The report says so where it gives the stop rule, and only then.
    row = trial_row(trial, rows, later, 0.98, [5000])
    assert "in a row, not before 6000 iterations (converged)" in markdown_report(
        [row], later, 0.98, [5000])
    assert "not before" not in markdown_report([row], _options(), 0.98, [5000])


def test_a_report_folder_keeps_its_trials_when_their_folders_are_gone(tmp_path):
    import shutil
    from air.experiments.sweep_report import ended_in_report, write_report
    runs, report = tmp_path / "runs", str(tmp_path / "report")
    os.makedirs(report)
    converged = _fake_trial(runs, "default", 1, [0.5, 0.99, 0.99, 0.99])
    partial = _fake_trial(runs, "original", 1, [0.2, 0.4])
    AIRConfig(z_pres_prior_odds_decay_steps=1000).save(
        os.path.join(converged.directory, "model", "config.json"))
    first = write_report([converged, partial], _options(), report, 0.98)
    record = os.path.join(report, "trials", "default", "seed-1")
    assert sorted(os.listdir(record)) == ["metrics.csv", "model"]
    assert os.listdir(os.path.join(record, "model")) == ["config.json"]
    # A fresh clone: no trial folders; the records give the same rows, prior included.
    shutil.rmtree(str(runs))
    assert write_report([], _options(), report, 0.98) == first
    assert first[0]["prior_log_odds_at_target"] == round(math.log(1e4 / 10 ** (2000 / 1000)), 1)
    # The same grid run again there skips the converged trial only (the partial one restarts).
    assert ended_in_report([converged, partial], _options(), report) == [converged]
    # A new trial of the grid joins the report after the ones it had.
    new = _fake_trial(runs, "default", 2, [0.3])
    rows = write_report([converged, partial, new], _options(), report, 0.98)
    assert [(r["variant"], r["seed"], r["state"]) for r in rows] == [
        ("default", 1, "converged"), ("original", 1, "partial"), ("default", 2, "partial")]
    # A trial's folder with evaluations wins over its record: it is the live one.
    again = _fake_trial(runs, "original", 1, [0.2, 0.4, 0.99, 0.99, 0.99])
    rows = write_report([again], _options(), report, 0.98)
    assert rows[1]["state"] == "converged" and rows[1]["iterations"] == 5000


def test_rows_reported_before_records_were_kept_stay_as_they_were(tmp_path):
    import shutil
    from air.experiments.sweep_report import ended_in_report, write_report
    report = str(tmp_path / "report")
    os.makedirs(report)
    trials = [_fake_trial(tmp_path / "runs", "default", 1, [0.5, 0.99, 0.99, 0.99]),
              _fake_trial(tmp_path / "runs", "default", 2, [0.1] * 10),
              _fake_trial(tmp_path / "runs", "original", 3, [0.2, 0.4])]
    first = write_report(trials, _options(), report, 0.98)
    # An earlier report's folder: its sweep.csv, and neither trial folders nor records.
    shutil.rmtree(str(tmp_path / "runs"))
    shutil.rmtree(os.path.join(report, "trials"))
    assert write_report([], _options(), report, 0.98) == first
    with open(os.path.join(report, "sweep.md")) as f:
        markdown = f.read()
    assert "| default | 1 of 2 | 0 | 2000 | 2000 | n+1 |" in markdown
    assert "sweep.csv gave them" in markdown
    assert markdown.rstrip().endswith("default seeds 1, 2; original seed 3.")
    ended = ended_in_report(sweep.make_trials([sweep.parse_variant("default"),
                                               sweep.parse_variant("original")], [1, 2, 3],
                                              str(tmp_path / "runs")), _options(), report)
    assert [(t.variant.name, t.seed) for t in ended] == [("default", 1), ("default", 2)]


def test_trials_not_started_when_a_live_sweep_reported_are_not_kept(tmp_path):
    from air.experiments.sweep_report import write_report
    report = str(tmp_path / "report")
    os.makedirs(report)
    started = _fake_trial(tmp_path / "runs", "default", 1, [0.5, 0.99, 0.99, 0.99])
    not_started = sweep.Trial(sweep.parse_variant("default"), 2,
                              str(tmp_path / "runs" / "default" / "seed-2"))
    live = write_report([started, not_started], _options(), report, 0.98)
    assert [(row["seed"], row["state"]) for row in live] == [(1, "converged"), (2, "new")]
    # The next report, from the records alone (say on a fresh clone), has only the started one.
    again = write_report([], _options(), report, 0.98)
    assert [(row["seed"], row["state"]) for row in again] == [(1, "converged")]
    with open(os.path.join(report, "sweep.md")) as f:
        assert "gave them" not in f.read()


def test_tiny_grid_with_every_z_pres_estimator(small_data_dir, tmp_path):
    output = str(tmp_path / "sweep")
    variants = {"nvil": "default:z_pres_estimator=nvil",
                "vimco": "default:z_pres_estimator=vimco,vimco_samples=2"}
    result = _sweep(["--seeds", "1", "--variant", "default", "--variant", variants["nvil"],
                     "--variant", variants["vimco"],
                     "--max-iterations", "6", "--eval-every", "3", "--save-every", "3",
                     "--training-args", TINY + " --gradient-variance-draws 2"], small_data_dir,
                    output)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 trials, 3 to run" in result.stdout
    with open(os.path.join(output, "sweep.csv")) as f:
        table = f.read()
    for estimator, variant in variants.items():
        trial = os.path.join(output, sweep.parse_variant(variant).name, "seed-1")
        with open(os.path.join(trial, "model", "config.json")) as f:
            assert '"z_pres_estimator": "%s"' % estimator in f.read()
        columns, rows = metrics_log.read_values(os.path.join(trial, "metrics.csv"))
        assert [row["iteration"] for row in rows] == [3, 6]
        assert all(row["z_pres_gradient_variance_" + estimator] >= 0.0 for row in rows)
        assert "z_pres_estimator=" + estimator in table
    # The gradient-variance figure: per variant, the trained estimator's curve and the
    # relaxation's probed on the same weights, as metrics.csv has them.
    from air.experiments.sweep_report import TrialMetrics, gradient_variance_panels
    names = [sweep.parse_variant(v).name for v in ["default"] + list(variants.values())]
    runs = []
    for name in names:
        trial = sweep.Trial(sweep.variant_from_name(name), 1, os.path.join(output, name, "seed-1"))
        runs.append(TrialMetrics(trial, sweep.read_metrics(trial.directory)))
    panels = gradient_variance_panels(runs, [{"variant": name} for name in names])
    assert [panel["title"] for panel in panels] == names
    measured = [[(line[1], line[2]) for line in panel["lines"]] for panel in panels]
    assert measured == [[("concrete", True)], [("concrete", False), ("nvil", True)],
                        [("concrete", False), ("vimco", True)]]
    for panel, run in zip(panels, runs):
        for seed, estimator, _, iterations, variances in panel["lines"]:
            by_iteration = {r["iteration"]: r["z_pres_gradient_variance_" + estimator]
                            for r in run.metrics}
            assert seed == 1 and iterations and set(iterations) <= {3, 6}
            assert variances == [by_iteration[i] for i in iterations]
    assert os.path.isfile(os.path.join(output, "sweep_gradient_variance.png"))


def _count_naively(model_dir, path, max_steps):
    """The digits the test-mode model of a trial's checkpoint finds in each image of a record
    file, built apart from the sweep's code: a placeholder model with ``max_steps`` steps, its
    live steps counted in numpy; and the records."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    from air.data.records import read_records
    from air.evaluation.model_folder import build_test_model
    from air.training.checkpoints import find_checkpoint, load_config, restore_variables
    checkpoint, config_path = find_checkpoint(model_dir)
    config = load_config(config_path).replace(max_steps=max_steps)
    data = read_records(path)
    with tf.Graph().as_default():
        images, model = build_test_model(config)
        with tf.Session() as session:
            restore_variables(session, checkpoint)
            live, boxes = session.run([model.steps.live, model.boxes], {images: data.images})
    return np.sum(live > 0.5, axis=1), live, boxes, data


def test_a_trials_final_model_is_measured_and_reported_and_old_records_still_report(
        small_data_dir, mnist_dir, tmp_path):
    import numpy as np
    from air.evaluation.heldout import box_metrics
    output, report = str(tmp_path / "sweep"), str(tmp_path / "report")
    args = ["--seeds", "1", "--variant", "default", "--max-iterations", "12", "--eval-every",
            "6", "--save-every", "6", "--extrapolation-images", "40", "--mnist-dir", mnist_dir,
            "--report-dir", report]
    result = _sweep(args, small_data_dir, output)
    assert result.returncode == 0, result.stdout + result.stderr
    three = os.path.join(output, "extrapolation-3-digits-40", "test.tfrecords")
    trial = os.path.join(output, "default", "seed-1")
    with open(os.path.join(trial, "final_evaluation.json")) as f:
        figures = json.load(f)
    assert figures["iteration"] == 12 and figures["extrapolation_images"] == 40
    # Trained with max_steps 3; counted with 4, so that a fourth object can be found.
    assert figures["extrapolation_max_steps"] == 4
    found, _, _, data = _count_naively(os.path.join(trial, "model"), three, 4)
    assert set(data.digits.tolist()) == {3}
    assert figures["extrapolation_accuracy"] == pytest.approx(np.mean(found == 3))
    found, live, boxes, heldout = _count_naively(
        os.path.join(trial, "model"), os.path.join(small_data_dir, "test.tfrecords"), 3)
    heights = boxes[..., 3][live > 0.5]
    assert figures["mean_window_height"] == pytest.approx(np.mean(heights), rel=1e-5)
    predictions = {"true_counts": heldout.digits, "true_positions": heldout.positions,
                   "true_boxes": heldout.boxes, "boxes": boxes, "live": live}
    assert figures["mean_iou"] == pytest.approx(box_metrics(predictions)["mean_iou"], rel=1e-5)
    # Every evaluation measured the boxes too; the last one is of the final model.
    _, rows = metrics_log.read_values(os.path.join(trial, "metrics.csv"))
    assert [r["iteration"] for r in rows] == [6, 12]
    assert rows[-1]["heldout_mean_iou"] == pytest.approx(figures["mean_iou"], abs=1e-4)
    assert rows[-1]["heldout_box_recall_iou50"] == pytest.approx(figures["box_recall_iou50"],
                                                                 abs=1e-4)
    assert rows[-1]["heldout_window_height"] == pytest.approx(figures["mean_window_height"],
                                                              abs=1e-4)
    from air.experiments.sweep_report import TrialMetrics, window_panels
    run = TrialMetrics(sweep.Trial(sweep.variant_from_name("default"), 1, trial), rows)
    iou, height = window_panels([run], [{"variant": "default"}], 12)
    assert iou["lines"] == [("seed 1", [6, 12], [r["heldout_mean_iou"] for r in rows])]
    assert height["lines"] == [("seed 1", [6, 12], [r["heldout_window_height"] for r in rows])]
    assert iou["prior"] is None and height["prior"][1][0] == pytest.approx(20.07, abs=0.01)
    assert os.path.isfile(os.path.join(report, "sweep_windows.png"))
    # The columns of the report, and the record keeps the figures.
    with open(os.path.join(report, "sweep.csv"), newline="") as f:
        row = list(csv.DictReader(f))[0]
    for column in ("mean_iou", "mean_window_height", "extrapolation_accuracy"):
        assert float(row[column]) == pytest.approx(figures[column])
    record = os.path.join(report, "trials", "default", "seed-1")
    assert os.path.isfile(os.path.join(record, "final_evaluation.json"))
    # And where the trial ran: one session, from iteration 0, on this machine's processor.
    from air.training import environment
    sessions = environment.read(record)
    assert sessions == environment.read(trial)
    assert [(s["iteration"], s["processor"]) for s in sessions] == [
        (0, environment.processor_name())]
    with open(os.path.join(report, "sweep.md")) as f:
        line = [l for l in f if l.startswith("| default | 1 | finished |")][0]
    assert line.rstrip().endswith("| %.2f | %.1f | %.1f |" % (
        figures["mean_iou"], figures["mean_window_height"],
        100 * figures["extrapolation_accuracy"]))
    # An ended trial without the figures (it ended before trials wrote them) is resumed by the
    # next sweep only to measure its final model: it trains no further.
    os.remove(os.path.join(trial, "final_evaluation.json"))
    with open(os.path.join(trial, "metrics.csv")) as f:
        metrics = f.read()
    measured = _sweep(args, small_data_dir, output)
    assert measured.returncode == 0, measured.stdout + measured.stderr
    assert "1 trials, 1 to run, 0 already ended" in measured.stdout
    with open(os.path.join(trial, "final_evaluation.json")) as f:
        remeasured = json.load(f)
    for name in ("iteration", "mean_iou", "mean_window_height", "extrapolation_accuracy"):
        assert remeasured[name] == pytest.approx(figures[name], rel=1e-5)
    with open(os.path.join(trial, "metrics.csv")) as f:
        assert f.read() == metrics
    assert "1 trials, 0 to run, 1 already ended" in _sweep(args, small_data_dir, output).stdout
    # A record from before trials measured their final models: the columns say "-".
    os.remove(os.path.join(record, "final_evaluation.json"))
    again = _sweep(["--report-only", "--seeds", "1", "--variant", "default", "--report-dir",
                    report, "--max-iterations", "12"], small_data_dir, str(tmp_path / "none"))
    assert again.returncode == 0, again.stdout + again.stderr
    with open(os.path.join(report, "sweep.csv"), newline="") as f:
        row = list(csv.DictReader(f))[0]
    assert [row[c] for c in ("mean_iou", "mean_window_height", "extrapolation_accuracy")] == \
        ["", "", ""]
    with open(os.path.join(report, "sweep.md")) as f:
        text = f.read()
    assert re.search(r"^\| default \| 1 \| finished \|.* \| - \| - \| - \|$", text, re.M)
    assert re.search(r"^\| default \| 0 of 1 \| 0 \|.*\| - \| - \|$", text, re.M)
