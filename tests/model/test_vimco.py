"""air/model/vimco.py, the discrete z_pres with VIMCO's K-sample bound: the bound and the
leave-one-out signal against naive loops, the model's K rows per image, a short training run
end to end that every script reads, and its field. (Its unbiasedness by enumeration:
test_estimator_enumeration.py; finite values at the extremes and bad flags:
test_discrete_estimators.py.)"""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.config import AIRConfig, with_estimator
from air.model import vimco
from air.model.air_model import AIRModel
from air.training import metrics_log
from conftest import evaluate_in_graph, tiny_config

TINY_VIMCO = tiny_config(z_pres_estimator="vimco", vimco_samples=3)


@pytest.fixture(scope="module", autouse=True)
def graph_mode():
    tf.disable_eager_execution()


def naive_log_mean_exp(values):
    """log of the mean of exp(values), in float64 after taking out the largest."""
    values = np.asarray(values, np.float64)
    top = np.max(values)
    return top + np.log(np.mean(np.exp(values - top)))


def naive_signal(log_weight):
    """L - L_{-k} written out: L_{-k} with log w_k replaced by the mean of the others."""
    images, samples = log_weight.shape
    signal = np.zeros([images, samples])
    for b in range(images):
        bound = naive_log_mean_exp(log_weight[b])
        for k in range(samples):
            replaced = np.array(log_weight[b], np.float64)
            replaced[k] = np.mean([log_weight[b, j] for j in range(samples) if j != k])
            signal[b, k] = bound - naive_log_mean_exp(replaced)
    return signal


@pytest.mark.parametrize("offset", [0.0, -3000.0])
def test_bound_and_leave_one_out_signal_are_the_naive_ones(offset):
    """Log weights of thousands of nats (offset) keep the signal exact: it is shift-free."""
    log_weight = (np.random.RandomState(0).randn(6, 4) * 3.0 + offset).astype(np.float32)
    log_weight[0] = log_weight[0, 0]  # equal weights: no sample is better than the others
    bound = evaluate_in_graph(vimco.k_sample_bound, log_weight)
    np.testing.assert_allclose(bound, [naive_log_mean_exp(row) for row in log_weight],
                               rtol=1e-6, atol=1e-3)
    signal = evaluate_in_graph(vimco.leave_one_out_signal, log_weight)
    np.testing.assert_allclose(signal, naive_signal(log_weight), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(signal[0], 0.0, atol=1e-5)
    # The best sample of an image gets the largest signal, and a signal is positive exactly
    # when the sample's log weight is above the others' mean.
    others = (log_weight.sum(axis=1, keepdims=True) - log_weight) / 3.0
    assert np.all((signal[1:] > 0) == (log_weight[1:] > others[1:]))


def test_every_image_gets_k_rows_of_its_own_and_each_row_its_own_sample():
    images = np.random.RandomState(1).rand(4, 24, 24).astype(np.float32)
    counts = np.array([0, 1, 2, 1])
    with tf.Graph().as_default():
        tf.set_random_seed(2)
        model = AIRModel(tf.constant(images), TINY_VIMCO, training=True,
                         true_counts=tf.constant(counts))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            rows, canvas, z_where, count, correct, accuracy = session.run([
                model.images, model.canvas, model.steps.z_where, model.digit_count,
                model.count_correct, model.accuracy])
    np.testing.assert_array_equal(rows, np.repeat(images, 3, axis=0))
    assert canvas.shape == (12, 24, 24)
    # The samples of one image differ (z_where is drawn for each row).
    assert not np.allclose(z_where[0, 0], z_where[1, 0])
    np.testing.assert_array_equal(correct, count == np.repeat(counts, 3))
    assert accuracy == pytest.approx(np.mean(count == np.repeat(counts, 3)))


def test_vimco_trains_resumes_and_every_script_reads_it(small_data_dir, tmp_path, capsys):
    import charts
    import embeddings
    import evaluate
    import training
    from air.evaluation.model_folder import LoadedModel, export_weights
    results = str(tmp_path / "vimco")
    flags = ["--data-dir", small_data_dir, "--results-dir", results, "--eval-every", "10",
             "--save-every", "10", "--seed", "3", "--progress-seconds", "60",
             "--gradient-variance-draws", "3", "--batch-size", "16"]
    assert training.main(flags + ["--z-pres-estimator", "vimco", "--vimco-samples", "2",
                                  "--max-iterations", "20"]) == 0
    assert training.main(flags + ["--resume", "--max-iterations", "30"]) == 0
    rows = metrics_log.read_rows(os.path.join(results, metrics_log.FILENAME))
    assert [int(r["iteration"]) for r in rows] == [10, 20, 30]
    for row in rows:  # a VIMCO run measures VIMCO and the relaxation on its weights
        assert float(row["z_pres_gradient_variance_vimco"]) >= 0.0
        assert float(row["z_pres_gradient_variance_concrete"]) >= 0.0
        assert row["z_pres_gradient_variance_nvil"] == ""
        assert 0.0 < float(row["loss"]) < 5000.0  # the per-image negative ELBO
    model_dir = os.path.join(results, "model")
    config = AIRConfig.load(os.path.join(model_dir, "config.json"))
    assert (config.z_pres_estimator, config.vimco_samples) == ("vimco", 2)
    capsys.readouterr()
    test_path = os.path.join(small_data_dir, "test.tfrecords")
    # Test mode, the sampled ELBO and the importance-weighted bound of the checkpoint.
    assert evaluate.main(["--model-dir", model_dir, "--data", test_path, "--samples", "4",
                          "--importance-samples", "3"]) == 0
    printed = capsys.readouterr().out
    assert "iteration 30" in printed and "IWAE" in printed, printed
    assert charts.main(["--results-dir", results, "--data", test_path, "--samples", "2",
                        "--output-dir", str(tmp_path / "charts")]) == 0
    # Any attended window counts: a model of 30 iterations attends to little near a digit.
    assert embeddings.main(["--model-dir", model_dir, "--data", test_path, "--num-images", "20",
                            "--max-distance", "3.0", "--output-dir",
                            str(tmp_path / "embeddings")]) == 0, capsys.readouterr().err
    images = np.random.RandomState(0).rand(3, 50, 50).astype(np.float32)
    exported = str(tmp_path / "exported")
    export_weights(model_dir, exported)
    for folder in (model_dir, exported):  # as demo.py and embeddings.py load a model
        with LoadedModel(folder) as model:
            assert model.config == config
            predicted = model.predict(images)
            assert all(np.all(np.isfinite(v)) for v in predicted.values()
                       if np.asarray(v).dtype.kind == "f")


def test_with_estimator_resets_the_samples():
    config = with_estimator(TINY_VIMCO, "concrete")
    assert (config.z_pres_estimator, config.vimco_samples) == ("concrete", 5)
    assert with_estimator(config, "vimco").vimco_samples == 5


def test_old_configs_read_as_before_and_the_field_round_trips():
    saved = TINY_VIMCO.to_dict()
    assert AIRConfig.from_json(TINY_VIMCO.to_json()) == TINY_VIMCO
    del saved["vimco_samples"], saved["z_pres_estimator"]
    old = AIRConfig.from_saved_dict(saved)
    assert (old.z_pres_estimator, old.vimco_samples) == ("concrete", 5)
