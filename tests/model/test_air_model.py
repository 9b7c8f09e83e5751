"""air/model/air_model.py: prior schedule, stopping and masking, loss terms against their formulas,
finite values and gradients in a normal session at the extremes, a random stress test, and a
short run of training.py whose checkpoint restores to the same outputs.

Sessions use the default ConfigProto, so TF's graph optimizer (grappler) is on: the
implementation this project replaces produced -inf only with it on.
"""
import csv
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.model import transformer
from air.model.air_model import AIRModel, z_pres_prior_log_odds
from air.config import AIRConfig, prior_window_height, scale_prior_mean_at
from conftest import tiny_config

CANVAS_EPSILON = AIRConfig().likelihood_epsilon

TINY = tiny_config()
LOG_ODDS_START = np.log(1e4)   # 9.2103
LOG_ODDS_FLOOR = np.log(1e-9)  # -20.7233


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_v2_behavior()


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gaussian_kl_np(mean, std, prior_mean, prior_variance):
    return 0.5 * (np.log(prior_variance / std ** 2) + (std ** 2 + (mean - prior_mean) ** 2)
                  / prior_variance - 1.0)


def bernoulli_kl_np(posterior_log_odds, prior_log_odds):
    q, p = sigmoid(np.float64(posterior_log_odds)), sigmoid(np.float64(prior_log_odds))
    return q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))


def blob_images(rng, batch, size):
    """[batch, size, size] images in [0, 1] with a few bright squares on black."""
    images = np.zeros([batch, size, size], np.float32)
    for image in images:
        for _ in range(rng.randint(0, 3)):
            side = rng.randint(3, size // 2)
            top, left = rng.randint(0, size - side, 2)
            image[top:top + side, left:left + side] = rng.uniform(0.5, 1.0)
    return images


# --- The z_pres prior schedule -------------------------------------------------------------

@pytest.mark.parametrize("decay_steps", [3000, 2000])
def test_z_pres_prior_schedule(decay_steps):
    # 13 decades of odds at decay_steps iterations each: the floor arrives at 13 * decay_steps.
    floor_at = 13 * decay_steps
    steps = np.array([0, 1, decay_steps // 2, decay_steps, 2 * decay_steps, 10 * decay_steps,
                      floor_at - 10, floor_at + 10, 60000, 100000])
    config = AIRConfig(z_pres_prior_odds_decay_steps=decay_steps)
    with tf.Graph().as_default(), tf.Session() as session:
        values = session.run(z_pres_prior_log_odds(config, tf.constant(steps, tf.int64)))
    # Odds 1e4 multiplied by 0.1 every decay_steps iterations, smoothly, floored at odds 1e-9.
    expected = np.maximum(LOG_ODDS_START - np.log(10.0) * steps / decay_steps, LOG_ODDS_FLOOR)
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-4)
    assert values[0] == pytest.approx(9.2103, abs=1e-4)
    assert values[3] == pytest.approx(np.log(1e3), abs=1e-4)
    assert values[6] > LOG_ODDS_FLOOR + 1e-3
    assert values[7] == pytest.approx(LOG_ODDS_FLOOR, abs=1e-5)
    assert values[-1] == pytest.approx(-20.7233, abs=1e-4)


@pytest.mark.parametrize("config", [
    AIRConfig(), AIRConfig.from_preset("original"),
    AIRConfig.from_preset("original", z_pres_prior_odds_decay_steps=2000)],
    ids=["default", "original", "original-decay-2000"])
def test_the_schedule_as_a_number_is_the_graphs(config):
    """``AIRConfig.z_pres_prior_log_odds_at`` (sweep.py's tables) gives what the graph uses."""
    steps = [0, 1, 1500, 2000, 25990, 26010, 38990, 39010, 100000]
    with tf.Graph().as_default(), tf.Session() as session:
        values = session.run(z_pres_prior_log_odds(config, tf.constant(steps, tf.int64)))
    np.testing.assert_allclose([config.z_pres_prior_log_odds_at(s) for s in steps], values,
                               rtol=1e-5, atol=1e-4)
    assert config.z_pres_prior_log_odds_at(10 ** 6) == pytest.approx(
        config.z_pres_prior_log_odds_range[1])


def test_model_uses_the_schedule_or_its_floor():
    with tf.Graph().as_default():
        images = tf.zeros([2, 24, 24])
        step = tf.placeholder(tf.int64, [])
        scheduled = AIRModel(images, TINY, global_step=step)
        floored = AIRModel(images, TINY)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            assert session.run(scheduled.z_pres_prior_log_odds, {step: 0}) == pytest.approx(
                LOG_ODDS_START, abs=1e-4)
            assert session.run(scheduled.z_pres_prior_log_odds, {step: 100000}) == pytest.approx(
                LOG_ODDS_FLOOR, abs=1e-4)
            assert session.run(floored.z_pres_prior_log_odds) == pytest.approx(
                LOG_ODDS_FLOOR, abs=1e-4)


# --- The window-scale prior's schedule ----------------------------------------------------

SCALE_SCHEDULE = TINY.replace(scale_prior_mean=-0.4, scale_prior_mean_final=-1.0,
                              scale_prior_anneal_start=20000, scale_prior_anneal_steps=10000)


def scale_prior_mean_np(config, step):
    """The documented schedule, written out: constant, then a straight line, then constant."""
    progress = min(max((step - config.scale_prior_anneal_start)
                       / float(config.scale_prior_anneal_steps), 0.0), 1.0)
    return config.scale_prior_mean + (config.scale_prior_mean_final
                                      - config.scale_prior_mean) * progress


SCALE_STEPS = [0, 19999, 20000, 22500, 25000, 29999, 30000, 100000]


def test_the_scale_priors_mean_follows_its_schedule_and_the_z_where_kl_uses_it():
    rng = np.random.RandomState(3)
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        model = AIRModel(tf.constant(blob_images(rng, 4, 24)), SCALE_SCHEDULE, training=False,
                         global_step=step, z_pres_override=tf.ones([4, TINY.max_steps]))
        sampled = AIRModel(tf.constant(blob_images(rng, 4, 24)), SCALE_SCHEDULE,
                           training=False, discrete_sample=True, global_step=step)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for value in SCALE_STEPS:
                mean, steps, log_weight = session.run(
                    [model.scale_prior_mean, model.steps, sampled.log_weight], {step: value})
                assert mean == pytest.approx(scale_prior_mean_np(SCALE_SCHEDULE, value),
                                             abs=1e-6)
                # The reports' number (air/config.py) is the graph's too.
                assert scale_prior_mean_at(SCALE_SCHEDULE, value) == pytest.approx(mean,
                                                                                   abs=1e-6)
                prior_mean = np.array([mean, 0.0, 0.0])
                prior_variance = np.array([TINY.scale_prior_variance, 1.0, 1.0])
                expected = steps.live * gaussian_kl_np(
                    steps.z_where_mean, steps.z_where_std, prior_mean, prior_variance).sum(-1)
                np.testing.assert_allclose(steps.kl_z_where, expected, rtol=1e-4, atol=1e-4)
                assert np.all(np.isfinite(log_weight))
    # Half-way the mean is half-way; before the start and after the end it stays put.
    assert [scale_prior_mean_np(SCALE_SCHEDULE, s) for s in (19999, 25000, 30000)] == \
        pytest.approx([-0.4, -0.7, -1.0])


def test_the_priors_window_is_the_transform_of_its_mean_times_the_canvas():
    # -0.4 through the sigmoid is the default's "20-pixel window" on the 50-pixel canvas.
    default = AIRConfig()
    assert prior_window_height(default, 0) == pytest.approx(50 / (1 + np.exp(0.4)))
    assert prior_window_height(default, 0) == pytest.approx(20.07, abs=0.01)
    scheduled = AIRConfig().replace(scale_prior_anneal_start=100, scale_prior_anneal_steps=100)
    assert prior_window_height(scheduled, 100) == pytest.approx(prior_window_height(default, 0))
    assert prior_window_height(scheduled, 10 ** 6) == pytest.approx(50 / (1 + np.exp(1.0)))
    exponential = AIRConfig().replace(scale_transform="exp", scale_prior_mean=-1.5)
    assert prior_window_height(exponential, 0) == pytest.approx(50 * np.exp(-1.5))


def test_a_constant_scale_prior_is_a_number_and_no_step_is_the_schedules_end():
    with tf.Graph().as_default():
        images = tf.zeros([2, 24, 24])
        assert AIRModel(images, TINY, global_step=tf.constant(5, tf.int64)).scale_prior_mean \
            == TINY.scale_prior_mean
        assert AIRModel(images, SCALE_SCHEDULE, training=False).scale_prior_mean == -1.0


# --- Stopping, masks and loss terms ----------------------------------------------------------

# z_pres forced per step, and what must follow with stopping_threshold 0.99: a step is live
# while the running sum of (1 - z_pres) stays below 0.99, and attempted (charged its z_pres
# KL) while the sum before it does.
FORCED = np.array([
    [1, 1, 0],        # two objects, stops at step 3
    [0, 1, 1],        # empty: stops at step 1, later ones are never attempted
    [1, 1, 1],        # three objects
    [1, 0, 1],        # stops at step 2 and stays stopped
    [0.6, 0.6, 1],    # relaxed values: sum 0.4, 0.8, 0.8, so all live, scaled by z_pres
    [0.3, 1, 1],      # sum 0.7 after step 1: live; 0.7 stays below 0.99
    [0.995, 0.001, 1],  # sum 0.005, then 1.004: one object
], np.float32)
LIVE = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 1], [1, 0, 0]])
ATTEMPTED = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 1],
                      [1, 1, 0]])


def run_forced(training, images, forced, global_step=0, seed=1):
    """Builds TINY with z_pres forced to ``forced`` and returns the model's outputs."""
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        model = AIRModel(tf.constant(images), TINY, training=training,
                         global_step=tf.constant(global_step, tf.int64),
                         z_pres_override=tf.constant(forced), seed=seed)
        pasted = tf.stack([transformer.paste(model.steps.reconstruction[:, t],
                                             model.steps.scale[:, t], model.steps.shift[:, t],
                                             TINY.canvas_height, TINY.canvas_width)
                           for t in range(TINY.max_steps)], axis=1)
        fetches = {"steps": model.steps._asdict(), "canvas": model.canvas,
                   "digit_count": model.digit_count, "boxes": model.boxes, "pasted": pasted,
                   "prior": model.z_pres_prior_log_odds, "loss": model.loss}
        for name in ("reconstruction_loss", "kl_z_pres", "kl_z_where", "kl_z_what",
                     "negative_elbo"):
            fetches[name] = getattr(model, name)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return session.run(fetches)


FORCED_STEP = 4500  # prior log-odds 9.21 - 2.25 ln(10) = 4.03 (a decade every 2000 steps)


@pytest.fixture(scope="module")
def forced_images():
    """One image per row of FORCED: black with bright squares, and uniform noise."""
    rng = np.random.RandomState(0)
    return np.concatenate([blob_images(rng, 4, 24), rng.rand(3, 24, 24).astype(np.float32)])


@pytest.fixture(scope="module")
def forced_runs(forced_images):
    """{training: outputs of TINY with z_pres forced to FORCED} for both modes."""
    return {training: run_forced(training, forced_images, FORCED, FORCED_STEP)
            for training in (True, False)}


@pytest.mark.parametrize("training", [True, False])
def test_forced_z_pres_sets_count_live_steps_and_canvas(forced_runs, training):
    out = forced_runs[training]
    steps = out["steps"]
    np.testing.assert_array_equal(steps["z_pres"], FORCED)
    np.testing.assert_array_equal(steps["live"], LIVE)
    np.testing.assert_array_equal(steps["attempted"], ATTEMPTED)
    np.testing.assert_array_equal(out["digit_count"], LIVE.sum(axis=1))
    # The canvas is the sum of the live windows, each scaled by its z_pres.
    weights = (LIVE * FORCED)[:, :, None, None]
    np.testing.assert_allclose(out["canvas"], (weights * out["pasted"]).sum(axis=1), atol=1e-5)
    assert np.all(out["canvas"][1] == 0.0)  # the image that stopped at once draws nothing


@pytest.mark.parametrize("training", [True, False])
def test_stopped_steps_are_never_charged(forced_runs, training):
    steps = forced_runs[training]["steps"]
    stopped = LIVE == 0
    assert np.all(steps["kl_z_where"][stopped] == 0.0)
    assert np.all(steps["kl_z_what"][stopped] == 0.0)
    assert np.all(steps["kl_z_where"][~stopped] > 0.0)
    assert np.all(steps["kl_z_what"][~stopped] > 0.0)
    # The z_pres KL is charged for the step that decided to stop, and never after it.
    assert np.all(steps["kl_z_pres"][ATTEMPTED == 0] == 0.0)
    assert np.all(steps["kl_z_pres"][ATTEMPTED == 1] != 0.0)


def test_what_happens_after_stopping_does_not_matter():
    """Same image, different z_pres after the stop: identical canvas and loss terms."""
    image = blob_images(np.random.RandomState(2), 1, 24)[0]
    forced = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 0.5], [1, 0.005, 0.9]], np.float32)
    out = run_forced(False, np.stack([image] * len(forced)), forced)
    for name in ("canvas", "digit_count", "reconstruction_loss", "kl_z_pres", "kl_z_where",
                 "kl_z_what", "negative_elbo"):
        for row in out[name][1:]:
            np.testing.assert_allclose(row, out[name][0], rtol=1e-6, atol=1e-6, err_msg=name)


def test_loss_terms_match_their_formulas(forced_runs, forced_images):
    """Test mode (means, Bernoulli z_pres KL), so every term has a closed form to compare."""
    out = forced_runs[False]
    images = forced_images
    steps = out["steps"]
    prior = LOG_ODDS_START - np.log(10.0) * FORCED_STEP / TINY.z_pres_prior_odds_decay_steps
    assert out["prior"] == pytest.approx(prior, abs=1e-4)

    kl_z_pres = ATTEMPTED * bernoulli_kl_np(steps["z_pres_log_odds"], prior)
    np.testing.assert_allclose(steps["kl_z_pres"], kl_z_pres, rtol=1e-4, atol=1e-5)
    # z_where = (scale logit, shift x, shift y) ~ N((m, 0, 0), diag(0.05, 1, 1)) a priori.
    kl_z_where = gaussian_kl_np(steps["z_where_mean"], steps["z_where_std"],
                                np.array([TINY.scale_prior_mean, 0.0, 0.0]),
                                np.array([0.05, 1.0, 1.0]))
    np.testing.assert_allclose(steps["kl_z_where"], LIVE * kl_z_where.sum(axis=2), rtol=1e-4,
                               atol=1e-4)
    kl_z_what = gaussian_kl_np(steps["z_what_mean"], steps["z_what_std"], 0.0, 1.0)
    np.testing.assert_allclose(steps["kl_z_what"], LIVE * kl_z_what.sum(axis=2), rtol=1e-4,
                               atol=1e-4)

    # At test time z_where and z_what are the posterior means.
    np.testing.assert_array_equal(steps["z_where"], steps["z_where_mean"])
    np.testing.assert_array_equal(steps["z_what"], steps["z_what_mean"])
    np.testing.assert_allclose(steps["scale"], sigmoid(steps["z_where"][..., 0]), rtol=1e-5)
    np.testing.assert_array_equal(steps["shift"], steps["z_where"][..., 1:])
    box_side = steps["scale"] * 24
    np.testing.assert_allclose(out["boxes"][..., 2], box_side, rtol=1e-5)
    np.testing.assert_allclose(out["boxes"][..., 0],
                               (steps["shift"][..., 0] + 1) * 12 - box_side / 2, atol=1e-4)
    np.testing.assert_allclose(out["boxes"][..., 1],
                               (steps["shift"][..., 1] + 1) * 12 - box_side / 2, atol=1e-4)

    # The clipping bounds as float32 holds them (1 - 1e-6 rounds to 1 - 1.0014e-6).
    p = np.clip(out["canvas"], np.float32(CANVAS_EPSILON), np.float32(1 - CANVAS_EPSILON))
    p = p.astype(np.float64)
    reconstruction = -(images * np.log(p) + (1 - images) * np.log(1 - p)).sum(axis=(1, 2))
    np.testing.assert_allclose(out["reconstruction_loss"], reconstruction, rtol=1e-4)
    for name in ("kl_z_pres", "kl_z_where", "kl_z_what"):
        np.testing.assert_allclose(out[name], steps[name].sum(axis=1), rtol=1e-5)
    elbo = (out["reconstruction_loss"] + out["kl_z_pres"] + out["kl_z_where"] + out["kl_z_what"])
    np.testing.assert_allclose(out["negative_elbo"], elbo, rtol=1e-5)
    assert out["loss"] == pytest.approx(elbo.mean(), rel=1e-5)


def test_test_mode_rounds_z_pres_and_stops_at_the_first_zero():
    rng = np.random.RandomState(4)
    images = np.concatenate([blob_images(rng, 24, 24), rng.rand(8, 24, 24).astype(np.float32)])
    with tf.Graph().as_default():
        tf.set_random_seed(4)
        model = AIRModel(tf.constant(images), TINY, training=False)
        bias = [v for v in tf.global_variables() if v.name == "air/z_pres/output/biases:0"][0]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            runs = []
            for value in (-0.1, 0.0, 0.05, 0.1, 0.2):  # a mix of counts at random weights
                session.run(bias.assign([value]))
                runs.append(session.run([model.steps.z_pres_log_odds, model.steps.z_pres,
                                         model.steps.live, model.digit_count]))
    counts = set()
    for log_odds, z_pres, live, digit_count in runs:
        np.testing.assert_array_equal(z_pres, (log_odds > 0).astype(np.float32))
        np.testing.assert_array_equal(live, np.cumprod(log_odds > 0, axis=1))
        np.testing.assert_array_equal(digit_count, live.sum(axis=1))
        counts.update(digit_count.tolist())
    assert len(counts) >= 2


def test_count_accuracy_outputs():
    forced = FORCED[:4]  # digit counts 2, 0, 3, 1
    images = blob_images(np.random.RandomState(5), 4, 24)
    true_counts = np.array([2, 1, 3, 1])
    with tf.Graph().as_default():
        model = AIRModel(tf.constant(images), TINY, training=False,
                         true_counts=tf.constant(true_counts), z_pres_override=tf.constant(forced))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            correct, accuracy, by_count = session.run(
                [model.count_correct, model.accuracy, model.accuracy_by_count])
    np.testing.assert_array_equal(correct, [1, 0, 1, 1])
    assert accuracy == pytest.approx(0.75)
    assert np.isnan(by_count[0])  # no image with 0 digits in this batch
    assert by_count[1] == pytest.approx(0.5)
    assert by_count[2] == pytest.approx(1.0) and by_count[3] == pytest.approx(1.0)


# --- Finite values and gradients with the default configuration ------------------------------

class DefaultGraph:
    """The default configuration's training and test models on shared variables, their loss
    gradients, and ops that set output-layer biases, perturb every weight at random and
    restore the initial weights; one graph, one session with the default ConfigProto."""

    BIASES = ("air/z_pres/output/biases", "air/z_where/output/biases",
              "air/vae_decoder/output/biases")

    def __init__(self, batch):
        self.config = AIRConfig()
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(0)
            self.images = tf.placeholder(tf.float32, [batch, 50, 50])
            self.global_step = tf.placeholder(tf.int64, [])
            self.train_model = AIRModel(self.images, self.config, training=True,
                                        global_step=self.global_step, seed=0)
            self.test_model = AIRModel(self.images, self.config, training=False,
                                       global_step=self.global_step)
            variables = tf.trainable_variables()
            self.gradients = tf.gradients(self.train_model.loss, variables)
            self.canvas_gradient = tf.gradients(self.train_model.loss, self.train_model.canvas)[0]
            by_name = {v.op.name: v for v in variables}
            self._bias_values = {name: tf.placeholder(tf.float32, by_name[name].shape)
                                 for name in self.BIASES}
            self._set_biases = tf.group(*[by_name[name].assign(value)
                                          for name, value in self._bias_values.items()])
            # Perturbation: w * exp(spread * N(0, 1)) + spread * (mean |w| + 0.1) * N(0, 1),
            # drawn in the graph from the initial weights kept in non-trainable copies.
            self.spread = tf.placeholder(tf.float32, [])
            copies = [tf.Variable(v.initialized_value(), trainable=False) for v in variables]
            self._restore = tf.group(*[v.assign(c) for v, c in zip(variables, copies)])
            self._perturb = tf.group(*[v.assign(
                c * tf.exp(self.spread * tf.random_normal(c.shape))
                + self.spread * (tf.reduce_mean(tf.abs(c)) + 0.1) * tf.random_normal(c.shape))
                for v, c in zip(variables, copies)])
            init = tf.global_variables_initializer()
        self.session = tf.Session(graph=self.graph)  # default ConfigProto: grappler on
        self.session.run(init)

    def set_biases(self, values):
        """Restores the initial weights, then sets the biases {name: array} of BIASES."""
        self.restore()
        self.session.run(self._set_biases, {self._bias_values[name]: np.asarray(value, np.float32)
                                            for name, value in values.items()})

    def perturb(self, spread):
        self.session.run(self._perturb, {self.spread: spread})

    def restore(self):
        self.session.run(self._restore)

    def run(self, images, step, extra=None, feed=None):
        fetches = {"loss": self.train_model.loss, "test_loss": self.test_model.loss,
                   "gradients": self.gradients, "canvas": self.train_model.canvas,
                   "log_odds": self.train_model.steps.z_pres_log_odds,
                   "terms": [self.train_model.reconstruction_loss, self.train_model.kl_z_pres,
                             self.train_model.kl_z_where, self.train_model.kl_z_what,
                             self.test_model.negative_elbo],
                   "count": self.test_model.digit_count}
        fetches.update(extra or {})
        feed = dict(feed or {})
        feed.update({self.images: images, self.global_step: step})
        return self.session.run(fetches, feed)


@pytest.fixture(scope="module")
def default_graph():
    graph = DefaultGraph(batch=4)
    yield graph
    graph.session.close()


def extreme_images(rng):
    return np.stack([np.zeros([50, 50]), np.ones([50, 50]), rng.rand(50, 50) > 0.7,
                     rng.rand(50, 50)]).astype(np.float32)


def assert_all_finite(result, context):
    for name in ("loss", "test_loss", "gradients", "terms"):
        values = result[name] if isinstance(result[name], list) else [result[name]]
        for i, value in enumerate(values):
            assert np.all(np.isfinite(value)), (context, name, i)


def test_finite_for_extreme_z_pres_logits_and_canvas(default_graph):
    """Biases of the output layers set so that z_pres log-odds are about +-50, the decoded
    windows exactly 0 or 1 and the windows cover the canvas, at both ends of the prior."""
    graph = default_graph
    images = extreme_images(np.random.RandomState(6))
    seen_ones = seen_zeros = False
    try:
        for z_pres in (50.0, -50.0, 0.0):
            for decoder in (50.0, -50.0, 0.0):
                for cover in (True, False):
                    # Scale logit 10 (window ~ canvas) and std ~1e-4, or all zero.
                    where = [10.0, 0, 0, -50, -50, -50] if cover else [0.0] * 6
                    graph.set_biases({"air/z_pres/output/biases": [z_pres],
                                      "air/z_where/output/biases": where,
                                      "air/vae_decoder/output/biases": np.full(784, decoder)})
                    for step in (0, 100000):
                        context = (z_pres, decoder, cover, step)
                        result = graph.run(images, step)
                        assert_all_finite(result, context)
                        if z_pres != 0.0:
                            assert np.all(np.abs(result["log_odds"]) > 40.0), context
                        if z_pres == -50.0:  # every image stops at once: canvas exactly 0
                            assert np.all(result["canvas"] == 0.0), context
                            seen_zeros = True
                        if z_pres == 50.0 and decoder == 50.0 and cover:
                            assert result["canvas"].max() >= 1.0, context
                            seen_ones = True
    finally:
        graph.restore()
    assert seen_zeros and seen_ones


def test_finite_when_the_canvas_is_exactly_zero_and_one(default_graph):
    """The failure of the replaced implementation: log(1 - p + 1e-9) at p exactly 1.

    The canvas tensor is fed directly, exactly 0 and 1, against images exactly 0 and 1,
    right and wrong, and the loss and its gradient with respect to the canvas stay finite.
    """
    graph = default_graph
    zeros, ones = np.zeros([50, 50], np.float32), np.ones([50, 50], np.float32)
    half = np.tile(np.arange(50) < 25, [50, 1]).astype(np.float32)
    images = np.stack([zeros, ones, zeros, ones])
    canvases = np.stack([zeros, ones, ones, half])
    result = graph.run(images, 0, extra={"canvas_gradient": graph.canvas_gradient},
                       feed={graph.train_model.canvas: canvases})
    assert np.all(np.isfinite(result["canvas_gradient"]))
    reconstruction = result["terms"][0]
    bound = -np.log(CANVAS_EPSILON)  # cost of a pixel that is certainly wrong (13.8)
    assert reconstruction[0] == pytest.approx(2500 * -np.log1p(-CANVAS_EPSILON), abs=0.05)
    assert reconstruction[1] == pytest.approx(2500 * -np.log1p(-CANVAS_EPSILON), abs=0.05)
    assert reconstruction[2] == pytest.approx(2500 * bound, rel=1e-3)
    assert reconstruction[3] == pytest.approx(1250 * bound, rel=1e-3)
    assert np.isfinite(result["loss"])


def test_random_stress_values_and_gradients_stay_finite(default_graph):
    """50 iterations of random images, random prior steps and randomly perturbed weights."""
    graph = default_graph
    rng = np.random.RandomState(7)
    kinds = [lambda: rng.rand(50, 50), lambda: rng.rand(50, 50) > rng.uniform(0.5, 1.0),
             lambda: np.zeros([50, 50]), lambda: np.ones([50, 50]),
             lambda: blob_images(rng, 1, 50)[0]]
    try:
        for iteration in range(50):
            spread = rng.uniform(0.0, 1.5)
            graph.perturb(spread)
            images = np.stack([kinds[rng.randint(len(kinds))]() for _ in range(4)])
            step = int(rng.choice([0, rng.randint(100000), 100000]))
            result = graph.run(images.astype(np.float32), step)
            assert_all_finite(result, (iteration, spread, step))
            assert np.all(result["canvas"] >= 0.0)
            assert np.all((result["count"] >= 0) & (result["count"] <= 3))
    finally:
        graph.restore()


# --- A short run of the real training script -----------------------------------------------

# A smaller model and learning rate 1e-3, so that 200 iterations show a clear drop (the
# published 1e-4 needs a few thousand); summaries off, they are tested with training.py.
SHORT_RUN = ["--max-iterations", "200", "--eval-every", "50", "--save-every", "200",
             "--seed", "11", "--progress-seconds", "600", "--scalars-every", "0",
             "--variables-every", "0", "--images-every", "0", "--gradients-every", "0",
             "--rnn-units", "64", "--vae-latent", "16", "--vae-recognition-units", "128", "64",
             "--vae-generative-units", "64", "128", "--batch-size", "32",
             "--learning-rate", "1e-3"]


def test_short_training_reduces_the_loss_and_its_checkpoint_restores(small_data_dir, tmp_path,
                                                                     capsys):
    from support import checkpoint_roundtrip
    import training
    from air.evaluation import heldout
    from air.training import checkpoints

    results = str(tmp_path / "run")
    assert training.main(["--data-dir", small_data_dir, "--results-dir", results] + SHORT_RUN) == 0
    with open(os.path.join(results, "metrics.csv"), newline="") as f:
        # A concrete run leaves NVIL's gradient-variance column empty.
        rows = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
    assert [row["iteration"] for row in rows] == [50, 100, 150, 200]
    for row in rows:
        assert all(np.isfinite(v) for v in row.values()), row
        assert row["skipped_updates"] == 0
    # Mean training loss of iterations 151-200 against that of 1-50.
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"], [row["loss"] for row in rows]

    # The checkpoint gives the held-out figures the training process computed at its end.
    checkpoint, config_path = checkpoints.find_checkpoint(os.path.join(results, "model"))
    config = checkpoints.load_config(config_path)
    assert config.rnn_units == 64 and config.learning_rate == 1e-3
    assert checkpoints.checkpoint_step(checkpoint) == 200
    with tf.Graph().as_default():
        global_step = tf.train.get_or_create_global_step()
        evaluator = heldout.HeldOutEvaluator(
            config, os.path.join(small_data_dir, "test.tfrecords"), 500, global_step)
        with tf.Session() as session:
            checkpoints.restore_variables(session, checkpoint)
            metrics = evaluator.heldout_metrics(session, elbo_samples=4)
    assert metrics["count_accuracy"] == pytest.approx(rows[-1]["heldout_accuracy"], abs=1e-4)
    # The held-out ELBO draws the same samples at every evaluation (training's default 4).
    assert metrics["discrete_elbo_final_prior"] == pytest.approx(
        rows[-1]["heldout_discrete_elbo_final_prior"], abs=2e-3)

    # Restored twice into fresh graphs, every test-mode output is the same.
    saved = str(tmp_path / "restored")
    assert checkpoint_roundtrip.main(["save", saved, "--model-dir", results]) == 0
    assert checkpoint_roundtrip.main(["check", saved, "--tolerance", "1e-6"]) == 0
    assert "ok: " in capsys.readouterr().out
