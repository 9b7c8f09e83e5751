"""air/model/nvil.py, the discrete z_pres with NVIL's score-function gradient: its learning
signal against a naive loop, the estimator's gradient against the closed form of a one-step
model, its baseline's training, a short training run end to end, and its flags. (Finite values
at the extremes and bad flags: test_discrete_estimators.py.)"""
import collections
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.config import AIRConfig
from air.model import nvil
from air.model.air_model import AIRModel
from air.training.optimization import build_objective_train_op
from conftest import evaluate_in_graph, tiny_config

TINY_NVIL = tiny_config(z_pres_estimator="nvil", nvil_baseline_hidden_units=5)


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_eager_execution()


def naive_learning_signal(reconstruction, kl_pres, kl_where, kl_what):
    """cost[b, t] written out term by term."""
    batch, steps = kl_pres.shape
    cost = np.zeros([batch, steps])
    for b in range(batch):
        for t in range(steps):
            cost[b, t] = reconstruction[b]
            for s in range(t, steps):
                cost[b, t] += kl_where[b, s] + kl_what[b, s]
                if s > t:
                    cost[b, t] += kl_pres[b, s]
    return cost


def test_learning_signal_is_the_naive_sum_and_ignores_what_the_decision_cannot_change():
    rng = np.random.RandomState(0)
    terms = [rng.randn(5), rng.randn(5, 3), rng.randn(5, 3), rng.randn(5, 3)]
    signal = evaluate_in_graph(nvil.learning_signal, *terms)
    np.testing.assert_allclose(signal, naive_learning_signal(*terms), rtol=1e-5, atol=1e-5)
    # Step 2's cost: a change of step 0's or 1's terms, or of its own z_pres KL, does not move
    # it; a change of its own z_where KL does.
    for term, step, moves in ((1, 0, False), (2, 1, False), (3, 1, False), (1, 2, False),
                              (2, 2, True), (3, 2, True)):
        changed = [np.array(a, copy=True) for a in terms]
        changed[term][:, step] += 10.0
        moved = evaluate_in_graph(nvil.learning_signal, *changed)[:, 2]
        assert np.allclose(moved, signal[:, 2], atol=1e-4) != moves, (term, step)


FakeSteps = collections.namedtuple("FakeSteps", ["kl_z_pres", "kl_z_where", "kl_z_what",
                                                 "attempted", "z_pres", "z_pres_log_odds"])
FakeModel = collections.namedtuple("FakeModel", ["steps", "reconstruction_loss", "images",
                                                 "loss"])


@pytest.mark.parametrize("log_odds, costs, normalise", [
    (-1.0, (3.0, 3.5), True), (0.3, (3.0, 3.5), True), (2.0, (3.0, 3.5), True),
    (0.3, (3.0, 9.0), False), (0.3, (3.0, 9.0), True)])
def test_score_function_gradient_matches_the_closed_form_of_one_decision(log_odds, costs,
                                                                         normalise):
    """One step whose cost is f(0) or f(1): the expected surrogate gradient with respect to the
    log-odds a is sigmoid'(a) (f(1) - f(0)), the gradient of E[f] (the baseline and the batch's
    centring do not depend on z). Variance normalisation divides it by max(1, std of f)."""
    batch = 200000
    config = AIRConfig(max_steps=1, canvas_height=2, canvas_width=2, z_pres_estimator="nvil",
                       nvil_signal_decay=0.0, nvil_baseline_hidden_units=3,
                       nvil_variance_normalisation=normalise)
    with tf.Graph().as_default():
        tf.set_random_seed(5)
        a = tf.Variable(log_odds)
        log_odds_rows = tf.fill([batch, 1], a)
        mode = nvil.NVIL(config)
        z_pres = mode.presence(0, log_odds_rows, tf.constant(0.0)).z_pres
        reconstruction = costs[0] + (costs[1] - costs[0]) * z_pres[:, 0]
        zeros = tf.zeros([batch, 1])
        model = FakeModel(FakeSteps(zeros, zeros, zeros, tf.ones([batch, 1]), z_pres,
                                    log_odds_rows),
                          reconstruction, tf.zeros([batch, 2, 2]), tf.reduce_mean(reconstruction))
        objective = mode.objective(model)
        gradient = tf.gradients(objective.loss, [a])[0]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            estimates = [session.run(gradient) for _ in range(5)]
    sigmoid = 1.0 / (1.0 + np.exp(-log_odds))
    expected = sigmoid * (1.0 - sigmoid) * (costs[1] - costs[0])
    if normalise:
        expected /= max(1.0, (costs[1] - costs[0]) * np.sqrt(sigmoid * (1.0 - sigmoid)))
    assert np.mean(estimates) == pytest.approx(expected, abs=0.01, rel=0.02)


def nvil_graph(config, batch):
    """TINY's NVIL training graph on fed images: model, objective and train ops."""
    images = tf.placeholder(tf.float32, [batch, config.canvas_height, config.canvas_width])
    step = tf.train.get_or_create_global_step()
    model = AIRModel(images, config, training=True, global_step=step)
    ops = build_objective_train_op(model.objective, config, step)
    return images, step, model, ops


def test_train_op_updates_the_baseline_and_the_signal_statistics():
    images = np.random.RandomState(4).rand(4, 24, 24).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(11)
        feed_images, _, model, ops = nvil_graph(TINY_NVIL, 4)
        baseline = model.objective.baseline_variables
        statistics = [v for v in tf.global_variables()
                      if v.name.startswith("air/nvil_baseline/signal_")]
        assert baseline and len(statistics) == 3
        model_variables = {v for _, v in ops.gradients}
        assert not model_variables & set(baseline), "the baseline learns from its own loss"
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            before = session.run(baseline + statistics)
            predictions = []
            for _ in range(30):
                # The cost is thousands of nats per image here, the initial baseline near 0:
                # its squared error pulls every prediction up.
                cost, predicted, _ = session.run(
                    [model.reconstruction_loss, model.objective.baseline, ops.train_op],
                    {feed_images: images})
                assert np.all(cost[:, None] > predicted)
                predictions.append(np.mean(predicted[:, 0]))  # step 0 is always attempted
            after = session.run(baseline + statistics)
    for old, new in zip(before, after):
        assert not np.allclose(old, new)
    assert predictions[-1] > predictions[0] + 0.01


def read_metrics(results_dir):
    import csv
    with open(os.path.join(results_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def test_nvil_trains_resumes_evaluates_and_loads(small_data_dir, tmp_path, capsys):
    import evaluate
    import training
    from air.evaluation.model_folder import LoadedModel
    results = str(tmp_path / "nvil")
    flags = ["--data-dir", small_data_dir, "--results-dir", results, "--eval-every", "10",
             "--save-every", "10", "--seed", "3", "--progress-seconds", "60",
             "--gradient-variance-draws", "3"]
    assert training.main(flags + ["--z-pres-estimator", "nvil", "--max-iterations", "20"]) == 0
    assert training.main(flags + ["--resume", "--max-iterations", "30"]) == 0
    rows = read_metrics(results)
    assert [int(r["iteration"]) for r in rows] == [10, 20, 30]
    for row in rows:  # an NVIL run measures both estimators on its weights
        assert float(row["z_pres_gradient_variance_nvil"]) >= 0.0
        assert float(row["z_pres_gradient_variance_concrete"]) >= 0.0
    with open(os.path.join(results, "model", "config.json")) as f:
        assert '"z_pres_estimator": "nvil"' in f.read()
    capsys.readouterr()
    assert evaluate.main(["--model-dir", os.path.join(results, "model"), "--data",
                          os.path.join(small_data_dir, "test.tfrecords")]) == 0
    assert "iteration 30" in capsys.readouterr().out
    with LoadedModel(os.path.join(results, "model")) as model:
        assert model.config.z_pres_estimator == "nvil"


def test_a_concrete_run_measures_the_relaxation_only(small_results_dir):
    rows = read_metrics(small_results_dir)
    assert rows and all(float(r["z_pres_gradient_variance_concrete"]) > 0.0 for r in rows)
    assert all(r["z_pres_gradient_variance_nvil"] == "" for r in rows)


def test_estimator_fields_given_with_their_estimator_are_taken():
    import training
    from air import config as air_config
    args = training.build_parser().parse_args(
        ["--z-pres-estimator", "nvil", "--nvil-variance-normalisation", "false",
         "--nvil-baseline-learning-rate", "0.01", "--nvil-signal-decay", "0.5"])
    config = AIRConfig.from_dict(air_config.overrides_from_args(args))
    assert (config.z_pres_estimator, config.nvil_variance_normalisation,
            config.nvil_baseline_learning_rate, config.nvil_signal_decay) == ("nvil", False,
                                                                              0.01, 0.5)
