"""demo.py: its options and one-line errors, and the real Tk window of the shipped model under
Xvfb, driven by xdotool: two digits drawn, the count and the step-coloured boxes read off a real
screen grab, one digit erased again. (The pictures: test_rendering.py; loading the model:
tests/evaluation/test_model_folder.py.)"""
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
from air.visualisation import rendering
from conftest import REPO, require

SHIPPED_MODEL = os.path.join(REPO, "model")
LOG_LINE = re.compile(r"^refresh (\d+): digits (\d+), negative ELBO (\S+), inference (\S+) ms$")
READY_LINE = re.compile(r"drawing area at x=(\d+) y=(\d+) width=(\d+) height=(\d+), "
                        r"window at x=(\d+) y=(\d+)$")
SUBPROCESS_TIMEOUT = 300  # seconds: the demo's start-up includes TensorFlow's
ZOOM = rendering.DEFAULT_ZOOM
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


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
