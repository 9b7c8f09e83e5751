"""The training graph and the test-mode graph stay numerically identical when the model changes.

The default configuration on a fixed batch with fixed seeds (``AIRModel(..., seed=7)`` after
``tf.set_random_seed(1)``, the prior at iteration 5000): the training loss, the global gradient
norm and the test-mode negative ELBO per image, pinned to the values this code gave before the
sampled discrete mode was added (issue 13). Unseeded random ops (the weight initialisers) take
their seed from the op count, so creating one op more or in another order before them moves
every number here. The two stacks draw different random numbers, so each has its own values
(TF 1.15.5 on Python 3.7, TF 2.21 on Python 3.11).
"""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.model.air_model import AIRModel
from air.config import AIRConfig
from air.training.optimization import build_train_op

# {TensorFlow major version: (loss, gradient global norm, test-mode negative ELBO per image)},
# at iteration 5,000 with the first default's window-scale prior mean and z_pres annealing (-1.0
# and a decade every 3,000 iterations, the original's); PINNED_DEFAULT has the same graph with
# the current default's -0.4 and 2,000 (pinned on the Intel Xeon named below).
PINNED = {
    "1": (1433.524780, 1807.213135,
          [2.0041847229003906, 2019.2662353515625, 6526.71923828125, 2.0041847229003906,
           1922.4110107421875, 7684.826171875, 2.0041847229003906, 1991.43359375]),
    "2": (1534.694580, 8474.659180,
          [2.026373863220215, 3898.667236328125, 8457.3740234375, 2.026373863220215,
           1922.37939453125, 3911.969482421875, 2.026373863220215, 9415.16015625]),
}
PINNED_DEFAULT = {
    "1": (1416.146240, 1785.069092,
          [1.0699009895324707, 2018.26171875, 6512.458984375, 1.0699009895324707,
           1921.458251953125, 7668.9736328125, 1.0699009895324707, 1990.500244140625]),
    "2": (1515.300781, 8453.628906,
          [1.0841819047927856, 3879.605712890625, 8426.560546875, 1.0841819047927856,
           1921.43798828125, 3910.97265625, 1.0841819047927856, 9384.8544921875]),
}
# A changed graph moves these numbers by whole nats. The CPU's vector instructions choose the
# order of float sums in TensorFlow's kernels: pinned on AMD EPYC (AVX2), an Intel Xeon with
# AVX-512 gave the same loss to the last digit, the test-mode ELBO within 6e-7 and the gradient
# norm within 7e-5 (relative, both stacks). So the loss and ELBO are held to 1e-5 (0.02 nats at
# these values) and the norm, a sum of squares over every gradient, to 1e-3.
RELATIVE_TOLERANCE = 1e-5
GRADIENT_NORM_TOLERANCE = 1e-3


def pinned_batch():
    """The fixed batch [8, 50, 50]: 0, 1 or 2 random 20x14 binary blocks per image."""
    rng = np.random.RandomState(0)
    images = np.zeros((8, 50, 50), np.float32)
    for i in range(8):
        for _ in range(i % 3):
            y, x = rng.randint(0, 30, 2)
            images[i, y:y + 20, x:x + 14] = rng.rand(20, 14) > 0.5
    return images


def pinned_training(config):
    """In the current graph: the seeds, the global step, the pinned batch, the training model and
    its train op, in that order (unseeded initialisers take their seeds from the op count)."""
    tf.set_random_seed(1)
    step = tf.train.get_or_create_global_step()
    images = tf.constant(pinned_batch())
    model = AIRModel(images, config, training=True, seed=7, global_step=step)
    return images, step, model, build_train_op(model.loss, config, step)


def pinned_values(config):
    """Builds training model, train op and test model in that order; returns their numbers."""
    tf.disable_v2_behavior()
    with tf.Graph().as_default():
        images, step, model, train_ops = pinned_training(config)
        test_model = AIRModel(images, config, training=False, global_step=step)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(tf.assign(step, 5000))
            return session.run([model.loss, train_ops.gradient_norm, test_model.negative_elbo])


FIRST_DEFAULT = dict(scale_prior_mean=-1.0, z_pres_prior_odds_decay_steps=3000)


@pytest.mark.parametrize("changes,pinned", [(FIRST_DEFAULT, PINNED), ({}, PINNED_DEFAULT)])
def test_training_loss_gradient_norm_and_test_mode_are_unchanged(changes, pinned):
    expected_loss, expected_norm, expected_test = pinned[tf.__version__.split(".")[0]]
    loss, norm, test_negative_elbo = pinned_values(AIRConfig(**changes))
    assert loss == pytest.approx(expected_loss, rel=RELATIVE_TOLERANCE)
    assert norm == pytest.approx(expected_norm, rel=GRADIENT_NORM_TOLERANCE)
    np.testing.assert_allclose(test_negative_elbo, expected_test, rtol=RELATIVE_TOLERANCE)


def losses_of_training_steps(threads, steps=5):
    """The training loss of ``steps`` Adam steps on the pinned batch, ``threads`` TF threads."""
    tf.disable_v2_behavior()
    with tf.Graph().as_default():
        _, _, model, train_ops = pinned_training(AIRConfig())
        session_config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                                        inter_op_parallelism_threads=threads)
        with tf.Session(config=session_config) as session:
            session.run(tf.global_variables_initializer())
            return [session.run([model.loss, train_ops.train_op])[0] for _ in range(steps)]


def test_the_thread_count_changes_rounding_only():
    # The study ran its first trials with one thread and later ones with two (docs/study.md): the
    # random draws must not depend on the thread count, only the order of float sums may.
    one_thread, two_threads = losses_of_training_steps(1), losses_of_training_steps(2)
    np.testing.assert_allclose(two_threads, one_thread, rtol=1e-4)
    assert len(set(np.round(one_thread, 1))) == len(one_thread)  # the steps did move the loss
