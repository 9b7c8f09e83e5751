"""The two maps from the scale latent of z_where to the window size (AIRConfig.scale_transform)."""
import math

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.model.air_model import AIRModel, window_scale
from air.config import AIRConfig


def _scales(latents, transform):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(window_scale(tf.constant(latents, tf.float32), transform))


def test_sigmoid_and_exp_maps_against_their_formulas():
    latents = np.array([-3.0, -1.0, 0.0, 0.5, 2.0], np.float32)
    np.testing.assert_allclose(_scales(latents, "sigmoid"), 1.0 / (1.0 + np.exp(-latents)),
                               rtol=1e-6)
    np.testing.assert_allclose(_scales(latents, "exp"), np.exp(latents), rtol=1e-6)
    # The prior mean -1 means a window of 27% of the canvas with sigmoid, 37% with exp.
    assert _scales([-1.0], "sigmoid")[0] == pytest.approx(0.2689, abs=1e-4)
    assert _scales([-1.0], "exp")[0] == pytest.approx(math.exp(-1.0), abs=1e-6)


def test_exp_map_stays_finite_for_huge_latents():
    assert np.all(np.isfinite(_scales([100.0, 1e6], "exp")))


def test_unknown_scale_transform_is_a_clear_error():
    with pytest.raises(ValueError, match="scale_transform must be one of sigmoid, exp"):
        AIRConfig(scale_transform="tanh")


def test_exp_model_builds_with_finite_loss_and_gradients():
    config = AIRConfig(scale_transform="exp", rnn_units=16, vae_latent=4,
                       vae_recognition_units=(16,), vae_generative_units=(16,),
                       z_where_hidden_units=8, z_pres_hidden_units=8)
    rng = np.random.RandomState(0)
    images = (rng.rand(4, 50, 50) > 0.9).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        model = AIRModel(tf.constant(images), config, training=True, seed=1)
        gradients = tf.gradients(model.loss, tf.trainable_variables())
        session.run(tf.global_variables_initializer())
        loss, values = session.run([model.loss, gradients])
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(g)) for g in values)
