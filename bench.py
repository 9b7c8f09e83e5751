"""Benchmarks of the project: prints a table and writes bench.json (`make bench`).

The benchmarks are registered in air/experiments/benchmarks.py (``@benchmark(name, description)``). Results
are merged into the JSON file (``--output``): a run with ``--only NAME`` replaces that
benchmark's entry and keeps the others.

    python bench.py                      # all benchmarks
    python bench.py --only multi_mnist   # one of them
"""

import argparse
import collections
import datetime
import json
import os
import sys
import time

from air import cli
from air.experiments import benchmarks

def build_parser():
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this benchmark (repeatable); see --list")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--output", default="bench.json", help="JSON file the results merge into")
    parser.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR") or "mnist_data/",
                        help="MNIST folder (default: $MNIST_DIR if set, else mnist_data/)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, for checking that the benchmarks run (figures meaningless)")
    return parser


def run(args):
    """Runs the chosen benchmarks, prints the table and merges bench.json; returns the status."""
    if args.list:
        for item in benchmarks.BENCHMARKS.values():
            print("%-16s %s" % (item.name, item.description))
        return 0
    names = args.only or list(benchmarks.BENCHMARKS)
    unknown = [name for name in names if name not in benchmarks.BENCHMARKS]
    if unknown:
        raise cli.UserError("unknown benchmark(s) %s; known: %s"
                            % (", ".join(unknown), ", ".join(benchmarks.BENCHMARKS)))
    # Checked before the benchmarks run: minutes of measurements should not end in a traceback.
    if os.path.isdir(args.output):
        raise cli.UserError("--output %s is a folder: give a file name" % args.output)
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        raise cli.UserError("cannot write %s: its folder does not exist" % args.output)
    results = collections.OrderedDict()
    failed = False
    for name in names:
        item = benchmarks.BENCHMARKS[name]
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
        except benchmarks.BenchmarkError as e:
            entry["error"] = str(e)
            failed = True
        entry["seconds"] = round(time.time() - start, 2)
        results[name] = entry
    print(benchmarks.format_table(results))

    report = collections.OrderedDict([("machine", benchmarks.machine_info()), ("benchmarks", {})])
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


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
