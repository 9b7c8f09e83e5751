"""The config fields for each departure from the original code, and the 'original' preset.

Each option is checked where it shows: the variables it creates, the maths it computes (against
a formula or numerical integration), and finite values and gradients at the extremes with
TensorFlow's graph optimizer on (the default session config).
"""
import json
import math

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.model import distributions as dist
from air.model.air_model import AIRModel, bernoulli_log_likelihood, z_pres_prior_log_odds
from air.config import AIRConfig, LEGACY_VALUES, ORIGINAL_CHOICES

# The original code's choices, written out from its air_model.py, vae.py and training.py.
ORIGINAL = {
    "lstm_input": "image", "lstm_kernel_init": "joint", "z_where_heads": "separate",
    "shift_transform": "tanh", "vae_activation": "softplus",
    "z_what_variance_head": "log_variance", "likelihood_epsilon_placement": "inside_log",
    "likelihood_epsilon": 1e-9, "z_pres_prior_odds_epsilon": 1e-9, "scale_prior_mean": -1.0,
    "z_pres_prior_odds_decay_steps": 3000,
    # Constant: its training.py's learning-rate schedule is commented out.
    "scale_prior_anneal_steps": 0, "learning_rate_decay": 1.0,
}
SMALL = dict(rnn_units=16, vae_latent=4, vae_recognition_units=(16,), vae_generative_units=(16,),
             z_where_hidden_units=8, z_pres_hidden_units=8)


def _variables(config):
    """{name: shape} of the trainable variables of a model built with ``config``."""
    with tf.Graph().as_default():
        AIRModel(tf.zeros([2, 50, 50]), config, training=True)
        return {v.op.name: v.shape.as_list() for v in tf.trainable_variables()}


def test_original_preset_sets_every_departure_and_is_saved():
    config = AIRConfig.from_preset("original")
    assert {k: getattr(config, k) for k in ORIGINAL} == ORIGINAL
    assert ORIGINAL_CHOICES == ORIGINAL
    # The one departure the preset keeps (see air/config.py): this project's transformer grid.
    assert config.transformer_grid == "pixel_centres"
    assert config.preset == "original"
    assert json.loads(config.to_json())["preset"] == "original"
    # Explicit fields win over the preset.
    changed = AIRConfig.from_preset("original", lstm_input="image_and_latents")
    assert changed.lstm_input == "image_and_latents" and changed.shift_transform == "tanh"
    with pytest.raises(ValueError, match="unknown preset"):
        AIRConfig.from_preset("paper")


def test_a_saved_config_without_the_new_fields_keeps_its_old_graph():
    old = {k: v for k, v in AIRConfig().to_dict().items() if k not in LEGACY_VALUES}
    loaded = AIRConfig.from_json(json.dumps(old))
    for name, value in LEGACY_VALUES.items():
        assert getattr(loaded, name) == value, name
    assert AIRConfig.from_json(AIRConfig.from_preset("original").to_json()).preset == "original"


def test_a_saved_nvil_config_without_the_kl_gradient_field_keeps_its_autodiff_gradient():
    """The NVIL runs saved before nvil_kl_gradient differentiated the KL's formula; a saved
    config of another estimator without the field takes the default, since there it has no
    effect (and a non-default value is refused)."""
    old = {k: v for k, v in AIRConfig(z_pres_estimator="nvil").to_dict().items()
           if k != "nvil_kl_gradient"}
    assert AIRConfig.from_json(json.dumps(old)).nvil_kl_gradient == "autodiff"
    for estimator in ("concrete", "vimco"):
        old = {k: v for k, v in AIRConfig(z_pres_estimator=estimator).to_dict().items()
               if k != "nvil_kl_gradient"}
        assert AIRConfig.from_json(json.dumps(old)).nvil_kl_gradient == "closed_form"
    assert AIRConfig.from_json(json.dumps({})).nvil_kl_gradient == "closed_form"
    assert AIRConfig().nvil_kl_gradient == "closed_form"


@pytest.mark.parametrize("field,value", [("lstm_input", "pixels"), ("z_where_heads", "four"),
                                         ("shift_transform", "sigmoid"),
                                         ("transformer_grid", "corners"),
                                         ("vae_activation", "elu"),
                                         ("z_what_variance_head", "std"),
                                         ("likelihood_epsilon_placement", "outside"),
                                         ("lstm_kernel_init", "orthogonal"),
                                         ("likelihood_epsilon", 0.6),
                                         ("z_pres_prior_odds_epsilon", -1.0)])
def test_bad_option_values_are_clear_errors(field, value):
    with pytest.raises(ValueError, match=field):
        AIRConfig(**{field: value})


def test_variables_of_the_default_and_the_original_graph():
    default = _variables(AIRConfig())
    original = _variables(AIRConfig.from_preset("original"))
    # The LSTM reads the previous z_where (3), z_what (50) and z_pres (1) only by default.
    assert default["air/lstm/step_input/weights"] == [256 + 3 + 50 + 1, 1024]
    assert original["air/lstm/step_input/weights"] == [256, 1024]
    assert default["air/z_where/output/weights"] == [64, 6]
    for head, width in (("scale_mean", 1), ("scale_log_variance", 1), ("shift_mean", 2),
                        ("shift_log_variance", 2)):
        assert original["air/z_where/%s/hidden_0/weights" % head] == [256, 64]
        assert original["air/z_where/%s/output/weights" % head] == [64, width]
        assert not any(name.startswith("air/z_where/%s" % head) for name in default)
    assert default["air/vae_encoder/output/weights"] == [256, 100]
    assert original["air/vae_encoder/mean/weights"] == [256, 50]
    assert original["air/vae_encoder/log_variance/weights"] == [256, 50]
    assert "air/vae_encoder/output/weights" not in original
    shared = set(default) & set(original)
    assert "air/vae_decoder/output/weights" in shared and "air/z_pres/output/weights" in shared


def test_joint_lstm_init_draws_both_kernels_from_the_range_of_one_kernel():
    config = AIRConfig.from_preset("original")
    with tf.Graph().as_default(), tf.Session() as session:
        tf.set_random_seed(3)
        AIRModel(tf.zeros([2, 50, 50]), config, training=True)
        session.run(tf.global_variables_initializer())
        weights = {v.op.name: session.run(v) for v in tf.trainable_variables()
                   if v.op.name.startswith("air/lstm/") and v.op.name.endswith("weights")}
    limit = math.sqrt(6.0 / (2500 + 256 + 4 * 256))  # Glorot of the [2756, 1024] kernel.
    for name, value in weights.items():
        assert np.abs(value).max() <= limit, name
        # Uniform(-limit, limit) has std limit / sqrt(3).
        assert np.std(value) == pytest.approx(limit / math.sqrt(3), rel=0.02), name


def test_tanh_shift_is_bounded_and_identity_is_not():
    images = np.random.RandomState(0).rand(3, 50, 50).astype(np.float32)
    for transform, bounded in (("tanh", True), ("identity", False)):
        config = AIRConfig.from_preset("original", shift_transform=transform, **SMALL)
        with tf.Graph().as_default(), tf.Session() as session:
            model = AIRModel(tf.constant(images), config, training=True, seed=2)
            biases = [v for v in tf.trainable_variables()
                      if v.op.name == "air/z_where/shift_mean/output/biases"][0]
            session.run(tf.global_variables_initializer())
            session.run(biases.assign([30.0, -30.0]))
            shift, latent = session.run([model.steps.shift, model.steps.z_where[..., 1:]])
        np.testing.assert_allclose(shift, np.tanh(latent) if bounded else latent, atol=1e-6)
        assert (np.abs(shift).max() <= 1.0) == bounded


def test_kl_of_a_squashed_latent_equals_the_kl_before_the_squash():
    """The model charges the Gaussian KL of the latent before tanh: by the change of variables
    it is also the KL of the squashed window centres. Checked by integrating over (-1, 1)."""
    mean, log_variance, prior_mean, prior_variance = 0.4, math.log(0.3), 0.0, 1.0
    closed = float(_run(lambda: dist.gaussian_kl_log_variance(
        tf.constant(mean), tf.constant(log_variance), prior_mean, prior_variance)))
    y = np.linspace(-1 + 1e-9, 1 - 1e-9, 2000001)
    u = np.arctanh(y)
    jacobian = 1.0 / (1.0 - y ** 2)  # du/dy

    def density(m, variance):
        return np.exp(-(u - m) ** 2 / (2 * variance)) / np.sqrt(2 * np.pi * variance) * jacobian

    q, p = density(mean, math.exp(log_variance)), density(prior_mean, prior_variance)
    integrand = np.where(q > 0, q * (np.log(np.maximum(q, 1e-300)) - np.log(np.maximum(p, 1e-300))),
                         0.0)
    numerical = np.sum((integrand[1:] + integrand[:-1]) * np.diff(y)) / 2  # trapezoids
    assert numerical == pytest.approx(closed, abs=1e-4)
    # And against the textbook formula in u-space.
    variance = math.exp(log_variance)
    formula = 0.5 * (math.log(prior_variance / variance) + (variance + (mean - prior_mean) ** 2)
                     / prior_variance - 1)
    assert closed == pytest.approx(formula, rel=1e-5)


def _run(build):
    with tf.Graph().as_default(), tf.Session() as session:
        return session.run(build())


def test_log_variance_kl_matches_the_std_kl():
    mean = np.array([-2.0, 0.0, 1.5], np.float32)
    log_variance = np.array([-3.0, 0.0, 2.0], np.float32)
    a = _run(lambda: dist.gaussian_kl_log_variance(mean, log_variance, 0.5, 2.0))
    b = _run(lambda: dist.gaussian_kl(mean, np.exp(0.5 * log_variance), 0.5, 2.0))
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_prior_odds_epsilon_moves_the_floor_to_log_of_two_e_minus_nine():
    original = AIRConfig.from_preset("original")
    values = _run(lambda: [z_pres_prior_log_odds(original, step) for step in (0, 3000, 10 ** 6)])
    assert values[0] == pytest.approx(math.log(1e4 + 1e-9), abs=1e-4)
    assert values[1] == pytest.approx(math.log(1e3 + 1e-9), abs=1e-3)
    assert values[2] == pytest.approx(math.log(2e-9), abs=1e-4)
    assert original.z_pres_prior_log_odds_range[1] == pytest.approx(math.log(2e-9))
    assert _run(lambda: z_pres_prior_log_odds(AIRConfig(), 10 ** 6)) == pytest.approx(
        math.log(1e-9), abs=1e-4)


@pytest.mark.parametrize("placement", ["inside_log", "clip"])
def test_likelihood_placements_against_their_formulas(placement):
    eps = 1e-3
    images = np.array([0.0, 1.0, 1.0, 0.0, 0.3, 1.0], np.float32)
    canvas = np.array([0.0, 0.0, 1.0, 1.0, 0.6, 1.7], np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        canvas_tensor = tf.constant(canvas)
        value = bernoulli_log_likelihood(tf.constant(images), canvas_tensor, placement, eps)
        gradient = tf.gradients(tf.reduce_sum(value), canvas_tensor)[0]
        value, gradient = session.run([value, gradient])
    if placement == "inside_log":
        p = np.clip(canvas, 0, 1)
        expected = images * np.log(p + eps) + (1 - images) * np.log(1 - p + eps)
    else:
        p = np.clip(canvas, eps, 1 - eps)
        expected = images * np.log(p) + (1 - images) * np.log1p(-p)
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    assert np.all(np.isfinite(gradient))
    # Ink on an empty canvas: the original's placement still pulls the canvas up there.
    assert (gradient[1] > 0) == (placement == "inside_log")


def test_inside_log_is_finite_at_exactly_zero_and_one_with_the_graph_optimizer_on():
    """At float32 1 + 1e-9 == 1: a folded (1 + eps) - p would give log(0) at p = 1."""
    config = AIRConfig.from_preset("original")
    images = np.stack([np.zeros([50, 50]), np.ones([50, 50])]).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        canvas = tf.placeholder(tf.float32, [2, 50, 50])
        loss = -tf.reduce_sum(bernoulli_log_likelihood(
            tf.constant(images), canvas, "inside_log", config.likelihood_epsilon))
        gradient = tf.gradients(loss, canvas)[0]
        for fill in (0.0, 1.0):
            value, grad = session.run([loss, gradient], {canvas: np.full([2, 50, 50], fill)})
            assert np.isfinite(value) and np.all(np.isfinite(grad)), fill
            # One image is all wrong: 2,500 pixels at -log(1e-9) = 20.7 each.
            assert value == pytest.approx(2500 * -math.log(1e-9), rel=1e-3)


@pytest.mark.parametrize("training", [True, False])
def test_original_preset_is_finite_at_the_extremes(training):
    """Output biases pushed to the extremes the original's heads can reach: z_pres log-odds
    +-50, decoded windows exactly 0 or 1, log-variances -40 and +20, shifts far outside."""
    config = AIRConfig.from_preset("original", **SMALL)
    rng = np.random.RandomState(1)
    images = np.stack([np.zeros([50, 50]), np.ones([50, 50]), rng.rand(50, 50) > 0.7,
                       rng.rand(50, 50)]).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        step = tf.placeholder(tf.int64, [])
        model = AIRModel(tf.constant(images), config, training=training, global_step=step,
                         seed=4)
        variables = tf.trainable_variables()
        gradients = tf.gradients(model.loss, variables)
        by_name = {v.op.name: v for v in variables}
        session.run(tf.global_variables_initializer())
        for z_pres in (50.0, -50.0):
            for decoder in (50.0, -50.0):
                for log_variance in (-40.0, 20.0):
                    for shift in (0.0, 30.0):
                        session.run([
                            by_name["air/z_pres/output/biases"].assign([z_pres]),
                            by_name["air/vae_decoder/output/biases"].assign(np.full(784, decoder)),
                            by_name["air/z_where/scale_log_variance/output/biases"].assign(
                                [log_variance]),
                            by_name["air/z_where/shift_log_variance/output/biases"].assign(
                                [log_variance] * 2),
                            by_name["air/vae_encoder/log_variance/biases"].assign(
                                np.full(4, log_variance)),
                            by_name["air/z_where/shift_mean/output/biases"].assign([shift] * 2)])
                        for at in (0, 100000):
                            loss, grads = session.run([model.loss, gradients], {step: at})
                            context = (z_pres, decoder, log_variance, shift, at)
                            assert np.isfinite(loss), context
                            assert all(np.all(np.isfinite(g)) for g in grads), context


def test_z_pres_log_odds_bound_clips_the_log_odds_and_passes_their_gradient_through():
    """Past the bound the log-odds are the bound, their gradient is the identity's, and so the
    exact KL's gradient of a saturated presence is the closed form at the bound, not ~exp(-a)."""
    from air.model.air_model import clip_with_identity_gradient
    raw = np.array([-40.0, -8.0, -3.0, 0.0, 3.0, 8.0, 40.0], np.float32)

    def clipped_and_gradient(a):
        values = clip_with_identity_gradient(a, 8.0)
        return [values, tf.gradients(tf.reduce_sum(3.0 * values), a)[0]]
    values, gradient = _run(lambda: clipped_and_gradient(tf.constant(raw)))
    np.testing.assert_array_equal(values, np.clip(raw, -8.0, 8.0))
    np.testing.assert_array_equal(gradient, np.full_like(raw, 3.0))

    prior = -20.72
    def kl_gradient(bound):
        a = tf.constant(30.0)
        log_odds = clip_with_identity_gradient(a, bound) if bound else a
        return tf.gradients(dist.bernoulli_kl_closed_form_gradient(log_odds, prior), a)[0]
    at_bound = 1.0 / (1.0 + math.exp(-8.0)) / (1.0 + math.exp(8.0)) * (8.0 - prior)
    assert float(_run(lambda: kl_gradient(8.0))) == pytest.approx(at_bound, rel=1e-4)
    assert float(_run(lambda: kl_gradient(None))) < 1e-10

    images = np.random.RandomState(0).rand(3, 50, 50).astype(np.float32)
    for bound, expected in ((4.0, 4.0), (0.0, None)):
        config = AIRConfig(z_pres_estimator="nvil", z_pres_log_odds_bound=bound, **SMALL)
        with tf.Graph().as_default(), tf.Session() as session:
            model = AIRModel(tf.constant(images), config, training=True, seed=2)
            biases = [v for v in tf.trainable_variables()
                      if v.op.name.endswith("z_pres/output/biases")]
            assert len(biases) == 1, [v.op.name for v in tf.trainable_variables()]
            gradient = tf.gradients(tf.reduce_sum(model.steps.z_pres_log_odds), biases)[0]
            session.run(tf.global_variables_initializer())
            session.run(biases[0].assign([30.0]))
            log_odds, bias_gradient = session.run([model.steps.z_pres_log_odds, gradient])
        assert bias_gradient == pytest.approx([log_odds.size])
        if expected is None:
            assert log_odds.min() > 20.0
        else:
            np.testing.assert_array_equal(log_odds, np.full_like(log_odds, expected))
    with pytest.raises(ValueError, match="z_pres_log_odds_bound"):
        AIRConfig(z_pres_log_odds_bound=-1.0)
