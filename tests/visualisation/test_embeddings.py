"""Tests of embeddings.py: window-to-digit matching against a naive loop, the sprite, PCA
against the covariance eigenvectors, and the projector folder as a real TensorBoard serves it."""
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import embeddings
from air.visualisation import projector
from air.data import records
from conftest import require

# ----------------------------------------------------------------------------------------------
# Pure functions.


def naive_match(boxes, live, positions, sizes, labels, counts, height, width, max_distance):
    """match_windows written as plain loops over images, steps and digits."""
    kept = []
    for i in range(len(boxes)):
        for t in range(len(boxes[i])):
            if not live[i][t] > 0.5 or counts[i] == 0:
                continue
            x = (boxes[i][t][0] + boxes[i][t][2] / 2.0) / width
            y = (boxes[i][t][1] + boxes[i][t][3] / 2.0) / height
            best, best_distance = None, None
            for d in range(counts[i]):
                dx = x - (positions[i][d][0] + sizes[i][d][0] / 2.0) / width
                dy = y - (positions[i][d][1] + sizes[i][d][1] / 2.0) / height
                distance = math.sqrt(dx * dx + dy * dy)
                if best is None or distance < best_distance:
                    best, best_distance = d, distance
            if best_distance <= max_distance:
                kept.append((i, t, int(labels[i][best])))
    return kept


def test_match_windows_hand_made_cases():
    # Image 0: digits 7 at centre (14, 14) and 3 at centre (34, 30); image 1: no digits.
    positions = np.array([[[0, 0], [20, 16]], [[-1, -1], [-1, -1]]])
    sizes = np.array([[[28, 28], [28, 28]], [[-1, -1], [-1, -1]]])
    labels = np.array([[7, 3], [-1, -1]])
    counts = np.array([2, 0])
    boxes = np.array([
        [[4, 4, 20, 20],     # centre (14, 14): exactly digit 7
         [25, 21, 18, 18],   # centre (34, 30): exactly digit 3
         [20, 20, 10, 10]],  # centre (25, 25): 0.27 from 7, 0.20 from 3 (in canvas sides)
        [[0, 0, 50, 50], [0, 0, 10, 10], [5, 5, 5, 5]]], np.float32)
    live = np.array([[1, 1, 1], [1, 1, 1]], np.float32)
    kept = projector.match_windows(boxes, live, positions, sizes, labels, counts, 50, 50, 0.2)
    assert kept == [(0, 0, 7), (0, 1, 3)]  # step 3 is 0.2002 from digit 3: just too far
    kept = projector.match_windows(boxes, live, positions, sizes, labels, counts, 50, 50, 0.21)
    assert kept == [(0, 0, 7), (0, 1, 3), (0, 2, 3)]
    live[0, 1] = 0  # A stopped step is never kept.
    kept = projector.match_windows(boxes, live, positions, sizes, labels, counts, 50, 50, 0.21)
    assert kept == [(0, 0, 7), (0, 2, 3)]


def test_match_windows_agrees_with_naive_loops():
    rng = np.random.RandomState(3)
    n, steps, most, height, width = 40, 3, 3, 50, 60
    counts = rng.randint(0, most + 1, size=n)
    positions = np.full([n, most, 2], -1)
    sizes = np.full([n, most, 2], -1)
    labels = np.full([n, most], -1)
    for i, count in enumerate(counts):
        positions[i, :count] = rng.randint(0, 30, size=[count, 2])
        sizes[i, :count] = rng.randint(10, 28, size=[count, 2])
        labels[i, :count] = rng.randint(0, 10, size=count)
    boxes = rng.uniform(0, 40, size=[n, steps, 4]).astype(np.float32)
    live = (rng.rand(n, steps) > 0.3).astype(np.float32)
    for max_distance in (0.05, 0.2, 2.0):
        expected = naive_match(boxes, live, positions, sizes, labels, counts, height, width,
                               max_distance)
        assert projector.match_windows(boxes, live, positions, sizes, labels, counts, height,
                                        width, max_distance) == expected
    every_live = naive_match(boxes, live, positions, sizes, labels, counts, height, width, 2.0)
    assert len(every_live) == int(sum(live[i].sum() for i in range(n) if counts[i] > 0))


def test_sprite_tiles_row_major():
    windows = np.stack([np.full([4, 4], (i + 1) / 10.0, np.float32) for i in range(5)])
    sprite = np.asarray(projector.sprite_image(windows))
    assert sprite.shape == (12, 12)  # 5 tiles need a 3x3 grid
    for i in range(9):
        row, column = divmod(i, 3)
        tile = sprite[row * 4:(row + 1) * 4, column * 4:(column + 1) * 4]
        expected = int((i + 1) / 10.0 * 255 + 0.5) if i < 5 else 0
        assert np.all(tile == expected)


def test_principal_components_match_covariance_eigenvectors():
    rng = np.random.RandomState(5)
    points = rng.randn(200, 6).dot(rng.randn(6, 6)) + 3.0
    projected = projector.principal_components(points, 2)
    values, vectors = np.linalg.eigh(np.cov(points, rowvar=False))
    top = vectors[:, np.argsort(values)[::-1][:2]]
    expected = (points - points.mean(axis=0)).dot(top)
    for k in range(2):  # An axis's sign is arbitrary.
        sign = np.sign(np.dot(projected[:, k], expected[:, k]))
        np.testing.assert_allclose(projected[:, k], sign * expected[:, k], atol=1e-8)
    # Variances in decreasing order, equal to the top eigenvalues.
    np.testing.assert_allclose(projected.var(axis=0, ddof=1), np.sort(values)[::-1][:2])
    # One point: no axis has variance; the columns are zeros, not an error.
    assert projector.principal_components(points[:1], 2).shape == (1, 2)


def test_projector_config_parses_as_the_plugin_proto():
    try:
        from tensorboard.plugins.projector import projector_config_pb2 as pb2
    except ImportError as error:
        require(False, "tensorboard's projector plugin in %s (%s)" % (sys.executable, error))
    from google.protobuf import text_format
    config = text_format.Parse(projector.projector_config_text("z_what", "m.tsv", "s.png", 28),
                               pb2.ProjectorConfig())
    assert config.embeddings[0].tensor_name == "z_what"
    assert config.embeddings[0].metadata_path == "m.tsv"
    assert config.embeddings[0].sprite.image_path == "s.png"
    assert list(config.embeddings[0].sprite.single_image_dim) == [28, 28]
    assert not config.model_checkpoint_path


# ----------------------------------------------------------------------------------------------
# The whole script on a checkpoint.


def attentive_copy(model_dir, destination):
    """Copies a model folder with the z_pres network fixed to "always an object" (log-odds +10).

    A barely trained model attends to almost nothing; this copy makes every step live, so the
    number of projector rows is known in advance (3 per image with digits).
    """
    import tensorflow.compat.v1 as tf
    os.makedirs(destination)
    shutil.copy(os.path.join(model_dir, "config.json"), destination)
    checkpoint = tf.train.latest_checkpoint(model_dir)
    reader = tf.train.load_checkpoint(checkpoint)
    with tf.Graph().as_default():
        variables = []
        for name, _ in tf.train.list_variables(checkpoint):
            value = reader.get_tensor(name)
            if name == "air/z_pres/output/weights":
                value = np.zeros_like(value)
            elif name == "air/z_pres/output/biases":
                value = np.full_like(value, 10.0)
            variables.append(tf.Variable(value, name=name))
        saver = tf.train.Saver(variables)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            saver.save(session, os.path.join(destination, os.path.basename(checkpoint)))
    return destination


@pytest.fixture(scope="module")
def projector_run(small_results_dir, small_data_dir, tmp_path_factory):
    """(model folder, record file, output folder, printed text) of one embeddings.py run."""
    base = tmp_path_factory.mktemp("embeddings")
    model_dir = attentive_copy(os.path.join(small_results_dir, "model"), str(base / "model"))
    data = os.path.join(small_data_dir, "test.tfrecords")
    output = str(base / "projector")
    argv = ["--model-dir", model_dir, "--data", data, "--num-images", "60",
            "--output-dir", output, "--max-distance", "2.0"]
    assert embeddings.main(argv) == 0
    # A second run into the same folder replaces the first (no stale checkpoints left).
    assert embeddings.main(argv) == 0
    return model_dir, data, output


def test_rows_metadata_and_sprite_agree(projector_run):
    import tensorflow.compat.v1 as tf
    from PIL import Image
    model_dir, data, output = projector_run
    checkpoint = tf.train.latest_checkpoint(output)
    assert os.path.basename(checkpoint) == projector.CHECKPOINT_NAME
    values = tf.train.load_checkpoint(checkpoint).get_tensor(projector.TENSOR_NAME)
    with open(os.path.join(output, projector.METADATA_NAME)) as f:
        lines = f.read().splitlines()
    assert lines[0] == "label\tdigits\tstep"
    rows = [list(map(int, line.split("\t"))) for line in lines[1:]]
    digits = records.read_records(data).digits[:60]
    # Every step is live and 2.0 exceeds any distance on the canvas: 3 rows per image with digits.
    assert values.shape == (3 * int(np.sum(digits > 0)), 50)
    assert len(rows) == values.shape[0]
    with Image.open(os.path.join(output, projector.SPRITE_NAME)) as sprite:
        per_row = int(math.ceil(math.sqrt(len(rows))))
        assert sprite.size == (per_row * 28, per_row * 28)
        tiles = np.asarray(sprite).reshape(per_row, 28, per_row, 28).transpose(0, 2, 1, 3)
        tiles = tiles.reshape(-1, 28, 28)
    assert not tiles[len(rows):].any()  # the grid beyond the last point is empty
    # Rows in image order, steps 1..3, labels those of the image's digits.
    expected_digits = [int(d) for d in digits if d > 0 for _ in range(3)]
    assert [r[1] for r in rows] == expected_digits
    assert [r[2] for r in rows] == [1, 2, 3] * (len(rows) // 3)
    assert all(0 <= r[0] <= 9 for r in rows)

    # The stored points and tiles are the model's z_what means and windows, in that order.
    from air.evaluation.model_folder import LoadedModel
    images = records.read_records(data).images[:60]
    with LoadedModel(model_dir) as model:
        result = model.predict(images)
    with_digits = np.flatnonzero(digits > 0)
    np.testing.assert_allclose(values, result["z_what_mean"][with_digits].reshape(-1, 50),
                               rtol=1e-4, atol=1e-4)
    windows = result["windows"][with_digits].reshape(-1, 28, 28)
    expected_tiles = (np.clip(windows, 0, 1) * 255 + 0.5).astype(np.int64)
    assert np.abs(tiles[:len(rows)].astype(np.int64) - expected_tiles).max() <= 1


def test_projector_config_names_existing_files(projector_run):
    _, _, output = projector_run
    with open(os.path.join(output, projector.PROJECTOR_CONFIG_NAME)) as f:
        text = f.read()
    names = [value for key, value in (line.strip().split(": ", 1) for line in text.splitlines()
                                      if ": " in line) if key.endswith("_path")]
    assert sorted(json.loads(n) for n in names) == ["metadata.tsv", "sprite.png"]
    for name in names:
        assert os.path.isfile(os.path.join(output, json.loads(name)))
    with open(os.path.join(output, "checkpoint")) as f:
        assert '"embeddings.ckpt"' in f.read()  # relative: the folder can move
    from PIL import Image
    with Image.open(os.path.join(output, projector.PCA_NAME)) as pca:
        assert pca.size == (700, 600)  # figsize 7 x 6 inches at 100 dpi
        assert pca.convert("L").getextrema()[0] < 100  # axes, labels and points drawn


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit:
        embeddings.main(["--help"])
    assert exit.value.code == 0
    assert "--max-distance" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path, capsys, projector_run, small_results_dir):
    model_dir, data, _ = projector_run
    out = str(tmp_path / "out")
    assert embeddings.main(["--model-dir", str(tmp_path / "none"), "--data", data,
                            "--output-dir", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model folder") and err.count("\n") == 1
    assert embeddings.main(["--model-dir", model_dir, "--data", str(tmp_path / "none.tfrecords"),
                            "--output-dir", out]) == 2
    assert "record file" in capsys.readouterr().err
    # Windows never exactly on a digit's centre: nothing matches a zero-width tolerance.
    assert embeddings.main(["--model-dir", model_dir, "--data", data, "--num-images", "5",
                            "--output-dir", out, "--max-distance", "1e-9"]) == 2
    err = capsys.readouterr().err
    assert "--max-distance" in err and err.count("\n") == 1
    assert not os.path.exists(out)
    assert embeddings.main(["--model-dir", model_dir, "--max-distance", "0"]) == 2


# ----------------------------------------------------------------------------------------------
# A real TensorBoard serving the folder.


def _tensorboard_binary():
    beside = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    return beside if os.path.isfile(beside) else shutil.which("tensorboard")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def test_tensorboard_projector_lists_the_run(projector_run, tmp_path):
    binary = _tensorboard_binary()
    require(binary is not None, "a tensorboard binary beside %s or on PATH" % sys.executable)
    _, _, output = projector_run
    port = _free_port()
    base = "http://127.0.0.1:%d/data/plugin/projector" % port
    log = open(str(tmp_path / "tensorboard.log"), "w")
    server = subprocess.Popen([binary, "--logdir", output, "--host", "127.0.0.1",
                               "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        runs, deadline = None, time.time() + 180
        while time.time() < deadline and server.poll() is None:
            try:
                runs = json.loads(_get(base + "/runs").decode())
                if runs:
                    break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
        log.flush()
        assert runs == ["."], "runs %r; log: %s" % (runs, open(log.name).read()[-2000:])
        info = json.loads(_get(base + "/info?run=.").decode())
        (embedding,) = info["embeddings"]
        rows = len(open(os.path.join(output, projector.METADATA_NAME)).read().splitlines()) - 1
        assert embedding["tensorName"] == "z_what"
        assert [int(v) for v in embedding["tensorShape"]] == [rows, 50]
        assert embedding["metadataPath"] == "metadata.tsv"
        assert embedding["sprite"]["imagePath"] == "sprite.png"
        tensor = _get(base + "/tensor?run=.&name=z_what")
        assert len(tensor) == rows * 50 * 4  # float32, row-major
        metadata = _get(base + "/metadata?run=.&name=z_what").decode().splitlines()
        assert len(metadata) == rows + 1
        sprite = _get(base + "/sprite_image?run=.&name=z_what")
        assert sprite.startswith(b"\x89PNG")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=60)
        log.close()
