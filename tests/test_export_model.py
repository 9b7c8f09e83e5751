"""export_model.py: a run's weights (no optimiser state) restore bit-exactly from the exported
folder, which is as small as the weights themselves."""
import os

import numpy as np
import tensorflow.compat.v1 as tf

import export_model
from air.training.checkpoints import find_checkpoint
from air.config import AIRConfig

# config.json, the checkpoint index and the .index file: a few kB beside the weights.
OVERHEAD_BYTES = 64 * 1024


def saved_tensors(checkpoint):
    """{name: numpy value} of every variable in a checkpoint."""
    reader = tf.train.load_checkpoint(checkpoint)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(checkpoint)}


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))


def test_export_keeps_exactly_the_weights_bit_for_bit(small_results_dir, tmp_path, capsys):
    output = str(tmp_path / "model")
    assert export_model.main(["--results-dir", small_results_dir, "--output", output]) == 0
    printed = capsys.readouterr().out
    exported, _ = find_checkpoint(output)
    assert os.path.basename(exported) == "model.ckpt-30"
    assert printed.startswith("exported %s (" % exported)

    run_checkpoint, _ = find_checkpoint(os.path.join(small_results_dir, "model"))
    run = saved_tensors(run_checkpoint)
    weights = saved_tensors(exported)
    optimiser = [name for name in run if "Adam" in name or name.endswith("_power")]
    assert optimiser and "skipped_updates" in run
    # Everything but the optimiser state and the skip counter, and nothing else.
    assert sorted(weights) == sorted(set(run) - set(optimiser) - {"skipped_updates"})
    for name, value in weights.items():
        assert value.dtype == run[name].dtype and np.array_equal(value, run[name]), name
    assert AIRConfig.load(os.path.join(output, "config.json")) == AIRConfig()

    # As small as the weights: about a third of the run's checkpoint (Adam keeps two slots).
    weight_bytes = sum(v.nbytes for v in weights.values())
    assert weight_bytes <= folder_bytes(output) <= weight_bytes + OVERHEAD_BYTES
    run_data = [f for f in os.listdir(os.path.dirname(run_checkpoint))
                if f.startswith("model.ckpt-30.data")]
    run_bytes = sum(os.path.getsize(os.path.join(small_results_dir, "model", f))
                    for f in run_data)
    assert run_bytes > 2.9 * weight_bytes


def test_exported_folder_predicts_like_the_run(small_results_dir, small_data_dir, tmp_path,
                                               capsys):
    from air.data import records
    from air.evaluation.model_folder import LoadedModel
    output = str(tmp_path / "model")
    assert export_model.main(["--results-dir", small_results_dir, "--output", output]) == 0
    images = records.read_records(os.path.join(small_data_dir, "test.tfrecords")).images[:8]
    with LoadedModel(os.path.join(small_results_dir, "model")) as run, \
            LoadedModel(output) as exported:
        assert exported.step == run.step == 30
        theirs, ours = run.predict(images), exported.predict(images)
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_chosen_checkpoint_is_exported(small_results_dir, tmp_path, capsys):
    earlier = os.path.join(small_results_dir, "model", "model.ckpt-15")
    output = str(tmp_path / "model")
    assert export_model.main(["--results-dir", small_results_dir, "--checkpoint", earlier,
                              "--output", output]) == 0
    exported, _ = find_checkpoint(output)
    assert saved_tensors(exported)["global_step"] == 15
    run = saved_tensors(earlier)
    for name, value in saved_tensors(exported).items():
        assert np.array_equal(value, run[name]), name
