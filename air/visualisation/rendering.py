"""The demo's pictures, drawn with Pillow and numpy alone: the user's drawing, the panels (input
with attention windows, reconstruction, each step's decoded window) and the whole screen.

No display and no Tk here, so the drawing is testable and bench.py can time a refresh without
a window; demo.py's Tk window (air/visualisation/demo_window.py) shows these pictures.
"""
from air.cli import UserError
from air.visualisation.colours import step_colour_8bit

DEFAULT_ZOOM = 10         # screen pixels per canvas pixel in the drawing area
RECONSTRUCTION_ZOOM = 5   # ... in the reconstruction panel
WINDOW_ZOOM = 4           # ... in the panels of the decoded windows
BACKGROUND = "#202020"


class PictureError(UserError):
    """A picture file that cannot be read; the message is one line."""


def load_picture(path, height, width):
    """Takes an image file to a float32 [height, width] canvas in [0, 1], light strokes on black.

    Pictures whose mean is above one half (dark ink on light paper) are inverted, since the
    model only ever saw light digits on a black background.
    """
    import numpy as np
    from PIL import Image
    try:
        with Image.open(path) as picture:
            grey = picture.convert("L")
    except (IOError, OSError, ValueError, SyntaxError) as error:
        raise PictureError("cannot read image %s: %s" % (path, error))
    grey = grey.resize((width, height), Image.LANCZOS)
    canvas = np.asarray(grey, dtype=np.float32) / 255.0
    if canvas.mean() > 0.5:
        canvas = 1.0 - canvas
    return np.clip(canvas, 0.0, 1.0)


def text_colour(step):
    """A step's colour lightened for text on the dark background (pure blue is unreadable)."""
    return tuple(int(c + 0.4 * (255 - c)) for c in step_colour_8bit(step))


def grey_picture(array, zoom):
    """Takes a float [H, W] array in [0, 1] to an RGB Pillow image magnified ``zoom`` times."""
    import numpy as np
    from PIL import Image
    pixels = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    picture = Image.fromarray(pixels, mode="L").convert("RGB")
    height, width = pixels.shape
    return picture.resize((width * zoom, height * zoom), Image.NEAREST)


def draw_boxes(picture, result, zoom):
    """Outlines each live step's window on a magnified picture, in the step's colour (in place)."""
    from PIL import ImageDraw
    draw = ImageDraw.Draw(picture)
    line = max(1, zoom // 4)
    for step, (x, y, w, h) in enumerate(result["boxes"]):
        if result["live"][step] < 0.5:
            continue  # A stopped step's box says nothing about the picture.
        left, top = x * zoom, y * zoom
        right, bottom = (x + w) * zoom, (y + h) * zoom
        draw.rectangle([left, top, right, bottom], outline=step_colour_8bit(step), width=line)
        draw.text((left + line + 2, top + line + 1), str(step + 1), fill=step_colour_8bit(step))
    return picture


def drawing_panel(canvas, result, zoom, show_boxes):
    """The drawing area: the input canvas magnified, with the attention windows if wanted."""
    picture = grey_picture(canvas, zoom)
    if show_boxes and result is not None:
        draw_boxes(picture, result, zoom)
    return picture


def reconstruction_panel(result, zoom, show_boxes):
    """The model's reconstruction (its canvas) magnified, with the windows if wanted."""
    picture = grey_picture(result["canvas"], zoom)
    if show_boxes:
        draw_boxes(picture, result, zoom)
    return picture


def window_panel(result, step, zoom):
    """One step's decoded window, magnified; dimmed when the step found no object."""
    live = result["live"][step] > 0.5
    window = result["reconstructions"][step] * (1.0 if live else 0.35)
    return grey_picture(window, zoom)


def window_caption(result, step):
    """Text under a step's window: its z_pres and the posterior probability behind it."""
    text = "step %d: z_pres %d (p %.2f)" % (step + 1, int(round(result["z_pres"][step])),
                                           result["z_pres_probability"][step])
    return text if result["live"][step] > 0.5 else text + " - stopped"


def status_text(result, seconds):
    return "digits found: %d    negative ELBO: %.1f nats    inference: %.1f ms" % (
        int(result["digit_count"]), float(result["negative_elbo"]), 1000.0 * seconds)


def render_screen(canvas, result, seconds, zoom=DEFAULT_ZOOM, show_boxes=True):
    """The demo's panels drawn with Pillow alone (the screenshot when the display can't be grabbed)."""
    from PIL import Image, ImageDraw
    drawing = drawing_panel(canvas, result, zoom, show_boxes)
    reconstruction = reconstruction_panel(result, RECONSTRUCTION_ZOOM, show_boxes)
    steps = len(result["live"])
    windows = [window_panel(result, t, WINDOW_ZOOM) for t in range(steps)]
    pad, text_height = 10, 14
    window_side = windows[0].size[0]
    caption_width = max(draw_width(window_caption(result, t)) for t in range(steps))
    right_width = max(reconstruction.size[0], window_side + pad + caption_width)
    width = pad + drawing.size[0] + pad + right_width + pad
    height = pad + max(drawing.size[1], text_height + reconstruction.size[1] + pad
                       + steps * (window_side + pad)) + pad + text_height + pad
    screen = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(screen)
    screen.paste(drawing, (pad, pad))
    x = pad + drawing.size[0] + pad
    draw.text((x, pad), "reconstruction", fill="white")
    screen.paste(reconstruction, (x, pad + text_height))
    y = pad + text_height + reconstruction.size[1] + pad
    for t, window in enumerate(windows):
        screen.paste(window, (x, y))
        draw.rectangle([x - 1, y - 1, x + window_side, y + window_side], outline=step_colour_8bit(t))
        draw.text((x + window_side + pad, y + window_side // 2 - 6), window_caption(result, t),
                  fill=text_colour(t))
        y += window_side + pad
    draw.text((pad, height - pad - text_height), status_text(result, seconds), fill="white")
    return screen


def draw_width(text):
    """Width in pixels of ``text`` in Pillow's default font."""
    from PIL import Image, ImageDraw
    return int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text))


def is_blank(picture):
    """True when every pixel of a Pillow image has the same value (a failed grab)."""
    extrema = picture.convert("L").getextrema()
    return extrema[0] == extrema[1]


class Drawing:
    """The user's strokes, kept at screen resolution and averaged down to the model's canvas.

    Averaging the magnified strokes over each canvas pixel gives anti-aliased edges, like the
    MNIST digits the model was trained on.
    """

    def __init__(self, height, width, zoom):
        from PIL import Image
        self.height, self.width, self.zoom = height, width, zoom
        self.picture = Image.new("L", (width * zoom, height * zoom), 0)
        self.version = 0  # Bumped on every change: the demo re-runs the model only then.

    def stroke(self, start, end, brush, erase=False):
        """Draws (or erases) a line between two screen points, ``brush`` canvas pixels wide."""
        from PIL import ImageDraw
        draw = ImageDraw.Draw(self.picture)
        value = 0 if erase else 255
        diameter = brush * self.zoom
        draw.line([start, end], fill=value, width=diameter)
        radius = diameter / 2.0
        for x, y in (start, end):  # Round caps and joints.
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=value)
        self.version += 1

    def clear(self):
        self.picture.paste(0, [0, 0, self.picture.size[0], self.picture.size[1]])
        self.version += 1

    def set_canvas(self, canvas):
        """Replaces the drawing with a float [H, W] canvas (a loaded picture or sample)."""
        self.picture = grey_picture(canvas, self.zoom).convert("L")
        self.version += 1

    def canvas(self):
        """The model's input: float32 [H, W] in [0, 1]."""
        import numpy as np
        from PIL import Image
        small = self.picture.resize((self.width, self.height), Image.BOX)
        return np.asarray(small, dtype=np.float32) / 255.0
