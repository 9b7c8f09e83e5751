"""NVIL (Mnih & Gregor, 2014): the original AIR's estimator for a discrete z_pres.

In training z_pres is a Bernoulli sample from sigmoid(log-odds), so the stop rule stops at the
first 0 (the continuous relaxation's rule with z_pres in {0, 1}); z_where and z_what stay
reparameterised, and the z_pres KL of an attempted step is the exact Bernoulli KL against the
annealed prior (its gradient reaches the log-odds directly, in closed form:
``nvil_kl_gradient``). The log-odds also learn by the
score function: step t's decision is reinforced by its learning signal, the part of the image's
negative ELBO that depends on it,

    cost_t = reconstruction loss + sum_{s >= t} (KL z_where_s + KL z_what_s) + sum_{s > t} KL z_pres_s

(step t's own z_pres KL is exact, so it does not depend on the sample, and earlier steps' terms
do not depend on it either), minus an input-dependent baseline b_t(x) (a small network of the
image, trained to the cost by squared error with its own learning rate), centred and divided by
running estimates of the mean and standard deviation of cost_t - b_t(x) (NVIL's variance
normalisation: exponential moving averages over the batches, corrected for their start at zero
as Adam's moments are; the divisor is at least 1). The surrogate loss

    negative ELBO + sum_t attempted_t * stop_gradient(normalised signal_t) * log q(z_pres_t)

gives every parameter the reparameterised gradient of the same ELBO plus the score-function
term of the parameters that move q(z_pres_t) (the z_pres head, the LSTM and what feeds it).
"""
import tensorflow.compat.v1 as tf

from air.model import distributions as dist
from air.model import networks
from air.model.z_pres import Objective, Presence, ZPresMode, discrete_z_pres

BASELINE_SCOPE = "nvil_baseline"


def learning_signal(reconstruction_loss, kl_z_pres, kl_z_where, kl_z_what):
    """Per-step costs [B, T] of the steps' decisions from the per-image reconstruction loss [B]
    and the masked per-step KL terms [B, T]: the terms that depend on step t's z_pres."""
    later_presence = tf.cumsum(kl_z_pres, axis=1, exclusive=True, reverse=True)
    from_here_objects = tf.cumsum(kl_z_where + kl_z_what, axis=1, reverse=True)
    return reconstruction_loss[:, None] + from_here_objects + later_presence


class NVIL(ZPresMode):
    """Training with a discrete z_pres and NVIL's score-function gradient (module docstring)."""

    def presence(self, t, z_pres_log_odds, prior_log_odds):
        exact_kl = (dist.bernoulli_kl_closed_form_gradient
                    if self.config.nvil_kl_gradient == "closed_form" else dist.bernoulli_kl)
        return Presence(discrete_z_pres(self, t, z_pres_log_odds),
                        exact_kl(z_pres_log_odds, prior_log_odds))

    def objective(self, model):
        config, steps = self.config, model.steps
        cost = tf.stop_gradient(learning_signal(model.reconstruction_loss, steps.kl_z_pres,
                                                steps.kl_z_where, steps.kl_z_what))
        baseline, baseline_variables = self._baseline(model.images)
        attempted = steps.attempted
        signal = cost - tf.stop_gradient(baseline)
        centred, updates = self._normalise(signal, attempted)
        log_q = dist.bernoulli_log_probability(steps.z_pres, steps.z_pres_log_odds)
        score = tf.reduce_sum(attempted * tf.stop_gradient(centred) * log_q, axis=1)
        baseline_loss = (tf.reduce_sum(attempted * tf.square(cost - baseline))
                         / tf.maximum(tf.reduce_sum(attempted), 1.0))
        return Objective(loss=model.loss + tf.reduce_mean(score), baseline=baseline,
                         baseline_loss=baseline_loss,
                         baseline_variables=baseline_variables,
                         baseline_learning_rate=config.nvil_baseline_learning_rate,
                         updates=updates)

    def _baseline(self, images):
        """b_t(x) [B, T]: one baseline per step from the flattened image; and its variables."""
        config = self.config
        with tf.variable_scope(BASELINE_SCOPE) as scope:
            flat = tf.reshape(images, [-1, config.canvas_height * config.canvas_width])
            baseline = networks.mlp(flat, [config.nvil_baseline_hidden_units],
                                    config.max_steps, "network")
        variables = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope=scope.name)
        return baseline, variables

    def _normalise(self, signal, attempted):
        """(signal - running mean) / max(1, running std) per step [B, T], the running statistics
        including this batch's (over the attempted steps); and the ops that store them."""
        config, steps = self.config, self.config.max_steps
        with tf.variable_scope(BASELINE_SCOPE):
            mean, variance, batches = [
                tf.get_variable(name, [steps], initializer=tf.zeros_initializer(),
                                trainable=False)
                for name in ("signal_mean", "signal_variance", "signal_batches")]
        count = tf.reduce_sum(attempted, axis=0)
        batch_mean = tf.reduce_sum(attempted * signal, axis=0) / tf.maximum(count, 1.0)
        batch_variance = (tf.reduce_sum(attempted * tf.square(signal - batch_mean), axis=0)
                          / tf.maximum(count, 1.0))
        seen = count > 0.0  # a step no image reached keeps its statistics
        decay = config.nvil_signal_decay
        new_mean = tf.where(seen, decay * mean + (1.0 - decay) * batch_mean, mean)
        new_variance = tf.where(seen, decay * variance + (1.0 - decay) * batch_variance,
                                variance)
        new_batches = batches + tf.cast(seen, tf.float32)
        # The averages start at 0: divide by the weight their batches have so far.
        weight = tf.maximum(1.0 - tf.pow(decay, new_batches), 1e-12)
        centred = signal - new_mean / weight
        if config.nvil_variance_normalisation:
            centred /= tf.maximum(tf.sqrt(new_variance / weight), 1.0)
        updates = (tf.assign(mean, new_mean), tf.assign(variance, new_variance),
                   tf.assign(batches, new_batches))
        return centred, updates
