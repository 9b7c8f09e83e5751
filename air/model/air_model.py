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

At test time (``training=False``) z_pres is rounded, z_where and z_what are the posterior
means, no decoder noise is added and the z_pres KL is the exact Bernoulli KL.

The sampled discrete model (``training=False, discrete_sample=True``) is the original AIR that
test mode stands for: z_pres is a Bernoulli sample from sigmoid(log-odds), so the model stops
at the first z_pres = 0; z_where and z_what are samples from their posteriors; no decoder noise.
It draws one joint sample z per image (or ``samples_per_image`` of them) and gives log p(x|z),
log p(z) and log q(z|x) of each, the terms of the ELBO and of the importance-weighted bound
(air/evaluation/likelihood.py).
"""
import collections
import math

import numpy as np
import tensorflow.compat.v1 as tf

from air.model import distributions as dist
from air.model import networks
from air.model import transformer

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

# Seed offsets of the samplers: step t's z_pres, z_where and z_what samplers use offset
# LATENTS_PER_STEP * t + Z_PRES_SEED (+ Z_WHERE_SEED, + Z_WHAT_SEED), so every step and latent
# has its own; the decoder noise of step t uses DECODER_NOISE_SEED + t, above the latents'
# offsets for any max_steps below 333. Changing them changes every seeded sample.
LATENTS_PER_STEP = 3
Z_PRES_SEED, Z_WHERE_SEED, Z_WHAT_SEED = 0, 1, 2
DECODER_NOISE_SEED = 1000


def latent_seed_offset(t, latent_seed):
    """The seed offset of one latent's sampler at step t (see LATENTS_PER_STEP)."""
    return LATENTS_PER_STEP * t + latent_seed


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


class AIRModel:
    """Builds the AIR graph for a batch of images.

    Args:
        images: [B, H, W] float32 canvases in [0, 1] (H, W as in the config).
        config: an ``AIRConfig``.
        training: relaxed samples and decoder noise (True), or rounded z_pres and means.
        true_counts: optional [B] integer digit counts; adds the count accuracy outputs.
        global_step: optional step tensor for the z_pres prior schedule; without it the
            prior is at the end of the schedule (its floor).
        z_pres_override: optional [B, max_steps] z_pres values used instead of the
            inferred ones (for tests and analysis); the KL still uses the inferred log-odds.
        seed: optional op-level seed of the training samplers.
        discrete_sample: with ``training=False``, the sampled discrete model (see the module
            docstring) instead of test mode.
        sample_seed: the key of the sampled discrete model's stateless samplers, a pair of
            integers or an int [2] tensor (default (0, 0)): the same key, images and batch
            give the same samples in any graph, on either stack.
        samples_per_image: with ``discrete_sample``, an optional number (int or scalar int
            tensor) of independent samples per image: every output then has B * samples rows,
            the samples of image b in rows b * samples ... (b + 1) * samples - 1. The image's
            LSTM projection, the same for all its samples, is computed once.
        scope: variable scope; build a training and a test model on the same variables by
            giving both the same scope (the second reuses the variables).

    Outputs (attributes): ``steps`` (a ``StepOutput`` of [B, max_steps, ...] tensors),
    ``canvas`` [B, H, W], ``digit_count`` [B], ``boxes`` [B, max_steps, 4] (pixels),
    per-image ``reconstruction_loss`` and ``kl_z_pres``/``kl_z_where``/``kl_z_what`` [B],
    ``negative_elbo`` [B], the scalar ``loss``, and with ``true_counts`` ``count_correct`` [B]
    and ``accuracy`` plus ``accuracy_by_count`` {k: scalar}.

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
        self._distinct_images = images
        self._samples_per_image = samples_per_image
        self.images = images if samples_per_image is None else repeat_rows(images,
                                                                           samples_per_image)
        self.training = training
        self.discrete_sample = discrete_sample
        # Training and the sampled discrete model draw z_where and z_what; test mode takes means.
        self._samples_latents = training or discrete_sample
        self._seed = seed
        self._sample_seed = (0, 0) if sample_seed is None else sample_seed
        with tf.variable_scope(scope, reuse=tf.AUTO_REUSE):
            if global_step is None:
                self.z_pres_prior_log_odds = tf.constant(
                    config.z_pres_prior_log_odds_range[1], tf.float32)
            else:
                self.z_pres_prior_log_odds = z_pres_prior_log_odds(config, global_step)
            self._build(z_pres_override)
            if true_counts is not None:
                self._build_accuracy(true_counts)

    def _seed_for(self, offset):
        return None if self._seed is None else self._seed + offset

    def _stateless_seed(self, offset):
        """The key [2] of one stateless sampling op of the sampled discrete model: sample_seed
        with its second half spread so that every (key, op) pair gets its own stream."""
        key = tf.cast(self._sample_seed, tf.int64)
        return tf.stack([key[0], key[1] * (LATENTS_PER_STEP * self.config.max_steps) + offset])

    def _gaussian_sample(self, mean, std, offset):
        """A reparameterised N(mean, std^2) sample: the stateful sampler while training, the
        stateless one of sample_seed in the sampled discrete model."""
        if self.discrete_sample:
            noise = tf.random.stateless_normal(tf.shape(mean), seed=self._stateless_seed(offset))
            return mean + std * noise
        return dist.gaussian_sample(mean, std, self._seed_for(offset))

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
        step = self._sampled_step if self.discrete_sample else self._step
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

    def _step(self, t, static_projection, prev, forced_z_pres):
        """One inference step of training or test mode: (previous state) -> (new state,
        StepOutput, None)."""
        config = self.config
        hidden, lstm_state = self._recurrence(static_projection, prev)
        z_pres_log_odds, z_pres, kl_z_pres = self._presence(t, hidden)
        if forced_z_pres is not None:
            z_pres = forced_z_pres
        z_where_mean, z_where_std, z_where, scale, shift, kl_z_where, _ = self._where(t, hidden)
        window = transformer.crop(self.images, scale, shift, config.window_size,
                                config.transformer_grid)
        z_what_mean, z_what_std, z_what, kl_z_what, reconstruction, _ = self._what(t, window)

        attempted, stopping_sum, live = stop_rule(prev.stopping_sum, z_pres,
                                                  config.stopping_threshold)
        pasted = transformer.paste(reconstruction, scale, shift, config.canvas_height,
                                   config.canvas_width, config.transformer_grid)
        canvas = prev.canvas + (live * z_pres)[:, None, None] * pasted

        state = StepState(lstm=lstm_state, z_where=z_where, z_what=z_what, z_pres=z_pres,
                          stopping_sum=stopping_sum, canvas=canvas)
        output = StepOutput(
            z_pres_log_odds=z_pres_log_odds, z_pres=z_pres,
            z_where_mean=z_where_mean, z_where_std=z_where_std, z_where=z_where,
            scale=scale, shift=shift,
            z_what_mean=z_what_mean, z_what_std=z_what_std, z_what=z_what,
            window=window, reconstruction=reconstruction,
            attempted=attempted, live=live,
            kl_z_pres=attempted * kl_z_pres, kl_z_where=live * kl_z_where,
            kl_z_what=live * kl_z_what)
        return state, output, None

    def _recurrence(self, static_projection, prev):
        """The LSTM step: (image projection, previous state) -> (output [B, units], LSTM state)."""
        step_inputs = None
        if self.config.lstm_input == "image_and_latents":
            step_inputs = tf.concat([prev.z_where, prev.z_what, prev.z_pres[:, None]], axis=1)
        return self.lstm(static_projection, step_inputs, prev.lstm)

    def _sampled_step(self, t, static_projection, prev, forced_z_pres):
        """One step of the sampled discrete model: (previous state) -> (new state, StepOutput,
        the step's LogDensity).

        The stopping rule of ``_step``; z_where, the window, z_what and the decoder run only on
        the rows whose object exists (for held-out multi-MNIST about a third of all rows over
        the steps, which halves the cost); stopped rows get zeros there, which nothing reads:
        their terms are masked and their canvas is done.
        """
        config = self.config
        hidden, lstm_state = self._recurrence(static_projection, prev)
        z_pres_log_odds, z_pres, _ = self._presence(t, hidden)
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

        (z_where_mean, z_where_std, z_where, scale, shift, kl_z_where,
         z_where_density) = self._where(t, tf.gather(hidden, rows))
        window = transformer.crop(tf.gather(self.images, rows), scale, shift, config.window_size,
                                  config.transformer_grid)
        (z_what_mean, z_what_std, z_what, kl_z_what, reconstruction,
         z_what_density) = self._what(t, window)
        pasted = transformer.paste(reconstruction, scale, shift, config.canvas_height,
                                   config.canvas_width, config.transformer_grid)
        object_canvas = tf.gather(z_pres, rows)[:, None, None] * pasted
        canvas = prev.canvas + all_rows(object_canvas)
        state = StepState(lstm=lstm_state, z_where=all_rows(z_where), z_what=all_rows(z_what),
                          z_pres=z_pres, stopping_sum=stopping_sum, canvas=canvas)
        output = StepOutput(
            z_pres_log_odds=z_pres_log_odds, z_pres=z_pres,
            z_where_mean=all_rows(z_where_mean), z_where_std=all_rows(z_where_std),
            z_where=state.z_where, scale=all_rows(scale), shift=all_rows(shift),
            z_what_mean=all_rows(z_what_mean), z_what_std=all_rows(z_what_std),
            z_what=state.z_what, window=all_rows(window),
            reconstruction=all_rows(reconstruction), attempted=attempted, live=live,
            kl_z_pres=attempted * (z_pres_density.posterior - z_pres_density.prior),
            kl_z_where=all_rows(kl_z_where), kl_z_what=all_rows(kl_z_what))
        step_density = LogDensity(*[
            attempted * pres + all_rows(where + what)
            for pres, where, what in zip(z_pres_density, z_where_density, z_what_density)])
        return state, output, step_density

    def _presence(self, t, hidden):
        """Takes the LSTM output to (z_pres log-odds, z_pres, unmasked z_pres KL), each [B]."""
        config = self.config
        z_pres_log_odds = networks.mlp(
            hidden, [config.z_pres_hidden_units], 1, "z_pres", tf.nn.relu)[:, 0]
        seed_offset = latent_seed_offset(t, Z_PRES_SEED)
        if self.training:
            z_pres_logit = dist.binary_concrete_sample_logit(
                z_pres_log_odds, config.concrete_temperature, self._seed_for(seed_offset))
            z_pres = tf.sigmoid(z_pres_logit)
            kl_z_pres = dist.binary_concrete_kl_sample(
                z_pres_logit, z_pres_log_odds, self.z_pres_prior_log_odds,
                config.concrete_temperature)
        elif self.discrete_sample:
            # Its KL term is the log-probability ratio of the value used (_sampled_step).
            uniform = tf.random.stateless_uniform(
                tf.shape(z_pres_log_odds), seed=self._stateless_seed(seed_offset),
                minval=np.finfo(np.float32).tiny, maxval=1.0)
            z_pres = dist.bernoulli_sample(z_pres_log_odds, uniform)
            kl_z_pres = None
        else:
            z_pres = tf.cast(z_pres_log_odds > 0.0, tf.float32)
            kl_z_pres = dist.bernoulli_kl(z_pres_log_odds, self.z_pres_prior_log_odds)
        return z_pres_log_odds, z_pres, kl_z_pres

    def _where(self, t, hidden):
        """Takes the LSTM output to z_where [B, 3] (mean, std, sample), the window's scale [B]
        and shift [B, 2], the KL [B] of z_where (of the latent, before any squashing) and its
        LogDensity; in the sampled discrete model the KL is log q - log p at the sample,
        elsewhere it is the closed form and the LogDensity is None."""
        config = self.config
        if config.z_where_heads == "shared":
            z_where_params = networks.mlp(hidden, [config.z_where_hidden_units], 6, "z_where")
            z_where_mean = z_where_params[:, :3]
            z_where_std = dist.positive_std(z_where_params[:, 3:])
            z_where_log_variance = None
        else:
            # The original code's four networks, one per (latent, moment).
            units = [config.z_where_hidden_units]
            with tf.variable_scope("z_where"):
                z_where_mean = tf.concat([
                    networks.mlp(hidden, units, 1, "scale_mean"),
                    networks.mlp(hidden, units, 2, "shift_mean")], axis=1)
                z_where_log_variance = tf.concat([
                    networks.mlp(hidden, units, 1, "scale_log_variance"),
                    networks.mlp(hidden, units, 2, "shift_log_variance")], axis=1)
            z_where_std = tf.exp(0.5 * z_where_log_variance)
        z_where = (self._gaussian_sample(z_where_mean, z_where_std,
                                         latent_seed_offset(t, Z_WHERE_SEED))
                   if self._samples_latents else z_where_mean)
        scale = tf.maximum(window_scale(z_where[:, 0], config.scale_transform), MIN_SCALE)
        shift = tf.tanh(z_where[:, 1:]) if config.shift_transform == "tanh" else z_where[:, 1:]

        prior_mean = [config.scale_prior_mean, config.shift_prior_mean, config.shift_prior_mean]
        prior_variance = [config.scale_prior_variance, config.shift_prior_variance,
                          config.shift_prior_variance]
        if self.discrete_sample:
            density = self._gaussian_log_density(z_where, z_where_mean, z_where_std,
                                                 z_where_log_variance, prior_mean, prior_variance)
            return (z_where_mean, z_where_std, z_where, scale, shift,
                    density.posterior - density.prior, density)
        if z_where_log_variance is None:
            kl = dist.gaussian_kl(z_where_mean, z_where_std, prior_mean, prior_variance)
        else:
            kl = dist.gaussian_kl_log_variance(z_where_mean, z_where_log_variance, prior_mean,
                                               prior_variance)
        return z_where_mean, z_where_std, z_where, scale, shift, tf.reduce_sum(kl, axis=1), None

    def _what(self, t, window):
        """Takes the attended window to z_what's mean, std, sample and KL, the decoded window and
        z_what's LogDensity (None outside the sampled discrete model, as in ``_where``)."""
        config = self.config
        size, latent = config.window_size, config.vae_latent
        activation = networks.ACTIVATIONS[config.vae_activation]
        flat_window = tf.reshape(window, [-1, size * size])
        if config.z_what_variance_head == "softplus_std":
            z_what_params = networks.mlp(flat_window, config.vae_recognition_units, 2 * latent,
                                         "vae_encoder", activation)
            z_what_mean = z_what_params[:, :latent]
            z_what_std = dist.positive_std(z_what_params[:, latent:])
            z_what_log_variance = None
        else:
            # The original code's separate mean and log-variance layers on the last hidden layer.
            with tf.variable_scope("vae_encoder"):
                encoded = flat_window
                for i, units in enumerate(config.vae_recognition_units):
                    encoded = networks.dense(encoded, units, "hidden_%d" % i, activation)
                z_what_mean = networks.dense(encoded, latent, "mean")
                z_what_log_variance = networks.dense(encoded, latent, "log_variance")
            z_what_std = tf.exp(0.5 * z_what_log_variance)
        z_what = (self._gaussian_sample(z_what_mean, z_what_std,
                                        latent_seed_offset(t, Z_WHAT_SEED))
                  if self._samples_latents else z_what_mean)
        density = None
        if self.discrete_sample:
            density = self._gaussian_log_density(
                z_what, z_what_mean, z_what_std, z_what_log_variance,
                [config.z_what_prior_mean] * latent, [config.z_what_prior_variance] * latent)
            kl_z_what = density.posterior - density.prior
        elif z_what_log_variance is None:
            kl = dist.gaussian_kl(z_what_mean, z_what_std, config.z_what_prior_mean,
                                  config.z_what_prior_variance)
        else:
            kl = dist.gaussian_kl_log_variance(z_what_mean, z_what_log_variance,
                                               config.z_what_prior_mean,
                                               config.z_what_prior_variance)
        if not self.discrete_sample:
            kl_z_what = tf.reduce_sum(kl, axis=1)
        decoder_logits = networks.mlp(z_what, config.vae_generative_units, size * size,
                                      "vae_decoder", activation)
        if self.training:
            # Noise on the logits keeps the decoder from relying on exact intensities.
            decoder_logits += config.vae_likelihood_std * tf.random_normal(
                tf.shape(decoder_logits), seed=self._seed_for(DECODER_NOISE_SEED + t))
        reconstruction = tf.reshape(tf.sigmoid(decoder_logits), [-1, size, size])
        return z_what_mean, z_what_std, z_what, kl_z_what, reconstruction, density

    @staticmethod
    def _gaussian_log_density(sample, mean, std, log_variance, prior_mean, prior_variance):
        """A Gaussian latent's sample [B, D] -> its LogDensity, each [B] summed over the D units.

        log q uses the log-variance head when the config has one (no log of a tiny std).
        """
        if log_variance is None:
            posterior = dist.gaussian_log_density(sample, mean, std)
        else:
            posterior = dist.gaussian_log_density_log_variance(sample, mean, log_variance)
        prior_std = np.sqrt(np.asarray(prior_variance, np.float64)).astype(np.float32)
        prior = dist.gaussian_log_density(sample, np.asarray(prior_mean, np.float32), prior_std)
        return LogDensity(prior=tf.reduce_sum(prior, axis=1),
                          posterior=tf.reduce_sum(posterior, axis=1))

    def _build_accuracy(self, true_counts):
        true_counts = tf.cast(true_counts, tf.int32)
        self.count_correct = tf.cast(tf.equal(self.digit_count, true_counts), tf.float32)
        self.accuracy = tf.reduce_mean(self.count_correct)
        self.accuracy_by_count = {}
        for k in range(self.config.max_steps + 1):
            mask = tf.cast(tf.equal(true_counts, k), tf.float32)
            # No image with k digits in the batch gives NaN rather than a misleading 0.
            self.accuracy_by_count[k] = (tf.reduce_sum(mask * self.count_correct)
                                         / tf.reduce_sum(mask))
