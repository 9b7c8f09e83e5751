"""Tests of demo.py and air/evaluation/model_folder.py: pictures and drawing maths, model loading errors, and
the real Tk window of the shipped model under Xvfb, driven by xdotool: two digits drawn, the
count and the step-coloured boxes read off a real screen grab, one digit erased again."""
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import demo
from air.evaluation import model_folder
from air.experiments import benchmarks
from air.visualisation import rendering
from air.training.checkpoints import CheckpointError, find_checkpoint, read_config
from conftest import REPO, require

SHIPPED_MODEL = os.path.join(REPO, "model")
LOG_LINE = re.compile(r"^refresh (\d+): digits (\d+), negative ELBO (\S+), inference (\S+) ms$")
READY_LINE = re.compile(r"drawing area at x=(\d+) y=(\d+) width=(\d+) height=(\d+), "
                        r"window at x=(\d+) y=(\d+)$")
SUBPROCESS_TIMEOUT = 300  # seconds: the demo's start-up includes TensorFlow's
ZOOM = rendering.DEFAULT_ZOOM
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def fake_result(steps=3, live=(1, 1, 0), side=50, window=28):
    """A predict() result of one image with hand-made boxes, for the rendering tests."""
    rng = np.random.RandomState(0)
    return {
        "digit_count": np.int32(sum(live)),
        "z_pres": np.array(live, np.float32),
        "z_pres_probability": np.array([0.9, 0.8, 0.1], np.float32)[:steps],
        "boxes": np.array([[5, 5, 20, 20], [25, 20, 20, 24], [0, 0, 10, 10]], np.float32)[:steps],
        "live": np.array(live, np.float32),
        "windows": rng.rand(steps, window, window).astype(np.float32),
        "reconstructions": rng.rand(steps, window, window).astype(np.float32),
        "canvas": rng.rand(side, side).astype(np.float32),
        "negative_elbo": np.float32(123.4),
    }


# ----------------------------------------------------------------------------------------------
# Pictures and drawing (no display).

def test_load_picture_resizes_to_grey_canvas_and_inverts_dark_ink(tmp_path):
    from PIL import Image
    # Dark ink on white paper, 100x80: a black bar over columns 20-39 (canvas columns 10-19).
    paper = np.full([80, 100], 255, np.uint8)
    paper[:, 20:40] = 0
    path = str(tmp_path / "ink.png")
    Image.fromarray(paper).convert("RGB").save(path)
    canvas = rendering.load_picture(path, 50, 50)
    assert canvas.shape == (50, 50) and canvas.dtype == np.float32
    # Inverted: the bar becomes the light part, as in MNIST.
    assert canvas[:, 11:19].min() > 0.95
    assert canvas[:, :9].max() < 0.05 and canvas[:, 21:].max() < 0.05
    # Light strokes on black are kept as they are.
    Image.fromarray(255 - paper).save(path)
    np.testing.assert_allclose(rendering.load_picture(path, 50, 50), canvas, atol=1e-6)


def test_load_picture_rejects_unreadable_file(tmp_path):
    path = tmp_path / "not_a_picture.png"
    path.write_text("hello")
    with pytest.raises(rendering.PictureError, match="cannot read image"):
        rendering.load_picture(str(path), 50, 50)
    with pytest.raises(rendering.PictureError, match="cannot read image"):
        rendering.load_picture(str(tmp_path / "missing.png"), 50, 50)


def test_drawing_strokes_average_down_to_the_canvas():
    drawing = rendering.Drawing(50, 50, 10)
    assert drawing.canvas().shape == (50, 50) and drawing.canvas().max() == 0.0
    version = drawing.version
    # A horizontal stroke 3 canvas pixels wide along canvas row 20 (screen y = 205).
    drawing.stroke((100, 205), (300, 205), brush=3)
    canvas = drawing.canvas()
    assert drawing.version > version
    assert np.all(canvas[20, 12:29] == 1.0)  # centre row: fully covered
    assert np.all(canvas[19:22, 12:29] > 0.85)  # (Pillow may place the edges a pixel apart)
    assert canvas[10].max() == 0.0 and canvas[30].max() == 0.0  # far rows untouched
    assert np.all((canvas >= 0.0) & (canvas <= 1.0))
    # Ink is about the stroke's area: length 200 + round caps, width 30 screen pixels.
    expected = (200 * 30 + np.pi * 15 ** 2) / 100.0
    assert abs(canvas.sum() - expected) < 0.05 * expected
    # Erasing with a wider brush removes it; clear empties everything.
    drawing.stroke((100, 205), (300, 205), brush=5, erase=True)
    assert drawing.canvas().max() == 0.0
    drawing.stroke((0, 0), (499, 499), brush=1)
    drawing.clear()
    assert drawing.canvas().max() == 0.0


def test_drawing_set_canvas_round_trips():
    canvas = np.random.RandomState(1).rand(50, 50).astype(np.float32)
    drawing = rendering.Drawing(50, 50, 10)
    drawing.set_canvas(canvas)
    np.testing.assert_allclose(drawing.canvas(), canvas, atol=1.0 / 255)


def test_boxes_drawn_in_step_colours_only_for_live_steps():
    result = fake_result(live=(1, 1, 0))
    picture = rendering.drawing_panel(np.zeros([50, 50], np.float32), result, 10, show_boxes=True)
    assert picture.size == (500, 500)
    pixels = np.asarray(picture)
    assert tuple(pixels[150, 50]) == (255, 0, 0)    # left edge of step 1's box (x = 5)
    assert tuple(pixels[300, 250]) == (0, 255, 0)   # left edge of step 2's box (x = 25)
    assert not np.any(np.all(pixels == (0, 0, 255), axis=-1))  # step 3 stopped: no blue box
    plain = np.asarray(rendering.drawing_panel(np.zeros([50, 50], np.float32), result, 10, False))
    assert plain.max() == 0


def test_render_screen_shows_every_panel():
    result = fake_result()
    canvas = np.zeros([50, 50], np.float32)
    canvas[10:20, 10:20] = 1.0
    screen = rendering.render_screen(canvas, result, 0.004)
    assert not rendering.is_blank(screen)
    pixels = np.asarray(screen)
    assert tuple(pixels[10 + 150, 10 + 150]) == (255, 255, 255)  # the drawn square, magnified
    assert "digits found: 2" in rendering.status_text(result, 0.004)
    assert "4.0 ms" in rendering.status_text(result, 0.004)
    assert rendering.window_caption(result, 0) == "step 1: z_pres 1 (p 0.90)"
    assert rendering.window_caption(result, 2).endswith("stopped")


# ----------------------------------------------------------------------------------------------
# Model folders (air/evaluation/model_folder.py).

def test_loaded_model_predicts_every_output(small_results_dir, small_data_dir):
    from air.data import records
    images = records.read_records(os.path.join(small_data_dir, "test.tfrecords")).images[:4]
    with model_folder.LoadedModel(os.path.join(small_results_dir, "model")) as model:
        config = model.config
        assert model.step == 30
        batch = model.predict(images)
        single = model.predict(images[1])
        with pytest.raises(ValueError, match="images must be"):
            model.predict(images[:, :40])
    steps, side = config.max_steps, config.window_size
    assert batch["digit_count"].shape == (4,)
    assert batch["boxes"].shape == (4, steps, 4)
    assert batch["windows"].shape == batch["reconstructions"].shape == (4, steps, side, side)
    assert batch["z_what_mean"].shape == (4, steps, config.vae_latent)
    assert batch["canvas"].shape == images.shape
    # Test mode: z_pres is the rounded probability; the count is the number of live steps.
    np.testing.assert_array_equal(batch["z_pres"], batch["z_pres_probability"] > 0.5)
    np.testing.assert_array_equal(batch["digit_count"], batch["live"].sum(axis=1))
    for name in batch:
        np.testing.assert_allclose(single[name], batch[name][1], rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(batch["negative_elbo"]))


def test_model_dir_errors_are_clear(tmp_path, small_results_dir):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_config(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="has no config.json"):
        read_config(str(empty))
    (empty / "config.json").write_text('{"no_such_field": 1}')
    with pytest.raises(CheckpointError, match="incompatible .*no_such_field"):
        read_config(str(empty))
    (empty / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        find_checkpoint(str(empty))
    # A checkpoint of another configuration: the shapes differ.
    other = tmp_path / "other"
    shutil.copytree(os.path.join(small_results_dir, "model"), str(other))
    from air.config import AIRConfig
    config = AIRConfig.load(str(other / "config.json"))
    config.replace(rnn_units=32).save(str(other / "config.json"))
    with pytest.raises(CheckpointError, match="does not match its config.json"):
        model_folder.LoadedModel(str(other))


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit:
        demo.main(["--help"])
    assert exit.value.code == 0
    assert "--model-dir" in capsys.readouterr().out


def test_demo_errors_are_one_line(tmp_path, monkeypatch, capsys, small_results_dir):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert demo.main(["--model-dir", os.path.join(small_results_dir, "model")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no display: $DISPLAY is not set") and err.count("\n") == 1

    monkeypatch.setenv("DISPLAY", ":31999")  # Never reached: the checks before it fail.
    assert demo.main(["--model-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model folder") and "does not exist" in err
    assert err.count("\n") == 1

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    assert demo.main(["--model-dir", os.path.join(small_results_dir, "model"),
                      "--image", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read image") and err.count("\n") == 1

    assert demo.main(["--model-dir", os.path.join(small_results_dir, "model"),
                      "--period", "5"]) == 2
    assert "--period" in capsys.readouterr().err


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


def test_untrained_model_folder_loads(tmp_path):
    from air.config import AIRConfig
    config = AIRConfig().replace(rnn_units=16, vae_latent=4, vae_recognition_units=[8],
                                 vae_generative_units=[8])
    model_folder.save_untrained_model(str(tmp_path / "model"), config)
    with model_folder.LoadedModel(str(tmp_path / "model")) as model:
        assert model.config == config and model.step is None
        result = model.predict(np.zeros([2, 50, 50], np.float32))
    assert result["z_what_mean"].shape == (2, config.max_steps, 4)


# ----------------------------------------------------------------------------------------------
# The real window under Xvfb.

@pytest.fixture(scope="module")
def x_display():
    """A private Xvfb server on a free display number; yields its DISPLAY string."""
    for tool, package in (("Xvfb", "xvfb"), ("xdotool", "xdotool")):
        require(shutil.which(tool) is not None, "%s (apt-get install %s)" % (tool, package))
    try:
        import tkinter  # noqa: F401
    except ImportError as error:
        require(False, "tkinter in %s (%s)" % (sys.executable, error))
    read_end, write_end = os.pipe()
    # -displayfd: Xvfb picks a free display number itself and writes it to the pipe.
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0",
                               "1280x1024x24", "-nolisten", "tcp"],
                              pass_fds=(write_end,), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        number = b""
        deadline = time.time() + 30
        with os.fdopen(read_end, "rb") as pipe:
            while not number.endswith(b"\n") and time.time() < deadline:
                chunk = pipe.read(1)
                if not chunk:
                    break
                number += chunk
        if not number.strip():
            pytest.fail("Xvfb did not report a display number")
        yield ":" + number.decode().strip()
    finally:
        server.terminate()
        server.wait(timeout=30)


class _Lines:
    """Collects a subprocess's stdout lines in a thread, so the test can wait for them."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        self.seen = []
        thread = threading.Thread(target=self._read, args=(stream,))
        thread.daemon = True
        thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate, timeout):
        """The first new line satisfying ``predicate``; AssertionError after ``timeout`` s."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError("timed out; output so far: %r" % self.seen)

    def settle(self, quiet_seconds=2.0, timeout=120):
        """Waits until no line came for ``quiet_seconds``; returns the last refresh line's match.

        The demo re-runs the model only when the drawing changed, so once the strokes are
        processed the refresh lines must stop: a demo that kept refreshing never settles.
        """
        deadline = time.time() + timeout
        last = time.time()
        while time.time() - last < quiet_seconds:
            assert time.time() < deadline, "refreshes did not stop: %r" % self.seen[-5:]
            try:
                self.seen.append(self.lines.get(timeout=0.1))
                last = time.time()
            except queue.Empty:
                pass
        refreshes = [LOG_LINE.match(line) for line in self.seen if LOG_LINE.match(line)]
        assert refreshes, self.seen
        return refreshes[-1]


def _xdotool(display, *args):
    subprocess.run(["xdotool"] + list(args), env=dict(os.environ, DISPLAY=display), check=True,
                   timeout=60)


def drag(display, origin, points, button):
    """Presses ``button`` at the first canvas point, moves through the rest, releases."""
    screen = [("%d" % (origin[0] + ZOOM * x), "%d" % (origin[1] + ZOOM * y)) for x, y in points]
    args = ["mousemove", screen[0][0], screen[0][1], "mousedown", button]
    for x, y in screen[1:]:
        # A pause after each move: Tk collapses motion events that queue up, which would
        # turn a curve into a few straight segments.
        args += ["sleep", "0.05", "mousemove", x, y]
    _xdotool(display, *(args + ["sleep", "0.05", "mouseup", button]))


# Two digits in canvas pixels, far apart: a "1" on the left and a "0" on the right.
ONE = [(14, 13), (14, 20), (14, 27), (14, 36)]
ONE_CENTRE = (14, 24.5)
ZERO_CENTRE, ZERO_RADII = (34, 25), (6, 10)
ZERO = [(ZERO_CENTRE[0] + ZERO_RADII[0] * np.sin(a), ZERO_CENTRE[1] - ZERO_RADII[1] * np.cos(a))
        for a in np.linspace(0, 2 * np.pi, 25)]
# Right-button strokes over the "0" and a margin around it, one straight stroke (press, one
# move, release) per second row, so that every row of its box is erased: in one long zigzag, Tk
# merges the moves that queue up while the demo is busy (a loaded machine), and the merged
# stroke cuts corners that stay inked.
ERASE_ZERO = [[(25, y), (43, y)] for y in range(12, 40, 2)]


def colour_box(area, colour):
    """(left, top, right, bottom) of the pixels of exactly ``colour`` in an RGB array, or None."""
    mask = np.all(area == colour, axis=-1)
    if not mask.any():
        return None
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return columns[0], rows[0], columns[-1], rows[-1]


def inside(box, point):
    left, top, right, bottom = box
    return left <= point[0] <= right and top <= point[1] <= bottom


def drawing_area(screenshot, ready):
    """The drawing area's pixels [500, 500, 3] in a screenshot of the window."""
    from PIL import Image
    x, y, width, height, window_x, window_y = map(int, READY_LINE.search(ready).groups())
    with Image.open(screenshot) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    left, top = x - window_x, y - window_y
    return pixels[top:top + height, left:left + width]


def grey_ink(area):
    """[H, W] grey level in [0, 1] of the uncoloured pixels (box outlines read as 0)."""
    grey = (area[..., 0] == area[..., 1]) & (area[..., 1] == area[..., 2])
    return np.where(grey, area[..., 0] / 255.0, 0.0)


def start_demo(display, *args):
    return subprocess.Popen(
        [sys.executable, os.path.join(REPO, "demo.py"), "--model-dir", SHIPPED_MODEL, "--log"]
        + list(args), cwd=REPO, env=dict(os.environ, DISPLAY=display), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True)


def save_screenshot(process, out):
    """Asks the running demo for a screenshot (SIGUSR1); it must come from the real screen."""
    process.send_signal(signal.SIGUSR1)
    line = out.wait_for(lambda line: line.startswith("saved screenshot"),
                        timeout=SUBPROCESS_TIMEOUT)
    assert line.endswith("(grabbed from the display)"), line


def test_live_demo_counts_two_drawn_digits_boxes_them_and_erases(x_display, tmp_path):
    screenshot = str(tmp_path / "shot.png")
    process = start_demo(x_display, "--screenshot", screenshot, "--period", "20")
    try:
        out = _Lines(process.stdout)
        ready = out.wait_for(lambda line: line.startswith("ready:"), SUBPROCESS_TIMEOUT)
        x, y, width, height = map(int, READY_LINE.search(ready).groups()[:4])
        assert (width, height) == (50 * ZOOM, 50 * ZOOM)
        out.wait_for(lambda line: line.startswith("saved screenshot"), SUBPROCESS_TIMEOUT)
        assert out.settle().group(2) == "0"  # the blank canvas, once

        drag(x_display, (x, y), ONE, "1")
        drag(x_display, (x, y), ZERO, "1")
        refresh = out.settle()
        assert int(refresh.group(1)) >= 2 and refresh.group(2) == "2", out.seen[-5:]
        assert np.isfinite(float(refresh.group(3)))
        save_screenshot(process, out)
        shutil.copy(screenshot, str(tmp_path / "two_digits.png"))  # kept for a look by hand
        area = drawing_area(screenshot, ready)
        ink = grey_ink(area)
        # The strokes are on the screen where they were drawn (the magnified canvas): the "1"
        # in columns 12-16, the "0" in 26-42, black between them.
        assert ink[:, ZOOM * 12:ZOOM * 17].max() > 0.8 and ink[:, ZOOM * 26:].max() > 0.8
        assert ink[:, ZOOM * 18:ZOOM * 25].max() == 0.0
        # Step 1's red box and step 2's green box, one around each digit; no blue step 3.
        red, green = colour_box(area, RED), colour_box(area, GREEN)
        assert red is not None and green is not None and colour_box(area, BLUE) is None
        centres = [tuple(ZOOM * c for c in ONE_CENTRE), tuple(ZOOM * c for c in ZERO_CENTRE)]
        assert sorted([inside(red, c) for c in centres]) == [False, True], (red, centres)
        assert sorted([inside(green, c) for c in centres]) == [False, True], (green, centres)
        assert inside(red, centres[0]) != inside(green, centres[0])

        # The right button erases: the "0" goes, the model finds one digit in a red box.
        for stroke in ERASE_ZERO:
            drag(x_display, (x, y), stroke, "3")
        refresh = out.settle()
        assert refresh.group(2) == "1", out.seen[-5:]
        save_screenshot(process, out)
        area = drawing_area(screenshot, ready)
        right_half = grey_ink(area)[:, ZOOM * 25:]
        assert right_half.max() == 0.0
        assert colour_box(area, GREEN) is None and inside(colour_box(area, RED), centres[0])
        assert grey_ink(area)[:, ZOOM * 12:ZOOM * 17].max() > 0.8  # the "1" stays
    finally:
        process.terminate()
        code = process.wait(timeout=SUBPROCESS_TIMEOUT)
    assert code == 0, process.stderr.read()[-2000:]  # SIGTERM closes the window cleanly


def test_live_demo_sample_screenshot_and_exit(x_display, small_data_dir, tmp_path):
    """--sample shows a held-out image (2 digits, MNIST test set) and the model boxes both."""
    from air.data import records
    data = os.path.join(small_data_dir, "test.tfrecords")
    held_out = records.read_records(data)
    index = int(np.flatnonzero(held_out.digits == 2)[0])
    screenshot = str(tmp_path / "sample.png")
    process = start_demo(x_display, "--sample", str(index), "--data", data, "--screenshot",
                         screenshot, "--exit-after-screenshot")
    try:
        out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
    assert process.returncode == 0, err[-2000:]
    ready = [line for line in out.splitlines() if line.startswith("ready:")][0]
    assert "saved screenshot %s (grabbed from the display)" % screenshot in out
    assert [m.group(2) for m in map(LOG_LINE.match, out.splitlines()) if m] == ["2"]
    area = drawing_area(screenshot, ready)
    # Each canvas pixel is a 10x10 block: its centre shows the sample's value, except where a
    # box outline crosses it; compared on the ink, where a blank or wrong picture would differ.
    centres = area[ZOOM // 2::ZOOM, ZOOM // 2::ZOOM]
    blocks = grey_ink(centres)
    coloured = np.any(centres != centres[..., :1], axis=-1)
    sample = held_out.images[index]
    ink = (sample > 0.3) & ~coloured
    assert ink.sum() > 100
    assert np.mean(np.abs(blocks[ink] - sample[ink]) < 0.02) > 0.98
    assert colour_box(area, RED) is not None and colour_box(area, GREEN) is not None
