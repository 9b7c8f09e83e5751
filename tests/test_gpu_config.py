"""GPU readiness without a GPU: the session configuration itself (memory grown as needed, an
optional share of it, the devices chosen), that every session of the project gets it, and
which GPU each of a sweep's trials sees."""
import argparse
import ast
import os
import sys
import time

import pytest
import tensorflow.compat.v1 as tf

import sweep as sweep_script
import training
from conftest import REPO, TINY
from air import devices
from air.evaluation.model_folder import LoadedModel
from air.experiments import sweep


def test_sessions_grow_gpu_memory_as_needed_by_default():
    config = devices.session_config(threads=3)
    assert config.gpu_options.allow_growth is True
    assert config.gpu_options.per_process_gpu_memory_fraction == 0  # no limit
    assert config.gpu_options.visible_device_list == ""  # every visible GPU
    assert "GPU" not in config.device_count
    assert config.intra_op_parallelism_threads == config.inter_op_parallelism_threads == 3


def test_memory_share_and_device_choice():
    config = devices.session_config(gpu_memory_fraction=0.4, device="1,0")
    assert config.gpu_options.allow_growth is True  # a share caps the growth
    assert config.gpu_options.per_process_gpu_memory_fraction == pytest.approx(0.4)
    assert config.gpu_options.visible_device_list == "1,0"
    assert devices.session_config(device=devices.CPU).device_count["GPU"] == 0


@pytest.mark.parametrize("text,expected", [("cpu", "cpu"), ("CPU", "cpu"), ("0", "0"),
                                           ("1,0", "1,0"), ("01", "1")])
def test_device_option_accepts_cpu_or_gpu_indices(text, expected):
    assert devices.device_option(text) == expected


@pytest.mark.parametrize("text", ["gpu", "-1", "0,", "0;1", ""])
def test_device_option_refuses_anything_else(text):
    with pytest.raises(argparse.ArgumentTypeError):
        devices.device_option(text)


@pytest.mark.parametrize("flag,value", [("--device", "gpu0"), ("--gpu-memory-fraction", "0"),
                                        ("--gpu-memory-fraction", "1.5")])
def test_training_refuses_a_bad_device_option_in_one_line(small_data_dir, tmp_path, capsys,
                                                          flag, value):
    results = str(tmp_path / "run")
    assert training.main(["--data-dir", small_data_dir, "--results-dir", results, flag,
                          value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and flag in err[0], err
    assert not os.path.exists(results)


def test_training_session_gets_the_gpu_options(small_data_dir, tmp_path, monkeypatch):
    """The configuration reaches the session training really runs in."""
    configs = []
    real_init = tf.Session.__init__

    def recording_init(self, target="", graph=None, config=None):
        configs.append(config)
        real_init(self, target, graph, config)

    monkeypatch.setattr(tf.Session, "__init__", recording_init)
    assert training.main(["--data-dir", small_data_dir, "--results-dir", str(tmp_path / "run"),
                          "--max-iterations", "1", "--eval-batch-size", "90",
                          "--gpu-memory-fraction", "0.3", "--device", "cpu", "--threads", "1",
                          "--progress-seconds", "60"] + TINY) == 0
    assert len(configs) == 1
    options = configs[0].gpu_options
    assert options.allow_growth and options.per_process_gpu_memory_fraction == pytest.approx(0.3)
    assert configs[0].device_count["GPU"] == 0
    assert configs[0].intra_op_parallelism_threads == 1


def test_a_loaded_model_session_grows_gpu_memory(small_results_dir):
    with LoadedModel(small_results_dir, threads=2) as model:
        config = model.session._config
    assert config.gpu_options.allow_growth and config.intra_op_parallelism_threads == 2


def _config_proto_calls(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "ConfigProto"]


def _sessions_without_config(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "Session"
            and "config" not in [keyword.arg for keyword in node.keywords]]


def project_sources():
    """The project's own Python files: the scripts and air/ (not the tests, not the copies of
    the original code)."""
    paths = [os.path.join(REPO, name) for name in os.listdir(REPO) if name.endswith(".py")]
    for folder, _, names in os.walk(os.path.join(REPO, "air")):
        paths += [os.path.join(folder, name) for name in names if name.endswith(".py")]
    return paths


def test_devices_is_the_one_place_sessions_are_configured():
    """A ConfigProto made elsewhere, or a session without one, would take a GPU's memory whole
    again. The original code's runner patches the original's own ConfigProto: left out."""
    made = {os.path.relpath(path, REPO) for path in project_sources()
            if _config_proto_calls(path)}
    assert made == {os.path.join("air", "devices.py"),
                    os.path.join("air", "experiments", "original_bootstrap.py")}, made
    bare = {os.path.relpath(path, REPO): _sessions_without_config(path)
            for path in project_sources() if _sessions_without_config(path)}
    assert bare == {}, bare
    # The checks find what they look for.
    assert _config_proto_calls(os.path.join(REPO, "air", "devices.py"))
    assert _sessions_without_config(os.path.join(REPO, "tests", "conftest.py"))


# --- Which GPU each trial of a sweep sees ---------------------------------------------------

@pytest.mark.parametrize("value,expected", [("0,1", ["0", "1"]), ("3", ["3"]), ("", []),
                                            ("-1", []), ("2,-1,3", ["2"]),
                                            (" 1 , 2 ", ["1", "2"])])
def test_visible_gpus_follow_cuda_visible_devices(value, expected):
    assert devices.visible_gpus({"CUDA_VISIBLE_DEVICES": value},
                                lambda: pytest.fail("nvidia-smi asked")) == expected


def test_visible_gpus_without_the_variable_are_those_nvidia_smi_lists():
    listing = ("GPU 0: NVIDIA A100 (UUID: GPU-1)\nGPU 1: NVIDIA A100 (UUID: GPU-2)\n")
    assert devices.visible_gpus({}, lambda: listing) == ["0", "1"]
    assert devices.visible_gpus({}, lambda: "") == []  # no nvidia-smi, no GPU


def test_trials_get_a_gpu_each_in_turn_and_share_when_fewer():
    assert devices.trial_environments(2, ["0", "1"]) == [{"CUDA_VISIBLE_DEVICES": "0"},
                                                         {"CUDA_VISIBLE_DEVICES": "1"}]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in devices.trial_environments(5, ["2", "5"])] == [
        "2", "5", "2", "5", "2"]
    assert devices.trial_environments(3, ["0"]) == [{"CUDA_VISIBLE_DEVICES": "0"}] * 3
    assert devices.trial_environments(2, []) == [{}, {}]  # no GPU: the environment as it is


def test_local_trials_run_with_the_gpu_of_their_slot(tmp_path):
    """Four trials, two slots, two GPUs: each running pair has one GPU each."""
    script = ("import os, time; print('seen', os.environ.get('CUDA_VISIBLE_DEVICES')); "
              "time.sleep(1.5)")
    jobs = []
    for seed in range(4):
        directory = tmp_path / ("seed-%d" % seed)
        directory.mkdir()
        jobs.append((sweep.Trial(None, seed, str(directory)), [sys.executable, "-c", script]))
    ended = []
    import threading
    sweep.run_local(jobs, 2, threading.Event(), lambda trial, code: ended.append(
        (trial, code, time.time())), gpus=["4", "7"])
    assert sorted(code for _, code, _ in ended) == [0] * 4
    seen = {}
    for trial, _, _ in ended:
        log = open(os.path.join(trial.directory, sweep.LOG_NAME)).read()
        assert log.count("$ CUDA_VISIBLE_DEVICES=") == 1, log
        seen[trial.seed] = log.split("seen ")[1].split()[0]
    assert sorted(seen.values()) == ["4", "4", "7", "7"]
    # The two trials started together (seeds 0 and 1) ran on different GPUs.
    assert seen[0] != seen[1]


def test_ray_trials_request_gpus_per_trial():
    assert sweep.ray_task_options(0.5) == {"num_cpus": 1, "num_gpus": 0.5, "max_retries": 0}
    assert sweep.ray_task_options(0)["num_gpus"] == 0
    parser = sweep_script.build_parser()
    assert parser.parse_args([]).gpus_per_trial == 0
    assert parser.parse_args(["--gpus-per-trial", "0.25"]).gpus_per_trial == 0.25


def test_sweep_refuses_a_negative_gpus_per_trial(capsys):
    assert sweep_script.main(["--gpus-per-trial", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "gpus-per-trial" in err[0], err


def test_a_gpu_request_the_ray_cluster_cannot_meet_is_refused():
    """Checked against the cluster's resources before any trial is sent (a cluster without
    GPUs, as here, would leave them waiting)."""
    with pytest.raises(sweep.SweepError) as refused:
        sweep.check_gpu_request({"CPU": 2.0}, 0.5)
    assert str(refused.value) == "--gpus-per-trial 0.5: the Ray cluster has 0 GPUs"
    with pytest.raises(sweep.SweepError):
        sweep.check_gpu_request({"CPU": 8.0, "GPU": 1.0}, 2)
    sweep.check_gpu_request({"CPU": 8.0, "GPU": 1.0}, 0.5)
    sweep.check_gpu_request({"CPU": 2.0}, 0)
