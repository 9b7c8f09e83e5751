"""Small building blocks on ``tf.get_variable``: dense layer, MLP, LSTM cell, CNN encoder.

Keras 3 removed ``tf.compat.v1.layers`` and the legacy RNN cells, so the model uses these
instead; variables live in the caller's variable scope and are shared with ``reuse``.
"""
import collections

import tensorflow.compat.v1 as tf

LSTMState = collections.namedtuple("LSTMState", ["cell", "hidden"])


def dense(inputs, units, name, activation=None, use_bias=True, initializer=None):
    """Takes [B, n] inputs to [B, units] = activation(inputs @ W + b); W is Glorot unless told."""
    with tf.variable_scope(name):
        weights = tf.get_variable("weights", [int(inputs.shape[-1]), units],
                                  initializer=initializer or tf.glorot_uniform_initializer())
        outputs = tf.matmul(inputs, weights)
        if use_bias:
            outputs += tf.get_variable("biases", [units], initializer=tf.zeros_initializer())
    return activation(outputs) if activation is not None else outputs


ACTIVATIONS = {"relu": tf.nn.relu, "softplus": tf.nn.softplus}


def mlp(inputs, hidden_units, output_units, name, activation=tf.nn.relu):
    """Takes [B, n] inputs through hidden layers (ReLU unless told) to a linear output."""
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

    def __init__(self, units, name="lstm", forget_bias=1.0, joint_fan_in=None):
        """``joint_fan_in``: if given, both kernels are drawn from the Glorot range of one
        [joint_fan_in, 4 * units] kernel (as a standard LSTM cell over the concatenated input
        and state); otherwise each kernel from the range of its own shape."""
        self.units = units
        self.name = name
        self.forget_bias = forget_bias
        self._initializer = None
        if joint_fan_in is not None:
            limit = (6.0 / (joint_fan_in + 4 * units)) ** 0.5
            self._initializer = tf.random_uniform_initializer(-limit, limit)

    def zero_state(self, batch_size):
        zeros = tf.zeros([batch_size, self.units])
        return LSTMState(cell=zeros, hidden=zeros)

    def project_static(self, static_inputs):
        """Takes the [B, n] step-invariant input to its [B, 4 * units] gate pre-activations."""
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            return dense(static_inputs, 4 * self.units, "static_input", use_bias=False,
                         initializer=self._initializer)

    def __call__(self, static_projection, step_inputs, state):
        """Takes (projected static input, [B, m] step input or None, state) to (output, state)."""
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            recurrent = (state.hidden if step_inputs is None
                         else tf.concat([step_inputs, state.hidden], axis=1))
            gates = static_projection + dense(recurrent, 4 * self.units, "step_input",
                                              initializer=self._initializer)
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
