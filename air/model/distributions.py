"""Probability maths of the model: binary Concrete (relaxed z_pres), Bernoulli and Gaussian KLs,
and the Bernoulli and Gaussian samples and log-densities of the sampled discrete model.

Everything is written with stable primitives (softplus, log_sigmoid, log1p): nothing takes
the log of a value that can reach 0 and nothing computes log(1 + exp(x)) directly.

Binary Concrete (Maddison et al., 2016): with log-odds a and temperature t, a sample is
y = sigmoid(x) where x = (a + L) / t and L is standard Logistic noise. Densities and the
KL are computed for the logit x, where they are finite everywhere; the KL between two
binary Concretes with the same temperature is the same in x-space and in y-space because
the Jacobian of the sigmoid cancels.
"""
import numpy as np
import tensorflow.compat.v1 as tf


def logistic_noise(shape, seed=None):
    """Standard Logistic samples log(u) - log(1 - u), u ~ U(tiny, 1) so both logs stay finite."""
    u = tf.random_uniform(shape, minval=np.finfo(np.float32).tiny, maxval=1.0, seed=seed)
    return tf.log(u) - tf.log1p(-u)


def binary_concrete_sample_logit(log_odds, temperature, seed=None):
    """Takes log-odds [...] to a relaxed sample's logit x = (log_odds + Logistic) / temperature."""
    return (log_odds + logistic_noise(tf.shape(log_odds), seed)) / temperature


def binary_concrete_logit_log_density(logit, log_odds, temperature):
    """log density of the logit x of a binary Concrete(log_odds, temperature) sample."""
    centred = log_odds - temperature * logit
    return tf.log(temperature) + centred - 2.0 * tf.nn.softplus(centred)


def binary_concrete_log_density(value, log_odds, temperature):
    """log density on (0, 1) of y = sigmoid(x): the logit density minus log(y (1 - y)).

    For analysis and tests only: at y exactly 0 or 1 (which float32 samples reach) the
    density is 0 or infinite and this gives NaN; the model works with the logit instead.
    """
    logit = tf.log(value) - tf.log1p(-value)
    return (binary_concrete_logit_log_density(logit, log_odds, temperature)
            - tf.log(value) - tf.log1p(-value))


def binary_concrete_kl_sample(logit, posterior_log_odds, prior_log_odds, temperature):
    """One-sample Monte Carlo KL(q || p) = log q(x) - log p(x) at the posterior sample's logit x.

    Expanded so that only softplus terms remain: finite for any logits and log-odds.
    """
    return (posterior_log_odds - prior_log_odds
            - 2.0 * tf.nn.softplus(posterior_log_odds - temperature * logit)
            + 2.0 * tf.nn.softplus(prior_log_odds - temperature * logit))


def bernoulli_kl(posterior_log_odds, prior_log_odds):
    """Exact KL(Bernoulli(sigmoid(a)) || Bernoulli(sigmoid(b))) of test mode's rounded z_pres.

    Not the zero-temperature limit of the Concrete KL: with equal temperatures that KL is
    the KL between two Logistics and does not depend on the temperature at all; rounding
    loses information, so this one is never larger (both tested).
    """
    q_one = tf.sigmoid(posterior_log_odds)
    return (q_one * (tf.log_sigmoid(posterior_log_odds) - tf.log_sigmoid(prior_log_odds))
            + (1.0 - q_one) * (tf.log_sigmoid(-posterior_log_odds) - tf.log_sigmoid(-prior_log_odds)))


def bernoulli_kl_closed_form_gradient(posterior_log_odds, prior_log_odds):
    """bernoulli_kl's value with its gradient in closed form, for training through the exact KL:
    d/da = sigmoid(a) sigmoid(-a) (a - b) and d/db = sigmoid(b) - sigmoid(a).

    Differentiating the formula loses the gradient in float32 once sigmoid(a) rounds to 1
    (a above about 16.6): sigmoid(a) (1 - sigmoid(a)) is then 0 and what is left is
    sigmoid(-a), a factor (a - b) too small, 40 to 50 times at the prior's floor (tested), just
    where a saturated presence would need the KL's pull to come back.
    """
    a = tf.convert_to_tensor(posterior_log_odds)
    b = tf.convert_to_tensor(prior_log_odds, dtype=a.dtype) + tf.zeros_like(a)

    @tf.custom_gradient
    def kl(a, b):
        def gradient(upstream):
            # From log_sigmoid: TF 1.15's sigmoid is not accurate in its tails (0 at -20).
            q_one_q_zero = tf.exp(tf.log_sigmoid(a) + tf.log_sigmoid(-a))
            return (upstream * q_one_q_zero * (a - b),
                    upstream * (tf.exp(tf.log_sigmoid(b)) - tf.exp(tf.log_sigmoid(a))))
        return bernoulli_kl(a, b), gradient

    return kl(a, b)


def bernoulli_sample(log_odds, uniform):
    """Takes log-odds [...] and U(0, 1) noise of their shape (0 < u < 1) to Bernoulli(sigmoid(
    log_odds)) samples in {0., 1.}: 1 where u < sigmoid(a), decided as log(u) - log1p(-u) < a,
    so no probability is formed and any log-odds, +-100 included, give the right sample."""
    return tf.cast(tf.log(uniform) - tf.log1p(-uniform) < log_odds, tf.float32)


def bernoulli_log_probability(value, log_odds):
    """log Bernoulli(value | sigmoid(log_odds)) of a value in {0, 1}, with log_sigmoid only."""
    return value * tf.log_sigmoid(log_odds) + (1.0 - value) * tf.log_sigmoid(-log_odds)


def gaussian_log_density(value, mean, std):
    """Element-wise log N(value | mean, std^2)."""
    standardised = (value - mean) / std
    return -0.5 * np.log(2.0 * np.pi) - tf.log(std) - 0.5 * tf.square(standardised)


def gaussian_log_density_log_variance(value, mean, log_variance):
    """Element-wise log N(value | mean, exp(log_variance)), never forming log(std)."""
    return -0.5 * (np.log(2.0 * np.pi) + log_variance
                   + tf.square(value - mean) * tf.exp(-log_variance))


def gaussian_sample(mean, std, seed=None):
    """Reparameterised N(mean, std^2) sample: mean + std * eps."""
    return mean + std * tf.random_normal(tf.shape(mean), seed=seed)


def gaussian_kl(mean, std, prior_mean, prior_variance):
    """Element-wise KL(N(mean, std^2) || N(prior_mean, prior_variance)), closed form."""
    variance = tf.square(std)
    return 0.5 * (np.log(prior_variance) - 2.0 * tf.log(std)
                  + (variance + tf.square(mean - prior_mean)) / prior_variance - 1.0)


def gaussian_kl_log_variance(mean, log_variance, prior_mean, prior_variance):
    """KL(N(mean, exp(log_variance)) || N(prior_mean, prior_variance)), from the log-variance.

    Takes the log-variance itself rather than a std, so a tiny variance never becomes log(0).
    """
    return 0.5 * (np.log(prior_variance) - log_variance
                  + (tf.exp(log_variance) + tf.square(mean - prior_mean)) / prior_variance - 1.0)


def positive_std(raw, minimum=1e-4):
    """Maps an unconstrained network output to a standard deviation >= minimum (never 0)."""
    return tf.nn.softplus(raw) + minimum
