"""air/evaluation/model_folder.py: loading a model folder (a training run's model/), its test-mode
outputs, its errors, and the untrained folder bench.py times."""
import os
import shutil

import numpy as np
import pytest

from air.evaluation import model_folder
from air.training.checkpoints import CheckpointError, find_checkpoint, read_config


def test_loaded_model_predicts_every_output(small_results_dir, small_data_dir):
    from air.data import records
    images = records.read_records(os.path.join(small_data_dir, "test.tfrecords")).images[:4]
    with model_folder.LoadedModel(os.path.join(small_results_dir, "model")) as model:
        config = model.config
        assert model.step == 30
        batch = model.predict(images)
        single = model.predict(images[1])
        with pytest.raises(ValueError, match="images must be"):
            model.predict(images[:, :40])
    steps, side = config.max_steps, config.window_size
    assert batch["digit_count"].shape == (4,)
    assert batch["boxes"].shape == (4, steps, 4)
    assert batch["windows"].shape == batch["reconstructions"].shape == (4, steps, side, side)
    assert batch["z_what_mean"].shape == (4, steps, config.vae_latent)
    assert batch["canvas"].shape == images.shape
    # Test mode: z_pres is the rounded probability; the count is the number of live steps.
    np.testing.assert_array_equal(batch["z_pres"], batch["z_pres_probability"] > 0.5)
    np.testing.assert_array_equal(batch["digit_count"], batch["live"].sum(axis=1))
    for name in batch:
        np.testing.assert_allclose(single[name], batch[name][1], rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(batch["negative_elbo"]))


def test_model_dir_errors_are_clear(tmp_path, small_results_dir):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_config(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="has no config.json"):
        read_config(str(empty))
    (empty / "config.json").write_text('{"no_such_field": 1}')
    with pytest.raises(CheckpointError, match="incompatible .*no_such_field"):
        read_config(str(empty))
    (empty / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        find_checkpoint(str(empty))
    # A checkpoint of another configuration: the shapes differ.
    other = tmp_path / "other"
    shutil.copytree(os.path.join(small_results_dir, "model"), str(other))
    from air.config import AIRConfig
    config = AIRConfig.load(str(other / "config.json"))
    config.replace(rnn_units=32).save(str(other / "config.json"))
    with pytest.raises(CheckpointError, match="does not match its config.json"):
        model_folder.LoadedModel(str(other))


def test_untrained_model_folder_loads(tmp_path):
    from air.config import AIRConfig
    config = AIRConfig().replace(rnn_units=16, vae_latent=4, vae_recognition_units=[8],
                                 vae_generative_units=[8])
    model_folder.save_untrained_model(str(tmp_path / "model"), config)
    with model_folder.LoadedModel(str(tmp_path / "model")) as model:
        assert model.config == config and model.step is None
        result = model.predict(np.zeros([2, 50, 50], np.float32))
    assert result["z_what_mean"].shape == (2, config.max_steps, 4)


def test_the_test_mode_outputs_are_one_list():
    import tensorflow.compat.v1 as tf
    from air.config import AIRConfig
    config = AIRConfig().replace(rnn_units=16, vae_latent=4, vae_recognition_units=[8],
                                 vae_generative_units=[8])
    with tf.Graph().as_default():
        _, model = model_folder.build_test_model(config, batch_size=1)
        outputs = model_folder.test_mode_outputs(model)
        assert tuple(outputs) == model_folder.TEST_MODE_OUTPUTS
        some = model_folder.test_mode_outputs(model, ("live", "digit_count"))
        assert list(some) == ["digit_count", "live"] and some["live"] is outputs["live"]
        with pytest.raises(ValueError, match="unknown test-mode output.*boxen"):
            model_folder.test_mode_outputs(model, ("boxen",))
