"""What every discrete z_pres estimator (nvil, vimco) must do the same way: finite losses and
gradients at the extremes of the posterior and the prior, and one error line for a bad or
misplaced estimator flag. (Their own maths: test_nvil.py, test_vimco.py; their unbiasedness:
test_estimator_enumeration.py.)"""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.model.air_model import AIRModel
from air.training.optimization import build_objective_train_op
from conftest import tiny_config

ESTIMATORS = {"nvil": dict(z_pres_estimator="nvil", nvil_baseline_hidden_units=5),
              "vimco": dict(z_pres_estimator="vimco", vimco_samples=3)}


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_eager_execution()


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_finite_at_the_extremes_of_the_log_odds_and_the_prior(estimator):
    config = tiny_config(**ESTIMATORS[estimator])
    rng = np.random.RandomState(3)
    images = np.stack([np.zeros([24, 24]), np.ones([24, 24]), rng.rand(24, 24) > 0.7,
                       rng.rand(24, 24)]).astype(np.float32)
    with tf.Graph().as_default():
        feed_images = tf.placeholder(tf.float32, [4, 24, 24])
        step = tf.train.get_or_create_global_step()
        model = AIRModel(feed_images, config, training=True, global_step=step)
        ops = build_objective_train_op(model.objective, config, step)
        bias = [v for v in tf.global_variables() if v.name == "air/z_pres/output/biases:0"][0]
        value = tf.placeholder(tf.float32, [1])
        set_bias = tf.assign(bias, value)
        fetches = {"loss": model.loss, "objective": model.objective.loss,
                   "norm": ops.gradient_norm, "gradients": [g for g, _ in ops.gradients]}
        if model.objective.baseline_loss is not None:
            fetches["baseline"] = model.objective.baseline_loss
        with tf.Session() as session:  # Grappler's default graph optimisers on
            session.run(tf.global_variables_initializer())
            for log_odds in (30.0, -30.0, 0.0):
                for iteration in (0, 100000):  # the prior at its start and at its floor
                    session.run([set_bias, tf.assign(step, iteration)], {value: [log_odds]})
                    result = session.run(fetches, {feed_images: images})
                    context = (log_odds, iteration)
                    for name in set(fetches) - {"gradients"}:
                        assert np.isfinite(result[name]), (name, context)
                    assert all(np.all(np.isfinite(g)) for g in result["gradients"]), context
                    session.run(ops.train_op, {feed_images: images})
                    assert session.run(ops.skipped_updates) == 0, context


@pytest.mark.parametrize("flags, named", [
    (["--z-pres-estimator", "reinforce"], "z-pres-estimator"),
    (["--nvil-signal-decay", "0.5"], "nvil_signal_decay"),
    (["--nvil-baseline-learning-rate", "0.01"], "nvil_baseline_learning_rate"),
    (["--z-pres-estimator", "nvil", "--nvil-signal-decay", "1.0"], "nvil_signal_decay"),
    (["--vimco-samples", "3"], "vimco_samples"),
    (["--z-pres-estimator", "nvil", "--vimco-samples", "3"], "vimco_samples"),
    (["--z-pres-estimator", "vimco", "--nvil-signal-decay", "0.5"], "nvil_signal_decay"),
    (["--z-pres-estimator", "vimco", "--vimco-samples", "1"], "vimco_samples"),
    (["--z-pres-estimator", "vimco", "--vimco-samples", "two"], "vimco-samples"),
])
def test_bad_estimator_flags_are_one_error_line_and_write_nothing(small_data_dir, tmp_path,
                                                                 capsys, flags, named):
    import training
    results = str(tmp_path / "run")
    assert training.main(["--data-dir", small_data_dir, "--results-dir", results] + flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0], err
    assert not os.path.exists(results)
