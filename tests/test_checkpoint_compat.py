"""A checkpoint restores to the same test-mode outputs, in this process and across stacks.

With the environment variable AIR_OTHER_PYTHON naming the interpreter of the other
TensorFlow stack, ``test_checkpoint_restores_across_stacks`` saves with this interpreter and
checks with the other one, then the other way round (tests/support/checkpoint_roundtrip.py). Without
it that test is skipped and says so, or fails in CI (conftest.require); the in-process round
trip always runs.
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from support import checkpoint_roundtrip
from conftest import other_python

SCRIPT = os.path.abspath(checkpoint_roundtrip.__file__)
SUBPROCESS_TIMEOUT = 600  # seconds: TensorFlow's start-up alone can take a minute under load
# Differences between two TensorFlow builds are rounding (largest seen: ~9e-6 in the
# canvas between TF 1.15.5 and 2.21, 1.0e-5 in a window under heavy load); within one stack
# the outputs should not move at all.
CROSS_STACK_TOLERANCE = "3e-5"
SAME_STACK_TOLERANCE = "1e-6"


def run_script(python, *args):
    result = subprocess.run([python, SCRIPT] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True,
                            timeout=SUBPROCESS_TIMEOUT)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    """A folder written by ``save`` in this process (default configuration, seed 0)."""
    directory = str(tmp_path_factory.mktemp("roundtrip") / "saved")
    assert checkpoint_roundtrip.main(["save", directory]) == 0
    return directory


def test_round_trip_in_process(saved_dir, capsys):
    assert checkpoint_roundtrip.main(["check", saved_dir, "--tolerance", SAME_STACK_TOLERANCE]) == 0
    assert "ok: " in capsys.readouterr().out
    saved = np.load(os.path.join(saved_dir, "outputs.npz"))
    # The fixed images exercise stopping: some image finds objects, the all-ones image none.
    assert saved["digit_count"].max() > 0 and saved["digit_count"].min() == 0


def test_check_reports_a_changed_output(saved_dir, tmp_path, capsys):
    directory = str(tmp_path / "changed")
    shutil.copytree(saved_dir, directory)
    path = os.path.join(directory, "outputs.npz")
    saved = dict(np.load(path))
    saved["canvas"] = saved["canvas"] + 1e-3
    saved["digit_count"] = saved["digit_count"] + 1
    np.savez(path, **saved)
    assert checkpoint_roundtrip.main(["check", directory]) == 1
    err = capsys.readouterr().err
    assert "error: canvas: largest difference" in err
    assert "error: digit_count: differs" in err


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    assert checkpoint_roundtrip.main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: missing") and err.count("\n") == 1
    assert checkpoint_roundtrip.main(["save", str(tmp_path / "x"), "--model-dir",
                                      str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert checkpoint_roundtrip.main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        checkpoint_roundtrip.main(["--help"])
    assert exit_info.value.code == 0


def test_checkpoint_restores_across_stacks(tmp_path):
    other = other_python()
    pairs = [("this", sys.executable, "other", other),
             ("other", other, "this", sys.executable)]
    for saver_name, saver, checker_name, checker in pairs:
        directory = str(tmp_path / ("saved_by_" + saver_name))
        code, out, err = run_script(saver, "save", directory)
        assert code == 0, "save with %s failed:\n%s" % (saver, err)
        code, out, err = run_script(checker, "check", directory,
                                    "--tolerance", CROSS_STACK_TOLERANCE)
        assert code == 0, "%s could not restore the checkpoint saved by %s:\n%s%s" % (
            checker, saver, out, err)
        assert "ok: " in out
        # Two different TensorFlow builds, or the test proved nothing about crossing stacks.
        saved_by, checked_by = re.search(r"TensorFlow (\S+?)\, checked by .*TensorFlow (\S+?)\)",
                                         out).groups()
        assert saved_by != checked_by, out
        print(out.strip())
