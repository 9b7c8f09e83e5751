"""How a model draws its latents and how the gradient reaches z_pres: one object per mode.

AIRModel builds one inference step per image and step; what differs between its modes is only
how z_pres is drawn and charged, whether z_where and z_what are samples or means, whether the
decoder logits get noise, and what the training loss differentiates. Each mode is a class here:

* ``ConcreteRelaxation`` (training, ``z_pres_estimator="concrete"``): z_pres is a binary Concrete
  sample, the reparameterised gradient flows through it, and its KL is the one-sample Concrete KL.
* ``NVIL`` (training, ``z_pres_estimator="nvil"``): z_pres is a Bernoulli sample, the original
  AIR's discrete estimator; its posterior learns by the score function with NVIL's baseline and
  variance normalisation (Mnih & Gregor, 2014). Defined in air/model/nvil.py.
* ``VIMCO`` (training, ``z_pres_estimator="vimco"``): Bernoulli z_pres as NVIL's, K samples
  per image, the K-sample bound with leave-one-out baselines (Mnih & Rezende, 2016). Defined
  in air/model/vimco.py.
* ``Rounded`` (test mode): z_pres is the rounded posterior, z_where and z_what are posterior
  means, and the z_pres KL is the exact Bernoulli KL.
* ``SampledDiscrete`` (the likelihood's sampled discrete model): Bernoulli z_pres and Gaussian
  z_where and z_what from stateless samplers keyed by ``sample_seed``, so the same key gives the
  same samples in any graph; its KL terms are log q - log p at the sample (air_model's
  ``SampledStep``).

Seed offsets: step t's z_pres, z_where and z_what samplers use offset LATENTS_PER_STEP * t +
Z_PRES_SEED (+ Z_WHERE_SEED, + Z_WHAT_SEED), so every step and latent has its own; the decoder
noise of step t uses DECODER_NOISE_SEED + t, above the latents' offsets for any max_steps below
333. Changing them changes every seeded sample.
"""
import collections

import numpy as np
import tensorflow.compat.v1 as tf

from air.model import distributions as dist

LATENTS_PER_STEP = 3
Z_PRES_SEED, Z_WHERE_SEED, Z_WHAT_SEED = 0, 1, 2
DECODER_NOISE_SEED = 1000

# One step's z_pres [B] and its unmasked KL [B] (None: the step charges log q - log p of the
# value it uses).
Presence = collections.namedtuple("Presence", ["z_pres", "kl"])

# What training differentiates: ``loss`` for the model's variables; an estimator with its own
# learnt parts adds their loss, variables, learning rate and the ops that update its statistics.
Objective = collections.namedtuple("Objective", [
    "loss", "baseline", "baseline_loss", "baseline_variables", "baseline_learning_rate",
    "updates"])


def latent_seed_offset(t, latent_seed):
    """The seed offset of one latent's sampler at step t."""
    return LATENTS_PER_STEP * t + latent_seed


def discrete_z_pres(mode, t, z_pres_log_odds):
    """Step t's Bernoulli z_pres [B] from its log-odds, by a stateful sampler seeded by the mode,
    with no gradient (the discrete estimators' score functions reach the log-odds instead)."""
    uniform = tf.random_uniform(tf.shape(z_pres_log_odds), minval=np.finfo(np.float32).tiny,
                                maxval=1.0, seed=mode.seed_for(latent_seed_offset(t, Z_PRES_SEED)))
    return tf.stop_gradient(dist.bernoulli_sample(z_pres_log_odds, uniform))


class ZPresMode:
    """The interface; the defaults are those of training with stateful seeded samplers."""

    samples_latents = True   # z_where and z_what are samples (else posterior means)
    decoder_noise = True     # noise on the decoder logits (training only)
    kl_at_sample = False     # KL terms of z_where and z_what: log q - log p at the sample
    samples_per_image = None  # samples drawn per image (None: one, the rows not repeated)

    def __init__(self, config, seed=None):
        self.config = config
        self._seed = seed

    def seed_for(self, offset):
        """The op-level seed of a stateful sampler (None: the graph's seed decides)."""
        return None if self._seed is None else self._seed + offset

    def presence(self, t, z_pres_log_odds, prior_log_odds):
        """Takes step t's posterior and prior log-odds to its Presence."""
        raise NotImplementedError

    def gaussian(self, mean, std, t, latent_seed):
        """A reparameterised N(mean, std^2) sample of one latent of step t."""
        return dist.gaussian_sample(mean, std, self.seed_for(latent_seed_offset(t, latent_seed)))

    def objective(self, model):
        """What the training loss differentiates (see Objective): the negative ELBO itself."""
        return Objective(loss=model.loss, baseline=None, baseline_loss=None,
                         baseline_variables=(), baseline_learning_rate=None, updates=())


class ConcreteRelaxation(ZPresMode):
    """Training with the relaxed z_pres: a binary Concrete sample and its sampled KL."""

    def presence(self, t, z_pres_log_odds, prior_log_odds):
        temperature = self.config.concrete_temperature
        logit = dist.binary_concrete_sample_logit(
            z_pres_log_odds, temperature, self.seed_for(latent_seed_offset(t, Z_PRES_SEED)))
        z_pres = tf.sigmoid(logit)
        kl = dist.binary_concrete_kl_sample(logit, z_pres_log_odds, prior_log_odds, temperature)
        return Presence(z_pres, kl)


class Rounded(ZPresMode):
    """Test mode: z_pres rounded, the other latents at their means, the exact Bernoulli KL."""

    samples_latents = False
    decoder_noise = False

    def presence(self, t, z_pres_log_odds, prior_log_odds):
        z_pres = tf.cast(z_pres_log_odds > 0.0, tf.float32)
        return Presence(z_pres, dist.bernoulli_kl(z_pres_log_odds, prior_log_odds))

    def gaussian(self, mean, std, t, latent_seed):
        return mean


class SampledDiscrete(ZPresMode):
    """The sampled discrete model: stateless samplers keyed by ``sample_seed`` (a pair of
    integers or an int [2] tensor), no decoder noise."""

    decoder_noise = False

    def __init__(self, config, sample_seed=None):
        super().__init__(config)
        self._sample_seed = (0, 0) if sample_seed is None else sample_seed

    def stateless_seed(self, offset):
        """The key [2] of one stateless sampling op: sample_seed with its second half spread so
        that every (key, op) pair gets its own stream."""
        key = tf.cast(self._sample_seed, tf.int64)
        return tf.stack([key[0], key[1] * (LATENTS_PER_STEP * self.config.max_steps) + offset])

    def presence(self, t, z_pres_log_odds, prior_log_odds):
        # Its KL term is the log-probability ratio of the value used (air_model.SampledStep).
        uniform = tf.random.stateless_uniform(
            tf.shape(z_pres_log_odds),
            seed=self.stateless_seed(latent_seed_offset(t, Z_PRES_SEED)),
            minval=np.finfo(np.float32).tiny, maxval=1.0)
        return Presence(dist.bernoulli_sample(z_pres_log_odds, uniform), None)

    def gaussian(self, mean, std, t, latent_seed):
        noise = tf.random.stateless_normal(
            tf.shape(mean), seed=self.stateless_seed(latent_seed_offset(t, latent_seed)))
        return mean + std * noise
