"""Shared pytest fixtures, and the CI rule that a missing test dependency is a failure.

MNIST comes from ``../shared/mnist`` next to the repository (the CI layout), or from the folder named
by the ``MNIST_DIR`` environment variable.

With ``AIR_CI`` set (``.ci/run`` sets it), ``require`` fails the test instead of skipping it,
and any skip that happens anyway (say an ``importorskip``) is reported as a failure: in CI
every test runs.
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # Make `import air` and the top-level scripts work under plain `pytest`.
    sys.path.insert(0, REPO)


IN_CI = bool(os.environ.get("AIR_CI"))


def require(available, what):
    """Skips the calling test when ``available`` is false (fails it in CI), naming ``what``."""
    if not available:
        if IN_CI:
            pytest.fail("missing test dependency in CI (AIR_CI is set): %s" % what)
        pytest.skip("missing: %s" % what)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped test is a failed one: nothing may pass by not running."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = "skipped in CI (AIR_CI is set), which counts as a failure: %s" % reason


# training.py flags of a small model, so that a test's runs spend their time in start-up, not in
# training; without the gradient-noise probe (its own graph and draws at every evaluation), which
# the tests of the probe ask for by a later --gradient-variance-draws.
TINY = ["--rnn-units", "16", "--vae-latent", "4", "--vae-recognition-units", "16",
        "--vae-generative-units", "16", "--z-where-hidden-units", "8",
        "--z-pres-hidden-units", "8", "--batch-size", "8", "--gradient-variance-draws", "0"]


# AIRConfig fields of a small graph, its sizes all different, so that structural tests build
# and run in a moment (``tiny_config``).
TINY_MODEL = dict(canvas_height=24, canvas_width=24, window_size=8, rnn_units=16, vae_latent=4,
                  vae_recognition_units=(16,), vae_generative_units=(12,),
                  z_where_hidden_units=8, z_pres_hidden_units=6, batch_size=4)


def tiny_config(**changes):
    """The AIRConfig of TINY_MODEL with ``changes``."""
    from air.config import AIRConfig
    return AIRConfig(**dict(TINY_MODEL, **changes))


def latest_step(results_dir):
    """The global step of the newest checkpoint of a results folder."""
    from air.training import checkpoints
    checkpoint, _ = checkpoints.find_checkpoint(os.path.join(results_dir, "model"))
    return checkpoints.checkpoint_step(checkpoint)


def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return "http://127.0.0.1:%d/" % port


def other_python():
    """The other stack's interpreter (AIR_OTHER_PYTHON); skips, or fails in CI, without it."""
    path = os.environ.get("AIR_OTHER_PYTHON") or ""
    require(path != "", "AIR_OTHER_PYTHON (the other stack's Python) is not set")
    require(os.access(path, os.X_OK), "AIR_OTHER_PYTHON=%s is not an executable" % path)
    return path


def evaluate_in_graph(build, *arrays):
    """Builds ``build(*float32 constants)`` in a fresh graph and returns its numpy value(s)."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default():
        tensors = [tf.constant(np.asarray(a, np.float32)) for a in arrays]
        fetches = build(*tensors)
        with tf.Session() as session:
            return session.run(fetches)


@pytest.fixture(scope="session")
def mnist_dir():
    """Folder holding the four MNIST .gz files (read-only: tests copy what they alter)."""
    path = os.environ.get("MNIST_DIR") or os.path.join(REPO, "..", "shared", "mnist")
    path = os.path.abspath(path)
    missing = [name for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
               if not any(os.path.isfile(os.path.join(path, name + ext)) for ext in (".gz", ""))]
    if missing:
        pytest.fail("MNIST files %s not found in %s (set MNIST_DIR)" % (", ".join(missing), path))
    return path


@pytest.fixture(scope="session")
def mnist_data(mnist_dir):
    """The verified MNIST arrays (air.data.mnist.Mnist), loaded once per test session."""
    from air.data import mnist
    return mnist.load(mnist_dir, mirrors=())


@pytest.fixture(scope="session")
def small_data_dir(mnist_dir, tmp_path_factory):
    """A small multi-MNIST set (300 training, 90 held-out images), generated once per session."""
    return generate_multi_mnist(mnist_dir, str(tmp_path_factory.mktemp("small_multi_mnist")),
                                images_per_digit=100, test_set_size=90, seed=123)


def generate_multi_mnist(mnist_dir, out, images_per_digit, test_set_size, seed, extra=()):
    """Runs multi_mnist.py (one worker, quiet, then the flags ``extra``) into ``out``; returns
    ``out``."""
    import multi_mnist
    code = multi_mnist.main(["--mnist-dir", mnist_dir, "--output-dir", out,
                             "--images-per-digit", str(images_per_digit),
                             "--test-set-size", str(test_set_size),
                             "--seed", str(seed), "--workers", "1", "--quiet"] + list(extra))
    assert code in (0, None)
    return out


@pytest.fixture(scope="session")
def small_results_dir(small_data_dir, tmp_path_factory):
    """A results folder of a 30-iteration training run of the default configuration.

    Its ``model/`` (checkpoint + config.json) is what the demo, embeddings and evaluation
    tests load; the weights are barely trained, so tests check behaviour, not accuracy.
    """
    import training
    out = str(tmp_path_factory.mktemp("small_results"))
    code = training.main(["--data-dir", small_data_dir, "--results-dir", out,
                          "--max-iterations", "30", "--eval-every", "15", "--save-every", "15",
                          "--seed", "7", "--progress-seconds", "60"])
    assert code == 0
    return out
