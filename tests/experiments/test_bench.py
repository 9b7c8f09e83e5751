"""bench.py and air/experiments/benchmarks.py: the registry, the table, bench.json, quick runs of
the multi_mnist and iwae benchmarks, and the demo latency figures."""

import collections
import json
import os

import numpy as np
import pytest

import bench
from air.evaluation import model_folder
from air.experiments import benchmarks


@pytest.fixture
def registry(monkeypatch):
    """A registry holding one fake benchmark (the real ones stay untouched)."""
    fake = collections.OrderedDict()
    monkeypatch.setattr(benchmarks, "BENCHMARKS", fake)
    calls = []

    @benchmarks.benchmark("fake", "a fake benchmark")
    def run(args):
        calls.append(args)
        return [benchmarks.Metric("speed", 1234.5, "1/s"), benchmarks.Metric("count", 7, "")]

    return calls


def test_table_and_json_merge(registry, tmp_path, capsys):
    output = tmp_path / "bench.json"
    output.write_text(json.dumps({"benchmarks": {"older": {"metrics": []}}}))
    assert bench.main(["--only", "fake", "--output", str(output)]) == 0
    table = capsys.readouterr().out
    assert "fake" in table and "speed" in table and "1,234" in table and "1/s" in table
    report = json.loads(output.read_text())
    assert set(report["benchmarks"]) == {"older", "fake"}
    assert report["benchmarks"]["fake"]["metrics"][1] == {"name": "count", "value": 7, "unit": ""}
    assert report["machine"]["cpus"] == os.cpu_count()
    assert len(registry) == 1


def test_unknown_benchmark_is_an_error(registry, tmp_path, capsys):
    assert bench.main(["--only", "nope", "--output", str(tmp_path / "b.json")]) == 2
    assert "unknown benchmark(s) nope; known: fake" in capsys.readouterr().err


def test_duplicate_registration_is_refused(registry):
    with pytest.raises(ValueError, match="registered twice"):
        benchmarks.benchmark("fake", "again")(lambda args: [])


def test_multi_mnist_benchmark_quick(tmp_path, mnist_dir, capsys):
    assert "multi_mnist" in benchmarks.BENCHMARKS
    output = tmp_path / "bench.json"
    assert bench.main(["--only", "multi_mnist", "--quick", "--mnist-dir", mnist_dir,
                       "--output", str(output)]) == 0
    metrics = {m["name"]: m["value"]
               for m in json.loads(output.read_text())["benchmarks"]["multi_mnist"]["metrics"]}
    assert metrics["images"] == 330
    # The rate is the count over the measured wall time, not some other figure.
    assert metrics["images/s"] == pytest.approx(330 / metrics["wall time"], rel=1e-9)
    assert 0 < metrics["wall time"] < 600


def test_iwae_benchmark_quick(tmp_path, mnist_dir, capsys):
    """The `iwae` entry runs the shipped model/ over 1,000 held-out images (K = 5 when quick)."""
    output = tmp_path / "bench.json"
    assert bench.main(["--only", "iwae", "--quick", "--mnist-dir", mnist_dir,
                       "--output", str(output)]) == 0
    metrics = {m["name"]: m["value"]
               for m in json.loads(output.read_text())["benchmarks"]["iwae"]["metrics"]}
    assert metrics["images"] == 1000 and metrics["samples per image (K)"] == 5
    assert metrics["wall time"] > 0
    assert metrics["image-samples/s"] == pytest.approx(5000 / metrics["wall time"], rel=1e-6)
    assert -1000.0 < metrics["IWAE bound per image"] < 0.0


def test_training_step_benchmarks_of_every_estimator_quick(tmp_path, mnist_dir):
    output = tmp_path / "bench.json"
    names = ("training_step", "training_step_nvil", "training_step_vimco")
    assert bench.main([flag for name in names for flag in ("--only", name)]
                      + ["--quick", "--mnist-dir", mnist_dir, "--output", str(output)]) == 0
    results = json.loads(output.read_text())["benchmarks"]
    for name in names:
        metrics = {m["name"]: m["value"] for m in results[name]["metrics"]}
        assert metrics["iterations/s"] > 0
        assert metrics["iterations/s"] == pytest.approx(
            1000.0 / metrics["time per iteration, median"], rel=0.5)


def test_demo_latency_is_measured(small_results_dir, tmp_path):
    images = np.random.RandomState(0).rand(3, 50, 50).astype(np.float32)
    with model_folder.LoadedModel(os.path.join(small_results_dir, "model")) as model:
        median, p90 = benchmarks.demo_latency(model, images, repeats=5, warmup=2)
    assert 0.0 < median <= p90
    # bench.py's entry: without a model folder it measures an untrained default model.
    rows = benchmarks.benchmark_latency(str(tmp_path / "no_model"), repeats=5)
    assert [unit for _, _, unit in rows] == ["ms"] * 4
    (_, inference_median, _), (_, inference_p90, _), (_, whole_median, _), (_, whole_p90, _) = rows
    # Medians below their 90th percentiles, and a whole refresh never faster than inference
    # alone by more than the spread of the timings (it runs inference and draws panels too).
    assert 0.0 < inference_median <= inference_p90 < 10000.0
    assert 0.0 < whole_median <= whole_p90 < 10000.0
    assert whole_p90 >= inference_median
