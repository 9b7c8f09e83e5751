"""air/training/optimization.py: a non-finite loss or gradient leaves every weight and Adam slot as it
was, is counted once, and the global step still advances; finite updates go through."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.config import AIRConfig
from air.training.optimization import build_train_op


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_v2_behavior()


class TinyProblem:
    """A two-weight problem whose loss is chosen per run through a feed.

    ``loss = min(sum(w * x), cap)``: x = [1, 2] gives a finite loss and gradient; x with a NaN
    gives a NaN loss; x = [inf, 1] with cap 1 gives a finite loss (1) but a NaN gradient
    (the minimum's zero upstream gradient times inf).
    """

    def __init__(self):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.weights = tf.get_variable("w", initializer=np.array([0.5, -0.25], np.float32))
            self.x = tf.placeholder(tf.float32, [2])
            self.cap = tf.placeholder_with_default(np.float32(1e9), [])
            loss = tf.minimum(tf.reduce_sum(self.weights * self.x), self.cap)
            self.global_step = tf.train.get_or_create_global_step()
            self.ops = build_train_op(loss, AIRConfig(learning_rate=0.1), self.global_step,
                                      [self.weights])
            self.loss = loss
            self.session = tf.Session(graph=self.graph)
            self.session.run(tf.global_variables_initializer())

    def state(self):
        """Every variable's value: weights, Adam slots and powers, step, skip counter."""
        with self.graph.as_default():
            variables = tf.global_variables()
        return {v.op.name: value for v, value in zip(variables, self.session.run(variables))}

    def step(self, x, cap=None):
        feed = {self.x: np.asarray(x, np.float32)}
        if cap is not None:
            feed[self.cap] = np.float32(cap)
        return self.session.run([self.ops.train_op, self.ops.update_is_finite, self.loss], feed)


def assert_same_state(before, after, except_names=()):
    for name, value in before.items():
        if name not in except_names:
            np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_nan_loss_changes_no_weight_counts_one_skip_and_advances_the_step():
    problem = TinyProblem()
    problem.step([1.0, 2.0])  # one real update first, so the Adam slots are not all zero
    before = problem.state()
    assert before["skipped_updates"] == 0 and before["global_step"] == 1
    _, finite, loss = problem.step([np.nan, 2.0])
    after = problem.state()
    assert not finite and np.isnan(loss)
    assert_same_state(before, after, except_names=("global_step", "skipped_updates"))
    assert after["skipped_updates"] == 1
    assert after["global_step"] == 2  # the annealing schedules stay on time
    # Adam's slots exist and were left alone (the comparison above covered them).
    assert any(name.endswith("/Adam") for name in after)
    assert any(name.endswith("/Adam_1") for name in after)


def test_finite_loss_with_a_nan_gradient_is_skipped_too():
    problem = TinyProblem()
    before = problem.state()
    _, finite, loss = problem.step([np.inf, 1.0], cap=1.0)
    assert loss == 1.0 and not finite
    after = problem.state()
    assert_same_state(before, after, except_names=("global_step", "skipped_updates"))
    assert after["skipped_updates"] == 1 and after["global_step"] == 1


def test_finite_updates_apply_and_the_counter_keeps_its_count():
    problem = TinyProblem()
    problem.step([np.nan, 0.0])
    problem.step([np.nan, 0.0])
    before = problem.state()
    _, finite, _ = problem.step([1.0, 2.0])
    after = problem.state()
    assert finite
    # Adam's first step moves each weight by the learning rate against its gradient's sign.
    np.testing.assert_allclose(after["w"], before["w"] - 0.1 * np.sign([1.0, 2.0]), atol=1e-6)
    assert after["skipped_updates"] == 2 and after["global_step"] == 3
