"""The training op: Adam on the loss, gradients clipped by global norm, non-finite updates skipped."""
import collections

import tensorflow.compat.v1 as tf

TrainOps = collections.namedtuple("TrainOps", [
    "train_op",         # applies one update (or skips it) and increments the global step
    "gradients",        # [(clipped gradient, variable)]
    "gradient_norm",    # global norm before clipping
    "update_is_finite",  # bool: loss and gradient norm were finite, so the update was applied
    "skipped_updates",  # int64 variable: how many updates were skipped so far
])


def build_train_op(loss, config, global_step, variables=None):
    """Takes the scalar loss to the ops of one Adam step (see ``TrainOps``).

    A non-finite loss or gradient never reaches the weights: the update is replaced by a
    no-op and ``skipped_updates`` counts it; the global step advances either way so that
    the annealing schedules stay on time.
    """
    variables = variables if variables is not None else tf.trainable_variables()
    optimizer = tf.train.AdamOptimizer(config.learning_rate)
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
                    update_is_finite=update_is_finite, skipped_updates=skipped_updates)
