"""air/training/options.py: the training loop's options, their flags, files and checks; and
air/launcher.py, which turns them (and keyword options) into command lines."""
import argparse
import dataclasses
import json
import os
import sys

import pytest

from air import launcher
from air.training import options as training_options
from air.training.options import TrainingOptions
from conftest import REPO


def _parse(argv, **kwargs):
    parser = argparse.ArgumentParser()
    training_options.add_flags(parser, **kwargs)
    return parser.parse_args(argv)


def test_every_option_is_a_flag_with_help_and_the_defaults_are_the_fields():
    parser = argparse.ArgumentParser()
    training_options.add_flags(parser)
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    fields = dataclasses.fields(TrainingOptions)
    assert set(flags) == {f.name for f in fields}
    for f in fields:
        assert len(f.metadata["help"].split()) >= 3, f.name
        assert flags[f.name].option_strings == ["--" + f.name.replace("_", "-")]
    # Flags not given stay out of the parsed arguments: the defaults live in the fields only.
    assert training_options.given(_parse([])) == {}
    assert training_options.from_args(_parse([])) == TrainingOptions()


def test_flags_override_a_base_and_give_typed_values():
    base = TrainingOptions(eval_every=7, seed=3)
    options = training_options.from_args(
        _parse(["--max-iterations", "12", "--stop-at-accuracy", "0.9", "--resume"]), base)
    assert options == base.replace(max_iterations=12, stop_at_accuracy=0.9, resume=True)
    assert isinstance(options.stop_at_accuracy, float) and isinstance(options.max_iterations, int)


def test_other_defaults_and_a_subset_of_flags():
    args = _parse([], names=("threads", "max_iterations"), defaults={"threads": 1,
                                                                     "max_iterations": 9})
    assert vars(args) == {"threads": 1, "max_iterations": 9}
    with pytest.raises(SystemExit):
        _parse(["--eval-every", "3"], names=("threads",))


def test_the_stop_rule_waits_for_its_streak_and_for_min_iterations():
    from air.training.metrics_log import stop_rule_met
    options = TrainingOptions(stop_at_accuracy=0.98, patience=3)
    assert [stop_rule_met(streak, 1000, options) for streak in range(5)] == \
        [False, False, False, True, True]
    later = options.replace(min_iterations=5000)
    assert [stop_rule_met(3, i, later) for i in (1000, 4999, 5000, 9000)] == \
        [False, False, True, True]
    assert not stop_rule_met(10, 10 ** 6, TrainingOptions())  # no --stop-at-accuracy
    # An options file from before the option reads as 0: the rule as it was.
    assert TrainingOptions.from_dict({"stop_at_accuracy": 0.9}).min_iterations == 0


def test_json_round_trip_and_saved_options(tmp_path):
    options = TrainingOptions(data_dir="d", results_dir="r", epochs=2, seed=5, threads=3,
                              stop_at_accuracy=0.95)
    path = str(tmp_path / training_options.FILENAME)
    options.save(path)
    assert TrainingOptions.load(path) == options
    with open(path) as f:
        assert json.load(f) == dataclasses.asdict(options)
    assert training_options.read_saved(str(tmp_path)) == options
    # A model folder written before runs saved their options (the shipped model/ is one).
    assert training_options.read_saved(str(tmp_path / "older")) is None
    assert training_options.read_saved(os.path.join(REPO, "model")) is None
    assert TrainingOptions.from_dict({"epochs": 3}).epochs == 3.0


@pytest.mark.parametrize("values,message", [
    ({"eval_every": 0}, "eval_every"), ({"eval_every": 2.5}, "eval_every"),
    ({"eval_every": True}, "eval_every"), ({"eval_every": None}, "eval_every"),
    ({"threads": -1}, "threads"), ({"epochs": 0}, "epochs"), ({"epochs": float("nan")}, "epochs"),
    ({"stop_at_accuracy": 1.5}, "stop_at_accuracy"), ({"seed": -1}, "seed"),
    ({"progress_seconds": "5"}, "progress_seconds"), ({"resume": "yes"}, "resume"),
    ({"data_dir": 3}, "data_dir"), ({"eval_evry": 10}, "eval_evry"),
    ({"final_evaluation": 1}, "final_evaluation"),
    ({"extrapolation_data": "three.tfrecords"}, "--extrapolation-data needs --final-evaluation"),
    ({"min_iterations": -1}, "min_iterations"),
    ({"min_iterations": 20, "max_iterations": 10}, r"--min-iterations \(20\) is above"),
])
def test_bad_values_are_value_errors_naming_the_option(values, message):
    with pytest.raises(ValueError, match=message):
        TrainingOptions.from_dict(values)


def test_a_file_and_the_command_line_accept_the_same_values(tmp_path):
    """Each numeric field is checked by the argparse type of its flag."""
    for f in dataclasses.fields(TrainingOptions):
        kind = f.metadata["kind"]
        if kind is None or kind.minimum is None:
            continue
        below = kind.minimum if kind.exclusive_minimum else kind.minimum - 1
        with pytest.raises(SystemExit):
            _parse(["--" + f.name.replace("_", "-"), str(below)])
        with pytest.raises(ValueError, match=f.name):
            TrainingOptions.from_dict({f.name: below})


def test_bad_files_are_value_errors(tmp_path):
    path = tmp_path / "options.json"
    path.write_text("{eval_every: 3")
    with pytest.raises(ValueError, match="JSON"):
        TrainingOptions.load(str(path))
    path.write_text("[1]")
    with pytest.raises(ValueError, match="object"):
        TrainingOptions.load(str(path))


def test_training_reads_an_options_file_under_its_flags(tmp_path, capsys):
    import training
    options = TrainingOptions(data_dir=str(tmp_path / "no-data"), eval_every=50)
    path = str(tmp_path / "options.json")
    options.save(path)
    args = training.build_parser().parse_args(["--options-file", path, "--eval-every", "7",
                                               "--rnn-units", "32"])
    parsed, config_fields = training.options_and_config(args)
    assert parsed == options.replace(eval_every=7)
    assert config_fields == {"rnn_units": 32}
    # The run itself stops at the data the file names, in one line.
    assert training.main(["--options-file", path]) == 2
    assert "no-data" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"eval_every": 0}')
    assert training.main(["--options-file", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --options-file") and "eval_every" in err[0]


def test_a_missing_extrapolation_file_is_one_error_line_and_writes_nothing(small_data_dir,
                                                                          tmp_path, capsys):
    import training
    results = str(tmp_path / "run")
    for flags, message in ((["--final-evaluation", "--extrapolation-data", "none.tfrecords"],
                            "--extrapolation-data none.tfrecords: no such file"),
                           (["--extrapolation-data", "none.tfrecords"], "needs --final-evaluation")):
        assert training.main(["--data-dir", small_data_dir, "--results-dir", results]
                             + flags) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
        assert not os.path.exists(results)


def test_an_extrapolation_file_of_another_image_size_is_one_error_line(small_data_dir,
                                                                        tmp_path, capsys):
    import numpy as np
    import training
    from air.data import records
    three = str(tmp_path / "three.tfrecords")
    records.write_examples(three, [dict(
        image=np.zeros([40, 40], np.float32), labels=np.arange(3), indices=np.arange(3),
        positions=np.zeros([3, 2], np.int32), boxes=np.full([3, 2], 10, np.int32))])
    assert training.main(["--data-dir", small_data_dir, "--results-dir", str(tmp_path / "run"),
                          "--final-evaluation", "--extrapolation-data", three]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: %s holds 40x40 images but the model expects 50x50" % three]


def test_launcher_flags_and_commands(tmp_path):
    assert launcher.flags(images_per_digit=100, quiet=True, verbose=False, seed=None,
                          units=(3, 4)) == ["--images-per-digit", "100", "--quiet",
                                            "--units", "3", "4"]
    assert launcher.script_command("multi_mnist", "py", output_dir="o") == [
        "py", os.path.join(REPO, "multi_mnist.py"), "--output-dir", "o"]
    command = launcher.training_command(str(tmp_path / "o.json"))
    assert command == [sys.executable, os.path.join(REPO, "training.py"),
                       "--options-file", str(tmp_path / "o.json")]
    assert launcher.module_environment()["PYTHONPATH"].split(os.pathsep)[0] == REPO
    assert launcher.can_import(sys.executable, "json")
    assert not launcher.can_import(sys.executable, "no_such_module_here")
    assert not launcher.can_import(str(tmp_path / "no-python"), "json")
