"""Honest likelihood numbers: the Monte Carlo ELBO and the importance-weighted bound on log p(x).

Both are for the discrete model that test mode stands for (``AIRModel(..., training=False,
discrete_sample=True)``): z_pres ~ Bernoulli(sigmoid(log-odds)) with the model stopping at the
first z_pres = 0, z_where and z_what drawn from their posteriors, the decoder without its
training noise, and the z_pres prior at the end of its schedule (its floor), whatever the
iteration of the checkpoint, so numbers of different iterations compare.

For image x and a joint sample z ~ q(z|x) the log importance weight is
log w = log p(x|z) + log p(z) - log q(z|x), summed over the steps that ran (z_pres terms for
every attempted step, z_where and z_what terms for live steps), with the Bernoulli pixel
likelihood the model trains with. Per image, from S samples:

* ELBO: the mean of the S log weights (unbiased for E_q[log w]).
* IWAE bound (Burda et al., 2016): log (1/K sum_k w_k), a lower bound on log p(x) in
  expectation that does not decrease as K grows and equals the ELBO at K = 1.

Each figure is the mean of the per-image values over the images, with the standard error of
that mean over images (std of the per-image values / sqrt(images)): how well the figure of
these images estimates that of the data distribution. Most of it is the spread between images
(an empty image scores about 0 nats, a two-digit one about -360), so more samples do not shrink
it. The ELBO also gets its Monte Carlo standard error, sqrt(sum_i var_i / S) / images with var_i
the variance of image i's log weights: the error the sampling adds for these very images,
which more samples do shrink.

The ELBO and the IWAE bound of one report share their draws: max(N, K) samples per image, the
ELBO from the first N, the bound from the first K.
"""
import math

import numpy as np

# Image-samples (images x repeats) per forward pass: large enough to keep the two CPU cores
# busy, small enough that the canvases of one pass stay far below a GiB (on the 2-core CPU 1000
# was as fast as any of 500, 2000, 4000 and 5000).
DEFAULT_SAMPLES_PER_PASS = 1000

# Keys of ``likelihood_report``, in order.
REPORT_KEYS = ("elbo", "elbo_stderr", "elbo_monte_carlo_stderr", "elbo_samples",
               "log_likelihood_iwae", "log_likelihood_iwae_stderr", "iwae_samples",
               "z_pres_prior_log_odds", "seed")


class LogWeightSampler:
    """The sampled discrete AIRModel on fed images, each repeated: log weights [images, samples].

    Args:
        config: the model's ``AIRConfig``.
        seed: integer seed of the sampling. Pass i of a ``log_weights`` call draws from the
            stateless samplers keyed (seed, i), so the same seed, images, sample count and
            ``samples_per_pass`` give the same log weights at every call (to float32 rounding),
            in any graph and on either stack (training's held-out ELBO thus draws the same noise at every evaluation,
            and its curve moves only with the model).
        scope: variable scope of the model (its variables are reused if they exist).
        samples_per_pass: image-samples per session.run (memory bound, not a statistical one).

    The z_pres prior is the floor of its schedule. Builds into the current default graph.
    """

    def __init__(self, config, seed=0, scope="air", samples_per_pass=DEFAULT_SAMPLES_PER_PASS):
        import tensorflow.compat.v1 as tf
        from air.model.air_model import AIRModel
        self.config = config
        self.seed = seed
        self.samples_per_pass = samples_per_pass
        self.images = tf.placeholder(
            tf.float32, [None, config.canvas_height, config.canvas_width], name="images")
        self.repeats = tf.placeholder(tf.int32, [], name="repeats")
        self.pass_seed = tf.placeholder(tf.int64, [2], name="pass_seed")
        self.model = AIRModel(self.images, config, training=False, discrete_sample=True,
                              sample_seed=self.pass_seed, samples_per_image=self.repeats,
                              scope=scope)
        self.log_weights_op = tf.reshape(self.model.log_weight, tf.stack([-1, self.repeats]))

    def log_weights(self, session, images, samples):
        """Takes images [N, H, W] (numpy) and a sample count S to log weights [N, S] (float64)."""
        images = np.asarray(images, np.float32)
        repeats = min(samples, self.samples_per_pass)
        images_per_pass = max(1, self.samples_per_pass // repeats)
        result = np.zeros([len(images), samples], np.float64)
        pass_index = 0
        for start in range(0, len(images), images_per_pass):
            chunk = images[start:start + images_per_pass]
            for first in range(0, samples, repeats):
                count = min(repeats, samples - first)
                result[start:start + len(chunk), first:first + count] = session.run(
                    self.log_weights_op, {self.images: chunk, self.repeats: count,
                                          self.pass_seed: [self.seed, pass_index]})
                pass_index += 1
        return result


def elbo_per_image(log_weights):
    """Takes log weights [N, S] to each image's Monte Carlo ELBO [N]: their mean."""
    return np.mean(np.asarray(log_weights, np.float64), axis=1)


def iwae_per_image(log_weights):
    """Takes log weights [N, K] to each image's IWAE bound [N]: log (1/K sum_k exp(log w_k)),
    computed around the largest weight so that no exp overflows."""
    log_weights = np.asarray(log_weights, np.float64)
    largest = np.max(log_weights, axis=1, keepdims=True)
    mean_scaled = np.mean(np.exp(log_weights - largest), axis=1)
    return largest[:, 0] + np.log(mean_scaled)


def stderr_over_images(per_image):
    """Takes per-image values [N] to the standard error of their mean (None for one image)."""
    per_image = np.asarray(per_image, np.float64)
    if len(per_image) < 2:
        return None
    return float(np.std(per_image, ddof=1) / math.sqrt(len(per_image)))


def monte_carlo_stderr(log_weights):
    """Takes log weights [N, S] to the sampling error of the mean ELBO over these N images,
    sqrt(sum_i var_i / S) / N (None for one sample per image)."""
    log_weights = np.asarray(log_weights, np.float64)
    images, samples = log_weights.shape
    if samples < 2:
        return None
    variances = np.var(log_weights, axis=1, ddof=1)
    return float(math.sqrt(np.sum(variances) / samples) / images)


def elbo_report(log_weights):
    """Takes log weights [N, S] to the ELBO keys of evaluate.py's report."""
    per_image = elbo_per_image(log_weights)
    return {"elbo": float(np.mean(per_image)),
            "elbo_stderr": stderr_over_images(per_image),
            "elbo_monte_carlo_stderr": monte_carlo_stderr(log_weights),
            "elbo_samples": int(np.shape(log_weights)[1])}


def iwae_report(log_weights):
    """Takes log weights [N, K] to the IWAE keys of evaluate.py's report."""
    per_image = iwae_per_image(log_weights)
    return {"log_likelihood_iwae": float(np.mean(per_image)),
            "log_likelihood_iwae_stderr": stderr_over_images(per_image),
            "iwae_samples": int(np.shape(log_weights)[1])}


def likelihood_report(session, sampler, images, elbo_samples, iwae_samples=None):
    """Takes images [N, H, W] to the figures keyed by ``REPORT_KEYS``: the ELBO from the first
    ``elbo_samples`` log weights of each image and, with ``iwae_samples``, the IWAE bound from the
    first ``iwae_samples`` of the same draws (None-valued without it), the z_pres prior log-odds
    both use and the sampler's seed; also ``elbo_per_image`` [N], for breakdowns by image (not a
    report key). Sharing the draws costs max(N, K) samples per image, not N + K."""
    log_weights = sampler.log_weights(session, images, max(elbo_samples, iwae_samples or 0))
    report = elbo_report(log_weights[:, :elbo_samples])
    report["elbo_per_image"] = elbo_per_image(log_weights[:, :elbo_samples])
    if iwae_samples:
        report.update(iwae_report(log_weights[:, :iwae_samples]))
    else:
        report.update({"log_likelihood_iwae": None, "log_likelihood_iwae_stderr": None,
                       "iwae_samples": None})
    report["z_pres_prior_log_odds"] = float(session.run(sampler.model.z_pres_prior_log_odds))
    report["seed"] = sampler.seed
    return report
