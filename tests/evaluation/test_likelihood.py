"""The sampled discrete model (AIRModel(discrete_sample=True)) and air/evaluation/likelihood.py's ELBO and
importance-weighted bound, against exact values.

The exact values come from a tiny model (two steps, 12x12 canvas) whose output layers have zero
kernels, so their biases alone fix the posterior of every step, whatever the image and the
earlier samples. Its z_pres posterior is then the same Bernoulli at every step, so the number
of objects n has q(n) = q^n (1 - q) (n < 2), q^2 (n = 2), and every expectation over z_pres is a
sum over n = 0, 1, 2:

* ``ELBO_CASE``: z_where has std ~1e-4 (a fixed window) and the decoder paints a constant 0.5
  window, so the canvas, hence log p(x|z), is a known function of n, and the ELBO is
  sum_n q(n) log p(x|n) - KL, with the KL in closed form.
* ``IWAE_CASE``: the decoder paints nothing (log p(x|z) is a constant C of the image) and the
  z_where and z_what posteriors equal their priors, so a log weight is C + log p(n) - log q(n),
  log p(x) = C exactly, and E[IWAE_K] is an exact sum over the multinomial counts of n in K draws.
"""
import math

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from scipy.special import gammaln, logsumexp

from air.evaluation import likelihood
from air.model import transformer
from air.model.air_model import AIRModel
from air.config import AIRConfig
from conftest import evaluate_in_graph

TINY = AIRConfig(canvas_height=12, canvas_width=12, window_size=4, max_steps=2, rnn_units=8,
                 vae_latent=2, vae_recognition_units=(8,), vae_generative_units=(8,),
                 z_where_hidden_units=4, z_pres_hidden_units=4)
EPSILON = np.float32(TINY.likelihood_epsilon)
PRIOR_LOG_ODDS = np.float32(TINY.z_pres_prior_log_odds_range[1])  # the floor, -20.72


def inverse_softplus(y):
    return np.log(np.expm1(y))


def std_bias(std):
    """The raw output whose std (softplus + 1e-4) is ``std``."""
    return inverse_softplus(np.asarray(std, np.float64) - 1e-4)


def log_sigmoid(x):
    return -np.logaddexp(0.0, -np.float64(x))


ELBO_CASE = {
    "z_pres": [0.5],
    # Scale 0.5 (a 6-pixel window), centre (-0.1, -0.1); std ~1e-4: the window is fixed.
    "z_where": [0.0, -0.1, -0.1] + [-30.0] * 3,
    "z_what": [0.3, -0.2] + list(std_bias([0.7, 0.3])),
    "decoder": [0.0] * 16,  # every decoded pixel sigmoid(0) = 0.5
}
IWAE_CASE = {
    "z_pres": [0.0],  # q = 0.5 at each step
    "z_where": [TINY.scale_prior_mean, 0.0, 0.0] + list(std_bias(
        np.sqrt([TINY.scale_prior_variance, TINY.shift_prior_variance,
                 TINY.shift_prior_variance]))),
    "z_what": [0.0, 0.0] + list(std_bias([1.0, 1.0])),
    "decoder": [-30.0] * 16,  # blank windows: the canvas is ~0, clipped to 1e-6
}
OUTPUT_LAYERS = {"z_pres": "z_pres", "z_where": "z_where", "z_what": "vae_encoder",
                 "decoder": "vae_decoder"}


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_v2_behavior()


def fix_output_layers(session, biases):
    """Sets every output layer's kernel to zero and its bias to ``biases[name]``."""
    variables = {v.op.name: v for v in tf.global_variables()}
    for name, layer in OUTPUT_LAYERS.items():
        kernel = variables["air/%s/output/weights" % layer]
        session.run([kernel.assign(tf.zeros_like(kernel)),
                     variables["air/%s/output/biases" % layer].assign(
                         np.asarray(biases[name], np.float32))])


def sampled_log_weights(biases, images, samples, seed=0):
    """Log weights [N, samples] of the fixed tiny model through likelihood.LogWeightSampler."""
    with tf.Graph().as_default():
        sampler = likelihood.LogWeightSampler(TINY, seed=seed)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            fix_output_layers(session, biases)
            return sampler.log_weights(session, images, samples)


def sampled_terms(biases, images, samples, sample_seed=(0, 0)):
    """The fixed tiny model's per-sample terms, each [N * samples], through AIRModel."""
    with tf.Graph().as_default():
        model = AIRModel(tf.constant(images), TINY, training=False, discrete_sample=True,
                         samples_per_image=samples, sample_seed=sample_seed)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            fix_output_layers(session, biases)
            return session.run({
                "log_likelihood": model.log_likelihood, "log_prior": model.log_prior,
                "log_posterior": model.log_posterior, "log_weight": model.log_weight,
                "negative_elbo": model.negative_elbo, "digit_count": model.digit_count,
                "z_pres": model.steps.z_pres, "live": model.steps.live,
                "attempted": model.steps.attempted, "z_where": model.steps.z_where,
                "z_what": model.steps.z_what})


# --- Exact values of the fixed tiny model ---------------------------------------------------

def count_log_probabilities(log_odds, steps=2):
    """log P(n objects) [steps + 1] when every attempted step has z_pres log-odds ``log_odds``."""
    present, absent = log_sigmoid(log_odds), log_sigmoid(-log_odds)
    return np.array([n * present + (absent if n < steps else 0.0) for n in range(steps + 1)])


def bernoulli_kl(q_log_odds, p_log_odds):
    q = math.exp(log_sigmoid(q_log_odds))
    return (q * (log_sigmoid(q_log_odds) - log_sigmoid(p_log_odds))
            + (1 - q) * (log_sigmoid(-q_log_odds) - log_sigmoid(-p_log_odds)))


def gaussian_kl(mean, std, prior_mean, prior_variance):
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return np.sum(0.5 * (np.log(prior_variance) - 2 * np.log(std)
                         + (std ** 2 + (mean - prior_mean) ** 2) / prior_variance - 1.0))


def posterior_std(raw):
    return np.logaddexp(0.0, np.asarray(raw, np.float64)) + 1e-4


def exact_kl(biases):
    """KL(q || p) of the whole latent sequence: (1 + q) KL_pres + (q + q^2) (KL_where + KL_what)."""
    a = biases["z_pres"][0]
    q = math.exp(log_sigmoid(a))
    where, what = biases["z_where"], biases["z_what"]
    kl_where = gaussian_kl(where[:3], posterior_std(where[3:]),
                           np.array([TINY.scale_prior_mean, TINY.shift_prior_mean,
                                     TINY.shift_prior_mean]),
                           np.array([TINY.scale_prior_variance, TINY.shift_prior_variance,
                                     TINY.shift_prior_variance]))
    kl_what = gaussian_kl(what[:2], posterior_std(what[2:]), TINY.z_what_prior_mean,
                          TINY.z_what_prior_variance)
    return (1 + q) * bernoulli_kl(a, PRIOR_LOG_ODDS) + (q + q * q) * (kl_where + kl_what)


def bernoulli_log_likelihood(images, canvas):
    """Per-image log p(x | canvas) of the model's clipped Bernoulli, in float64."""
    p = np.clip(canvas, EPSILON, np.float32(1.0) - EPSILON).astype(np.float64)
    return np.sum(images * np.log(p) + (1 - images) * np.log1p(-p), axis=(-2, -1))


def elbo_case_canvases():
    """The canvas [3, 12, 12] with 0, 1 and 2 objects of ELBO_CASE (both at one window)."""
    window = np.full([1, 4, 4], 0.5, np.float32)
    pasted = evaluate_in_graph(
        lambda w: transformer.paste(w, tf.sigmoid(tf.zeros([1])), tf.constant([[-0.1, -0.1]]),
                                    12, 12), window)[0]
    return np.stack([n * pasted for n in range(3)])


def elbo_case_images(rng, count):
    """Images in [0, 1] near the one-object canvas: ink in and around the window."""
    one = elbo_case_canvases()[1]
    return np.clip(one + 0.3 * rng.rand(count, 12, 12) * (one > 0), 0, 1).astype(np.float32)


def exact_elbo(images, biases):
    """Per-image ELBO of ELBO_CASE: sum_n q(n) log p(x|n) - KL."""
    log_q_count = count_log_probabilities(biases["z_pres"][0])
    per_count = np.stack([bernoulli_log_likelihood(images, c) for c in elbo_case_canvases()],
                         axis=1)
    return per_count @ np.exp(log_q_count) - exact_kl(biases)


def iwae_case_log_weights():
    """The log weight minus C of 0, 1 and 2 objects, and the probability q(n) of each."""
    log_q = count_log_probabilities(IWAE_CASE["z_pres"][0])
    log_p = count_log_probabilities(PRIOR_LOG_ODDS)
    return log_p - log_q, np.exp(log_q)


def exact_expected_iwae(samples):
    """E[IWAE_K] - C: the sum over the counts (k0, k1, k2) of n in K draws, multinomial weights."""
    log_w, q = iwae_case_log_weights()
    terms = []
    for k0 in range(samples + 1):
        for k1 in range(samples + 1 - k0):
            k = np.array([k0, k1, samples - k0 - k1])
            log_multinomial = gammaln(samples + 1) - np.sum(gammaln(k + 1)) + np.sum(k * np.log(q))
            bound = logsumexp(log_w[k > 0], b=k[k > 0]) - math.log(samples)
            terms.append((log_multinomial, bound))
    log_probability, bound = np.array(terms).T
    return float(np.sum(np.exp(log_probability) * bound))


def constant_log_likelihood(images):
    """C: log p(x|z) of IWAE_CASE, whose canvas is everywhere clipped to 1e-6."""
    return bernoulli_log_likelihood(images, np.zeros_like(images))


# --- The ELBO against the enumeration of z_pres ----------------------------------------------

def test_sampled_elbo_matches_the_enumeration_of_z_pres():
    images = elbo_case_images(np.random.RandomState(0), 3)
    samples = 20000
    log_weights = sampled_log_weights(ELBO_CASE, images, samples)
    expected = exact_elbo(images.astype(np.float64), ELBO_CASE)
    per_image = likelihood.elbo_per_image(log_weights)
    errors = np.sqrt(np.var(log_weights, axis=1, ddof=1) / samples)
    # The three counts differ by ~30-60 nats of likelihood, so an error in any term (a KL
    # charged at a stopped step, a wrong count probability) is many standard errors off.
    assert np.all(np.abs(per_image - expected) < 4 * errors + 0.01), (per_image, expected, errors)
    assert np.all(errors < 1.0)
    report = likelihood.elbo_report(log_weights)
    assert report["elbo"] == pytest.approx(np.mean(expected),
                                           abs=4 * report["elbo_monte_carlo_stderr"] + 0.01)
    assert report["elbo_samples"] == samples


def test_log_likelihood_prior_and_posterior_terms_of_each_count():
    images = elbo_case_images(np.random.RandomState(1), 1)
    samples = 20000
    out = sampled_terms(ELBO_CASE, images, samples)
    counts = out["digit_count"]
    # How often each count is drawn: q(n) within 4 binomial standard errors.
    q_count = np.exp(count_log_probabilities(ELBO_CASE["z_pres"][0]))
    frequencies = np.bincount(counts, minlength=3) / float(samples)
    np.testing.assert_allclose(frequencies, q_count,
                               atol=4 * np.sqrt(q_count * (1 - q_count) / samples).max())
    # log p(x|z) is the likelihood of the canvas with n objects (the window barely moves).
    per_count = bernoulli_log_likelihood(images[0].astype(np.float64), elbo_case_canvases())
    for n in range(3):
        np.testing.assert_allclose(out["log_likelihood"][counts == n], per_count[n], atol=0.05)
    # log p(z) - log q(z) averages to -KL.
    ratio = out["log_prior"] - out["log_posterior"]
    assert np.mean(ratio) == pytest.approx(-exact_kl(ELBO_CASE),
                                           abs=4 * float(np.std(ratio)) / math.sqrt(samples))
    # The weight is the sum of its terms, and minus the per-sample negative ELBO.
    np.testing.assert_allclose(out["log_weight"], out["log_likelihood"] + ratio, rtol=1e-6)
    np.testing.assert_allclose(out["log_weight"], -out["negative_elbo"], rtol=1e-5, atol=1e-3)


# --- The importance-weighted bound against its exact expectation -----------------------------

@pytest.fixture(scope="module")
def iwae_case_draws():
    """(images [4, 12, 12], log weights minus C [4, 8000]) of IWAE_CASE."""
    images = np.random.RandomState(2).rand(4, 12, 12).astype(np.float32)
    log_weights = sampled_log_weights(IWAE_CASE, images, 8000, seed=5)
    return images, log_weights - constant_log_likelihood(images.astype(np.float64))[:, None]


def grouped_iwae(log_weights, samples):
    """IWAE_K of every disjoint group of K draws of each image: [N * S / K]."""
    return likelihood.iwae_per_image(log_weights.reshape(-1, samples))


def test_log_weights_take_the_three_values_of_the_counts(iwae_case_draws):
    _, log_weights = iwae_case_draws
    expected, _ = iwae_case_log_weights()
    nearest = np.min(np.abs(log_weights[..., None] - expected), axis=-1)
    assert np.all(nearest < 1e-3)


@pytest.mark.parametrize("samples", [1, 10, 100])
def test_iwae_estimates_match_their_exact_expectation(iwae_case_draws, samples):
    _, log_weights = iwae_case_draws
    estimates = grouped_iwae(log_weights, samples)
    error = np.std(estimates, ddof=1) / math.sqrt(len(estimates))
    assert np.mean(estimates) == pytest.approx(exact_expected_iwae(samples), abs=4 * error + 1e-3)


def test_iwae_grows_with_k_towards_log_p_x_and_equals_the_elbo_at_k_1(iwae_case_draws):
    images, log_weights = iwae_case_draws
    exact = [exact_expected_iwae(k) for k in (1, 10, 100)]
    # The exact expectations: the ELBO (-KL), then strictly closer to log p(x) = C (0 here).
    assert exact[0] == pytest.approx(-exact_kl(IWAE_CASE), abs=1e-6)
    assert exact[0] < exact[1] - 5 < exact[2] - 5 and exact[2] < 0.0
    estimates = [np.mean(grouped_iwae(log_weights, k)) for k in (1, 10, 100)]
    assert estimates[0] < estimates[1] < estimates[2] <= 0.05
    # K = 1 is the ELBO estimator itself.
    np.testing.assert_allclose(likelihood.iwae_per_image(log_weights[:, :1]),
                               likelihood.elbo_per_image(log_weights[:, :1]), rtol=1e-12)
    report = likelihood.iwae_report(log_weights[:, :100] + 7.0)
    assert report["log_likelihood_iwae"] == pytest.approx(
        7.0 + np.mean(likelihood.iwae_per_image(log_weights[:, :100])))
    assert report["iwae_samples"] == 100


def test_iwae_of_huge_and_tiny_log_weights_is_finite_and_exact():
    log_weights = np.array([[-5000.0, -5000.0 + math.log(3.0)], [800.0, -800.0]])
    np.testing.assert_allclose(likelihood.iwae_per_image(log_weights),
                               [-5000.0 + math.log(2.0), 800.0 - math.log(2.0)])
    assert likelihood.stderr_over_images([3.0]) is None
    assert likelihood.monte_carlo_stderr(np.zeros([4, 1])) is None
    assert likelihood.stderr_over_images([1.0, 3.0]) == pytest.approx(1.0)
    # Variances 0.5 and 2 over 2 samples: sqrt((0.5 + 2) / 2) / 2.
    assert likelihood.monte_carlo_stderr([[0.0, 1.0], [0.0, 2.0]]) == pytest.approx(
        math.sqrt(1.25) / 2)


# --- The sampled discrete model ----------------------------------------------------------------

def test_discrete_sample_needs_test_mode_and_samples_per_image_needs_it():
    with tf.Graph().as_default():
        images = tf.zeros([2, 12, 12])
        with pytest.raises(ValueError, match="training=False"):
            AIRModel(images, TINY, training=True, discrete_sample=True)
        with pytest.raises(ValueError, match="discrete_sample"):
            AIRModel(images, TINY, training=False, samples_per_image=3)


def test_z_pres_is_bernoulli_and_the_model_stops_at_the_first_zero():
    biases = dict(ELBO_CASE, z_pres=[-0.3])  # q = 0.43: every pattern of z_pres occurs
    images = elbo_case_images(np.random.RandomState(3), 2)
    out = sampled_terms(biases, images, 5000)
    z_pres, live, attempted = out["z_pres"], out["live"], out["attempted"]
    assert set(np.unique(z_pres)) == {0.0, 1.0}
    np.testing.assert_array_equal(live, np.cumprod(z_pres, axis=1))
    np.testing.assert_array_equal(attempted[:, 0], 1.0)
    np.testing.assert_array_equal(attempted[:, 1], z_pres[:, 0])
    np.testing.assert_array_equal(out["digit_count"], live.sum(axis=1))
    # Step 1 is Bernoulli(sigmoid(-0.3)), and so is step 2 whether or not it ran.
    q = 1.0 / (1.0 + math.exp(0.3))
    assert np.mean(z_pres[:, 0]) == pytest.approx(q, abs=4 * math.sqrt(q * (1 - q) / 10000))
    assert np.mean(z_pres[:, 1]) == pytest.approx(q, abs=4 * math.sqrt(q * (1 - q) / 10000))
    # z_what is drawn from its posterior N((0.3, -0.2), (0.7, 0.3)^2) where an object exists,
    # and is not drawn (zero) where the model stopped.
    assert np.all(out["z_what"][live == 0] == 0.0) and np.all(out["z_where"][live == 0] == 0.0)
    z_what = out["z_what"][live[:, 0] > 0, 0]
    np.testing.assert_allclose(np.mean(z_what, axis=0), [0.3, -0.2], atol=0.03)
    np.testing.assert_allclose(np.std(z_what, axis=0), [0.7, 0.3], rtol=0.05)


def test_samples_per_image_equals_feeding_the_repeated_images():
    """The image projection computed once per image changes nothing but the cost."""
    images = np.random.RandomState(4).rand(3, 12, 12).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(4)
        repeated = AIRModel(tf.constant(np.repeat(images, 5, axis=0)), TINY, training=False,
                            discrete_sample=True, sample_seed=(3, 1))
        per_image = AIRModel(tf.constant(images), TINY, training=False, discrete_sample=True,
                             samples_per_image=5, sample_seed=(3, 1))
        other_seed = AIRModel(tf.constant(images), TINY, training=False, discrete_sample=True,
                              samples_per_image=5, sample_seed=(3, 2))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            a, b, c = session.run([m.log_weight for m in (repeated, per_image, other_seed)])
            again = session.run(per_image.log_weight)
    assert a.shape == b.shape == (15,)
    np.testing.assert_allclose(b, a, rtol=1e-5)
    # Stateless: the same key gives the same samples (the sums may round differently: TF's
    # multithreaded reductions differed in the last bit between two runs).
    np.testing.assert_allclose(again, b, rtol=1e-6)
    assert not np.allclose(c, b)
    # The samples of an image differ (those that stop at once share a weight: no object).
    assert len(np.unique(b)) > 5


def test_log_weight_sampler_is_reproducible_and_independent_of_the_pass_size():
    images = elbo_case_images(np.random.RandomState(5), 3)
    first = sampled_log_weights(ELBO_CASE, images, 7, seed=11)
    assert first.shape == (3, 7) and np.all(np.isfinite(first))
    np.testing.assert_allclose(sampled_log_weights(ELBO_CASE, images, 7, seed=11), first,
                               rtol=1e-6)
    assert not np.allclose(sampled_log_weights(ELBO_CASE, images, 7, seed=12), first)
    # Passes of 4 image-samples (one image, 4 + 3 samples) instead of one pass: other draws of
    # the same distribution.
    with tf.Graph().as_default():
        sampler = likelihood.LogWeightSampler(TINY, seed=11, samples_per_pass=4)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            fix_output_layers(session, ELBO_CASE)
            small_passes = sampler.log_weights(session, images, 7)
    assert small_passes.shape == (3, 7) and not np.allclose(small_passes, first)


# --- Finite at the extremes, with the default configuration ------------------------------------

def test_log_weights_are_finite_at_the_extremes():
    config = AIRConfig()
    rng = np.random.RandomState(6)
    images = np.stack([np.zeros([50, 50]), np.ones([50, 50]), rng.rand(50, 50) > 0.7,
                       rng.rand(50, 50)]).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(6)
        model = AIRModel(tf.constant(images), config, training=False, discrete_sample=True,
                         samples_per_image=3)
        variables = {v.op.name: v for v in tf.global_variables()}
        value = tf.placeholder(tf.float32, [None])
        setters = {name: variables["air/%s/output/biases" % name].assign(value)
                   for name in ("z_pres", "z_where", "vae_decoder")}
        fetches = [model.log_weight, model.log_likelihood, model.log_prior, model.log_posterior]
        seen = set()
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for z_pres in (50.0, -50.0, 0.0):
                for decoder in (50.0, -50.0):
                    for where in ([10.0, 0, 0, -50, -50, -50], [0.0] * 6, [-8.0, 3, -3, 5, 5, 5]):
                        session.run(setters["z_pres"], {value: [z_pres]})
                        session.run(setters["vae_decoder"], {value: np.full(784, decoder)})
                        session.run(setters["z_where"], {value: where})
                        results = session.run(fetches + [model.digit_count])
                        for result in results[:4]:
                            assert np.all(np.isfinite(result)), (z_pres, decoder, where)
                        seen.update(results[4].tolist())
    assert {0, 3} <= seen
