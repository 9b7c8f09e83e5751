"""multi_mnist.py on real MNIST, small sizes: contents, splits, determinism and errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

import multi_mnist
from air.data import generator as gen
from air.data import records


def generate(tmp_path, mnist_dir, *flags, name="out"):
    """Runs multi_mnist.main with small sizes; returns the output folder."""
    out = str(tmp_path / name)
    argv = ["--mnist-dir", mnist_dir, "--output-dir", out, "--images-per-digit", "60",
            "--test-set-size", "60", "--quiet", "--mnist-mirror", "http://127.0.0.1:9/",
            "--workers", "1"]
    assert multi_mnist.main(argv + list(flags)) == 0
    return out


def file_bytes(folder):
    return [open(os.path.join(folder, name), "rb").read() for name in ("train.tfrecords",
                                                                        "test.tfrecords")]


def mnist_crop(image):
    """The MNIST digit cropped to its non-empty bounding box, as float32 in [0, 1]."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32) / np.float32(255)


def expected_image(data, i, images, shape):
    """Sum of the record's MNIST crops pasted at its stored positions (naive re-implementation)."""
    canvas = np.zeros(shape, np.float32)
    for k in range(data.digits[i]):
        x, y = data.positions[i, k]
        w, h = data.boxes[i, k]
        crop = mnist_crop(images[data.indices[i, k]])
        assert crop.shape == (h, w)
        canvas[y:y + h, x:x + w] += crop
    return canvas


def ink_masks(data, i, images):
    """Boolean [H, W] ink mask of each digit of record i."""
    masks = []
    for k in range(data.digits[i]):
        x, y = data.positions[i, k]
        w, h = data.boxes[i, k]
        mask = np.zeros(data.images.shape[1:], bool)
        mask[y:y + h, x:x + w] = mnist_crop(images[data.indices[i, k]]) > 0
        masks.append(mask)
    return masks


@pytest.fixture(scope="module")
def default_set(tmp_path_factory, mnist_dir):
    out = generate(tmp_path_factory.mktemp("default"), mnist_dir)
    return (records.read_records(os.path.join(out, "train.tfrecords")),
            records.read_records(os.path.join(out, "test.tfrecords")))


def test_each_image_is_the_sum_of_its_training_digits(default_set, mnist_data):
    train, _ = default_set
    assert train.images.shape == (180, 50, 50)
    assert sorted(np.bincount(train.digits).tolist()) == [60, 60, 60]
    assert train.indices.max() < 60000
    for i in range(len(train.digits)):
        # Pixels equal to the MNIST *training* digits at the stored indices: train records use
        # training indices only. Labels come from the training labels.
        np.testing.assert_array_equal(train.images[i],
                                      expected_image(train, i, mnist_data.train_images, (50, 50)))
        m = train.digits[i]
        np.testing.assert_array_equal(train.labels[i, :m],
                                      mnist_data.train_labels[train.indices[i, :m]])
        assert (train.labels[i, m:] == -1).all() and (train.indices[i, m:] == -1).all()
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0


def test_test_records_use_mnist_test_digits_only(default_set, mnist_data):
    _, test = default_set
    assert test.images.shape == (60, 50, 50)
    assert np.bincount(test.digits).tolist() == [20, 20, 20]
    assert test.indices.max() < 10000
    for i in range(len(test.digits)):
        np.testing.assert_array_equal(test.images[i],
                                      expected_image(test, i, mnist_data.test_images, (50, 50)))
        m = test.digits[i]
        np.testing.assert_array_equal(test.labels[i, :m], mnist_data.test_labels[test.indices[i, :m]])


def test_digits_stay_inside_and_never_overlap(default_set, mnist_data):
    train, _ = default_set
    for i in range(len(train.digits)):
        m = train.digits[i]
        assert (train.positions[i, :m] >= 0).all()
        assert (train.positions[i, :m] + train.boxes[i, :m] <= 50).all()
        masks = ink_masks(train, i, mnist_data.train_images)
        assert not (sum(masks, np.zeros([50, 50], int)) > 1).any()


def test_gap_margin_and_bbox_mode(tmp_path, mnist_dir, mnist_data):
    gap, margin = 3, 2
    out = generate(tmp_path, mnist_dir, "--max-digits", "3", "--digit-gap", str(gap),
                   "--canvas-margin", str(margin), "--bbox-overlap", "--seed", "5")
    data = records.read_records(os.path.join(out, "train.tfrecords"))
    assert data.digits.max() == 3
    for i in range(len(data.digits)):
        np.testing.assert_array_equal(data.images[i],
                                      expected_image(data, i, mnist_data.train_images, (50, 50)))
        m = data.digits[i]
        pos, box = data.positions[i, :m], data.boxes[i, :m]
        assert (pos >= margin).all() and (pos + box <= 50 - margin).all()
        for a in range(m):
            for b in range(a + 1, m):
                # Empty pixels between the boxes along x or along y (overlap needs both axes).
                gaps = np.maximum(pos[b] - (pos[a] + box[a]), pos[a] - (pos[b] + box[b]))
                assert gaps.max() >= gap, (i, pos, box)


def test_pixel_gap_keeps_ink_apart(tmp_path, mnist_dir, mnist_data):
    gap = 2
    out = generate(tmp_path, mnist_dir, "--digit-gap", str(gap), "--seed", "7")
    data = records.read_records(os.path.join(out, "train.tfrecords"))
    for i in np.flatnonzero(data.digits == 2):
        a, b = [np.argwhere(mask) for mask in ink_masks(data, i, mnist_data.train_images)]
        # Chebyshev distance between any two ink pixels of different digits exceeds the gap.
        distance = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2).min()
        assert distance > gap


def test_background_is_added_and_clipped(tmp_path, mnist_dir, mnist_data):
    from PIL import Image
    rng = np.random.RandomState(1)
    pixels = rng.randint(0, 256, size=(53, 52)).astype(np.uint8)
    Image.fromarray(pixels).save(str(tmp_path / "background.png"))
    out = generate(tmp_path, mnist_dir, "--background", str(tmp_path / "background.png"),
                   "--background-max-intensity", "0.5", "--test-set-size", "0")
    data = records.read_records(os.path.join(out, "train.tfrecords"))
    background = pixels.astype(np.float32) / np.float32(255) * np.float32(0.5)
    windows = [background[y:y + 50, x:x + 50] for y in range(4) for x in range(3)]
    for i in range(len(data.digits)):
        digits = expected_image(data, i, mnist_data.train_images, (50, 50))
        matches = [np.allclose(data.images[i], np.clip(digits + w, 0, 1), rtol=0, atol=1e-6)
                   for w in windows]
        assert any(matches), i
    assert data.images.max() <= 1.0 and data.images.min() >= 0.0
    assert len(records.read_records(os.path.join(out, "test.tfrecords")).digits) == 0


def test_scaling_and_rotation(tmp_path, mnist_dir):
    out = generate(tmp_path, mnist_dir, "--width-scale", "0.6", "1.3", "--height-scale", "0.7",
                   "1.2", "--rotation", "-30", "30", "--test-set-size", "0")
    data = records.read_records(os.path.join(out, "train.tfrecords"))
    widths = set()
    for i in range(len(data.digits)):
        m = data.digits[i]
        inside = np.zeros([50, 50], bool)
        for (x, y), (w, h) in zip(data.positions[i, :m], data.boxes[i, :m]):
            assert x >= 0 and y >= 0 and x + w <= 50 and y + h <= 50
            inside[y:y + h, x:x + w] = True
            widths.add(int(w))
        assert not data.images[i][~inside].any()  # No ink outside the digit boxes.
    assert len(widths) > 10 and data.images.max() <= 1.0


def test_same_seed_same_bytes_for_any_worker_count(tmp_path, mnist_dir):
    # 2,100 training images make three chunks, so two workers really split the work.
    flags = ["--images-per-digit", "700", "--seed", "11"]
    one = generate(tmp_path, mnist_dir, "--workers", "1", *flags, name="one")
    two = generate(tmp_path, mnist_dir, "--workers", "2", *flags, name="two")
    other = generate(tmp_path, mnist_dir, "--workers", "2", "--images-per-digit", "700",
                     "--seed", "12", name="other")
    assert file_bytes(one) == file_bytes(two)
    assert file_bytes(one)[0] != file_bytes(other)[0] and file_bytes(one)[1] != file_bytes(other)[1]


def run_failing(capsys, argv):
    status = multi_mnist.main(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_impossible_request_fails_clearly_and_quickly(tmp_path, mnist_dir, capsys):
    err = run_failing(capsys, ["--mnist-dir", mnist_dir, "--output-dir", str(tmp_path / "o"),
                               "--max-digits", "6", "--digit-gap", "15", "--images-per-digit", "5",
                               "--test-set-size", "0", "--quiet"])
    assert "could not place 6 digit(s)" in err and "attempts" in err
    assert os.listdir(str(tmp_path / "o")) == []  # Nothing written, no partial files left.


def test_failed_test_split_keeps_the_previous_pair(tmp_path, mnist_dir, capsys):
    # The training split succeeds (no digits) and the test split cannot: the files of the earlier
    # run must stay as they were, not become a new train file beside an old test file.
    out = generate(tmp_path, mnist_dir, "--max-digits", "0")
    before = file_bytes(out)
    run_failing(capsys, ["--mnist-dir", mnist_dir, "--output-dir", out, "--max-digits", "1",
                         "--height", "10", "--width", "10", "--images-per-digit", "0",
                         "--test-set-size", "4", "--quiet"])
    assert file_bytes(out) == before and sorted(os.listdir(out)) == ["test.tfrecords",
                                                                     "train.tfrecords"]


def test_digit_larger_than_canvas_fails_clearly(tmp_path, mnist_dir, capsys):
    err = run_failing(capsys, ["--mnist-dir", mnist_dir, "--output-dir", str(tmp_path),
                               "--height", "12", "--width", "12", "--max-digits", "1",
                               "--images-per-digit", "5", "--test-set-size", "0", "--quiet"])
    assert "12x12 canvas" in err


@pytest.mark.parametrize("flags, text", [
    (["--images-per-digit", "-1"], "argument --images-per-digit: must be at least 0, got -1"),
    (["--rotation", "10", "-10"], "--rotation: MIN 10 is larger than MAX -10"),
    (["--width-scale", "0", "1"], "argument --width-scale: must be greater than 0.0, got 0.0"),
    (["--canvas-margin", "25"], "--canvas-margin 25 leaves no room"),
    (["--background", "/nonexistent/bg.png"], "--background: no such file"),
    (["--background-max-intensity", "2"],
     "argument --background-max-intensity: must be at most 1.0, got 2.0"),
    (["--min-digits", "3"], "--min-digits 3 is more than --max-digits 2"),
])
def test_bad_options_give_one_line_errors(tmp_path, mnist_dir, capsys, flags, text):
    err = run_failing(capsys, ["--mnist-dir", mnist_dir, "--output-dir", str(tmp_path)] + flags)
    assert text in err


def test_missing_mnist_offline_says_where_to_put_files(tmp_path, capsys):
    from conftest import closed_port_url
    err = run_failing(capsys, ["--mnist-dir", str(tmp_path / "nothing"), "--mnist-mirror",
                               closed_port_url(), "--output-dir", str(tmp_path / "o")])
    assert "put the four MNIST files" in err


def test_progress_line(tmp_path, mnist_dir, capsys):
    assert multi_mnist.main(["--mnist-dir", mnist_dir, "--output-dir", str(tmp_path),
                             "--images-per-digit", "10", "--test-set-size", "3"]) == 0
    err = capsys.readouterr().err
    assert "33/33 images" in err and "images/s" in err and "ETA" in err


def test_help_runs_without_work(tmp_path):
    from conftest import REPO
    result = subprocess.run([sys.executable, os.path.join(REPO, "multi_mnist.py"), "--help"],
                            cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=120)
    assert result.returncode == 0
    for flag in ("--mnist-dir", "--max-digits", "--images-per-digit", "--test-set-size",
                 "--digit-gap", "--bbox-overlap", "--canvas-margin", "--background",
                 "--background-max-intensity", "--width-scale", "--height-scale", "--rotation",
                 "--seed", "--output-dir"):
        assert flag in result.stdout
    assert os.listdir(str(tmp_path)) == []  # Nothing generated or downloaded.


def test_crop_boxes_match_a_naive_loop(mnist_data):
    images = mnist_data.test_images[:200]
    boxes = gen.crop_boxes(images)
    for image, (top, left, h, w) in zip(images, boxes):
        rows = np.flatnonzero(image.any(axis=1))
        cols = np.flatnonzero(image.any(axis=0))
        assert (top, left, h, w) == (rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)


def test_dilate_matches_chebyshev_distance():
    rng = np.random.RandomState(0)
    mask = rng.rand(7, 5) > 0.8
    grown = gen.dilate(mask, 2)
    ink = np.argwhere(mask)
    for (y, x), value in np.ndenumerate(grown):
        distance = np.abs(ink - [y - 2, x - 2]).max(axis=1).min()
        assert value == (distance <= 2)


def test_min_digits_makes_a_set_of_one_digit_count_only(tmp_path, mnist_dir, mnist_data):
    """--min-digits 3 --max-digits 3: every image holds three MNIST test digits, the sum of
    their crops where the record puts them; --min-digits 0 keeps the counts of before."""
    out = generate(tmp_path, mnist_dir, "--min-digits", "3", "--max-digits", "3",
                   "--images-per-digit", "0", "--test-set-size", "40", "--seed", "3")
    test = records.read_records(os.path.join(out, "test.tfrecords"))
    assert len(test.digits) == 40 and set(test.digits.tolist()) == {3}
    assert len(records.read_records(os.path.join(out, "train.tfrecords")).digits) == 0
    for i in range(len(test.digits)):
        np.testing.assert_array_equal(test.images[i],
                                      expected_image(test, i, mnist_data.test_images, (50, 50)))
    np.testing.assert_array_equal(np.bincount(gen.digit_counts(10, 4, 0, "test", min_digits=2)),
                                  [0, 0, 4, 3, 3])
    np.testing.assert_array_equal(gen.digit_counts(9, 2, 5, "train"),
                                  gen.digit_counts(9, 2, 5, "train", min_digits=0))
