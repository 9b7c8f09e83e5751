"""VIMCO (Mnih & Rezende, 2016): the K-sample bound with leave-one-out baselines for a discrete
z_pres.

In training every image gets K = ``vimco_samples`` independent samples (the model repeats each
image's rows K times, the samples of image b in rows b * K ... b * K + K - 1, as the sampled
discrete model does). z_pres is a Bernoulli sample drawn as NVIL draws it, so the stop rule
stops at the first 0; z_where and z_what are reparameterised. The bound needs the importance
weight of each sample, so every KL term is log q - log p at the sample (z_pres: of the value
drawn, against the annealed prior): sample k's log weight is

    log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x) = -(the sample's negative ELBO)

and the objective is the K-sample bound L = log (1/K) sum_k w_k of each image (a logsumexp).
Its gradient (Mnih & Rezende, eq. 9) is the reparameterised gradient of L, which weights each
sample's gradient of log w_k by its normalised weight, plus the score-function term

    sum_k stop_gradient(L - L_{-k}) * grad sum_t attempted_t,k log q(z_pres_t,k)

where L_{-k} is the bound with log w_k replaced by the mean of the other K - 1 log weights
(the geometric-mean baseline): it does not depend on sample k's z_pres, so the term stays
unbiased, and it leaves in each sample's signal only what sample k adds to the bound. Nothing
is learnt besides the model, so there is no baseline network and no running statistic.
"""
import numpy as np
import tensorflow.compat.v1 as tf

from air.model import distributions as dist
from air.model.z_pres import Objective, Presence, ZPresMode, discrete_z_pres


def k_sample_bound(log_weight):
    """Takes log weights [B, K] to each image's K-sample bound log (1/K) sum_k w_k [B]."""
    samples = int(log_weight.shape[1])
    return tf.reduce_logsumexp(log_weight, axis=1) - np.log(samples).astype(np.float32)


def leave_one_out_signal(log_weight):
    """Takes log weights [B, K] to the learning signal L - L_{-k} of each sample [B, K], L_{-k}
    the bound with log w_k replaced by the mean of the other log weights."""
    samples = int(log_weight.shape[1])
    # The signal is unchanged by a shift of an image's log weights: centring them keeps the
    # sums below at the scale of their spread (the weights are thousands of nats).
    centred = log_weight - tf.reduce_mean(log_weight, axis=1, keepdims=True)
    others_mean = ((tf.reduce_sum(centred, axis=1, keepdims=True) - centred)
                   / float(samples - 1))
    rows = tf.shape(centred)[0]
    # replaced[b, k, j]: image b's log weights with the k-th replaced by the others' mean.
    replaced = tf.where(tf.tile(np.eye(samples, dtype=bool)[None], [rows, 1, 1]),
                        tf.tile(others_mean[:, :, None], [1, 1, samples]),
                        tf.tile(centred[:, None, :], [1, samples, 1]))
    return (tf.reduce_logsumexp(centred, axis=1)[:, None]
            - tf.reduce_logsumexp(replaced, axis=2))


class VIMCO(ZPresMode):
    """Training with a discrete z_pres, K samples per image and VIMCO's gradient (module
    docstring)."""

    kl_at_sample = True

    @property
    def samples_per_image(self):
        return self.config.vimco_samples

    def presence(self, t, z_pres_log_odds, prior_log_odds):
        # The step charges log q - log p of the value it uses (Presence.kl None).
        return Presence(discrete_z_pres(self, t, z_pres_log_odds), None)

    def objective(self, model):
        samples, steps = self.config.vimco_samples, model.steps
        log_weight = tf.reshape(-model.negative_elbo, [-1, samples])
        bound = k_sample_bound(log_weight)
        signal = tf.stop_gradient(leave_one_out_signal(log_weight))
        log_q = tf.reduce_sum(
            steps.attempted * dist.bernoulli_log_probability(steps.z_pres, steps.z_pres_log_odds),
            axis=1)
        score = tf.reduce_sum(signal * tf.reshape(log_q, [-1, samples]), axis=1)
        return Objective(loss=-tf.reduce_mean(bound + score), baseline=None,
                         baseline_loss=None, baseline_variables=(),
                         baseline_learning_rate=None, updates=())
