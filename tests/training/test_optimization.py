"""air/training/optimization.py: a non-finite loss or gradient leaves every weight and Adam slot as it
was, is counted once, and the global step still advances; finite updates go through; the
learning rate Adam is given follows the decay schedule, also after a resume."""
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


# --- The learning-rate decay ---------------------------------------------------------------

DECAY = AIRConfig(learning_rate=0.1, learning_rate_decay=0.5, learning_rate_decay_start=20000,
                  learning_rate_decay_steps=10000)


def expected_rate(config, step):
    """The documented schedule, written out: the rate times the factor per span of steps past
    the start, smoothly."""
    past = max(step - config.learning_rate_decay_start, 0)
    return config.learning_rate * config.learning_rate_decay ** (
        past / float(config.learning_rate_decay_steps))


def one_weight_graph(config):
    """A weight at 0 (so that float32 keeps a small move's digits) whose loss has gradient
    2.5, the global step, and their TrainOps, in the current default graph."""
    weight = tf.get_variable("w", initializer=np.float32(0.0))
    global_step = tf.train.get_or_create_global_step()
    return weight, global_step, build_train_op(2.5 * weight, config, global_step, [weight])


def first_update(config, step, checkpoint=None):
    """How far one Adam update moves the weight of ``one_weight_graph`` at global step
    ``step`` (or at the step of ``checkpoint``, restored as a resumed run does), the learning
    rate tensor's value (None for a number) and the step after: Adam's first step moves each
    weight by the learning rate it is given, whatever the gradient's size."""
    with tf.Graph().as_default():
        weight, global_step, ops = one_weight_graph(config)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            if checkpoint is not None:
                tf.train.Saver().restore(session, checkpoint)
            else:
                session.run(tf.assign(global_step, step))
            rate = session.run(ops.learning_rate) if config.learning_rate_decay != 1 else None
            session.run(ops.train_op)
            return -session.run(weight), rate, session.run(global_step)


@pytest.mark.parametrize("step", [0, 19999, 20000, 25000, 30000, 45000, 120000])
def test_the_learning_rate_adam_uses_follows_the_decay_schedule(step):
    moved, rate, after = first_update(DECAY, step)
    assert moved == pytest.approx(expected_rate(DECAY, step), rel=1e-4)
    assert rate == pytest.approx(expected_rate(DECAY, step), rel=1e-5)
    assert after == step + 1
    # The rate before the start, half of it one span past it, a quarter two spans past it.
    assert [expected_rate(DECAY, s) for s in (19999, 30000, 40000)] == pytest.approx(
        [0.1, 0.05, 0.025])


def test_without_a_decay_the_learning_rate_is_the_number_at_every_step():
    config = AIRConfig(learning_rate=0.1)
    for step in (0, 50000):
        moved, rate, _ = first_update(config, step)
        assert moved == pytest.approx(0.1, rel=1e-4) and rate is None
    with tf.Graph().as_default():
        # A number: the graph of a constant learning rate.
        assert one_weight_graph(config)[2].learning_rate == 0.1


def test_a_resumed_run_continues_the_schedule_from_its_checkpoints_step(tmp_path):
    with tf.Graph().as_default():
        _, global_step, _ = one_weight_graph(DECAY)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(tf.assign(global_step, 35000))
            checkpoint = tf.train.Saver().save(session, str(tmp_path / "model.ckpt"))
    moved, rate, after = first_update(DECAY, None, checkpoint)
    assert after == 35001
    assert moved == pytest.approx(expected_rate(DECAY, 35000), rel=1e-4)
    assert rate == pytest.approx(0.1 * 0.5 ** 1.5, rel=1e-5)
