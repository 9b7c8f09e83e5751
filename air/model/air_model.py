"""AIRModel: the graph of continuous-relaxation Attend, Infer, Repeat (Eslami et al., 2016).

One inference step, repeated ``max_steps`` times (unrolled: the step count is small and
static, and an unrolled graph is faster than a while_loop on CPU):

1. The LSTM reads the image (projected once per image) and, with ``lstm_input =
   "image_and_latents"``, the previous step's z_where, z_what and z_pres.
2. Its output gives the z_pres log-odds and the mean and std of z_where = (scale latent,
   shift x, shift y).
3. The spatial transformer crops a window at z_where; the VAE encodes it to z_what and
   decodes z_what back to a window.
4. The decoded window, multiplied by z_pres, is pasted onto the canvas.

Departures from the paper (the continuous relaxation):

* z_pres is a binary Concrete sample (temperature ``concrete_temperature``) instead of a
  Bernoulli one, and its KL is the one-sample Monte Carlo estimate of the Concrete KL.
* Each decoded window is scaled by z_pres before it reaches the canvas, which pushes z_pres
  towards 1 when the model wants an object and towards 0 when it wants to stop.
* Stopping follows ACT (Graves, 2016): a running ``stopping_sum`` of (1 - z_pres) grows at
  every step and a step is *live* (its object exists) only while the sum stays below
  ``stopping_threshold``. The threshold is below 1 so that an empty image can stop at the
  very first step. With z_pres exactly 0 or 1 this is the original AIR.

Where this graph departs from the original code, a config field chooses (see AIRConfig and
``AIRConfig.from_preset("original")``).

One step of training or test mode is an ``InferenceStep``; the sampled discrete model's is a
``SampledStep``. How each mode draws z_pres and the other latents, and what training
differentiates, is one object of air/model/z_pres.py chosen by the mode and the config:

* training (``training=True``): the config's ``z_pres_estimator``, the relaxation
  (``concrete``, the default), the original AIR's discrete z_pres with NVIL (``nvil``) or the
  discrete z_pres with VIMCO's K-sample bound (``vimco``: K rows per image, as below).
* test mode (``training=False``): z_pres rounded, z_where and z_what the posterior means, no
  decoder noise, the exact Bernoulli KL of z_pres.
* the sampled discrete model (``training=False, discrete_sample=True``), the original AIR that
  test mode stands for: z_pres a Bernoulli sample, so the model stops at the first z_pres = 0;
  z_where and z_what samples from their posteriors; no decoder noise. It draws one joint
  sample z per image (or ``samples_per_image`` of them) and gives log p(x|z), log p(z) and
  log q(z|x) of each, the terms of the ELBO and of the importance-weighted bound
  (air/evaluation/likelihood.py).
"""
import collections
import math

import numpy as np
import tensorflow.compat.v1 as tf

from air.model import distributions as dist
from air.model import networks
from air.model import transformer
from air.model import z_pres as z_pres_modes
from air.model.z_pres import Z_WHAT_SEED, Z_WHERE_SEED

# Recurrent state carried from one step to the next.
StepState = collections.namedtuple(
    "StepState", ["lstm", "z_where", "z_what", "z_pres", "stopping_sum", "canvas"])

# Everything one step infers, each [B, ...].
StepOutput = collections.namedtuple("StepOutput", [
    "z_pres_log_odds",  # [B] posterior log-odds of an object at this step
    "z_pres",           # [B] relaxed (training) or rounded (test) presence in [0, 1]
    "z_where_mean", "z_where_std", "z_where",  # [B, 3] scale latent, shift x, shift y
    "scale",            # [B] window side / canvas side
    "shift",            # [B, 2] window centre in canvas coordinates (-1 .. 1)
    "z_what_mean", "z_what_std", "z_what",     # [B, vae_latent]
    "window",           # [B, w, w] crop of the input
    "reconstruction",   # [B, w, w] decoded window (before scaling by z_pres)
    "attempted",        # [B] 1 where the step ran: stopping sum before it below threshold
    "live",             # [B] 1 where the object exists: stopping sum after it below threshold
    "kl_z_pres", "kl_z_where", "kl_z_what",    # [B] masked KL terms of this step
])

# log p and log q of a sample of the sampled discrete model, each [B]: of one latent, or of a
# whole step (masked: z_pres terms where the step was attempted, the others where it is live).
LogDensity = collections.namedtuple("LogDensity", ["prior", "posterior"])

# Smallest window (as a fraction of the canvas): keeps the inverse transform finite.
MIN_SCALE = 1e-3

def stop_rule(stopping_sum, z_pres, threshold):
    """The ACT-style stop: takes the stopping sum before a step [B], the step's z_pres [B] and
    the threshold to (attempted, the sum after the step, live), each [B].

    A step is attempted (its z_pres KL is charged) while the sum before it is below the
    threshold; its object exists (live: its canvas contribution and its other KLs count) only
    while the sum including this step stays below it.
    """
    attempted = tf.cast(stopping_sum < threshold, tf.float32)
    stopping_sum = stopping_sum + (1.0 - z_pres)
    live = tf.cast(stopping_sum < threshold, tf.float32)
    return attempted, stopping_sum, live


def z_pres_prior_log_odds(config, step):
    """Prior log-odds of z_pres at an iteration: smooth exponential decay of the odds, floored.

    With ``z_pres_prior_odds_epsilon`` the odds get that epsilon before the log, as the
    original code's log(odds + 1e-9).
    """
    start = math.log(config.z_pres_prior_odds_initial)
    floor = math.log(config.z_pres_prior_odds_floor)
    per_step = math.log(config.z_pres_prior_odds_decay) / config.z_pres_prior_odds_decay_steps
    log_odds = tf.maximum(start + per_step * tf.cast(step, tf.float32), floor)
    if config.z_pres_prior_odds_epsilon > 0.0:
        log_odds = tf.log(tf.exp(log_odds) + config.z_pres_prior_odds_epsilon)
    return log_odds


def scale_prior_mean(config, step):
    """The prior mean of the scale latent at an iteration: ``scale_prior_mean`` until
    ``scale_prior_anneal_start``, then a straight line to ``scale_prior_mean_final`` over
    ``scale_prior_anneal_steps`` iterations, constant after. A number without a schedule (the
    graph of a constant prior) or without a step (the end of the schedule, as the z_pres
    prior's); a scalar tensor otherwise."""
    if config.scale_prior_anneal_steps == 0:
        return config.scale_prior_mean
    if step is None:
        return config.scale_prior_mean_final
    progress = tf.clip_by_value(
        (tf.cast(step, tf.float32) - config.scale_prior_anneal_start)
        / config.scale_prior_anneal_steps, 0.0, 1.0)
    return config.scale_prior_mean + (
        config.scale_prior_mean_final - config.scale_prior_mean) * progress


def repeat_rows(tensor, repeats):
    """Takes [B, ...] and a repeat count (int or scalar tensor) to [B * repeats, ...], the copies
    of a row adjacent: row b becomes rows b * repeats ... b * repeats + repeats - 1."""
    rest = tensor.shape.as_list()[1:]
    tiled = tf.tile(tensor[:, None], tf.stack([1, repeats] + [1] * len(rest)))
    # The static sizes of the other axes are kept: layers are sized by them.
    return tf.reshape(tiled, [-1] + rest)


def scatter_rows(rows, values, batch):
    """Takes row indices [L] (int32), their values [L, ...] and the batch size B to [B, ...]:
    the values at their rows, zeros elsewhere, with the static sizes of the other axes."""
    shape = tf.concat([[batch], tf.shape(values)[1:]], axis=0)
    scattered = tf.scatter_nd(rows[:, None], values, shape)
    scattered.set_shape([None] + values.shape.as_list()[1:])
    return scattered


def window_scale(scale_latent, scale_transform):
    """Takes the scale latent of z_where to window side / canvas side (see AIRConfig)."""
    if scale_transform == "sigmoid":
        return tf.sigmoid(scale_latent)
    # exp: a log-normal prior on the window size; the cap keeps exp finite (a window 150
    # times the canvas is already meaningless).
    return tf.exp(tf.minimum(scale_latent, 5.0))


def bernoulli_log_likelihood(images, canvas, placement, epsilon):
    """Per-pixel log p(image | canvas) of a Bernoulli likelihood kept finite by ``epsilon``.

    'clip': the canvas is clipped to [eps, 1 - eps]; log1p(-p) keeps the constant out of the
    log, so no graph rewrite can cancel the tolerance. 'inside_log' (the original code): the
    canvas is clipped to [0, 1] and eps is added inside both logs, so ink where the canvas is
    0 still has a gradient. The maximum stops TensorFlow's arithmetic optimizer from folding
    (1 - p) + eps into (1 + eps) - p, which is 1 - p in float32 and -inf at p = 1.
    """
    if placement == "clip":
        probabilities = tf.clip_by_value(canvas, epsilon, 1.0 - epsilon)
        return images * tf.log(probabilities) + (1.0 - images) * tf.log1p(-probabilities)
    probabilities = tf.clip_by_value(canvas, 0.0, 1.0)
    return (images * tf.log(probabilities + epsilon)
            + (1.0 - images) * tf.log(tf.maximum(1.0 - probabilities, 0.0) + epsilon))


# A Gaussian latent of one step, each [B, D] (log_variance None where the head outputs a std).
GaussianLatent = collections.namedtuple("GaussianLatent", ["mean", "std", "log_variance",
                                                           "sample"])
# z_where's latent and what it places: the window's side / canvas side [B] and centre [B, 2].
Placement = collections.namedtuple("Placement", ["z_where", "scale", "shift"])


def z_pres_log_odds_network(hidden, config):
    """Takes the LSTM output [B, units] to the posterior log-odds of z_pres [B], clipped to
    +-z_pres_log_odds_bound when it is set, with the gradient of the clip taken as 1: a discrete
    z_pres's gradients scale with sigmoid(-|a|), so past the bound they stay at its size and a
    saturated presence can still be turned."""
    log_odds = networks.mlp(hidden, [config.z_pres_hidden_units], 1, "z_pres", tf.nn.relu)[:, 0]
    if config.z_pres_log_odds_bound > 0:
        return clip_with_identity_gradient(log_odds, config.z_pres_log_odds_bound)
    return log_odds


def clip_with_identity_gradient(values, bound):
    """``values`` clipped to [-bound, bound], with the gradient passed through unchanged."""
    @tf.custom_gradient
    def clip(x):
        return tf.clip_by_value(x, -bound, bound), lambda upstream: upstream
    return clip(values)


def z_where_posterior(hidden, config):
    """Takes the LSTM output to the posterior (mean, std, log-variance or None) of z_where
    [B, 3] = (scale latent, shift x, shift y)."""
    if config.z_where_heads == "shared":
        z_where_params = networks.mlp(hidden, [config.z_where_hidden_units], 6, "z_where")
        return z_where_params[:, :3], dist.positive_std(z_where_params[:, 3:]), None
    # The original code's four networks, one per (latent, moment).
    units = [config.z_where_hidden_units]
    with tf.variable_scope("z_where"):
        mean = tf.concat([networks.mlp(hidden, units, 1, "scale_mean"),
                          networks.mlp(hidden, units, 2, "shift_mean")], axis=1)
        log_variance = tf.concat([networks.mlp(hidden, units, 1, "scale_log_variance"),
                                  networks.mlp(hidden, units, 2, "shift_log_variance")], axis=1)
    return mean, tf.exp(0.5 * log_variance), log_variance


def z_what_posterior(window, config):
    """Takes the attended windows [B, w, w] to the posterior (mean, std, log-variance or None)
    of z_what [B, vae_latent]: the VAE's encoder."""
    size, latent = config.window_size, config.vae_latent
    activation = networks.ACTIVATIONS[config.vae_activation]
    flat_window = tf.reshape(window, [-1, size * size])
    if config.z_what_variance_head == "softplus_std":
        z_what_params = networks.mlp(flat_window, config.vae_recognition_units, 2 * latent,
                                     "vae_encoder", activation)
        return z_what_params[:, :latent], dist.positive_std(z_what_params[:, latent:]), None
    # The original code's separate mean and log-variance layers on the last hidden layer.
    with tf.variable_scope("vae_encoder"):
        encoded = flat_window
        for i, units in enumerate(config.vae_recognition_units):
            encoded = networks.dense(encoded, units, "hidden_%d" % i, activation)
        mean = networks.dense(encoded, latent, "mean")
        log_variance = networks.dense(encoded, latent, "log_variance")
    return mean, tf.exp(0.5 * log_variance), log_variance


def decoder_logits(z_what, config):
    """Takes z_what [B, vae_latent] to the decoded window's logits [B, w * w]."""
    return networks.mlp(z_what, config.vae_generative_units, config.window_size ** 2,
                        "vae_decoder", networks.ACTIVATIONS[config.vae_activation])


def gaussian_kl(latent, prior_mean, prior_variance):
    """The closed-form KL [B] of a GaussianLatent from its N(prior_mean, prior_variance) prior,
    summed over its units (with the log-variance head where the config has one)."""
    if latent.log_variance is None:
        kl = dist.gaussian_kl(latent.mean, latent.std, prior_mean, prior_variance)
    else:
        kl = dist.gaussian_kl_log_variance(latent.mean, latent.log_variance, prior_mean,
                                           prior_variance)
    return tf.reduce_sum(kl, axis=1)


def gaussian_log_density(latent, prior_mean, prior_variance):
    """The LogDensity of a GaussianLatent's sample, each [B] summed over its units.

    log q uses the log-variance head when the config has one (no log of a tiny std).
    """
    if latent.log_variance is None:
        posterior = dist.gaussian_log_density(latent.sample, latent.mean, latent.std)
    else:
        posterior = dist.gaussian_log_density_log_variance(latent.sample, latent.mean,
                                                           latent.log_variance)
    prior_std = np.sqrt(np.asarray(prior_variance, np.float64)).astype(np.float32)
    if not isinstance(prior_mean, tf.Tensor):
        prior_mean = np.asarray(prior_mean, np.float32)
    prior = dist.gaussian_log_density(latent.sample, prior_mean, prior_std)
    return LogDensity(prior=tf.reduce_sum(prior, axis=1),
                      posterior=tf.reduce_sum(posterior, axis=1))


def training_mode(config, seed=None):
    """The ZPresMode of training with the config's z_pres estimator."""
    if config.z_pres_estimator == "nvil":
        from air.model.nvil import NVIL  # Its baseline network exists only in NVIL's graphs.
        return NVIL(config, seed)
    if config.z_pres_estimator == "vimco":
        from air.model.vimco import VIMCO
        return VIMCO(config, seed)
    return z_pres_modes.ConcreteRelaxation(config, seed)


class AIRModel:
    """Builds the AIR graph for a batch of images.

    Args:
        images: [B, H, W] float32 canvases in [0, 1] (H, W as in the config).
        config: an ``AIRConfig``.
        training: training with the config's z_pres estimator (True: samples and decoder noise),
            or test mode (rounded z_pres and posterior means).
        true_counts: optional [B] integer digit counts; adds the count accuracy outputs.
        global_step: optional step tensor for the schedules of the z_pres prior and the
            window-scale prior; without it both priors are at the end of their schedules (the
            z_pres prior at its floor).
        z_pres_override: optional [B, max_steps] z_pres values used instead of the
            inferred ones (for tests and analysis; one row per sample where an image has
            several); the KL still uses the inferred log-odds.
        seed: optional op-level seed of the training samplers.
        discrete_sample: with ``training=False``, the sampled discrete model (see the module
            docstring) instead of test mode.
        sample_seed: the key of the sampled discrete model's stateless samplers, a pair of
            integers or an int [2] tensor (default (0, 0)): the same key, images and batch
            give the same samples in any graph, on either stack.
        samples_per_image: with ``discrete_sample``, an optional number (int or scalar int
            tensor) of independent samples per image: every output then has B * samples rows,
            the samples of image b in rows b * samples ... (b + 1) * samples - 1. The image's
            LSTM projection, the same for all its samples, is computed once. In training the
            estimator's own count applies (``vimco``: ``vimco_samples``; the others: one).
        scope: variable scope; build a training and a test model on the same variables by
            giving both the same scope (the second reuses the variables).

    Outputs (attributes): ``steps`` (a ``StepOutput`` of [B, max_steps, ...] tensors),
    ``canvas`` [B, H, W], ``digit_count`` [B], ``boxes`` [B, max_steps, 4] (pixels),
    per-image ``reconstruction_loss`` and ``kl_z_pres``/``kl_z_where``/``kl_z_what`` [B],
    ``negative_elbo`` [B], the scalar ``loss``, and with ``true_counts`` ``count_correct`` [B]
    and ``accuracy`` plus ``accuracy_by_count`` {k: scalar}. In training, ``objective`` (a
    z_pres.Objective): what the train op differentiates.

    With ``discrete_sample`` the KL terms are one-sample estimates log q - log p at the sample,
    so ``negative_elbo`` is minus the log importance weight, and there are also the per-image
    ``log_likelihood`` (log p(x|z)), ``log_prior`` (log p(z)), ``log_posterior`` (log q(z|x))
    and ``log_weight`` = log p(x|z) + log p(z) - log q(z|x), each [B].
    """

    def __init__(self, images, config, training=True, true_counts=None, global_step=None,
                 z_pres_override=None, seed=None, scope="air", discrete_sample=False,
                 sample_seed=None, samples_per_image=None):
        if training and discrete_sample:
            raise ValueError("discrete_sample needs training=False (it samples the discrete "
                             "model, not the relaxed one)")
        if samples_per_image is not None and not discrete_sample:
            raise ValueError("samples_per_image needs discrete_sample=True")
        self.config = config
        self.training = training
        self.discrete_sample = discrete_sample
        if training:
            self.mode = training_mode(config, seed)
        elif discrete_sample:
            self.mode = z_pres_modes.SampledDiscrete(config, sample_seed)
        else:
            self.mode = z_pres_modes.Rounded(config)
        if samples_per_image is None:
            samples_per_image = self.mode.samples_per_image
        self._distinct_images = images
        self._samples_per_image = samples_per_image
        self.images = images if samples_per_image is None else repeat_rows(images,
                                                                           samples_per_image)
        with tf.variable_scope(scope, reuse=tf.AUTO_REUSE):
            if global_step is None:
                self.z_pres_prior_log_odds = tf.constant(
                    config.z_pres_prior_log_odds_range[1], tf.float32)
            else:
                self.z_pres_prior_log_odds = z_pres_prior_log_odds(config, global_step)
            # A number or a scalar tensor (see scale_prior_mean).
            self.scale_prior_mean = scale_prior_mean(config, global_step)
            self._build(z_pres_override)
            if true_counts is not None:
                self._build_accuracy(true_counts)
            if training:
                self.objective = self.mode.objective(self)

    def _build(self, z_pres_override):
        config = self.config
        batch = tf.shape(self.images)[0]
        flat_images = tf.reshape(self._distinct_images,
                                 [-1, config.canvas_height * config.canvas_width])
        image_features = (networks.cnn_encoder(self._distinct_images, config.cnn_filters)
                          if config.cnn_encoder else flat_images)
        joint_fan_in = None
        if config.lstm_kernel_init == "joint":
            joint_fan_in = int(image_features.shape[-1]) + config.rnn_units
            if config.lstm_input == "image_and_latents":
                joint_fan_in += 3 + config.vae_latent + 1
        self.lstm = networks.LSTMCell(config.rnn_units, joint_fan_in=joint_fan_in)
        static_projection = self.lstm.project_static(image_features)
        if self._samples_per_image is not None:
            static_projection = repeat_rows(static_projection, self._samples_per_image)

        state = StepState(
            lstm=self.lstm.zero_state(batch),
            z_where=tf.zeros([batch, 3]),
            z_what=tf.zeros([batch, config.vae_latent]),
            z_pres=tf.ones([batch]),
            stopping_sum=tf.zeros([batch]),
            canvas=tf.zeros_like(self.images))
        outputs, step_densities = [], []
        step = (SampledStep if self.discrete_sample else InferenceStep)(
            config, self.mode, self.images, self.lstm, self.z_pres_prior_log_odds,
            self.scale_prior_mean)
        for t in range(config.max_steps):
            forced = None if z_pres_override is None else z_pres_override[:, t]
            state, output, step_density = step(t, static_projection, state, forced)
            outputs.append(output)
            step_densities.append(step_density)
        self.steps = StepOutput(*[tf.stack(values, axis=1) for values in zip(*outputs)])
        self.canvas = state.canvas
        self.digit_count = tf.cast(tf.reduce_sum(self.steps.live, axis=1), tf.int32)
        self.boxes = transformer.window_boxes(
            self.steps.scale, self.steps.shift, config.canvas_height, config.canvas_width)

        self._build_loss()
        if self.discrete_sample:
            self._build_log_weight(step_densities)

    def _build_loss(self):
        """The per-image reconstruction loss and KL terms [B], their sum (the negative ELBO)
        and its batch mean, the loss."""
        config = self.config
        self.reconstruction_loss = -tf.reduce_sum(bernoulli_log_likelihood(
            self.images, self.canvas, config.likelihood_epsilon_placement,
            config.likelihood_epsilon), axis=[1, 2])
        self.kl_z_pres = tf.reduce_sum(self.steps.kl_z_pres, axis=1)
        self.kl_z_where = tf.reduce_sum(self.steps.kl_z_where, axis=1)
        self.kl_z_what = tf.reduce_sum(self.steps.kl_z_what, axis=1)
        self.negative_elbo = (self.reconstruction_loss + self.kl_z_pres + self.kl_z_where
                              + self.kl_z_what)
        self.loss = tf.reduce_mean(self.negative_elbo)

    def _build_log_weight(self, step_densities):
        """The steps' LogDensity -> per-image log p(x|z), log p(z), log q(z|x) and the log
        importance weight, each [B]."""
        self.log_likelihood = -self.reconstruction_loss
        self.log_prior = tf.add_n([d.prior for d in step_densities])
        self.log_posterior = tf.add_n([d.posterior for d in step_densities])
        self.log_weight = self.log_likelihood + self.log_prior - self.log_posterior

    def _build_accuracy(self, true_counts):
        true_counts = tf.cast(true_counts, tf.int32)
        if self._samples_per_image is not None:
            true_counts = repeat_rows(true_counts, self._samples_per_image)
        self.count_correct = tf.cast(tf.equal(self.digit_count, true_counts), tf.float32)
        self.accuracy = tf.reduce_mean(self.count_correct)
        self.accuracy_by_count = {}
        for k in range(self.config.max_steps + 1):
            mask = tf.cast(tf.equal(true_counts, k), tf.float32)
            # No image with k digits in the batch gives NaN rather than a misleading 0.
            self.accuracy_by_count[k] = (tf.reduce_sum(mask * self.count_correct)
                                         / tf.reduce_sum(mask))


class InferenceStep:
    """One inference step of training or test mode, over every row of the batch: the LSTM
    attends, z_pres decides, z_where places a window, the VAE encodes and decodes it, and the
    decoded window scaled by z_pres is pasted while the stop rule lets the object exist.

    ``mode`` (air/model/z_pres.py) decides how z_pres and the other latents are drawn; the
    step's variables are created by its first call (under the caller's variable scope).
    """

    def __init__(self, config, mode, images, lstm, z_pres_prior_log_odds, scale_prior_mean):
        self.config = config
        self.mode = mode
        self.images = images
        self.lstm = lstm
        self.z_pres_prior_log_odds = z_pres_prior_log_odds
        self.scale_prior_mean = scale_prior_mean

    def __call__(self, t, static_projection, prev, forced_z_pres=None):
        """Step t: (image projection, previous StepState, optional forced z_pres [B]) -> (new
        StepState, StepOutput, None)."""
        config = self.config
        hidden, lstm_state = self._recurrence(static_projection, prev)
        z_pres_log_odds = z_pres_log_odds_network(hidden, config)
        presence = self.mode.presence(t, z_pres_log_odds, self.z_pres_prior_log_odds)
        z_pres = presence.z_pres if forced_z_pres is None else forced_z_pres
        where, placement = self._where(t, hidden)
        kl_z_where = self._gaussian_kl(where, *self._z_where_prior())
        window = transformer.crop(self.images, placement.scale, placement.shift,
                                  config.window_size, config.transformer_grid)
        what = self._what(t, window)
        kl_z_what = self._gaussian_kl(what, config.z_what_prior_mean,
                                      config.z_what_prior_variance)
        reconstruction = self._decode(t, what.sample)

        attempted, stopping_sum, live = stop_rule(prev.stopping_sum, z_pres,
                                                  config.stopping_threshold)
        pasted = self._paste(reconstruction, placement)
        canvas = prev.canvas + (live * z_pres)[:, None, None] * pasted
        state = StepState(lstm=lstm_state, z_where=where.sample, z_what=what.sample,
                          z_pres=z_pres, stopping_sum=stopping_sum, canvas=canvas)
        kl_z_pres = presence.kl
        if kl_z_pres is None:  # the log-probability ratio of the value used, forced or drawn
            kl_z_pres = (dist.bernoulli_log_probability(z_pres, z_pres_log_odds)
                         - dist.bernoulli_log_probability(z_pres, self.z_pres_prior_log_odds))
        output = step_output(
            z_pres_log_odds, z_pres, where, placement, what, window, reconstruction, attempted,
            live, kl_z_pres=attempted * kl_z_pres, kl_z_where=live * kl_z_where,
            kl_z_what=live * kl_z_what)
        return state, output, None

    def _gaussian_kl(self, latent, prior_mean, prior_variance):
        """A Gaussian latent's KL term [B]: the closed form, or with a mode whose
        ``kl_at_sample`` is set, log q - log p at the sample."""
        if not self.mode.kl_at_sample:
            return gaussian_kl(latent, prior_mean, prior_variance)
        density = gaussian_log_density(latent, prior_mean, prior_variance)
        return density.posterior - density.prior

    def _recurrence(self, static_projection, prev):
        """The LSTM step: (image projection, previous state) -> (output [B, units], LSTM state)."""
        step_inputs = None
        if self.config.lstm_input == "image_and_latents":
            step_inputs = tf.concat([prev.z_where, prev.z_what, prev.z_pres[:, None]], axis=1)
        return self.lstm(static_projection, step_inputs, prev.lstm)

    def _where(self, t, hidden):
        """Takes the LSTM output to z_where (a GaussianLatent [B, 3]: the mode's sample or the
        mean) and the window it places (a Placement)."""
        config = self.config
        mean, std, log_variance = z_where_posterior(hidden, config)
        sample = self.mode.gaussian(mean, std, t, Z_WHERE_SEED)
        scale = tf.maximum(window_scale(sample[:, 0], config.scale_transform), MIN_SCALE)
        shift = tf.tanh(sample[:, 1:]) if config.shift_transform == "tanh" else sample[:, 1:]
        return GaussianLatent(mean, std, log_variance, sample), Placement(sample, scale, shift)

    def _z_where_prior(self):
        """The prior (means, variances) of z_where's three units, on the latent (before any
        squashing); the means a [3] tensor where the scale prior's mean is scheduled."""
        config = self.config
        means = [self.scale_prior_mean, config.shift_prior_mean, config.shift_prior_mean]
        if isinstance(self.scale_prior_mean, tf.Tensor):
            means = tf.stack([tf.cast(m, tf.float32) for m in means])
        return (means, [config.scale_prior_variance, config.shift_prior_variance,
                        config.shift_prior_variance])

    def _what(self, t, window):
        """Takes the attended window to z_what, a GaussianLatent [B, vae_latent]."""
        mean, std, log_variance = z_what_posterior(window, self.config)
        return GaussianLatent(mean, std, log_variance,
                              self.mode.gaussian(mean, std, t, Z_WHAT_SEED))

    def _decode(self, t, z_what):
        """Takes z_what to the decoded window [B, w, w] (before scaling by z_pres)."""
        config = self.config
        logits = decoder_logits(z_what, config)
        if self.mode.decoder_noise:
            # Noise on the logits keeps the decoder from relying on exact intensities.
            logits += config.vae_likelihood_std * tf.random_normal(
                tf.shape(logits), seed=self.mode.seed_for(z_pres_modes.DECODER_NOISE_SEED + t))
        size = config.window_size
        return tf.reshape(tf.sigmoid(logits), [-1, size, size])

    def _paste(self, reconstruction, placement):
        config = self.config
        return transformer.paste(reconstruction, placement.scale, placement.shift,
                                 config.canvas_height, config.canvas_width,
                                 config.transformer_grid)


class SampledStep(InferenceStep):
    """One step of the sampled discrete model: discrete z_pres, the object's networks run on
    the rows whose object exists only, and the step's log p and log q of the sample."""

    def __call__(self, t, static_projection, prev, forced_z_pres=None):
        """Step t of the sampled discrete model: like InferenceStep's, with the step's
        LogDensity as the third result.

        The stopping rule of InferenceStep; z_where, the window, z_what and the decoder run only on
        the rows whose object exists (for held-out multi-MNIST about a third of all rows over
        the steps, which halves the cost); stopped rows get zeros there, which nothing reads:
        their terms are masked and their canvas is done.
        """
        config = self.config
        hidden, lstm_state = self._recurrence(static_projection, prev)
        z_pres_log_odds = z_pres_log_odds_network(hidden, config)
        z_pres = self.mode.presence(t, z_pres_log_odds, self.z_pres_prior_log_odds).z_pres
        if forced_z_pres is not None:
            z_pres = forced_z_pres
        # The log-probabilities of the value used, forced or sampled.
        z_pres_density = LogDensity(
            prior=dist.bernoulli_log_probability(z_pres, self.z_pres_prior_log_odds),
            posterior=dist.bernoulli_log_probability(z_pres, z_pres_log_odds))
        attempted, stopping_sum, live = stop_rule(prev.stopping_sum, z_pres,
                                                  config.stopping_threshold)

        batch = tf.shape(live)[0]
        rows = tf.boolean_mask(tf.range(batch), live > 0.0)

        def all_rows(values):
            return scatter_rows(rows, values, batch)

        where, placement = self._where(t, tf.gather(hidden, rows))
        z_where_density = gaussian_log_density(where, *self._z_where_prior())
        kl_z_where = z_where_density.posterior - z_where_density.prior
        window = transformer.crop(tf.gather(self.images, rows), placement.scale,
                                  placement.shift, config.window_size, config.transformer_grid)
        what = self._what(t, window)
        z_what_density = gaussian_log_density(
            what, [config.z_what_prior_mean] * config.vae_latent,
            [config.z_what_prior_variance] * config.vae_latent)
        kl_z_what = z_what_density.posterior - z_what_density.prior
        reconstruction = self._decode(t, what.sample)
        pasted = self._paste(reconstruction, placement)
        canvas = prev.canvas + all_rows(tf.gather(z_pres, rows)[:, None, None] * pasted)
        z_where, z_what = all_rows(where.sample), all_rows(what.sample)
        state = StepState(lstm=lstm_state, z_where=z_where, z_what=z_what, z_pres=z_pres,
                          stopping_sum=stopping_sum, canvas=canvas)
        # Every row of the outputs, in the order the values were always built in.
        output = step_output(
            z_pres_log_odds, z_pres,
            GaussianLatent(all_rows(where.mean), all_rows(where.std), None, z_where),
            Placement(z_where, all_rows(placement.scale), all_rows(placement.shift)),
            GaussianLatent(all_rows(what.mean), all_rows(what.std), None, z_what),
            all_rows(window), all_rows(reconstruction), attempted, live,
            kl_z_pres=attempted * (z_pres_density.posterior - z_pres_density.prior),
            kl_z_where=all_rows(kl_z_where), kl_z_what=all_rows(kl_z_what))
        step_density = LogDensity(*[
            attempted * pres + all_rows(where_term + what_term)
            for pres, where_term, what_term in zip(z_pres_density, z_where_density,
                                                   z_what_density)])
        return state, output, step_density

def step_output(z_pres_log_odds, z_pres, where, placement, what, window, reconstruction,
                attempted, live, kl_z_pres, kl_z_where, kl_z_what):
    """The StepOutput of one step's values (the KL terms already masked)."""
    return StepOutput(
        z_pres_log_odds=z_pres_log_odds, z_pres=z_pres,
        z_where_mean=where.mean, z_where_std=where.std, z_where=where.sample,
        scale=placement.scale, shift=placement.shift,
        z_what_mean=what.mean, z_what_std=what.std, z_what=what.sample,
        window=window, reconstruction=reconstruction, attempted=attempted, live=live,
        kl_z_pres=kl_z_pres, kl_z_where=kl_z_where, kl_z_what=kl_z_what)
