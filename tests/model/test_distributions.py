"""air/model/distributions.py against closed forms, numerical integration and Monte Carlo.

References are written independently of the code under test: the binary Concrete logit x
is (log_odds + L) / temperature with L standard Logistic, so its density is
temperature * logistic_pdf(temperature * x - log_odds) (scipy.stats.logistic).
"""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from scipy import integrate, stats

from air.model import distributions as dist
from conftest import evaluate_in_graph as evaluate


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_v2_behavior()


class ScalarFunction:
    """A TF function of one float32 scalar, evaluated from Python (for scipy.integrate.quad)."""

    def __init__(self, build):
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._x = tf.placeholder(tf.float32, [])
            self._y = build(self._x)
        self._session = tf.Session(graph=self._graph)
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return float(self._session.run(self._y, {self._x: x}))

    def close(self):
        self._session.close()


def reference_logit_log_density(x, log_odds, temperature):
    return np.log(temperature) + stats.logistic.logpdf(temperature * x - log_odds)


def reference_concrete_kl(posterior_log_odds, prior_log_odds, temperature):
    """KL between two binary Concretes' logit densities by quadrature over the real line."""
    def integrand(x):
        log_q = reference_logit_log_density(x, posterior_log_odds, temperature)
        return np.exp(log_q) * (log_q - reference_logit_log_density(x, prior_log_odds, temperature))
    value, _ = integrate.quad(integrand, -np.inf, np.inf, limit=200)
    return value


def reference_bernoulli_kl(posterior_log_odds, prior_log_odds):
    q = 1.0 / (1.0 + np.exp(-np.float64(posterior_log_odds)))
    p = 1.0 / (1.0 + np.exp(-np.float64(prior_log_odds)))
    return q * np.log(q / p) + (1.0 - q) * np.log((1.0 - q) / (1.0 - p))


TEMPERATURES = (0.3, 0.66, 1.0, 2.0)
# The integrands are float32 TF values: ask quad for float32-level accuracy, not float64's.
FLOAT32_QUAD = {"epsabs": 1e-6, "epsrel": 1e-6}
LOG_ODDS = (-3.0, 0.0, 2.5)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_concrete_density_integrates_to_one(temperature):
    for log_odds in LOG_ODDS:
        on_logit = ScalarFunction(lambda x: tf.exp(
            dist.binary_concrete_logit_log_density(x, log_odds, temperature)))
        try:
            total, _ = integrate.quad(on_logit, -np.inf, np.inf, limit=200, **FLOAT32_QUAD)
        finally:
            on_logit.close()
        assert total == pytest.approx(1.0, abs=1e-4), (log_odds, temperature)


@pytest.mark.parametrize("temperature", (0.66, 1.0, 2.0))
def test_concrete_density_on_unit_interval_integrates_to_one(temperature):
    """The density of y = sigmoid(x) on (0, 1), with quad's algebraic end-point weights.

    Near 0 the density behaves as y^(t - 1) and near 1 as (1 - y)^(t - 1) (spikes below
    temperature 1), so quad integrates density / (y (1 - y))^(t - 1), which is smooth, with
    the weight (y (1 - y))^(t - 1). float32 cannot resolve y within 6e-8 of 1 (nor the mass
    there at low temperatures), so points are clamped to float32's open unit interval.
    """
    lowest = float(np.finfo(np.float32).tiny)
    highest = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
    power = temperature - 1.0
    for log_odds in LOG_ODDS:
        log_density = ScalarFunction(lambda y: dist.binary_concrete_log_density(
            y, log_odds, temperature))

        def smooth_part(y):
            y = float(np.clip(np.float32(y), lowest, highest))
            return np.exp(log_density(y) - power * (np.log(y) + np.log1p(-y)))

        try:
            total, _ = integrate.quad(smooth_part, 0.0, 1.0, weight="alg", wvar=(power, power),
                                      **FLOAT32_QUAD)
        finally:
            log_density.close()
        assert total == pytest.approx(1.0, abs=1e-4), (log_odds, temperature)


def test_logit_density_matches_logistic_reference():
    x = np.linspace(-30.0, 30.0, 121)[:, None, None]
    temperature = np.array(TEMPERATURES)[None, :, None]
    log_odds = np.array(LOG_ODDS + (-50.0, 50.0))[None, None, :]
    x, temperature, log_odds = np.broadcast_arrays(x, temperature, log_odds)
    got = evaluate(dist.binary_concrete_logit_log_density, x, log_odds, temperature)
    want = reference_logit_log_density(x, log_odds, temperature)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_low_temperature_samples_approach_bernoulli():
    samples = 20000
    log_odds = np.array([-2.0, 0.0, 1.5], np.float32)
    for temperature in (0.05, 0.01):
        values = evaluate(lambda a: tf.sigmoid(dist.binary_concrete_sample_logit(
            tf.tile(a[None], [samples, 1]), temperature, seed=11)), log_odds)
        undecided = np.mean((values > 0.05) & (values < 0.95), axis=0)
        # P(|a + L| < 2.94 t) <= 2 * 2.94 * t * max logistic density (1/4).
        assert np.all(undecided <= 1.5 * temperature + 0.005), (temperature, undecided)
        mean = 1.0 / (1.0 + np.exp(-log_odds))
        standard_error = np.sqrt(mean * (1.0 - mean) / samples)
        np.testing.assert_array_less(np.abs(values.mean(axis=0) - mean),
                                     4.0 * standard_error + 1e-3)


def test_samples_have_the_concrete_distribution():
    """Sampled logits pass a Kolmogorov-Smirnov test against the reference distribution."""
    temperature, log_odds = 0.66, 1.3
    logits = evaluate(lambda a: dist.binary_concrete_sample_logit(
        tf.fill([20000], a), temperature, seed=5), log_odds)
    reference = stats.logistic(loc=log_odds / temperature, scale=1.0 / temperature)
    assert stats.kstest(logits, reference.cdf).pvalue > 1e-3


@pytest.mark.parametrize("posterior_log_odds,prior_log_odds,temperature", [
    (2.0, -1.0, 1.0), (0.0, 3.0, 0.5), (-1.5, -4.0, 2.0), (3.0, 9.21, 1.0), (0.5, -20.72, 0.66)])
def test_monte_carlo_kl_matches_numerical_kl(posterior_log_odds, prior_log_odds, temperature):
    samples = 200000

    def build(a, b):
        logit = dist.binary_concrete_sample_logit(tf.fill([samples], a), temperature, seed=3)
        kl = dist.binary_concrete_kl_sample(logit, a, b, temperature)
        log_ratio = (dist.binary_concrete_logit_log_density(logit, a, temperature)
                     - dist.binary_concrete_logit_log_density(logit, b, temperature))
        return kl, log_ratio

    kl, log_ratio = evaluate(build, posterior_log_odds, prior_log_odds)
    # The estimator is log q(x) - log p(x) at the sample, written with softplus only.
    np.testing.assert_allclose(kl, log_ratio, rtol=1e-4, atol=1e-3)
    want = reference_concrete_kl(posterior_log_odds, prior_log_odds, temperature)
    standard_error = kl.std() / np.sqrt(samples)
    assert abs(kl.mean() - want) < 4.0 * standard_error + 1e-3, (kl.mean(), want)
    # Rounding z_pres loses information, so the code's Bernoulli KL is never larger than the
    # code's Concrete KL estimate (within its Monte Carlo error).
    bernoulli = evaluate(dist.bernoulli_kl, posterior_log_odds, prior_log_odds)
    assert bernoulli <= kl.mean() + 4.0 * standard_error + 1e-3, (bernoulli, kl.mean())


def test_concrete_kl_does_not_depend_on_temperature():
    """Both logits are Logistics scaled by 1/temperature: the KL is scale invariant.

    The code's Monte Carlo estimate at three temperatures against one reference value (by
    quadrature at temperature 1), and pointwise at rescaled logits.
    """
    samples = 200000
    want = reference_concrete_kl(1.0, -2.0, 1.0)
    for temperature in (0.1, 1.0, 3.0):
        kl = evaluate(lambda a, b: dist.binary_concrete_kl_sample(
            dist.binary_concrete_sample_logit(tf.fill([samples], a), temperature, seed=8),
            a, b, temperature), 1.0, -2.0)
        assert abs(kl.mean() - want) < 4.0 * kl.std() / np.sqrt(samples) + 1e-3, temperature
    logits = np.linspace(-5.0, 5.0, 11)
    at_one = evaluate(lambda x: dist.binary_concrete_kl_sample(x, 1.0, -2.0, 1.0), logits)
    at_half = evaluate(lambda x: dist.binary_concrete_kl_sample(x, 1.0, -2.0, 0.5), 2.0 * logits)
    np.testing.assert_allclose(at_one, at_half, rtol=1e-5, atol=1e-5)


def test_bernoulli_kl_matches_formula():
    rng = np.random.RandomState(0)
    posterior = rng.uniform(-8.0, 8.0, 200)
    prior = rng.uniform(-8.0, 8.0, 200)
    got = evaluate(dist.bernoulli_kl, posterior, prior)
    np.testing.assert_allclose(got, reference_bernoulli_kl(posterior, prior), rtol=1e-4, atol=1e-5)
    assert evaluate(dist.bernoulli_kl, 1.7, 1.7) == pytest.approx(0.0, abs=1e-6)
    # At the ends of the prior schedule the formula's limits still hold.
    assert evaluate(dist.bernoulli_kl, 50.0, -20.72) == pytest.approx(20.72, rel=1e-4)
    assert evaluate(dist.bernoulli_kl, -50.0, 9.21) == pytest.approx(9.21, rel=1e-3)


def reference_bernoulli_kl_gradient(posterior_log_odds, prior_log_odds):
    """d KL / d posterior log-odds = q (1 - q) (a - b), in float64."""
    a = np.float64(posterior_log_odds)
    q = 1.0 / (1.0 + np.exp(-a))
    return q * (1.0 - q) * (a - np.float64(prior_log_odds))


def _kl_and_gradients(kl_function, posterior, prior):
    def build(a, b):
        kl = kl_function(a, b)
        return [kl] + tf.gradients(tf.reduce_sum(kl), [a, b])
    return evaluate(build, posterior, prior)


def test_bernoulli_kl_closed_form_gradient_is_exact_at_any_log_odds():
    """The value is bernoulli_kl's, bit for bit; the gradients are the float64 closed forms from
    saturated-absent to saturated-present posteriors, at the prior's start, middle and floor."""
    posterior = np.concatenate([np.linspace(-30.0, 30.0, 61), [-16.0, 16.6, 17.0, 18.0]])
    for prior_log_odds in (9.21, 0.0, -20.72):
        prior = np.full_like(posterior, prior_log_odds)
        kl, d_posterior, d_prior = _kl_and_gradients(
            dist.bernoulli_kl_closed_form_gradient, posterior, prior)
        np.testing.assert_array_equal(kl, evaluate(dist.bernoulli_kl, posterior, prior))
        np.testing.assert_allclose(d_posterior, reference_bernoulli_kl_gradient(posterior, prior),
                                   rtol=2e-3, atol=0.0)
        q = 1.0 / (1.0 + np.exp(-posterior.astype(np.float64)))
        p = 1.0 / (1.0 + np.exp(-np.float64(prior_log_odds)))
        np.testing.assert_allclose(d_prior, p - q, rtol=1e-4, atol=1e-6)
    # A scalar prior (the schedule's) broadcasts and gets the summed gradient.
    _, d_posterior, d_prior = _kl_and_gradients(
        dist.bernoulli_kl_closed_form_gradient, [20.0, 3.0], -20.72)
    np.testing.assert_allclose(d_posterior, reference_bernoulli_kl_gradient([20.0, 3.0], -20.72),
                               rtol=2e-3)
    assert np.shape(d_prior) == ()


def test_bernoulli_kl_autodiff_gradient_vanishes_once_presence_rounds_to_one():
    """Why the closed form: differentiating the formula in float32 leaves at most a tenth of the
    true gradient (about sigmoid(-a), a factor a - b short, or nothing) above log-odds 17, where
    sigmoid(a) is 1.0 in float32, while it is right below log-odds 10."""
    posterior = np.array([5.0, 10.0, 17.0, 20.0, 25.0, 30.0])
    _, autodiff, _ = _kl_and_gradients(dist.bernoulli_kl, posterior, np.full(6, -20.72))
    true = reference_bernoulli_kl_gradient(posterior, -20.72)
    np.testing.assert_allclose(autodiff[:2], true[:2], rtol=2e-3)
    assert np.all(np.abs(autodiff[2:]) < 0.1 * true[2:]), autodiff / true


def test_gaussian_kl_matches_closed_form_and_monte_carlo():
    rng = np.random.RandomState(1)
    mean = rng.normal(0.0, 2.0, [50, 3])
    std = rng.uniform(0.05, 3.0, [50, 3])
    prior_mean = [-1.0, 0.0, 0.0]
    prior_variance = [0.05, 1.0, 1.0]
    got = evaluate(lambda m, s: dist.gaussian_kl(m, s, prior_mean, prior_variance), mean, std)
    prior_std = np.sqrt(prior_variance)
    want = (np.log(prior_std / std)
            + (std ** 2 + (mean - prior_mean) ** 2) / (2.0 * np.square(prior_std)) - 0.5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # Monte Carlo E_q[log q - log p] for one distribution, with the model's sampler.
    samples = 200000
    m, s = np.float32(0.4), np.float32(0.7)
    draws = evaluate(lambda m_, s_: dist.gaussian_sample(tf.fill([samples], m_),
                                                         tf.fill([samples], s_), seed=9), m, s)
    log_ratio = stats.norm(m, s).logpdf(draws) - stats.norm(-1.0, np.sqrt(0.05)).logpdf(draws)
    kl = evaluate(lambda m_, s_: dist.gaussian_kl(m_, s_, -1.0, 0.05), m, s)
    assert abs(log_ratio.mean() - kl) < 4.0 * log_ratio.std() / np.sqrt(samples)
    assert draws.mean() == pytest.approx(m, abs=0.01)
    assert draws.std() == pytest.approx(s, abs=0.01)
    assert evaluate(lambda m_, s_: dist.gaussian_kl(m_, s_, 0.3, 0.25), 0.3, 0.5) == \
        pytest.approx(0.0, abs=1e-6)


def test_positive_std_is_never_zero():
    raw = np.array([-1000.0, -50.0, 0.0, 50.0], np.float32)
    std = evaluate(dist.positive_std, raw)
    assert np.all(std >= 1e-4) and np.all(np.isfinite(std))
    assert std[-1] == pytest.approx(50.0, rel=1e-4)


def test_values_and_gradients_finite_for_extreme_inputs():
    log_odds = np.array([-100.0, -50.0, -20.72, 0.0, 9.21, 50.0, 100.0], np.float32)
    prior = np.array([9.21, -20.72, 50.0, -50.0, 0.0, -20.72, 9.21], np.float32)
    temperatures = (1e-3, 0.01, 0.1, 1.0, 5.0)

    def build(a, b):
        terms = [dist.bernoulli_kl(a, b),
                 dist.gaussian_kl(a[:, None] / 10.0, dist.positive_std(a[:, None]), b[:, None],
                                  0.05)]
        for temperature in temperatures:
            logit = dist.binary_concrete_sample_logit(tf.tile(a[None], [1000, 1]), temperature,
                                                      seed=2)
            terms += [logit, tf.sigmoid(logit),
                      dist.binary_concrete_kl_sample(logit, a, b, temperature),
                      dist.binary_concrete_logit_log_density(logit, a, temperature)]
        total = tf.add_n([tf.reduce_sum(t) for t in terms])
        return terms, tf.gradients(total, [a, b])

    terms, gradients = evaluate(build, log_odds, prior)
    for i, value in enumerate(terms + gradients):
        assert np.all(np.isfinite(value)), i


def test_logistic_noise_is_finite_and_logistic():
    noise = evaluate(lambda: dist.logistic_noise([200000], seed=4))
    assert np.all(np.isfinite(noise))
    assert stats.kstest(noise, stats.logistic.cdf).pvalue > 1e-3
