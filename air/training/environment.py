"""Where each session of a training run ran: RESULTS_DIR/environment.json, a list with one entry
per session (the iteration it started from, the processor, the thread count, Python and
TensorFlow), appended as the session starts.

A seed fixes the model, the data and every draw, but the processor's kernels still decide how
floating-point sums round, and an AIR run's path depends on that: with the same seed, two
processor models give other losses within the first thousand iterations, while runs on the same
model agree for thousands of iterations. The file says which of the two a comparison of runs
is (sweep.py keeps it in a trial's record).
"""
import json
import os
import platform
import sys
import time

from air.training.run_folder import write_atomically

FILENAME = "environment.json"


def processor_name():
    """The processor's model name (/proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(iteration, threads):
    """The entry of the session that starts at ``iteration`` with ``threads`` (0: all)."""
    import tensorflow.compat.v1 as tf
    return {"iteration": int(iteration),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "processor": processor_name(), "logical_cpus": os.cpu_count(),
            "threads": int(threads), "platform": platform.platform(),
            "python": sys.version.split()[0], "tensorflow": tf.VERSION,
            "built_with_cuda": bool(tf.test.is_built_with_cuda()),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def read(results_dir):
    """The entries of a results folder ([] without the file, or with one that does not read
    as a list: the record is a description, never a reason to refuse a resume)."""
    try:
        with open(os.path.join(results_dir, FILENAME)) as f:
            entries = json.load(f)
    except (OSError, ValueError):
        return []
    return entries if isinstance(entries, list) else []


def record_session(results_dir, iteration, threads):
    """Appends this session's entry; the file is replaced whole (a full disk leaves the old)."""
    entries = read(results_dir) + [describe(iteration, threads)]

    def write(path):
        with open(path, "w") as f:
            f.write(json.dumps(entries, indent=2) + "\n")
    write_atomically(os.path.join(results_dir, FILENAME), write)
