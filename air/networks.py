"""Small building blocks on ``tf.get_variable``: dense layer, MLP, LSTM cell, CNN encoder.

Keras 3 removed ``tf.compat.v1.layers`` and the legacy RNN cells, so the model uses these
instead; variables live in the caller's variable scope and are shared with ``reuse``.
"""
import collections

import tensorflow.compat.v1 as tf

LSTMState = collections.namedtuple("LSTMState", ["cell", "hidden"])


def dense(inputs, units, name, activation=None, use_bias=True):
    """Takes [B, n] inputs to [B, units] = activation(inputs @ W + b)."""
    with tf.variable_scope(name):
        weights = tf.get_variable("weights", [int(inputs.shape[-1]), units],
                                  initializer=tf.glorot_uniform_initializer())
        outputs = tf.matmul(inputs, weights)
        if use_bias:
            outputs += tf.get_variable("biases", [units], initializer=tf.zeros_initializer())
    return activation(outputs) if activation is not None else outputs


def mlp(inputs, hidden_units, output_units, name, activation=tf.nn.relu):
    """Takes [B, n] inputs through ReLU hidden layers to a linear [B, output_units] output."""
    with tf.variable_scope(name):
        hidden = inputs
        for i, units in enumerate(hidden_units):
            hidden = dense(hidden, units, "hidden_%d" % i, activation)
        return dense(hidden, output_units, "output")


class LSTMCell:
    """LSTM whose input is split into a step-invariant part, projected once, and a per-step part.

    AIR feeds the same image to the LSTM at every step; projecting it once per image and
    adding the projection at each step saves (max_steps - 1) of the largest matmuls.
    """

    def __init__(self, units, name="lstm", forget_bias=1.0):
        self.units = units
        self.name = name
        self.forget_bias = forget_bias

    def zero_state(self, batch_size):
        zeros = tf.zeros([batch_size, self.units])
        return LSTMState(cell=zeros, hidden=zeros)

    def project_static(self, static_inputs):
        """Takes the [B, n] step-invariant input to its [B, 4 * units] gate pre-activations."""
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            return dense(static_inputs, 4 * self.units, "static_input", use_bias=False)

    def __call__(self, static_projection, step_inputs, state):
        """Takes (projected static input, [B, m] step input, state) to (output, new state)."""
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            gates = static_projection + dense(
                tf.concat([step_inputs, state.hidden], axis=1), 4 * self.units, "step_input")
            input_gate, candidate, forget_gate, output_gate = tf.split(gates, 4, axis=1)
            cell = (tf.sigmoid(forget_gate + self.forget_bias) * state.cell
                    + tf.sigmoid(input_gate) * tf.tanh(candidate))
            hidden = tf.sigmoid(output_gate) * tf.tanh(cell)
        return hidden, LSTMState(cell=cell, hidden=hidden)


def cnn_encoder(images, filters, name="cnn_encoder"):
    """Takes [B, H, W] images through 5x5 stride-2 ReLU convolutions to flat [B, features]."""
    with tf.variable_scope(name):
        hidden = images[..., None]
        for i, count in enumerate(filters):
            with tf.variable_scope("conv_%d" % i):
                kernel = tf.get_variable("kernel", [5, 5, int(hidden.shape[-1]), count],
                                         initializer=tf.glorot_uniform_initializer())
                bias = tf.get_variable("bias", [count], initializer=tf.zeros_initializer())
                hidden = tf.nn.relu(tf.nn.conv2d(hidden, kernel, [1, 2, 2, 1], "SAME") + bias)
        size = 1
        for dim in hidden.shape[1:]:
            size *= int(dim)
        return tf.reshape(hidden, [-1, size])
