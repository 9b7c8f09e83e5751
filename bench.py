"""Benchmarks of the project: prints a table and writes bench.json (`make bench`).

Each benchmark is a function registered under a name with ``@benchmark(name, description)``. It
receives the parsed command-line arguments and returns a list of ``Metric(name, value, unit)``.
To add one (training, evaluation or demo figures), define a function below and decorate it:

    @benchmark("training", "100 training iterations at the default configuration")
    def bench_training(args):
        ...
        return [Metric("iterations/s", rate, "1/s")]

Results are merged into the JSON file (``--output``): a run with ``--only NAME`` replaces that
benchmark's entry and keeps the others.

    python bench.py                      # all benchmarks
    python bench.py --only multi_mnist   # one of them
"""

import argparse
import collections
import datetime
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.abspath(__file__))

Metric = collections.namedtuple("Metric", ["name", "value", "unit"])
Benchmark = collections.namedtuple("Benchmark", ["name", "description", "function"])

BENCHMARKS = collections.OrderedDict()


def benchmark(name, description):
    """Decorator registering ``function(args) -> [Metric]`` as benchmark ``name``."""
    def register(function):
        if name in BENCHMARKS:
            raise ValueError("benchmark %r registered twice" % name)
        BENCHMARKS[name] = Benchmark(name, description, function)
        return function
    return register


class BenchmarkError(Exception):
    """A benchmark could not run (the message is one line)."""


def _child_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@benchmark("multi_mnist", "multi_mnist.py with default options (60,000 train + 1,000 test images), "
                          "as a fresh process, into a temporary folder")
def bench_multi_mnist(args):
    from air import mnist
    mnist_dir = args.mnist_dir
    try:
        mnist.load(mnist_dir)  # Verify (or download) first: the timing covers generation only.
    except mnist.MnistError as e:
        raise BenchmarkError(str(e))
    flags = ["--images-per-digit", "100", "--test-set-size", "30"] if args.quick else []
    output = tempfile.mkdtemp(prefix="bench-multi-mnist-")
    try:
        command = [sys.executable, os.path.join(REPO, "multi_mnist.py"), "--mnist-dir", mnist_dir,
                   "--output-dir", output] + flags
        cpu = _child_cpu_seconds()
        start = time.time()
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True)
        seconds = time.time() - start
        cpu = _child_cpu_seconds() - cpu
        if result.returncode != 0:
            raise BenchmarkError("multi_mnist.py failed: %s" % result.stderr.strip().splitlines()[-1])
        images = sum(int(n) for n in re.findall(r"wrote (\d+) records", result.stderr))
        size = sum(os.path.getsize(os.path.join(output, f)) for f in os.listdir(output))
    finally:
        shutil.rmtree(output, ignore_errors=True)
    return [Metric("wall time", seconds, "s"),
            Metric("images", images, ""),
            Metric("images/s", images / seconds, "1/s"),
            Metric("CPU time (all processes)", cpu, "s"),
            Metric("output size", size / 2.0 ** 20, "MiB")]


def machine_info():
    """A description of the machine and software, stored with the results."""
    info = collections.OrderedDict([
        ("platform", platform.platform()),
        ("python", platform.python_version()),
        ("cpus", os.cpu_count()),
        ("load average (1 min) at start", round(os.getloadavg()[0], 2)),
    ])
    try:  # The TensorFlow version without importing TensorFlow.
        import pkg_resources
        for name in ("tensorflow", "tensorflow-gpu"):
            try:
                info[name] = pkg_resources.get_distribution(name).version
            except pkg_resources.DistributionNotFound:
                pass
    except ImportError:
        pass
    return info


def format_value(value):
    if isinstance(value, int):
        return "{:,}".format(value)
    return "{:,.2f}".format(value) if abs(value) < 1000 else "{:,.0f}".format(value)


def format_table(results):
    """A plain-text table: benchmark, metric, value, unit (one row per metric)."""
    rows = [("benchmark", "metric", "value", "unit")]
    for name, entry in results.items():
        if "error" in entry:
            rows.append((name, "error", entry["error"], ""))
        for metric in entry.get("metrics", []):
            rows.append((name, metric["name"], format_value(metric["value"]), metric["unit"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) if i == 2 and k else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this benchmark (repeatable); see --list")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--output", default="bench.json", help="JSON file the results merge into")
    parser.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR") or "mnist_data/",
                        help="MNIST folder (the MNIST_DIR environment variable overrides the default)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, for checking that the benchmarks run (figures meaningless)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list:
        for item in BENCHMARKS.values():
            print("%-16s %s" % (item.name, item.description))
        return 0
    names = args.only or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        sys.stderr.write("error: unknown benchmark(s) %s; known: %s\n"
                         % (", ".join(unknown), ", ".join(BENCHMARKS)))
        return 2
    results = collections.OrderedDict()
    failed = False
    for name in names:
        item = BENCHMARKS[name]
        sys.stderr.write("bench: running %s ...\n" % name)
        start = time.time()
        entry = collections.OrderedDict([
            ("description", item.description),
            ("date", datetime.datetime.now().isoformat(timespec="seconds")),
            ("quick", args.quick),
        ])
        try:
            metrics = item.function(args)
            entry["metrics"] = [collections.OrderedDict(m._asdict()) for m in metrics]
        except BenchmarkError as e:
            entry["error"] = str(e)
            failed = True
        entry["seconds"] = round(time.time() - start, 2)
        results[name] = entry
    print(format_table(results))

    report = collections.OrderedDict([("machine", machine_info()), ("benchmarks", {})])
    if os.path.isfile(args.output):
        try:
            with open(args.output) as f:
                report["benchmarks"] = json.load(f).get("benchmarks", {})
        except (ValueError, OSError):
            pass  # An unreadable old file is replaced.
    for name, entry in results.items():
        entry["machine"] = report["machine"]
        report["benchmarks"][name] = entry
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    sys.stderr.write("bench: results written to %s\n" % args.output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
