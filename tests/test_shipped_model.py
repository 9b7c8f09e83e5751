"""The shipped model/ counts digits on held-out images it has never seen, on this stack.

The held-out set is generated here with a seed other than the default, from MNIST test digits
only, so neither its digits nor its layouts were seen in training.
"""
import json
import os

import pytest

from conftest import REPO, generate_multi_mnist

MODEL_DIR = os.path.join(REPO, "model")


@pytest.fixture(scope="module")
def fresh_heldout(mnist_dir, tmp_path_factory):
    out = generate_multi_mnist(mnist_dir, str(tmp_path_factory.mktemp("fresh_heldout")),
                               images_per_digit=1, test_set_size=300, seed=2027)
    return os.path.join(out, "test.tfrecords")


def test_shipped_model_counts_fresh_heldout_digits(fresh_heldout):
    import evaluate
    report, _, step = evaluate.evaluate(MODEL_DIR, fresh_heldout, batch_size=100)
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
    assert set(evaluation) == {"images", "count_accuracy", "count_accuracy_by_digits",
                               "confusion", "mean_iou", "box_recall_iou50", "elbo"}
    assert evaluation["images"] == 1000 and evaluation["count_accuracy"] >= 0.985


def test_shipped_model_has_no_optimiser_slots():
    import tensorflow.compat.v1 as tf
    from air.checkpoints import find_checkpoint
    checkpoint, _ = find_checkpoint(MODEL_DIR)
    names = [name for name, _ in tf.train.list_variables(checkpoint)]
    assert "global_step" in names
    assert not any("Adam" in name or "power" in name for name in names)
