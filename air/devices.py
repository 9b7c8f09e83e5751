"""The devices a TensorFlow session runs on: the one place sessions are configured (threads,
GPU memory, which GPUs), and the GPUs a sweep hands out to its trials.

TensorFlow 1.x takes (nearly) all the memory of every GPU it sees, per process, unless told
otherwise: two trials of a sweep on one GPU would then fail in the second. Sessions here grow
their GPU memory as they need it, up to a share of it if one is given
(``--gpu-memory-fraction``). Without a GPU these settings change nothing: the numbers stay
the CPU's.

No TensorFlow at import time; ``session_config`` imports it.
"""
import argparse
import os
import re
import subprocess

from air import cli

CPU = "cpu"


def session_config(threads=0, gpu_memory_fraction=None, device=None):
    """The ConfigProto of every session of the project.

    Args:
        threads: intra- and inter-op threads (0: TensorFlow's choice).
        gpu_memory_fraction: the largest share of each GPU's memory the process may take, in
            (0, 1]; None: no limit. Memory is taken as it is needed either way
            (``allow_growth``), so several processes can share a GPU.
        device: None (every GPU TensorFlow sees: those of CUDA_VISIBLE_DEVICES, if set),
            ``"cpu"`` (no GPU), or GPU indices "0" or "0,1" among those visible.
    """
    import tensorflow.compat.v1 as tf
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    config.gpu_options.allow_growth = True
    if gpu_memory_fraction is not None:
        config.gpu_options.per_process_gpu_memory_fraction = gpu_memory_fraction
    if device == CPU:
        config.device_count["GPU"] = 0
    elif device is not None:
        config.gpu_options.visible_device_list = device
    return config


def device_option(text):
    """The argparse type of --device: 'cpu', or GPU indices such as '0' or '0,1'."""
    text = text.strip().lower()
    if text == CPU:
        return CPU
    if not re.match(r"^\d+(,\d+)*$", text):
        raise argparse.ArgumentTypeError(
            "expected cpu or GPU indices such as 0 or 0,1, got %r" % text)
    return ",".join(str(int(i)) for i in text.split(","))


def add_options(parser):
    """Adds --device and --gpu-memory-fraction to an argparse parser or group."""
    parser.add_argument("--device", type=device_option, default=None,
                        help="cpu, or the GPUs to use as indices among those visible (0 or "
                             "0,1); default: every visible GPU (CUDA_VISIBLE_DEVICES selects "
                             "them), else the CPU")
    parser.add_argument("--gpu-memory-fraction", type=cli.number(0.0, 1.0, exclusive_minimum=True),
                        default=None, metavar="F",
                        help="take at most this share of each GPU's memory (it is taken as "
                             "needed either way, so processes can share a GPU; default: no "
                             "limit)")


def visible_gpus(environ=None, list_gpus=None):
    """The GPU ids this process may hand out: those of CUDA_VISIBLE_DEVICES when it is set
    (empty or -1: none), else one per GPU that ``nvidia-smi -L`` lists, else none."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        ids = [part.strip() for part in environ["CUDA_VISIBLE_DEVICES"].split(",")]
        # CUDA stops at the first invalid entry (-1 is the usual way of saying "none").
        valid = []
        for gpu in ids:
            if not gpu or gpu.startswith("-"):
                break
            valid.append(gpu)
        return valid
    listing = (list_gpus or _nvidia_smi_listing)()
    return [str(i) for i, _ in enumerate(line for line in listing.splitlines()
                                         if line.startswith("GPU "))]


def _nvidia_smi_listing():
    try:
        return subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def trial_environments(parallel, gpus):
    """The environment changes of the ``parallel`` local trial slots of a sweep: slot k sees
    GPU ``gpus[k % len(gpus)]`` alone (CUDA_VISIBLE_DEVICES), so up to len(gpus) trials get a
    GPU each and more share them evenly; without GPUs nothing changes."""
    if not gpus:
        return [{} for _ in range(parallel)]
    return [{"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]} for slot in range(parallel)]
