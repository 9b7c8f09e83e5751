"""The stand-in's model: one weight, the global step and the summaries run_original.py reads.

digit_acc_all_dig rises with the loop's step as min(1, step / 1000), so a test knows every
value; steps_0_dig is the mean of a transformer output whose points reach outside the image
(1 unchanged, less with --mask-transformer-residues); rec_loss_all_dig holds the original's
likelihood term log(1 - p + 1e-9) at p = 1, which TF 1.15's graph rewrites make infinite.
"""
import tensorflow as tf

from .transformer import transformer

v1 = tf.compat.v1


class TinyModel:
    def __init__(self, train_records, test_records):
        self.global_step = v1.get_variable("global_step", shape=[], dtype=tf.int32,
                                           initializer=v1.zeros_initializer(), trainable=False)
        weight = v1.get_variable("weight", shape=[], initializer=v1.zeros_initializer())
        self.loss = tf.square(weight - 1.0)
        self.accuracy = tf.constant(0.0)
        with v1.variable_scope("training"):
            self.training = v1.train.GradientDescentOptimizer(0.1).minimize(
                self.loss, global_step=self.global_step)
        # Fed the loop's step (reading the variable in the run that increments it would race).
        self.step = v1.placeholder(tf.float32, [])
        step = self.step
        canvas = tf.ones([1, 10, 10, 1])
        window = transformer(canvas, tf.constant([[2.0, 0.0, 0.0, 0.0, 2.0, 0.0]]), (10, 10))
        p = tf.minimum(tf.maximum(tf.ones([4]) * (1.0 + 0.0 * weight), 0.0), 1.0)
        likelihood = -tf.reduce_sum(tf.math.log(1.0 - p + 10e-10))
        with v1.variable_scope("summaries"):
            self.summaries = [
                v1.summary.scalar("digit_acc_all_dig", tf.minimum(1.0, step / 1000.0)),
                v1.summary.scalar("digit_acc_0_dig", tf.minimum(1.0, step / 500.0)),
                v1.summary.scalar("digit_acc_1_dig", tf.constant(float(train_records))),
                v1.summary.scalar("digit_acc_2_dig", tf.constant(float(test_records))),
                v1.summary.scalar("steps_0_dig", tf.reduce_mean(window)),
                v1.summary.scalar("rec_loss_all_dig", likelihood),
            ]
