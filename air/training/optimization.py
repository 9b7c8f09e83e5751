"""The training op: Adam on the loss, gradients clipped by global norm, non-finite updates skipped."""
import collections

import tensorflow.compat.v1 as tf

TrainOps = collections.namedtuple("TrainOps", [
    "train_op",         # applies one update (or skips it) and increments the global step
    "gradients",        # [(clipped gradient, variable)]
    "gradient_norm",    # global norm before clipping
    "update_is_finite",  # bool: loss and gradient norm were finite, so the update was applied
    "skipped_updates",  # int64 variable: how many updates were skipped so far
    "learning_rate",    # what Adam is given: the config's number, or its schedule's tensor
])


def learning_rate(config, global_step):
    """Adam's learning rate at the global step: ``learning_rate``, times
    ``learning_rate_decay`` per ``learning_rate_decay_steps`` iterations past
    ``learning_rate_decay_start`` (smoothly, every iteration a little). The global step is in
    the checkpoint, so a resumed run continues the schedule. Without a decay, the number itself
    (the graph of a constant learning rate)."""
    if config.learning_rate_decay == 1.0:
        return config.learning_rate
    past_start = tf.maximum(
        tf.cast(global_step, tf.float32) - config.learning_rate_decay_start, 0.0)
    return config.learning_rate * tf.pow(
        config.learning_rate_decay, past_start / config.learning_rate_decay_steps)


def build_train_op(loss, config, global_step, variables=None):
    """Takes the scalar loss to the ops of one Adam step (see ``TrainOps``).

    A non-finite loss or gradient never reaches the weights: the update is replaced by a
    no-op and ``skipped_updates`` counts it; the global step advances either way so that
    the annealing schedules stay on time.
    """
    variables = variables if variables is not None else tf.trainable_variables()
    rate = learning_rate(config, global_step)
    optimizer = tf.train.AdamOptimizer(rate)
    gradients = tf.gradients(loss, variables)
    clipped, gradient_norm = tf.clip_by_global_norm(gradients, config.gradient_clip_norm)
    update_is_finite = tf.logical_and(tf.is_finite(loss), tf.is_finite(gradient_norm))
    skipped_updates = tf.get_variable("skipped_updates", [], tf.int64,
                                      initializer=tf.zeros_initializer(), trainable=False)
    pairs = list(zip(clipped, variables))

    def apply():
        with tf.control_dependencies([optimizer.apply_gradients(pairs)]):
            return tf.identity(skipped_updates.read_value())

    def skip():
        return tf.assign_add(skipped_updates, 1)

    applied = tf.cond(update_is_finite, apply, skip)
    with tf.control_dependencies([applied]):
        train_op = tf.assign_add(global_step, 1)
    return TrainOps(train_op=train_op, gradients=pairs, gradient_norm=gradient_norm,
                    update_is_finite=update_is_finite, skipped_updates=skipped_updates,
                    learning_rate=rate)


def build_objective_train_op(objective, config, global_step):
    """The TrainOps of a model's training objective (air/model/z_pres.py: Objective).

    Without a baseline this is ``build_train_op`` of the loss. An estimator with a baseline
    (NVIL) has its own Adam with its own learning rate on the baseline's loss, and statistics
    to store; both run in the same iteration as the model's update, the baseline's update only
    when its loss is finite.
    """
    if objective.baseline_loss is None:
        return build_train_op(objective.loss, config, global_step)
    baseline_variables = set(objective.baseline_variables)
    model_variables = [v for v in tf.trainable_variables() if v not in baseline_variables]
    ops = build_train_op(objective.loss, config, global_step, model_variables)
    optimizer = tf.train.AdamOptimizer(objective.baseline_learning_rate, name="BaselineAdam")
    variables = list(objective.baseline_variables)
    gradients = tf.gradients(objective.baseline_loss, variables)

    def apply():
        with tf.control_dependencies([optimizer.apply_gradients(zip(gradients, variables))]):
            return tf.no_op()

    baseline_step = tf.cond(tf.is_finite(objective.baseline_loss), apply, tf.no_op)
    with tf.control_dependencies([baseline_step] + list(objective.updates)):
        train_op = tf.identity(ops.train_op)
    return ops._replace(train_op=train_op)
