"""Every script rejects bad values of every numeric option, and other bad input, the same way:
exactly one line ``error: ...`` on stderr naming the option, exit status 2, nothing written.

The numeric options are read from the scripts' own parsers, so an option added later is swept
too; it must use air/cli.py's ``integer`` or ``number`` type, whose bounds give the values just
out of range. The model flags of training.py are AIRConfig's fields: their ranges are the
config's, so their out-of-range values are listed here.
"""
import argparse
import importlib
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = ("training", "evaluate", "demo", "embeddings", "charts", "bench", "multi_mnist",
           "export_model", "sweep", "run_original")
# Arguments a script needs before it gets to look at the swept option.
REQUIRED = {"charts": ["--results-dir", "no_such_run"]}
NOT_NUMBERS = ("abc", "", "nan", "inf", "-inf", "1e999", "0x10")
NOT_INTEGERS = ("2.5", "1e3")
# training.py's model flags whose values AIRConfig rejects beyond the non-numbers above.
CONFIG_OUT_OF_RANGE = {
    "--canvas-height": ("0", "-1"), "--canvas-width": ("0",), "--max-steps": ("0", "-3"),
    "--window-size": ("0",), "--rnn-units": ("0", "-8"), "--vae-latent": ("0",),
    "--z-where-hidden-units": ("0",), "--z-pres-hidden-units": ("0",), "--batch-size": ("0",),
    "--z-pres-prior-odds-decay-steps": ("0",), "--concrete-temperature": ("0", "-1"),
    "--learning-rate": ("0", "-1e-4"), "--gradient-clip-norm": ("0",),
    "--z-pres-prior-odds-initial": ("0",), "--z-pres-prior-odds-floor": ("-1",),
    "--z-pres-prior-odds-decay": ("0",), "--scale-prior-variance": ("0", "-0.05"),
    "--shift-prior-variance": ("0",), "--z-what-prior-variance": ("-1",),
    "--stopping-threshold": ("0", "1.5"), "--likelihood-epsilon": ("-1e-6", "0.5"),
    "--z-pres-prior-odds-epsilon": ("-1", "0.5"), "--vae-likelihood-std": ("-0.3",),
    "--z-pres-log-odds-bound": ("-1",),
    "--vae-recognition-units": ("0", "-5"), "--vae-generative-units": ("0",),
    "--cnn-filters": ("0",),
    "--scale-prior-anneal-steps": ("-1",), "--scale-prior-anneal-start": ("-1",),
    "--learning-rate-decay": ("0", "-0.5"), "--learning-rate-decay-steps": ("0",),
    "--learning-rate-decay-start": ("-1",),
}


def numeric_actions(script):
    """The argparse actions of a script's numeric options (those typed by air.cli)."""
    parser = importlib.import_module(script).build_parser()
    found = []
    for action in parser._actions:
        if action.type in (int, float):
            raise AssertionError("%s %s uses a bare %s: use cli.integer or cli.number" % (
                script, action.option_strings[0], action.type.__name__))
        if getattr(action.type, "__name__", None) in ("integer", "number"):
            found.append(action)
    return found


def out_of_range(action):
    """The values just outside an option's bounds."""
    kind, low, high = action.type.__name__, action.type.minimum, action.type.maximum
    values = []
    if low is not None:
        values.append(str(low) if action.type.exclusive_minimum else
                      str(low - 1 if kind == "integer" else low - 0.5))
    if high is not None:
        values.append(str(high + 1 if kind == "integer" else high + 0.5))
    return values


def sweep_cases():
    """(script, argv, option) for every bad value of every numeric option of every script."""
    cases = []
    for script in SCRIPTS:
        for action in numeric_actions(script):
            flag = action.option_strings[-1]
            values = list(NOT_NUMBERS) + out_of_range(action)
            if action.type.__name__ == "integer":
                values += NOT_INTEGERS
            if script == "training":
                values += CONFIG_OUT_OF_RANGE.get(flag, ())
            for value in values:
                if action.nargs == 2:  # MIN MAX: a bad value in either place
                    arguments = [[flag, value, "1"], [flag, "1", value]]
                else:
                    arguments = [["%s=%s" % (flag, value)]]
                for argv in arguments:
                    cases.append(pytest.param(script, REQUIRED.get(script, []) + argv, flag,
                                              id="%s %s" % (script, " ".join(argv))))
    return cases


def run_in(folder, script, argv, capsys):
    """Runs a script's main in ``folder``; returns (status, stdout, stderr lines)."""
    cwd = os.getcwd()
    os.chdir(str(folder))
    try:
        status = importlib.import_module(script).main(argv)
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    return status, out, err.strip("\n").splitlines()


def test_every_script_has_numeric_options_to_sweep():
    counted = {script: len(numeric_actions(script)) for script in SCRIPTS}
    # bench.py and export_model.py take no numbers; the others must all be found.
    assert counted["training"] >= 40 and counted["multi_mnist"] == 15, counted
    assert counted["demo"] == 4 and counted["embeddings"] == 3 and counted["charts"] == 2
    assert counted["evaluate"] == 5 and counted["sweep"] == 10 and counted["run_original"] == 5
    assert len(CONFIG_OUT_OF_RANGE) > 20


@pytest.mark.parametrize("script, argv, option", sweep_cases())
def test_bad_numeric_value_is_one_error_line(script, argv, option, tmp_path, capsys):
    status, out, err = run_in(tmp_path, script, argv, capsys)
    assert status == 2, (status, out, err)
    assert len(err) == 1 and err[0].startswith("error: ") and option in err[0], err
    assert out == ""
    assert os.listdir(str(tmp_path)) == []  # nothing written


OTHER_BAD_INPUT = [
    # (script, argv, fragment of the error, files made before the run)
    ("evaluate", ["--json", "out"], "is a folder", ["out/"]),
    ("evaluate", ["--model-dir", "none"], "does not exist", []),
    ("export_model", ["--output", "out"], "is a file", ["out"]),
    ("export_model", ["--checkpoint", "none/model.ckpt-3"], "no such checkpoint", []),
    ("export_model", ["--results-dir", "none"], "does not exist", []),
    ("bench", ["--only", "nope"], "unknown benchmark", []),
    ("bench", ["--output", "missing/bench.json"], "folder does not exist", []),
    ("bench", ["--output", "out"], "is a folder", ["out/"]),
    ("charts", ["--results-dir", "run", "--output-dir", "out"], "is a file", ["run/", "out"]),
    ("charts", ["--results-dir", "none"], "does not exist", []),
    ("embeddings", ["--output-dir", "out"], "is a file", ["out"]),
    ("embeddings", ["--model-dir", "none"], "does not exist", []),
    ("multi_mnist", ["--background", "none.png"], "--background", []),
    ("multi_mnist", ["--no-such-option"], "unrecognized arguments", []),
    ("training", ["--results-dir", "out"], "is a file", ["out"]),
    ("training", ["--preset", "nope"], "--preset", []),
    ("training", ["--resume"], "train.tfrecords", []),
    ("demo", ["--screenshot", "out"], "is a folder", ["out/"]),
    ("demo", ["--exit-after-screenshot"], "--screenshot", []),
]


@pytest.mark.parametrize("script, argv, fragment, made", OTHER_BAD_INPUT,
                         ids=["%s %s" % (c[0], " ".join(c[1])) for c in OTHER_BAD_INPUT])
def test_other_bad_input_is_one_error_line(script, argv, fragment, made, tmp_path, capsys,
                                           monkeypatch):
    monkeypatch.setenv("DISPLAY", ":31999")  # demo.py's options are checked before the display
    for name in made:
        if name.endswith("/"):
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text("not a folder")
    before = sorted(os.listdir(str(tmp_path)))
    status, out, err = run_in(tmp_path, script, argv, capsys)
    assert status == 2, (status, out, err)
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert sorted(os.listdir(str(tmp_path))) == before
    for name in made:
        if name.endswith("/"):
            assert os.listdir(str(tmp_path / name)) == []


# ----------------------------------------------------------------------------------------------
# The real processes: TensorFlow's log lines stay out of the terminal unless --verbose.

def run_script(script, *args):
    """Runs a script as its own process without TF_CPP_MIN_LOG_LEVEL; returns the result."""
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, os.path.join(REPO, script + ".py")] + list(args),
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)


@pytest.fixture(scope="module")
def garbage_records(tmp_path_factory):
    """A .tfrecords file that is not one: evaluate.py fails on it after importing TensorFlow."""
    path = tmp_path_factory.mktemp("garbage") / "garbage.tfrecords"
    path.write_bytes(b"\x00" * 40 + os.urandom(300))
    return str(path)


def test_error_after_tensorflow_started_is_still_one_line(garbage_records):
    result = run_script("evaluate", "--model-dir", os.path.join(REPO, "model"),
                        "--data", garbage_records)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: %s" % garbage_records), lines
    assert result.stdout == ""


def test_verbose_shows_tensorflow_logs(garbage_records):
    result = run_script("evaluate", "--model-dir", os.path.join(REPO, "model"),
                        "--data", garbage_records, "--verbose")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: %s" % garbage_records), lines
    # TensorFlow's own lines come first: its deprecation warning of graph mode (both stacks).
    assert any("tensorflow" in line.lower() for line in lines[:-1]), lines


def test_help_says_every_default_worth_saying():
    # A default other than None (none) or False (an off switch) is in the option's help, either
    # as argparse's "(default: ...)" or in the help's own words ("default: ...").
    for script in SCRIPTS:
        parser = importlib.import_module(script).build_parser()
        formatter = parser.formatter_class(prog=script)
        for action in parser._actions:
            if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
                continue
            assert "default:" in formatter._get_help_string(action), (
                script, action.option_strings[0])


def test_help_of_every_script_mentions_verbose():
    for script in SCRIPTS:
        result = run_script(script, "--help")
        assert result.returncode == 0, (script, result.stderr)
        assert "--verbose" in result.stdout, script
        assert result.stderr == "", (script, result.stderr)
        # Defaults worth reading only: no "(default: None)", none said twice for one option.
        text = " ".join(result.stdout.split())
        assert "(default: None)" not in text, script
        for option in re.split(r"\s(?=--[a-z])", text):
            assert option.count("(default:") <= 1, (script, option)
