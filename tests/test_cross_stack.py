"""The two stacks agree: a training run continues on the other stack with its global step and
Adam state, and the same seed generates byte-identical data on both.

The other stack's interpreter comes from AIR_OTHER_PYTHON (.ci/run sets it on both stacks);
without it these tests skip, or fail in CI (conftest.require).
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import multi_mnist
import training
from conftest import REPO, TINY, latest_step, other_python

SUBPROCESS_TIMEOUT = 900  # seconds: TensorFlow's start-up alone can take a minute under load
ADAM_BETA2 = 0.999


def run_other(python, script, *args):
    """Runs a repository script with the other stack's Python; returns (stdout, stderr)."""
    result = subprocess.run([python, os.path.join(REPO, script)] + list(args), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 0, "%s with %s failed:\n%s%s" % (
        script, python, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout, result.stderr


def other_tensorflow_version(python):
    """The TensorFlow version of the other interpreter (it must differ from this one's)."""
    return subprocess.run(
        [python, "-c", "import tensorflow as tf; print(tf.__version__)"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
        timeout=SUBPROCESS_TIMEOUT, check=True).stdout.strip()


def checkpoint_values(results_dir):
    """{variable name: value} of the newest checkpoint of a results folder."""
    checkpoint = tf.train.latest_checkpoint(os.path.join(results_dir, "model"))
    reader = tf.train.load_checkpoint(checkpoint)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(checkpoint)}


def test_other_stack_is_another_tensorflow():
    other = other_python()
    import tensorflow
    assert other_tensorflow_version(other) != tensorflow.__version__


def test_training_resumes_on_the_other_stack(small_data_dir, tmp_path, capsys):
    """100 iterations here, then --resume there for 100 more, from the same results folder."""
    other = other_python()
    results = str(tmp_path / "run")
    flags = ["--data-dir", small_data_dir, "--results-dir", results, "--seed", "5",
             "--eval-every", "100", "--save-every", "100", "--eval-batch-size", "90",
             "--progress-seconds", "600", "--scalars-every", "0", "--variables-every", "0",
             "--images-every", "0", "--gradients-every", "0"] + TINY
    assert training.main(flags + ["--max-iterations", "100"]) == 0
    capsys.readouterr()
    first = checkpoint_values(results)
    assert first["global_step"] == 100

    out, _ = run_other(other, "training.py", *(flags + ["--max-iterations", "200", "--resume"]))
    assert "resumed from %s" % os.path.join(results, "model", "model.ckpt-100") in out
    assert "finished 200 iterations" in out
    assert latest_step(results) == 200
    second = checkpoint_values(results)
    assert sorted(second) == sorted(first)
    # Adam's powers count every update of both sessions: restarted ones would count 100.
    powers = {name.rsplit("/", 1)[-1]: value for name, value in second.items()
              if name.endswith("_power")}
    assert powers["beta1_power"] == pytest.approx(0.9 ** 201, rel=1e-4)
    assert powers["beta2_power"] == pytest.approx(ADAM_BETA2 ** 201, rel=1e-4)
    # The second-moment slots carried over: v only decays by beta2 per step and adds squares,
    # so after 100 more steps no entry is below beta2^100 times its saved value.
    slots = [name for name in first if name.endswith("/Adam_1")]
    assert slots
    for name in slots:
        floor = ADAM_BETA2 ** 100 * first[name].astype(np.float64)
        assert np.all(second[name] >= floor * (1 - 1e-4) - 1e-30), name
    # The weights moved on the other stack.
    assert any(not np.array_equal(first[n], second[n]) for n in first if "Adam" not in n
               and n.startswith("air/"))


def test_same_seed_gives_the_same_bytes_on_both_stacks(mnist_dir, tmp_path):
    other = other_python()
    flags = ["--mnist-dir", mnist_dir, "--images-per-digit", "40", "--test-set-size", "30",
             "--seed", "17", "--workers", "1", "--quiet"]
    here, there = str(tmp_path / "here"), str(tmp_path / "there")
    assert multi_mnist.main(flags + ["--output-dir", here]) == 0
    run_other(other, "multi_mnist.py", *(flags + ["--output-dir", there]))
    for name in ("train.tfrecords", "test.tfrecords"):
        with open(os.path.join(here, name), "rb") as a, open(os.path.join(there, name), "rb") as b:
            mine, theirs = a.read(), b.read()
        assert len(mine) > 30 * 50 * 50 * 4  # real records, not an empty file on both sides
        assert mine == theirs, name
