"""evaluate.py and the held-out evaluator behind it (its metrics as numbers: test_heldout.py).

The end-to-end check uses a hand-made checkpoint: every output layer's kernel is zero, so
the biases alone fix what the model infers for any image (two live steps, both at one known
box, a blank canvas, known posteriors), and the expected report follows in closed form: the
plug-in ELBO of test mode exactly, the sampled ELBO of the discrete model within its Monte Carlo
error (the canvas is blank whatever the sample, so log p(x|z) is a constant C and the ELBO is
C - KL), and the importance-weighted bound between the ELBO and log p(x) = C.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import evaluate
from air import cli
from air.evaluation import heldout
from air.data import records
from air.config import AIRConfig, CONFIG_FILENAME

from conftest import REPO

# A small model: the report depends on the output-layer biases only.
TINY = dict(max_steps=2, rnn_units=8, vae_latent=3, vae_recognition_units=[8],
            vae_generative_units=[8], z_where_hidden_units=4, z_pres_hidden_units=4)
STEP = 1500                                  # global step saved in the checkpoint
Z_PRES_LOG_ODDS = 2.0                        # > 0: every step finds an object
Z_WHERE_MEAN = [0.0, -0.1, -0.1]             # scale 0.5 (25 px), top-left corner at (10, 10)
Z_WHERE_RAW_STD = [-1.0, 0.5, 0.0]
Z_WHAT_MEAN = [0.3, -0.2, 1.0]
Z_WHAT_RAW_STD = [0.0, -2.0, 1.0]
DECODER_LOGIT = -30.0                        # blank windows: the canvas is ~0 everywhere
PREDICTED_BOX = (10, 10, 25, 25)

# Hand-made records: (positions, boxes) per image, and the IoU of each true box with the
# predicted box (two identical predicted boxes per image).
DIGITS = [
    ([], []),                                            # 0 digits
    ([(10, 10)], [(25, 25)]),                            # the predicted box: IoU 1
    ([(22, 10), (0, 40)], [(25, 25), (10, 10)]),         # 13 x 25 overlap: 325 / 925; 0
    ([(38, 38)], [(12, 12)]),                            # disjoint: 0
    ([(10, 10), (15, 15), (40, 0)], [(25, 25), (10, 10), (10, 10)]),  # 1; 100 / 625; 0
]
# Two predicted boxes per image, so at most the two best true boxes of an image are matched.
MATCHED_IOUS = [1.0, 325.0 / 925.0, 0.0, 0.0, 1.0, 100.0 / 625.0]


def _softplus(x):
    return np.log1p(np.exp(x))


def _log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def _gaussian_kl(mean, std, prior_mean, prior_variance):
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return 0.5 * (np.log(prior_variance) - 2 * np.log(std)
                  + (std ** 2 + (mean - prior_mean) ** 2) / prior_variance - 1.0)


def constant_reconstruction(images):
    """-log p(x|z) of the hand-made model on each image, whatever z: its canvas ~ sigmoid(-30)
    ~ 1e-13 is clipped to the model's tolerance 1e-6 (as float32) everywhere."""
    p = np.float64(np.float32(1e-6))
    return -np.sum(images * np.log(p) + (1 - images) * np.log1p(-p), axis=(1, 2))


def z_pres_kl(prior):
    """KL of the hand-made z_pres posterior from a prior with log-odds ``prior``."""
    q = 1.0 / (1.0 + np.exp(-Z_PRES_LOG_ODDS))
    return (q * (_log_sigmoid(Z_PRES_LOG_ODDS) - _log_sigmoid(prior))
            + (1 - q) * (_log_sigmoid(-Z_PRES_LOG_ODDS) - _log_sigmoid(-prior)))


def expected_negative_elbo(images, config, step):
    """Closed-form plug-in negative ELBO (test mode) of the hand-made model on each image."""
    start, floor = config.z_pres_prior_log_odds_range
    prior = max(start + np.log(config.z_pres_prior_odds_decay)
                / config.z_pres_prior_odds_decay_steps * step, floor)
    # Both steps ran and both found an object: every KL is charged twice.
    return constant_reconstruction(images) + 2 * (z_pres_kl(prior) + continuous_kl(config))


def expected_sampled_elbo(images, config):
    """Closed-form ELBO of the sampled discrete hand-made model at the final prior: with
    q = sigmoid(2) the second step runs with probability q and the objects exist with
    probabilities q and q^2, so KL = (1 + q) KL_pres + (q + q^2) (KL_where + KL_what)."""
    q = 1.0 / (1.0 + np.exp(-Z_PRES_LOG_ODDS))
    kl = ((1 + q) * z_pres_kl(np.float32(config.z_pres_prior_log_odds_range[1]))
          + (q + q * q) * continuous_kl(config))
    return -constant_reconstruction(images) - kl


def continuous_kl(config):
    """KL_where + KL_what of one object of the hand-made model."""
    where_std = _softplus(np.array(Z_WHERE_RAW_STD)) + 1e-4
    kl_where = np.sum(_gaussian_kl(
        Z_WHERE_MEAN, where_std,
        np.array([config.scale_prior_mean, config.shift_prior_mean, config.shift_prior_mean]),
        np.array([config.scale_prior_variance, config.shift_prior_variance,
                  config.shift_prior_variance])))
    what_std = _softplus(np.array(Z_WHAT_RAW_STD)) + 1e-4
    kl_what = np.sum(_gaussian_kl(Z_WHAT_MEAN, what_std, 0.0, 1.0))
    return kl_where + kl_what


def make_model_dir(folder, config, step=STEP):
    """Saves a checkpoint whose output layers are fixed by the biases above, + config.json."""
    from air.model.air_model import AIRModel
    tf.disable_v2_behavior()
    os.makedirs(folder, exist_ok=True)
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [None, config.canvas_height, config.canvas_width])
        AIRModel(images, config, training=False)
        global_step = tf.train.get_or_create_global_step()
        biases = {
            "z_pres": [Z_PRES_LOG_ODDS],
            "z_where": Z_WHERE_MEAN + Z_WHERE_RAW_STD,
            "vae_encoder": Z_WHAT_MEAN + Z_WHAT_RAW_STD,
            "vae_decoder": [DECODER_LOGIT] * (config.window_size ** 2),
        }
        variables = {v.op.name: v for v in tf.global_variables()}
        assignments = [tf.assign(global_step, step)]
        for name, bias in biases.items():
            kernel = variables["air/%s/output/weights" % name]
            assignments += [tf.assign(kernel, tf.zeros_like(kernel)),
                            tf.assign(variables["air/%s/output/biases" % name],
                                      np.array(bias, np.float32))]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(assignments)
            tf.train.Saver(save_relative_paths=True).save(
                session, os.path.join(folder, "model.ckpt"), global_step=step)
    config.save(os.path.join(folder, CONFIG_FILENAME))
    return folder


def write_records(path, digits, size=50, seed=0):
    """Writes images of random pixels with the given (positions, boxes) per image."""
    rng = np.random.RandomState(seed)
    images = rng.uniform(size=(len(digits), size, size)).astype(np.float32)
    images *= rng.uniform(size=images.shape) < 0.2  # Mostly black, like MNIST canvases.
    examples = []
    for image, (positions, boxes) in zip(images, digits):
        count = len(positions)
        examples.append(dict(image=image, labels=np.arange(count), indices=np.arange(count),
                             positions=np.array(positions, np.int32).reshape(-1, 2),
                             boxes=np.array(boxes, np.int32).reshape(-1, 2)))
    records.write_examples(path, examples)
    return images


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    """(model folder, record file, images, config) of the hand-made model and data."""
    root = str(tmp_path_factory.mktemp("handmade"))
    config = AIRConfig.from_dict(TINY)
    model_dir = make_model_dir(os.path.join(root, "model"), config)
    data = os.path.join(root, "test.tfrecords")
    images = write_records(data, DIGITS)
    return model_dir, data, images, config


def run_main(argv, capsys):
    code = evaluate.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- IoU and matching ---------------------------------------------------------------------

def test_report_of_handmade_model(handmade, tmp_path, capsys):
    model_dir, data, images, config = handmade
    out_json = str(tmp_path / "report.json")
    code, out, err = run_main(["--model-dir", model_dir, "--data", data, "--json", out_json,
                               "--batch-size", "2", "--samples", "3000",
                               "--importance-samples", "100", "--seed", "3"], capsys)
    assert code == 0, err
    with open(out_json) as f:
        report = json.load(f)
    assert list(report) == list(heldout.REPORT_KEYS)
    assert report["images"] == 5
    # Every image: two steps, two objects. Only the 2-digit image is counted right.
    assert report["count_accuracy"] == pytest.approx(0.2)
    assert report["count_accuracy_by_digits"] == {"0": 0.0, "1": 0.0, "2": 1.0, "3": 0.0}
    assert report["confusion"] == [[0, 0, 1], [0, 0, 2], [0, 0, 1], [0, 0, 1]]
    assert report["mean_iou"] == pytest.approx(np.mean(MATCHED_IOUS), abs=1e-5)
    assert report["box_recall_iou50"] == pytest.approx(2 / 7.)
    # Two 25-pixel windows everywhere: 0 and 1 digits over-counted, 3 under-counted.
    outcomes = {"0": "over", "1": "over", "2": "right", "3": "under"}
    for digits, heights in report["window_height"].items():
        for outcome, height in heights.items():
            if outcome == outcomes[digits]:
                assert height == pytest.approx(PREDICTED_BOX[3], abs=1e-3), (digits, outcome)
            else:
                assert height is None, (digits, outcome)
    assert report["true_digit_height"] == pytest.approx(
        np.mean([h for _, boxes in DIGITS for _, h in boxes]))
    images = images.astype(np.float64)
    expected = -np.mean(expected_negative_elbo(images, config, STEP))
    # Absolute: a KL term counted once instead of twice would be off by about 13.
    assert report["plugin_elbo_at_means"] == pytest.approx(expected, abs=0.05)

    # The sampled ELBO, at the final prior (-20.72, not the 8.06 of the checkpoint's step).
    assert report["z_pres_prior_log_odds"] == pytest.approx(np.log(1e-9), abs=1e-4)
    assert report["seed"] == 3 and report["elbo_samples"] == 3000
    per_image = expected_sampled_elbo(images, config)
    mc_error = report["elbo_monte_carlo_stderr"]
    assert 0.0 < mc_error < 0.5
    assert report["elbo"] == pytest.approx(np.mean(per_image), abs=4 * mc_error)
    # The standard error over images is that of the five exact per-image ELBOs (they differ
    # by their constant reconstruction), up to the sampling error.
    assert report["elbo_stderr"] == pytest.approx(np.std(per_image, ddof=1) / np.sqrt(5),
                                                  abs=4 * mc_error)
    # log p(x) = -reconstruction exactly (the likelihood does not depend on z): the bound lies
    # between the ELBO and log p(x), and closer to log p(x) than the ELBO.
    log_p_x = -np.mean(constant_reconstruction(images))
    assert report["iwae_samples"] == 100
    assert report["elbo"] + 1.0 < report["log_likelihood_iwae"] < log_p_x + 0.5
    assert report["log_likelihood_iwae_stderr"] > 0
    # The table shows the same numbers.
    assert "(iteration %d)" % STEP in out and "0.2000" in out
    assert "%.4f" % report["mean_iou"] in out
    for key in ("elbo", "elbo_stderr", "log_likelihood_iwae", "plugin_elbo_at_means"):
        assert "%.2f" % report[key] in out, key
    # The ELBO by outcome: images 1 and 3 hold one digit each (both over-counted), the other
    # counts one image each; each mean is that of the exact per-image ELBOs, up to sampling.
    by_outcome = report["elbo_by_outcome"]
    exact = {"0": ("over", per_image[0]), "1": ("over", np.mean(per_image[[1, 3]])),
             "2": ("right", per_image[2]), "3": ("under", per_image[4])}
    for digits, (outcome, value) in exact.items():
        assert by_outcome[digits][outcome] == pytest.approx(value, abs=8 * mc_error), digits
        assert [name for name, v in by_outcome[digits].items() if v is not None] == [outcome]
    assert re.search(r"\n1 +n/a +%.1f +n/a" % by_outcome["1"]["over"], out), out


def test_z_pres_log_odds_flag_adds_the_per_step_log_odds(handmade, tmp_path, capsys):
    """The hand-made model's log-odds are its bias at every attempted step of every image; the
    flag adds them to the JSON and the table, and without it the report keeps its keys."""
    model_dir, data, _, _ = handmade
    out_json = str(tmp_path / "report.json")
    code, out, err = run_main(["--model-dir", model_dir, "--data", data, "--json", out_json,
                               "--samples", "2", "--z-pres-log-odds"], capsys)
    assert code == 0, err
    with open(out_json) as f:
        report = json.load(f)
    assert list(report) == list(heldout.REPORT_KEYS) + ["z_pres_log_odds"]
    assert sorted(report["z_pres_log_odds"]) == ["0", "1", "2", "3"]
    for per_step in report["z_pres_log_odds"].values():
        assert len(per_step) == 2
        np.testing.assert_allclose(per_step, np.full([2, 3], Z_PRES_LOG_ODDS), atol=1e-5)
    assert re.search(r"\n3 +2\.0 \(2\.0 \.\. 2\.0\) +2\.0 \(2\.0 \.\. 2\.0\)", out), out
    report, _, _ = evaluate.evaluate(model_dir, data, elbo_samples=2)
    assert "z_pres_log_odds" not in report


def test_same_seed_same_numbers_other_seed_other_numbers(handmade, capsys):
    model_dir, data, _, _ = handmade
    reports = []
    for seed in ("0", "0", "1"):
        report, _, _ = evaluate.evaluate(model_dir, data, elbo_samples=20, importance_samples=30,
                                         seed=int(seed))
        reports.append(report)
    # The same numbers, up to the last bits of float32 sums (TF's reductions may round
    # differently from one run to the next).
    assert reports[0].keys() == reports[1].keys()
    for key, value in reports[0].items():
        assert reports[1][key] == (pytest.approx(value, rel=1e-6)
                                   if isinstance(value, float) else value), key
    assert reports[0]["elbo"] != pytest.approx(reports[2]["elbo"], rel=1e-6)
    assert reports[0]["count_accuracy"] == reports[2]["count_accuracy"]


def test_more_steps_at_test_time_count_one_object_more(handmade, capsys):
    """--max-steps 3 on the two-step hand-made model: every step finds an object, so every
    image is read as three (only the 3-digit image right), and the plug-in ELBO charges the
    KLs of three steps."""
    model_dir, data, images, config = handmade
    code, out, err = run_main(["--model-dir", model_dir, "--data", data, "--samples", "2",
                               "--max-steps", "3", "--json", os.devnull], capsys)
    assert code == 0, err
    report, _, _ = evaluate.evaluate(model_dir, data, elbo_samples=2, max_steps=3)
    assert report["confusion"] == [[0, 0, 0, 1], [0, 0, 0, 2], [0, 0, 0, 1], [0, 0, 0, 1]]
    assert report["count_accuracy_by_digits"] == {"0": 0.0, "1": 0.0, "2": 0.0, "3": 1.0}
    start, floor = config.z_pres_prior_log_odds_range
    prior = max(start + np.log(config.z_pres_prior_odds_decay)
                / config.z_pres_prior_odds_decay_steps * STEP, floor)
    expected = constant_reconstruction(images.astype(np.float64)) + 3 * (
        z_pres_kl(prior) + continuous_kl(config))
    assert report["plugin_elbo_at_means"] == pytest.approx(-np.mean(expected), abs=0.05)
    assert "found:     0     1     2     3" in out
    for bad in ("0", "x"):
        code, out, err = run_main(["--model-dir", model_dir, "--data", data, "--max-steps",
                                   bad], capsys)
        assert_one_line_error(code, err, "--max-steps")
    with pytest.raises(cli.UserError, match=r"^--max-steps: "):
        evaluate.evaluate(model_dir, data, max_steps=0)


def test_predicted_boxes_are_the_designed_box(handmade):
    from air.evaluation import model_folder
    model_dir, data, images, config = handmade
    with model_folder.LoadedModel(model_dir) as model:
        inferred = model.predict(images[:2])
    np.testing.assert_allclose(inferred["boxes"], np.tile(PREDICTED_BOX, (2, 2, 1)), atol=1e-4)
    np.testing.assert_array_equal(inferred["live"], np.ones((2, 2)))
    assert np.all(inferred["canvas"] < 1e-6)


def test_checkpoint_prefix_and_results_folder_are_accepted(handmade, capsys):
    model_dir, data, _, _ = handmade
    prefix = os.path.join(model_dir, "model.ckpt-%d" % STEP)
    code, out, err = run_main(["--model-dir", prefix, "--data", data], capsys)
    assert code == 0, err
    assert prefix in out
    # A training results folder: its model/ subfolder is used.
    code, out, err = run_main(["--model-dir", os.path.dirname(model_dir), "--data", data], capsys)
    assert code == 0, err


def test_evaluate_agrees_with_training_heldout_metrics(small_results_dir, small_data_dir,
                                                      tmp_path, capsys):
    out_json = str(tmp_path / "r.json")
    # training.py's held-out ELBO: 4 samples per image, seed 0, the same draws.
    code, _, err = run_main(["--model-dir", os.path.join(small_results_dir, "model"),
                             "--data", os.path.join(small_data_dir, "test.tfrecords"),
                             "--json", out_json, "--samples", "4"], capsys)
    assert code == 0, err
    with open(out_json) as f:
        report = json.load(f)
    with open(os.path.join(small_results_dir, "metrics.csv")) as f:
        header, *rows = [line.strip().split(",") for line in f]
    last = dict(zip(header, rows[-1]))
    assert report["images"] == 90
    assert report["count_accuracy"] == pytest.approx(float(last["heldout_accuracy"]), abs=1e-4)
    assert report["elbo"] == pytest.approx(float(last["heldout_discrete_elbo_final_prior"]),
                                           abs=2e-3)
    for k in ("0", "1", "2"):
        assert report["count_accuracy_by_digits"][k] == pytest.approx(
            float(last["heldout_accuracy_" + k]), abs=1e-4)
    assert sum(map(sum, report["confusion"])) == 90


# --- bad inputs ---------------------------------------------------------------------------

def test_missing_model_dir(handmade, tmp_path, capsys):
    _, data, _, _ = handmade
    code, _, err = run_main(["--model-dir", str(tmp_path / "nope"), "--data", data], capsys)
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run_main(["--model-dir", str(tmp_path), "--data", data], capsys)
    assert_one_line_error(code, err, "no checkpoint in")


def test_missing_config(handmade, tmp_path, capsys):
    model_dir, data, _, _ = handmade
    copy = str(tmp_path / "model")
    shutil.copytree(model_dir, copy)
    os.remove(os.path.join(copy, CONFIG_FILENAME))
    code, _, err = run_main(["--model-dir", copy, "--data", data], capsys)
    assert_one_line_error(code, err, "no config.json")


def test_config_that_does_not_match_the_checkpoint(handmade, tmp_path, capsys):
    model_dir, data, _, config = handmade
    copy = str(tmp_path / "model")
    shutil.copytree(model_dir, copy)
    config.replace(rnn_units=16).save(os.path.join(copy, CONFIG_FILENAME))
    code, _, err = run_main(["--model-dir", copy, "--data", data], capsys)
    assert_one_line_error(code, err, "does not match its config.json", "air/lstm/")
    # A variable the checkpoint lacks altogether (the CNN encoder).
    config.replace(cnn_encoder=True).save(os.path.join(copy, CONFIG_FILENAME))
    code, _, err = run_main(["--model-dir", copy, "--data", data], capsys)
    assert_one_line_error(code, err, "has no variable air/cnn_encoder")
    # An invalid config.json.
    with open(os.path.join(copy, CONFIG_FILENAME), "w") as f:
        f.write('{"rnn_unitz": 3}')
    code, _, err = run_main(["--model-dir", copy, "--data", data], capsys)
    assert_one_line_error(code, err, "unknown config field")


def test_bad_data_files(handmade, tmp_path, capsys):
    model_dir, _, _, _ = handmade
    code, _, err = run_main(["--model-dir", model_dir, "--data", str(tmp_path / "x.tfrecords")],
                            capsys)
    assert_one_line_error(code, err, "not found")

    small = str(tmp_path / "small.tfrecords")
    write_records(small, [([(1, 1)], [(5, 5)])], size=40)
    code, _, err = run_main(["--model-dir", model_dir, "--data", small], capsys)
    assert_one_line_error(code, err, "40x40", "50x50")

    garbage = str(tmp_path / "garbage.tfrecords")
    with open(garbage, "wb") as f:
        f.write(os.urandom(300))
    code, _, err = run_main(["--model-dir", model_dir, "--data", garbage], capsys)
    assert_one_line_error(code, err, garbage)

    empty = str(tmp_path / "empty.tfrecords")
    open(empty, "wb").close()
    code, _, err = run_main(["--model-dir", model_dir, "--data", empty], capsys)
    assert_one_line_error(code, err, "no records")

    code, _, err = run_main(["--model-dir", model_dir, "--data", small, "--batch-size", "0"],
                            capsys)
    assert_one_line_error(code, err, "--batch-size")
    code, _, err = run_main(["--model-dir", model_dir, "--data", small,
                             "--json", str(tmp_path / "no" / "r.json")], capsys)
    assert_one_line_error(code, err, "does not exist")


BAD_COUNTS = ["0", "-3", "1.5", "abc", "", "1e3"]


@pytest.mark.parametrize("flag", ["--samples", "--importance-samples", "--seed"])
def test_bad_sample_counts_and_seeds(handmade, tmp_path, capsys, flag):
    """One `error:` line, exit status 2, nothing on stdout and no JSON written."""
    model_dir, data, _, _ = handmade
    out_json = tmp_path / "report.json"
    bad = ["-1", "x", "2.0", str(2 ** 31)] if flag == "--seed" else BAD_COUNTS
    for value in bad:
        code, out, err = run_main(["--model-dir", model_dir, "--data", data, flag, value,
                                   "--json", str(out_json)], capsys)
        assert code == 2, (flag, value)
        assert_one_line_error(code, err, flag)
        assert out == "" and not out_json.exists(), (flag, value)


def test_evaluate_rejects_bad_counts_given_as_numbers(handmade):
    model_dir, data, _, _ = handmade
    for bad in ({"elbo_samples": 0}, {"importance_samples": -1}, {"seed": -5},
                {"elbo_samples": 2.5}, {"importance_samples": True}):
        # One line naming the flag: out of range, or not a whole number (2.5, True).
        with pytest.raises(cli.UserError, match=r"^--(samples|importance-samples|seed): "
                                                r"(must be at least|expected a whole number)"):
            evaluate.evaluate(model_dir, data, **bad)


def test_command_line(tmp_path):
    """The real script: --help, and a bad input gives exactly one line on stderr."""
    run = lambda *args: subprocess.run([sys.executable, "evaluate.py"] + list(args), cwd=REPO,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       universal_newlines=True, timeout=300)
    shown = run("--help")
    assert shown.returncode == 0 and "--model-dir" in shown.stdout and "--json" in shown.stdout
    failed = run("--model-dir", str(tmp_path), "--data", str(tmp_path / "missing.tfrecords"))
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        "error: data file %s not found (make it with `make data` or multi_mnist.py)"
        % (tmp_path / "missing.tfrecords")]
    out_json = tmp_path / "r.json"
    for flag, value in (("--samples", "0"), ("--importance-samples", "-2")):
        failed = run("--model-dir", str(tmp_path), "--data", str(tmp_path / "missing.tfrecords"),
                     flag, value, "--json", str(out_json))
        assert failed.returncode == 2 and failed.stdout == "" and not out_json.exists()
        assert failed.stderr.strip().splitlines() == [
            "error: argument %s: must be at least 1, got %s" % (flag, value)]
