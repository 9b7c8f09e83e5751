"""Faults a long training run meets: a damaged checkpoint, a full disk, a save cut short by
SIGKILL. Each gives one ``error:`` line naming the file and loses nothing that was complete;
``--resume`` goes on from the newest checkpoint that reads completely.
"""
import contextlib
import csv
import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import charts
import demo
import embeddings
import evaluate
import export_model
import training
from conftest import REPO, TINY, latest_step, require
from air.experiments import sweep
from air.training import checkpoints, metrics_log, write_failures
from air.training.options import TrainingOptions

SUBPROCESS_TIMEOUT = 600
# Only the summaries the loop cannot do without: the runs here are about files, not curves.
NO_SUMMARIES = ["--scalars-every", "0", "--variables-every", "0", "--images-every", "0",
                "--gradients-every", "0"]


def run_flags(data_dir, results_dir):
    return (["--data-dir", data_dir, "--results-dir", results_dir, "--seed", "3",
             "--eval-batch-size", "90", "--eval-every", "2", "--save-every", "2",
             "--keep-checkpoints", "100", "--progress-seconds", "60"] + NO_SUMMARIES + TINY)


@pytest.fixture(scope="module")
def saved_run(small_data_dir, tmp_path_factory):
    """A finished 6-iteration run with checkpoints at 2, 4 and 6 and metrics rows at each."""
    results = str(tmp_path_factory.mktemp("faults") / "run")
    assert training.main(run_flags(small_data_dir, results) + ["--max-iterations", "6"]) == 0
    return results


def model_file(results, step, suffix):
    return os.path.join(results, "model", "model.ckpt-%d%s" % (step, suffix))


DATA = ".data-00000-of-00001"


def cut_data(length):
    def damage(results):
        path = model_file(results, 6, DATA)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(length if length >= 0 else size + length)
        return path, "is cut short"
    return damage


def empty_index(results):
    path = model_file(results, 6, ".index")
    open(path, "w").close()
    return path, "is empty"


def files_of_the_named_checkpoint_gone(results):
    for suffix in (DATA, ".index"):
        os.remove(model_file(results, 6, suffix))
    return "model.ckpt-6.index", "is missing"


DAMAGES = {
    "data cut to nothing": cut_data(0),
    "data cut to 100 bytes": cut_data(100),
    "data cut to half": cut_data(1100000),
    "data one byte short": cut_data(-1),
    "empty index": empty_index,
    "index names missing files": files_of_the_named_checkpoint_gone,
}


# One of each kind for the resumes, which train (the scripts see every damage).
RESUMED = ("data cut to half", "empty index", "index names missing files")


def damaged_copy(saved_run, tmp_path, damage):
    """A copy of saved_run whose newest checkpoint (6) is damaged: (results, file, problem)."""
    results = str(tmp_path / "run")
    shutil.copytree(saved_run, results)
    path, problem = DAMAGES[damage](results)
    return results, path, problem


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_every_script_that_reads_a_checkpoint_names_the_damaged_file(
        damage, saved_run, small_data_dir, tmp_path, capsys, monkeypatch):
    results, path, problem = damaged_copy(saved_run, tmp_path, damage)
    data = os.path.join(small_data_dir, "test.tfrecords")
    monkeypatch.setenv("DISPLAY", ":31999")  # demo.py must fail before it opens a window
    scripts = {
        "evaluate": (evaluate, ["--model-dir", results, "--data", data]),
        "export_model": (export_model, ["--results-dir", results,
                                        "--output", str(tmp_path / "exported")]),
        "embeddings": (embeddings, ["--model-dir", results, "--data", data,
                                    "--output-dir", str(tmp_path / "projector")]),
        "demo": (demo, ["--model-dir", results]),
        "charts": (charts, ["--results-dir", results, "--data", data,
                            "--output-dir", str(tmp_path / "charts")]),
    }
    for name, (script, argv) in scripts.items():
        assert script.main(argv) == 2, name
        line = one_error_line(capsys)
        assert path in line and problem in line, (name, line)
        # It also says which checkpoint there can still be used.
        assert ("the newest complete checkpoint there is %s" % model_file(results, 4, "")
                in line), (name, line)
    assert not os.path.exists(str(tmp_path / "exported" / "checkpoint"))


def metrics_iterations(results):
    return [int(row["iteration"]) for row in metrics_log.read_rows(
        os.path.join(results, metrics_log.FILENAME))]


@pytest.mark.parametrize("damage", RESUMED)
def test_resume_passes_over_the_damaged_checkpoint_and_trains_on(damage, saved_run,
                                                                 small_data_dir, tmp_path,
                                                                 capsys):
    results, path, problem = damaged_copy(saved_run, tmp_path, damage)
    assert training.main(run_flags(small_data_dir, results)
                         + ["--resume", "--max-iterations", "8"]) == 0
    out = capsys.readouterr().out
    fallback = model_file(results, 4, "")
    assert ("checkpoint %s is damaged: " % model_file(results, 6, "")) in out
    assert problem in out and ("resuming from %s, the newest complete one" % fallback) in out
    assert "resumed from %s" % fallback in out
    assert "finished 8 iterations" in out
    assert latest_step(results) == 8
    # metrics.csv agrees with the resumed step: the rows to 4 are kept as they were, the rest
    # (6, written after the checkpoint the resume came from) redone once.
    assert metrics_iterations(results) == [2, 4, 6, 8]
    before = metrics_log.read_rows(os.path.join(saved_run, metrics_log.FILENAME))
    after = metrics_log.read_rows(os.path.join(results, metrics_log.FILENAME))
    assert after[:2] == before[:2]
    assert after[2]["wall_time"] != before[2]["wall_time"]
    # The damaged checkpoint 6 was written again, whole.
    assert checkpoints.checkpoint_damage(model_file(results, 6, "")) is None


def test_resume_without_any_complete_checkpoint_is_one_error_line(saved_run, small_data_dir,
                                                                  tmp_path, capsys):
    results = str(tmp_path / "run")
    shutil.copytree(saved_run, results)
    for step in (2, 4, 6):
        open(model_file(results, step, DATA), "w").close()
    before = open(os.path.join(results, metrics_log.FILENAME)).read()
    assert training.main(run_flags(small_data_dir, results)
                         + ["--resume", "--max-iterations", "8"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: --resume: no complete checkpoint in %s" % os.path.join(
        results, "model")), line
    assert "model.ckpt-2: " in line and "is cut short" in line
    assert open(os.path.join(results, metrics_log.FILENAME)).read() == before


def test_a_sweep_keeps_a_trial_whose_newest_checkpoint_is_gone(saved_run, tmp_path):
    """Its folder holds work: the trial continues (its --resume falls back), never restarts."""
    trial_dir = str(tmp_path / "default" / "seed-1")
    shutil.copytree(saved_run, trial_dir)
    files_of_the_named_checkpoint_gone(trial_dir)
    trial = sweep.Trial(sweep.parse_variant("default"), 1, trial_dir)
    options = TrainingOptions(data_dir=str(tmp_path), max_iterations=100,
                              stop_at_accuracy=None, patience=3, eval_every=2, save_every=2,
                              threads=1)
    assert checkpoints.latest_checkpoint(os.path.join(trial_dir, "model")) is None
    assert sweep.trial_state(trial, options) == "partial"
    assert sweep.prepare_trial(trial, options, sys.executable) is not None
    assert os.path.isdir(os.path.join(trial_dir, "model"))
    assert TrainingOptions.load(os.path.join(trial_dir, sweep.OPTIONS_NAME)).resume


def test_a_sweep_repeats_the_error_line_of_a_trial_that_failed(tmp_path):
    trial = sweep.Trial(sweep.parse_variant("default"), 1, str(tmp_path))
    assert sweep.trial_error(trial) is None
    (tmp_path / sweep.LOG_NAME).write_text(
        "$ training.py\nit 1/8\nerror: --resume: no complete checkpoint in m (model.ckpt-2: "
        "m/model.ckpt-2.index is empty)\n\n$ training.py --resume\nerror: cannot write m: "
        "No space left on device; the newest complete checkpoint is m/model.ckpt-4\n")
    assert sweep.trial_error(trial) == ("error: cannot write m: No space left on device; the "
                                        "newest complete checkpoint is m/model.ckpt-4")


# --- A full disk ----------------------------------------------------------------------------

def pages(size, page=4096):
    return -(-size // page) * page


def folder_pages(folder):
    return sum(pages(os.path.getsize(os.path.join(root, name)))
               for root, _, names in os.walk(folder) for name in names)


@contextlib.contextmanager
def small_tmpfs(mount_point, size):
    """A tmpfs of ``size`` bytes mounted at ``mount_point`` for the block (root only)."""
    require(os.geteuid() == 0, "root, to mount a small tmpfs (the tests run as root in CI)")
    os.makedirs(mount_point)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs",
                             mount_point], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    require(result.returncode == 0, "mount -t tmpfs: %s" % result.stdout.strip())
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", mount_point], check=True)


def partial_files(root):
    return [os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names
            if ".tempstate" in name or ".tmp" in name or name.endswith(".partial")]


def test_a_full_disk_is_one_error_line_and_loses_nothing_complete(saved_run, small_data_dir,
                                                                   tmp_path, capsys):
    # Room for the source snapshot, the event file, two whole checkpoints and half a third.
    checkpoint = sum(pages(os.path.getsize(model_file(saved_run, 2, suffix)))
                     for suffix in (DATA, ".index"))
    size = (folder_pages(os.path.join(saved_run, "source"))
            + folder_pages(os.path.join(saved_run, "summary"))
            + 2 * checkpoint + pages(os.path.getsize(model_file(saved_run, 2, DATA))) // 2
            + 16 * 4096)
    with small_tmpfs(str(tmp_path / "disk"), size) as disk:
        results = os.path.join(disk, "run")
        code = training.main(run_flags(small_data_dir, results) + ["--max-iterations", "20"])
        line = one_error_line(capsys)
        assert code == 2
        assert line.startswith("error: cannot write %s" % os.path.join(results, "model")), line
        assert "No space left on device" in line
        newest = model_file(results, 4, "")
        assert ("the newest complete checkpoint is %s: free space" % newest in line
                and line.endswith("then continue with --resume")), line
        assert partial_files(results) == []
        for step in (2, 4):
            assert checkpoints.checkpoint_damage(model_file(results, step, "")) is None
        # Whole rows only, each as the run wrote it, at least to the newest checkpoint.
        with open(os.path.join(results, metrics_log.FILENAME), newline="") as f:
            rows = list(csv.reader(f))
        assert tuple(rows[0]) == metrics_log.COLUMNS
        assert all(len(row) == len(metrics_log.COLUMNS) for row in rows[1:]), rows
        assert [int(row[0]) for row in rows[1:]][:2] == [2, 4]
        assert [r[0] for r in rows] == [r[0] for r in csv.reader(
            open(os.path.join(saved_run, metrics_log.FILENAME), newline=""))][:len(rows)]
        moved = str(tmp_path / "freed")
        shutil.copytree(results, moved)
    # With room again, the same run goes on from the newest complete checkpoint.
    assert training.main(run_flags(small_data_dir, moved)
                         + ["--resume", "--max-iterations", "8"]) == 0
    out = capsys.readouterr().out
    assert "resumed from %s" % os.path.join(moved, "model", "model.ckpt-4") in out
    assert metrics_iterations(moved) == [2, 4, 6, 8]


def test_a_read_only_results_folder_is_one_error_line(saved_run, small_data_dir, tmp_path,
                                                      capsys):
    with small_tmpfs(str(tmp_path / "disk"), 64 * 1024 * 1024) as disk:
        results = os.path.join(disk, "run")
        shutil.copytree(saved_run, results)
        before = {name: open(os.path.join(results, name), "rb").read()
                  for name in (metrics_log.FILENAME, os.path.join("model", "config.json"))}
        subprocess.run(["mount", "-o", "remount,ro", disk], check=True)
        assert training.main(run_flags(small_data_dir, results)
                             + ["--resume", "--max-iterations", "8"]) == 2
        line = one_error_line(capsys)
        assert line.startswith("error: cannot write %s: %s" % (
            os.path.join(results, "model", "config.json"), os.strerror(errno.EROFS))), line
        assert "the newest complete checkpoint is %s" % model_file(results, 6, "") in line
        for name, content in before.items():
            assert open(os.path.join(results, name), "rb").read() == content


def test_a_metrics_row_that_does_not_fit_is_not_written_at_all(tmp_path):
    with small_tmpfs(str(tmp_path / "disk"), 64 * 1024) as disk:
        path = os.path.join(disk, metrics_log.FILENAME)
        writer = metrics_log.MetricsWriter(path, 0)
        heldout = {"count_accuracy_by_digits": {"0": 1.0, "1": 0.5, "2": 0.25},
                   "count_accuracy": 0.5, "discrete_elbo_final_prior": -150.0,
                   "overcount": 0.1, "undercount": 0.2}
        writer.write(1, time.time(), 0.1, [1.0] * 6, 0, heldout)
        # Fill the disk to within a few bytes of its end, then write rows until one fails.
        filler = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError):
            while True:
                os.write(filler, b"x" * 512)
        os.close(filler)
        with pytest.raises(OSError) as failure:
            for step in range(2, 1000):
                writer.write(step, time.time(), 0.1, [1.0] * 6, 0, heldout)
        writer.close()
        assert failure.value.errno == errno.ENOSPC and failure.value.filename == path
        assert write_failures.describe(failure.value) == "%s: %s" % (
            path, os.strerror(errno.ENOSPC))
        text = open(path, newline="").read()
        assert text.endswith("\r\n")
        rows = list(csv.reader(text.splitlines()))
        assert all(len(row) == len(metrics_log.COLUMNS) for row in rows)
        assert [int(r[0]) for r in rows[1:]] == list(range(1, len(rows)))


def test_failed_writes_are_recognised_from_each_source():
    assert write_failures.describe(OSError(errno.EROFS, os.strerror(errno.EROFS), "/r/x")) == (
        "/r/x: %s" % os.strerror(errno.EROFS))
    # TensorFlow's saver: the cause on a later line, under a temporary name.
    tf_message = ("Graph execution error:\n\n/r/model/model.ckpt-6.data-00000-of-00001"
                  ".tempstate7479066188243580175; No space left on device\n\t [[{{node save}}]]")
    assert write_failures.describe(RuntimeError(tf_message)) == (
        "/r/model/model.ckpt-6.data-00000-of-00001: No space left on device")
    assert write_failures.describe(shutil.Error([("a", "/r/source/b", "[Errno 28] No space "
                                                  "left on device: '/r/source/b'")])) == (
        "[Errno 28] No space left on device: '/r/source/b'")
    assert write_failures.describe(ValueError("bad value")) is None
    assert write_failures.describe(OSError(errno.ENOENT, "No such file", "/r/x")) is None


# --- A save cut short -----------------------------------------------------------------------

def named_step(model_dir):
    named = checkpoints.named_checkpoint(model_dir)
    return -1 if named is None else int(named.rsplit("-", 1)[1])


def caught_mid_save(model_dir):
    """True when the folder shows a save that did not finish: temporary files, or files of a
    checkpoint newer than the one the `checkpoint` index names."""
    if checkpoints.partial_save_files(model_dir):
        return True
    steps = [int(name.split("-", 1)[1].split(".")[0]) for name in os.listdir(model_dir)
             if name.startswith("model.ckpt-")]
    return max(steps) > named_step(model_dir)


def kill_during_a_save(data_dir, results, resume, log_path):
    """Starts training.py saving at every iteration; SIGKILLs it the moment a save's temporary
    file appears (after a first save is complete). Returns its log."""
    flags = run_flags(data_dir, results)
    flags[flags.index("--save-every") + 1] = "1"
    model_dir = os.path.join(results, "model")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "training.py"] + flags + ["--max-iterations", "1000000"]
            + (["--resume"] if resume else []), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + SUBPROCESS_TIMEOUT
        start_named = named_step(model_dir) if resume else -1
        while True:
            assert process.poll() is None, "training stopped:\n" + open(log_path).read()
            assert time.time() < deadline, "no save seen in %d s" % SUBPROCESS_TIMEOUT
            if (checkpoints.partial_save_files(model_dir)
                    and named_step(model_dir) > start_named):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
    return open(log_path).read()


def test_sigkill_during_a_save_then_resume_trains_on(small_data_dir, tmp_path, capsys):
    results = str(tmp_path / "run")
    model_dir = os.path.join(results, "model")
    caught = False
    for attempt in range(5):  # The kill can land just after a save has finished: try again.
        kill_during_a_save(small_data_dir, results, attempt > 0, str(tmp_path / "log.txt"))
        if caught_mid_save(model_dir):
            caught = True
            break
    assert caught, "no kill landed during a save in 5 attempts"
    complete, _ = checkpoints.newest_complete_checkpoint(model_dir)
    resumed = checkpoints.checkpoint_step(complete)
    left = checkpoints.partial_save_files(model_dir)
    target = resumed + 3
    assert training.main(run_flags(small_data_dir, results)
                         + ["--resume", "--max-iterations", str(target)]) == 0
    out = capsys.readouterr().out
    for path in left:
        assert "removed %s, left by a save that did not finish" % path in out
    assert "resumed from %s" % complete in out and "finished %d iterations" % target in out
    assert checkpoints.partial_save_files(model_dir) == []
    assert latest_step(results) == target
    # The rows written after the checkpoint the resume came from are redone, once each.
    expected = sorted(set(range(2, target + 1, 2)) | {target})
    assert metrics_iterations(results) == expected
