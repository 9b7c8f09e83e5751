"""The shipped model/ counts digits on held-out images it has never seen, on this stack, and
reproduces the count and box figures of its committed evaluation.json (and, on 3-digit images
it was not trained for, of extrapolation.json).

One held-out set is generated with a seed other than the default, from MNIST test digits only,
so neither its digits nor its layouts were seen in training. The other is the default held-out
set regenerated (multi_mnist.py's defaults, seed 0: its test records do not depend on the size
of the training split), on which model/evaluation.json was computed.
"""
import json
import os

import numpy as np
import pytest

from conftest import REPO, generate_multi_mnist

MODEL_DIR = os.path.join(REPO, "model")
REPORT_KEYS = ("images", "count_accuracy", "count_accuracy_by_digits", "confusion", "mean_iou",
               "box_recall_iou50", "window_height", "true_digit_height", "elbo", "elbo_stderr",
               "elbo_monte_carlo_stderr", "elbo_samples", "log_likelihood_iwae",
               "log_likelihood_iwae_stderr", "iwae_samples", "z_pres_prior_log_odds", "seed",
               "elbo_by_outcome", "plugin_elbo_at_means")


@pytest.fixture(scope="module")
def fresh_heldout(mnist_dir, tmp_path_factory):
    out = generate_multi_mnist(mnist_dir, str(tmp_path_factory.mktemp("fresh_heldout")),
                               images_per_digit=1, test_set_size=300, seed=2027)
    return os.path.join(out, "test.tfrecords")


@pytest.fixture(scope="module")
def default_heldout(mnist_dir, tmp_path_factory):
    """The default data set's held-out records, regenerated (no training images needed)."""
    out = generate_multi_mnist(mnist_dir, str(tmp_path_factory.mktemp("default_heldout")),
                               images_per_digit=0, test_set_size=1000, seed=0)
    return os.path.join(out, "test.tfrecords")


@pytest.fixture(scope="module")
def three_digit_heldout(mnist_dir, tmp_path_factory):
    """The 3-digit images sweep.py's trials are counted on (seed 3, MNIST test digits),
    regenerated, on which model/extrapolation.json was computed."""
    out = generate_multi_mnist(mnist_dir, str(tmp_path_factory.mktemp("three_digits")),
                               images_per_digit=0, test_set_size=500, seed=3,
                               extra=["--min-digits", "3", "--max-digits", "3"])
    return os.path.join(out, "test.tfrecords")


# The deterministic figures of evaluation.json (test mode: z_pres rounded, posterior means).
# Its sampled ELBO and IWAE keys are checked below and in tests/evaluation/test_likelihood.py.
COUNT_AND_BOX_KEYS = ("images", "count_accuracy", "count_accuracy_by_digits", "confusion",
                      "mean_iou", "box_recall_iou50")


def test_evaluation_json_is_reproduced_on_the_default_heldout_set(default_heldout):
    import evaluate
    with open(os.path.join(MODEL_DIR, "evaluation.json")) as f:
        committed = json.load(f)
    # The sampled figures are not compared here: one sample of the ELBO keeps this test short.
    report, _, _ = evaluate.evaluate(MODEL_DIR, default_heldout, batch_size=500, elbo_samples=1)
    for key in ("images", "confusion"):
        assert report[key] == committed[key], key
    for key in ("count_accuracy", "mean_iou", "box_recall_iou50"):
        # Counts are integers; IoU sums float32 boxes of two TensorFlow builds.
        assert report[key] == pytest.approx(committed[key], abs=1e-4), key
    assert report["count_accuracy_by_digits"] == pytest.approx(
        committed["count_accuracy_by_digits"], abs=1e-6)
    assert set(COUNT_AND_BOX_KEYS) <= set(report)


def test_extrapolation_json_is_reproduced_on_three_digit_images(three_digit_heldout):
    """Trained on 0-2 digits, counted with one step more than the largest count (max_steps 4),
    as the sweep's trials are."""
    import evaluate
    with open(os.path.join(MODEL_DIR, "extrapolation.json")) as f:
        committed = json.load(f)
    report, _, _ = evaluate.evaluate(MODEL_DIR, three_digit_heldout, elbo_samples=1,
                                     max_steps=4)
    assert report["images"] == committed["images"] == 500
    assert report["confusion"] == committed["confusion"]
    assert len(report["confusion"][0]) == 5  # found: 0 to 4 objects
    for key in ("count_accuracy", "mean_iou", "box_recall_iou50"):
        assert report[key] == pytest.approx(committed[key], abs=1e-4), key


def test_shipped_model_counts_fresh_heldout_digits(fresh_heldout):
    import evaluate
    # Counts only: one sample of the ELBO keeps this test short.
    report, _, step = evaluate.evaluate(MODEL_DIR, fresh_heldout, batch_size=100, elbo_samples=1)
    assert report["images"] == 300
    assert step is not None and step >= 60000
    assert report["count_accuracy"] >= 0.97, report
    for digits in ("0", "1", "2"):
        assert report["count_accuracy_by_digits"][digits] >= 0.95, report


def test_shipped_model_folder_is_complete_and_small():
    names = os.listdir(MODEL_DIR)
    assert {"checkpoint", "config.json", "evaluation.json"} <= set(names)
    assert not any(name.endswith(".meta") for name in names)
    size = sum(os.path.getsize(os.path.join(MODEL_DIR, name)) for name in names)
    assert size <= 20 * 1024 * 1024
    with open(os.path.join(MODEL_DIR, "evaluation.json")) as f:
        evaluation = json.load(f)
    assert list(evaluation) == list(REPORT_KEYS)
    assert evaluation["images"] == 1000 and evaluation["count_accuracy"] >= 0.985
    # Written with enough samples for the figures the README's results table quotes.
    assert evaluation["elbo_samples"] >= 100 and evaluation["iwae_samples"] >= 100
    assert evaluation["elbo_monte_carlo_stderr"] < 0.5
    assert evaluation["z_pres_prior_log_odds"] == pytest.approx(np.log(1e-9), abs=1e-4)
    # The bound on log p(x) lies above the ELBO; the plug-in value is no bound at all.
    assert evaluation["elbo"] < evaluation["log_likelihood_iwae"] < 0
    assert evaluation["plugin_elbo_at_means"] > evaluation["elbo"]


def test_shipped_model_has_no_optimiser_slots():
    import tensorflow.compat.v1 as tf
    from air.training.checkpoints import find_checkpoint
    checkpoint, _ = find_checkpoint(MODEL_DIR)
    names = [name for name, _ in tf.train.list_variables(checkpoint)]
    assert "global_step" in names
    assert not any("Adam" in name or "power" in name for name in names)
