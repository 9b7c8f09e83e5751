"""The discrete z_pres estimators are unbiased, checked by enumeration: on a tiny two-step model
with the z_where and z_what noise fixed (and no decoder noise), each sample's objective is a
function of its z_pres path alone, so the expected objective is a finite sum over every path
(of every sample, for VIMCO's K-sample bound) weighted by its probability under q. The mean of
the estimator's gradient of the z_pres network over many draws must equal the gradient of that
sum within its Monte Carlo error; the same estimator without its score-function term must not.
"""
import itertools

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.config import AIRConfig
from air.model import air_model
from air.model.air_model import AIRModel
from air.model.nvil import NVIL
from air.model.vimco import VIMCO, k_sample_bound

STEPS = 2
# The paths of one sample that give different objectives: after a 0 the model has stopped, so
# the second step's value is never used.
PATHS = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))
TINY = dict(canvas_height=8, canvas_width=8, window_size=4, rnn_units=8, vae_latent=2,
            vae_recognition_units=(8,), vae_generative_units=(8,), z_where_hidden_units=4,
            z_pres_hidden_units=4, max_steps=STEPS, vae_likelihood_std=0.0,
            z_pres_prior_odds_initial=0.5, scale_prior_mean=-0.5)
ESTIMATORS = {
    # NVIL centred by this batch's mean only (its running statistics are never updated here):
    # that moves the mean gradient by about 1/(images per run) of its score-function part.
    "nvil": (NVIL, dict(z_pres_estimator="nvil", nvil_variance_normalisation=False,
                        nvil_signal_decay=0.0), 1),
    "vimco": (VIMCO, dict(z_pres_estimator="vimco", vimco_samples=2), 2),
}
IMAGES_PER_RUN, RUNS = 400, 30


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_eager_execution()


def fixed_noise_mode(estimator, samples):
    """The estimator's mode with z_where and z_what drawn from fixed noise: the same noise for
    the k-th sample of every image."""
    rng = np.random.RandomState(2)
    noise = {(t, latent): rng.randn(samples, 3 if latent == air_model.Z_WHERE_SEED else 2)
             for t in range(STEPS) for latent in (air_model.Z_WHERE_SEED, air_model.Z_WHAT_SEED)}

    class FixedNoise(estimator):
        def gaussian(self, mean, std, t, latent_seed):
            tiled = tf.tile(tf.constant(noise[t, latent_seed], tf.float32),
                            [tf.shape(mean)[0] // samples, 1])
            return mean + std * tiled
    return FixedNoise


def per_image_objective(model, name, samples):
    """Each image's objective to maximise [B]: the ELBO (nvil) or the K-sample bound (vimco)."""
    log_weight = tf.reshape(-model.negative_elbo, [-1, samples])
    return log_weight[:, 0] if name == "nvil" else k_sample_bound(log_weight)


def enumerated_objective(image, config, name, samples):
    """The expected objective, summed over every combination of the samples' paths; and the
    total probability of the combinations (1)."""
    combinations = list(itertools.product(range(len(PATHS)), repeat=samples))
    override = np.array([PATHS[p] for combination in combinations for p in combination],
                        np.float32)
    images = tf.tile(image[None], [len(combinations), 1, 1])
    model = AIRModel(images, config, training=True, global_step=tf.constant(0),
                     z_pres_override=tf.constant(override))
    steps = model.steps
    log_q = tf.reduce_sum(steps.attempted * (
        steps.z_pres * tf.log_sigmoid(steps.z_pres_log_odds)
        + (1.0 - steps.z_pres) * tf.log_sigmoid(-steps.z_pres_log_odds)), axis=1)
    probability = tf.exp(tf.reduce_sum(tf.reshape(log_q, [-1, samples]), axis=1))
    objective = per_image_objective(model, name, samples)
    return tf.reduce_sum(probability * objective), tf.reduce_sum(probability)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_mean_gradient_of_the_z_pres_network_is_the_enumerated_gradient(name, monkeypatch):
    estimator, fields, samples = ESTIMATORS[name]
    config = AIRConfig(**dict(TINY, **fields))
    mode = fixed_noise_mode(estimator, samples)
    monkeypatch.setattr(air_model, "training_mode", lambda config, seed=None: mode(config, seed))
    image = (np.random.RandomState(1).rand(8, 8) > 0.6).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(7)
        model = AIRModel(tf.tile(tf.constant(image)[None], [IMAGES_PER_RUN, 1, 1]), config,
                         training=True, global_step=tf.constant(0))
        variables = [v for v in tf.trainable_variables() if v.name.startswith("air/z_pres/")]
        estimate = tf.gradients(model.objective.loss, variables)
        pathwise_only = tf.gradients(
            -tf.reduce_mean(per_image_objective(model, name, samples)), variables)
        expected, total = enumerated_objective(tf.constant(image), config, name, samples)
        exact = tf.gradients(-expected, variables)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            # Every hidden unit of the z_pres network active, so that all its parameters are
            # checked (with the initial zero biases some or all can be dead for this image).
            hidden_biases = [v for v in variables if v.name == "air/z_pres/hidden_0/biases:0"]
            session.run(tf.assign(hidden_biases[0], tf.fill(tf.shape(hidden_biases[0]), 2.0)))
            exact, total = session.run([flat(exact), total])
            draws = np.array([session.run([flat(estimate), flat(pathwise_only)])
                              for _ in range(RUNS)])
    assert total == pytest.approx(1.0, abs=1e-5)
    mean, error = draws.mean(axis=0), draws.std(axis=0, ddof=1) / np.sqrt(RUNS)
    scale = np.max(np.abs(exact))
    assert np.mean(exact != 0.0) > 0.9, "every parameter's gradient is checked"
    # Each parameter's mean within 5 standard errors.
    deviation = np.abs(mean[0] - exact) / (error[0] + 1e-6 * scale)
    assert np.max(deviation) < 5.0, (deviation, mean[0], exact)
    assert np.max(error[0]) < 0.5 * scale, "the check is too noisy to mean anything"
    # Without the score function the mean is far off: the check has the power to see it.
    assert np.max(np.abs(mean[1] - exact) / (error[1] + 1e-6 * scale)) > 20.0


def flat(gradients):
    return tf.concat([tf.reshape(g, [-1]) for g in gradients], axis=0)
