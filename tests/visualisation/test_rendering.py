"""air/visualisation/rendering.py: the demo's pictures and drawing maths, without a display."""
import numpy as np
import pytest

from air.visualisation import rendering


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
