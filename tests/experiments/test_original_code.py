"""run_original.py and air/experiments/original_bootstrap.py, against tests/experiments/fake_original (a stand-in for the
original project's code with its command line, files, summaries and training loop; the original
itself is not in this repository), and the residue mask against a port of the original's
interpolation."""
import csv
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from air.experiments import original_bootstrap, original_code
from air.data import records
from conftest import REPO, evaluate_in_graph
from support.original_transformer import original_code_transform_tf, residue_case

FAKE = os.path.join(REPO, "tests", "experiments", "fake_original")


def _run(args, timeout=300, cwd=REPO):
    return subprocess.run([sys.executable, os.path.join(REPO, "run_original.py")] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, cwd=cwd)


def _rows(results):
    with open(os.path.join(results, "metrics.csv"), newline="") as f:
        return [{k: float(v) if v else math.nan for k, v in row.items()}
                for row in csv.DictReader(f)]


def test_runs_the_code_on_our_records_and_tabulates_its_summaries(small_data_dir, tmp_path):
    results = str(tmp_path / "run")
    # A relative results folder (the original runs in another working folder).
    done = _run(["--original-dir", FAKE, "--data-dir", small_data_dir, "--results-dir", "run",
                 "--max-iterations", "120", "--table-every", "50"], cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "original: ended at iteration 120 (reached iteration 120)" in done.stderr
    assert "3 test-set summaries, last at iteration 100" in done.stdout
    rows = _rows(results)
    # The fake writes summaries every 50 iterations, digit_acc_all_dig = min(1, step / 1000),
    # and the record counts of the two files it read under the original's names.
    assert [r["iteration"] for r in rows] == [0, 50, 100]
    np.testing.assert_allclose([r["heldout_accuracy"] for r in rows], [0.0, 0.05, 0.1], rtol=1e-6)
    np.testing.assert_allclose([r["heldout_accuracy_0"] for r in rows], [0.0, 0.1, 0.2], rtol=1e-6)
    counts = [len(records.read_records(os.path.join(small_data_dir, name)).digits)
              for name in ("train.tfrecords", "test.tfrecords")]
    assert [rows[0]["heldout_accuracy_1"], rows[0]["heldout_accuracy_2"]] == counts
    # log(1 - p + 1e-9) at p = 1, summed over 4 pixels: finite with the session patched.
    np.testing.assert_allclose(rows[0]["original_reconstruction"], -4 * np.log(np.float32(1e-9)),
                               rtol=1e-3)
    assert rows[0]["original_count_0"] == 1.0  # the transformer left alone
    assert math.isnan(rows[0]["original_loss"])  # a summary the run does not write
    with open(os.path.join(results, "summary.md")) as f:
        table = f.read()
    assert "| 50 | 0.050 | 0.100 |" in table and "| 100 | 0.100 | 0.200 |" in table
    with open(os.path.join(results, "original.log")) as f:
        assert "training has ended" in f.read()
    assert sorted(set(os.listdir(os.path.join(results, "code"))) - {"__pycache__"}) == [
        "air", "multi_mnist.py", "multi_mnist_data", "training.py"]
    # The original cannot resume: a second run needs --overwrite; tabulating alone works.
    again = _run(["--original-dir", FAKE, "--data-dir", small_data_dir, "--results-dir", results])
    assert again.returncode == 2 and again.stderr.strip().startswith("error: ")
    assert "--overwrite" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    os.remove(os.path.join(results, "metrics.csv"))
    table_only = _run(["--tabulate-only", "--results-dir", results])
    assert table_only.returncode == 0, table_only.stderr
    assert [(r["iteration"], r["heldout_accuracy"]) for r in _rows(results)] == [
        (r["iteration"], r["heldout_accuracy"]) for r in rows]


def test_mask_reaches_the_transformer_the_model_imported(small_data_dir, tmp_path):
    results = str(tmp_path / "masked")
    done = _run(["--original-dir", FAKE, "--data-dir", small_data_dir, "--results-dir", results,
                 "--max-iterations", "50", "--mask-transformer-residues"])
    assert done.returncode == 0, done.stderr
    # The fake's window samples [-2, 2] of its image: about a quarter keeps all four corners.
    assert 0.1 < _rows(results)[0]["original_count_0"] < 0.3


def test_sigterm_ends_the_run_with_its_summaries_written(small_data_dir, tmp_path):
    results = str(tmp_path / "stopped")
    command = [sys.executable, os.path.join(REPO, "run_original.py"), "--original-dir", FAKE,
               "--data-dir", small_data_dir, "--results-dir", results,
               "--max-iterations", "10000000", "--progress-seconds", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, cwd=REPO)
    try:
        deadline = time.time() + 240
        line = ""
        while time.time() < deadline and "iteration 60/" not in line:
            line = process.stderr.readline()
            assert line or process.poll() is None, process.stdout.read()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "(stopped by SIGTERM)" in err
    assert [r["iteration"] for r in _rows(results)][:2] == [0, 50]


@pytest.mark.parametrize("args, message", [
    (["--original-dir", "/nonexistent"], "does not exist"),
    (["--original-dir", os.path.join(FAKE, "air")], "is not a clone of the original code"),
    (["--original-dir", FAKE, "--data-dir", "/nonexistent"], "train.tfrecords not found"),
    (["--max-iterations", "0"], "--max-iterations"),
    (["--table-every", "75", "--original-dir", FAKE], "multiple of 50"),
    ([], "--original-dir is required"),
    (["--tabulate-only"], "holds no run of the original code"),
])
def test_bad_input_is_one_error_line(small_data_dir, tmp_path, args, message):
    results = str(tmp_path / "out")
    if "--data-dir" not in args:
        args = args + ["--data-dir", small_data_dir]
    done = _run(args + ["--results-dir", results])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not os.path.exists(os.path.join(results, "original"))


def test_tensorflow_2_is_refused_for_code_that_imports_contrib(tmp_path):
    (tmp_path / "air").mkdir()
    (tmp_path / "training.py").write_text("import tensorflow\n")
    (tmp_path / "air" / "vae.py").write_text("import tensorflow.contrib.layers as layers\n")
    original_code.check_tensorflow_version(str(tmp_path), "1.15.5")
    with pytest.raises(original_code.UserError, match=r"air/vae.py\), which TensorFlow 2.21.0"):
        original_code.check_tensorflow_version(str(tmp_path), "2.21.0")
    original_code.check_tensorflow_version(FAKE, "2.21.0")  # the fake needs no tf.contrib


def test_session_config_keeps_the_original_options_and_turns_the_rewrites_off():
    import tensorflow.compat.v1 as tf
    from tensorflow.core.protobuf import rewriter_config_pb2
    given = tf.ConfigProto()
    given.gpu_options.allow_growth = True
    config = original_bootstrap.session_config(tf, given, 3)
    assert config.gpu_options.allow_growth and not given.HasField("graph_options")
    assert config.intra_op_parallelism_threads == config.inter_op_parallelism_threads == 3
    off = rewriter_config_pb2.RewriterConfig.OFF
    rewrites = config.graph_options.rewrite_options
    assert rewrites.arithmetic_optimization == off and rewrites.constant_folding == off
    assert original_bootstrap.session_config(tf, None, 1).intra_op_parallelism_threads == 1


def test_the_original_likelihood_is_finite_under_the_patched_session():
    """log(1 - p + 1e-9) at p = 1, the expression TF 1.15's rewrites turn into -inf."""
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default():
        p_in = tf.placeholder(tf.float32, [None, 4])
        p = tf.maximum(tf.minimum(p_in * 1.0, 1.0), 0.0)
        loss = -tf.reduce_sum(tf.log(1.0 - p + 10e-10), 1)
        config = original_bootstrap.session_config(tf, None, 1)
        with tf.Session(config=config) as session:
            value = session.run(loss, {p_in: np.ones([2, 4], np.float32)})
    np.testing.assert_allclose(value, -4 * np.log(np.float32(1e-9)), rtol=1e-3)


def test_a_training_step_is_told_by_its_global_step_fetch():
    class Named:
        def __init__(self, name):
            self.name = name
    limit = original_bootstrap.TrainingStepLimit(None, 10, 60.0)
    assert limit.global_step_index([Named("air/training/Adam"), Named("air/loss:0"),
                                    Named("air/accuracy:0"), Named("air/global_step:0")]) == 3
    assert limit.global_step_index([Named("air/summaries/Merge:0")]) is None
    assert limit.global_step_index(Named("air/global_step:0")) is None  # not a list
    assert limit.global_step_index([Named("air/global_step_1:0")]) is None


def test_residue_mask_zeroes_exactly_what_the_interpolation_clips():
    """The original's paste (tests/model/test_transformer.py's port) leaves float32 residues where
    its corners are clipped; the mask zeroes those points, keeps the others, and with them the
    likelihood gradient from ink that no window covers."""
    import tensorflow.compat.v1 as tf
    window, scale, shift, inverse, ink = residue_case()

    def original(U, theta, out_size):  # The original's signature: U [B, H, W, C], theta [B, 6].
        return original_code_transform_tf(U[..., 0], tf.reshape(theta, [-1, 2, 3]),
                                           *out_size)[..., None]

    def build(w):
        theta = tf.constant(inverse.reshape(4, 6))
        plain = original(w[..., None], theta, (50, 50))[..., 0]
        masked = original_bootstrap.masked_transformer(tf, original)(
            w[..., None], theta, (50, 50))[..., 0]
        support = original_bootstrap.interpolation_support(tf, 28, 28, theta, (50, 50))[..., 0]
        uncovered = (1.0 - support) * ink
        gradient = tf.gradients(-tf.reduce_sum(uncovered * tf.log(tf.maximum(masked, 0.0) + 1e-9)),
                                w)[0]
        # theta in another shape of the same numbers (the original's box drawing does that).
        support_4d = original_bootstrap.interpolation_support(
            tf, 28, 28, tf.reshape(theta, [2, 2, 2, 3]), (50, 50))[..., 0]
        return plain, masked, support, gradient, support_4d

    plain, masked, support, gradient, support_4d = evaluate_in_graph(build, window)
    np.testing.assert_array_equal(support_4d, support)
    inside = support == 1.0
    assert 0.05 < inside.mean() < 0.5
    np.testing.assert_array_equal(masked[inside], plain[inside])
    assert np.all(masked[~inside] == 0.0)
    assert np.abs(plain[~inside]).max() > 0.0  # there were residues to remove
    assert np.abs(gradient).max() == 0.0
    # The support is where the four corners are in the window: floor(x) >= 0, floor(x) + 1 <= 27.
    for b in range(4):
        x = ((np.linspace(-1, 1, 50) - shift[b, ::-1, None]) / scale[b] + 1.0) * (28 - 1.001) / 2
        rows, columns = [(c >= 0) & (np.floor(c) + 1 <= 27) for c in x]
        np.testing.assert_array_equal(inside[b], rows[:, None] & columns[None, :])
