"""Live drawing demo: draw digits with the mouse and watch AIR attend to them and redraw them.

    python demo.py [--model-dir model/] [--image PATH | --sample N [--data FILE]]
                   [--screenshot PATH [--exit-after-screenshot]] [--log]

The left panel is the model's 50x50 input canvas, magnified: the left mouse button draws, the
right one erases. While the drawing changes, the test-mode model (z_pres rounded, posterior
means) re-runs every refresh period and shows each step's attention window in its colour
(red, green, blue), the reconstruction, and each step's decoded window with its z_pres.
"""
import argparse
import os
import signal
import sys
import time

from air import cli

DEFAULT_ZOOM = 10         # screen pixels per canvas pixel in the drawing area
RECONSTRUCTION_ZOOM = 5   # ... in the reconstruction panel
WINDOW_ZOOM = 4           # ... in the panels of the decoded windows
DEFAULT_BRUSH = 3         # brush width in canvas pixels (MNIST strokes are about 2-3 wide)
DEFAULT_PERIOD_MS = 50
MAX_THREADS = 1024
DEFAULT_SCREENSHOT = "demo-screenshot.png"  # where SIGUSR1 saves one without --screenshot
BACKGROUND = "#202020"


class DemoError(cli.UserError):
    """A problem the user can fix; printed as one line."""


def build_parser():
    parser = argparse.ArgumentParser(
        description="Draw digits and watch AIR attend to and reconstruct them in real time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-dir", default="model/",
                        help="folder with config.json and checkpoints (training.py's "
                             "RESULTS_DIR/model)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--image", metavar="PATH",
                       help="start from this picture (any size and format Pillow reads; "
                            "converted to grey and resized to the canvas; dark-on-light "
                            "pictures are inverted to light digits on black, as in MNIST)")
    start.add_argument("--sample", type=cli.integer(minimum=0), metavar="N",
                       help="start from image N (0-based) of the held-out data")
    parser.add_argument("--data", default="multi_mnist_data/test.tfrecords",
                        help="record file that --sample reads")
    parser.add_argument("--screenshot", metavar="PATH",
                        help="save a PNG of the window after the first inference, and again "
                             "whenever the process receives SIGUSR1 (kill -USR1 PID)")
    parser.add_argument("--exit-after-screenshot", action="store_true",
                        help="quit once the --screenshot is saved")
    parser.add_argument("--log", action="store_true",
                        help="print a line per refresh (digits found, negative ELBO, inference "
                             "time) to stdout")
    parser.add_argument("--zoom", type=cli.integer(1, 40), default=DEFAULT_ZOOM,
                        help="screen pixels per canvas pixel in the drawing area (1-40)")
    parser.add_argument("--period", type=cli.integer(10, 1000), default=DEFAULT_PERIOD_MS,
                        help="initial refresh period in milliseconds (10-1000)")
    parser.add_argument("--threads", type=cli.integer(0, MAX_THREADS), default=0,
                        help="TensorFlow threads (0: TensorFlow's choice)")
    return parser


# ----------------------------------------------------------------------------------------------
# Pictures in, pictures out (Pillow and numpy only: no display needed, so these are testable).

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
        raise DemoError("cannot read image %s: %s" % (path, error))
    grey = grey.resize((width, height), Image.LANCZOS)
    canvas = np.asarray(grey, dtype=np.float32) / 255.0
    if canvas.mean() > 0.5:
        canvas = 1.0 - canvas
    return np.clip(canvas, 0.0, 1.0)


def load_sample(path, index, height, width):
    """Takes a record file and an index to that held-out image, float32 [height, width]."""
    from air.data import records
    if not os.path.isfile(path):
        raise DemoError("--sample: record file %s not found (run `make data`, or give --data)"
                        % path)
    try:
        images = records.read_records(path).images
    except Exception as error:  # Any failure to parse is the file's fault, not the demo's.
        raise DemoError("--sample: cannot read %s: %s" % (path, error))
    if not 0 <= index < len(images):
        raise DemoError("--sample %d: %s holds images 0 to %d" % (index, path, len(images) - 1))
    if images.shape[1:] != (height, width):
        raise DemoError("%s holds %dx%d images but the model expects %dx%d"
                        % ((path,) + images.shape[1:] + (height, width)))
    return images[index]


def step_colour(step):
    """Takes a step index to its 8-bit RGB colour (red, green, blue, ... as in the summaries)."""
    from air.colours import step_colour as rgb
    return tuple(int(255 * c) for c in rgb(step))


def text_colour(step):
    """A step's colour lightened for text on the dark background (pure blue is unreadable)."""
    return tuple(int(c + 0.4 * (255 - c)) for c in step_colour(step))


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
        draw.rectangle([left, top, right, bottom], outline=step_colour(step), width=line)
        draw.text((left + line + 2, top + line + 1), str(step + 1), fill=step_colour(step))
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
        draw.rectangle([x - 1, y - 1, x + window_side, y + window_side], outline=step_colour(t))
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


# ----------------------------------------------------------------------------------------------
# The drawing.

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


# ----------------------------------------------------------------------------------------------
# The window.

class DemoApp:
    """The Tk window: drawing area, controls, reconstruction and step panels, status line."""

    def __init__(self, root, model, args, initial=None):
        import tkinter as tk
        self.tk = tk
        self.root = root
        self.model = model
        self.args = args
        height, width = model.canvas_shape
        self.zoom = args.zoom
        self.drawing = Drawing(height, width, self.zoom)
        if initial is not None:
            self.drawing.set_canvas(initial)
        self.shown_version = None  # Drawing version the panels show; None: never run.
        self.result = None
        self.seconds = 0.0
        self.refreshes = 0
        self.last_point = None
        self.screenshot_done = False
        self.screenshot_requested = False  # set by SIGUSR1: save one at the next tick
        self._images = {}  # PhotoImages must stay referenced or Tk shows nothing.

        root.title("AIR live demo - %s" % os.path.basename(os.path.normpath(args.model_dir)))
        root.configure(background=BACKGROUND)
        self.brush = tk.IntVar(root, DEFAULT_BRUSH)
        self.period = tk.IntVar(root, min(1000, max(10, args.period)))
        self.show_boxes = tk.BooleanVar(root, True)
        self._build_widgets(height, width)
        root.after(0, self._tick)

    def _label(self, parent, **options):
        options.setdefault("background", BACKGROUND)
        options.setdefault("foreground", "white")
        return self.tk.Label(parent, **options)

    def _build_widgets(self, height, width):
        tk = self.tk
        root = self.root
        self.area = tk.Canvas(root, width=width * self.zoom, height=height * self.zoom,
                              highlightthickness=0, background="black", cursor="pencil")
        self.area.grid(row=0, column=0, padx=10, pady=10, sticky="nw")
        self.area_item = self.area.create_image(0, 0, anchor="nw")
        for button, erase in (("1", False), ("3", True)):
            self.area.bind("<ButtonPress-%s>" % button,
                           lambda event, erase=erase: self._press(event, erase))
            self.area.bind("<B%s-Motion>" % button,
                           lambda event, erase=erase: self._drag(event, erase))
            self.area.bind("<ButtonRelease-%s>" % button, self._release)

        right = tk.Frame(root, background=BACKGROUND)
        right.grid(row=0, column=1, padx=(0, 10), pady=10, sticky="nw")
        self._label(right, text="reconstruction").pack(anchor="w")
        self.reconstruction = self._label(right)
        self.reconstruction.pack(anchor="w")
        self._label(right, text="decoded window of each step").pack(anchor="w", pady=(10, 0))
        self.window_images, self.window_captions = [], []
        for t in range(self.model.config.max_steps):
            row = tk.Frame(right, background=BACKGROUND)
            row.pack(anchor="w", pady=3)
            colour = "#%02x%02x%02x" % step_colour(t)
            image = tk.Label(row, background=colour, borderwidth=0, padx=2, pady=2)
            image.pack(side="left")
            caption = self._label(row, foreground="#%02x%02x%02x" % text_colour(t),
                                  text="step %d" % (t + 1))
            caption.pack(side="left", padx=8)
            self.window_images.append(image)
            self.window_captions.append(caption)

        controls = tk.Frame(root, background=BACKGROUND)
        controls.grid(row=1, column=0, columnspan=2, padx=10, sticky="w")
        scale_options = dict(orient="horizontal", background=BACKGROUND, foreground="white",
                             highlightthickness=0, length=200)
        tk.Scale(controls, label="brush width (canvas px)", from_=1, to=5,
                 variable=self.brush, **scale_options).pack(side="left", padx=(0, 10))
        tk.Scale(controls, label="refresh period (ms)", from_=10, to=1000, resolution=10,
                 variable=self.period, **scale_options).pack(side="left", padx=(0, 10))
        tk.Checkbutton(controls, text="attention boxes", variable=self.show_boxes,
                       command=self._redraw, background=BACKGROUND, foreground="white",
                       selectcolor=BACKGROUND, activebackground=BACKGROUND,
                       highlightthickness=0).pack(side="left", padx=(0, 10))
        tk.Button(controls, text="Clear", command=self._clear).pack(side="left")
        self.status = self._label(root, text="loading...", anchor="w", font=("TkFixedFont", 11))
        self.status.grid(row=2, column=0, columnspan=2, padx=10, pady=(4, 10), sticky="we")
        self._show_drawing()

    # Mouse.
    def _press(self, event, erase):
        self.last_point = (event.x, event.y)
        self._drag(event, erase)

    def _drag(self, event, erase):
        point = (event.x, event.y)
        self.drawing.stroke(self.last_point or point, point, self.brush.get(), erase)
        self.last_point = point
        self._show_drawing()

    def _release(self, event):
        self.last_point = None

    def _clear(self):
        self.drawing.clear()
        self._show_drawing()

    # Panels.
    def _photo(self, key, picture):
        from PIL import ImageTk
        photo = ImageTk.PhotoImage(picture, master=self.root)
        self._images[key] = photo
        return photo

    def _show_drawing(self):
        picture = drawing_panel(self.drawing.canvas(), self.result, self.zoom,
                                self.show_boxes.get())
        self.area.itemconfigure(self.area_item, image=self._photo("drawing", picture))

    def _redraw(self):
        self._show_drawing()
        if self.result is None:
            return
        result = self.result
        self.reconstruction.configure(image=self._photo(
            "reconstruction", reconstruction_panel(result, RECONSTRUCTION_ZOOM,
                                                   self.show_boxes.get())))
        for t, (image, caption) in enumerate(zip(self.window_images, self.window_captions)):
            image.configure(image=self._photo(("window", t), window_panel(result, t, WINDOW_ZOOM)))
            caption.configure(text=window_caption(result, t))
        self.status.configure(text=status_text(result, self.seconds))

    # The refresh loop: re-run the model only when the drawing changed since the last run.
    def _tick(self):
        if self.drawing.version != self.shown_version:
            self.refresh()
        if self.args.screenshot and not self.screenshot_done and self.result is not None:
            self.screenshot_done = True
            self.save_screenshot(self.args.screenshot)
            if self.args.exit_after_screenshot:
                self.root.destroy()
                return
        if self.screenshot_requested and self.result is not None:
            # After the refresh above, so the picture shows the model's view of this drawing.
            self.screenshot_requested = False
            self.save_screenshot(self.args.screenshot or DEFAULT_SCREENSHOT)
        self.root.after(min(1000, max(10, self.period.get())), self._tick)

    def refresh(self):
        version = self.drawing.version
        canvas = self.drawing.canvas()
        start = time.perf_counter()
        self.result = self.model.predict(canvas)
        self.seconds = time.perf_counter() - start
        self.shown_version = version
        self.refreshes += 1
        self._redraw()
        if self.args.log:
            print("refresh %d: digits %d, negative ELBO %.1f, inference %.2f ms"
                  % (self.refreshes, int(self.result["digit_count"]),
                     float(self.result["negative_elbo"]), 1000.0 * self.seconds), flush=True)

    def drawing_area_geometry(self):
        """(x, y, width, height) of the drawing area on the screen."""
        self.root.update_idletasks()
        return (self.area.winfo_rootx(), self.area.winfo_rooty(),
                self.area.winfo_width(), self.area.winfo_height())

    def save_screenshot(self, path):
        """Grabs the window from the display, or draws the panels with Pillow if that fails."""
        self.root.update_idletasks()
        self.root.update()
        picture, how = None, "grabbed from the display"
        try:
            from PIL import ImageGrab
            left, top = self.root.winfo_rootx(), self.root.winfo_rooty()
            box = (left, top, left + self.root.winfo_width(), top + self.root.winfo_height())
            picture = ImageGrab.grab(bbox=box, xdisplay=os.environ.get("DISPLAY"))
            if is_blank(picture):
                picture = None
        except Exception:  # No XCB support or no access to the screen: render instead.
            picture = None
        if picture is None:
            how = "drawn from the panels"
            picture = render_screen(self.drawing.canvas(), self.result, self.seconds, self.zoom,
                                    self.show_boxes.get())
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        picture.save(path, format="PNG")
        print("saved screenshot %s (%s)" % (path, how), flush=True)


# ----------------------------------------------------------------------------------------------

def demo_latency(model, canvases, repeats=100, warmup=10):
    """Times ``model.predict`` on single canvases, as the demo runs it on every refresh.

    Returns (median, 90th percentile) in milliseconds over ``repeats`` runs after ``warmup``.
    """
    import numpy as np
    times = []
    for i in range(warmup + repeats):
        canvas = canvases[i % len(canvases)]
        start = time.perf_counter()
        model.predict(canvas)
        if i >= warmup:
            times.append(1000.0 * (time.perf_counter() - start))
    return float(np.median(times)), float(np.percentile(times, 90))


def refresh_latency(model, drawing, repeats=50, zoom=DEFAULT_ZOOM):
    """Times a whole refresh without Tk: stroke, canvas, inference and the Pillow panels.

    Returns (median, 90th percentile) in milliseconds.
    """
    import numpy as np
    times = []
    side = drawing.picture.size[0]
    for i in range(repeats):
        start = time.perf_counter()
        drawing.stroke((side * 0.3, side * (0.2 + 0.005 * i)), (side * 0.5, side * 0.7), 3,
                       erase=bool(i % 2))
        canvas = drawing.canvas()
        result = model.predict(canvas)
        drawing_panel(canvas, result, zoom, True)
        reconstruction_panel(result, RECONSTRUCTION_ZOOM, True)
        for t in range(len(result["live"])):
            window_panel(result, t, WINDOW_ZOOM)
        times.append(1000.0 * (time.perf_counter() - start))
    return float(np.median(times)), float(np.percentile(times, 90))


def benchmark_latency(model_dir=None, repeats=200):
    """The demo's latency figures for bench.py: [(name, value, unit)].

    Uses ``model_dir`` when it holds a model, else an untrained model of the default
    configuration (the same graph, so the same cost).
    """
    import shutil
    import tempfile
    import numpy as np
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    from air import inference
    from air.checkpoints import CheckpointError, find_checkpoint
    from air.config import AIRConfig
    temporary = None
    try:
        try:
            find_checkpoint(model_dir or "")
            source = "trained model in %s" % model_dir
        except CheckpointError:
            temporary = tempfile.mkdtemp(prefix="bench-demo-")
            model_dir = temporary
            inference.save_untrained_model(model_dir, AIRConfig())
            source = "untrained default configuration"
        with inference.LoadedModel(model_dir) as model:
            height, width = model.canvas_shape
            drawing = Drawing(height, width, DEFAULT_ZOOM)
            canvases = []
            for k in range(10):  # Drawings of one to three strokes.
                drawing.stroke((40 * k + 50, 100), (40 * k + 120, 400), 1 + k % 5)
                canvases.append(drawing.canvas())
            median, p90 = demo_latency(model, canvases, repeats)
            refresh_median, refresh_p90 = refresh_latency(model, drawing, max(10, repeats // 4))
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    print("demo latency measured on the %s" % source, file=sys.stderr)
    return [("inference per refresh, median", median, "ms"),
            ("inference per refresh, 90th percentile", p90, "ms"),
            ("whole refresh without Tk, median", refresh_median, "ms"),
            ("whole refresh without Tk, 90th percentile", refresh_p90, "ms")]


def run(args):
    display = os.environ.get("DISPLAY")
    if not display:
        raise DemoError("no display: $DISPLAY is not set (run on a desktop, over ssh -X, or "
                        "under xvfb-run)")
    if args.exit_after_screenshot and not args.screenshot:
        raise DemoError("--exit-after-screenshot needs --screenshot PATH")
    if args.screenshot and os.path.isdir(args.screenshot):
        raise DemoError("--screenshot %s is a folder: give a file name" % args.screenshot)
    from air import inference
    from air.checkpoints import CheckpointError, find_checkpoint, read_config
    try:
        config = read_config(args.model_dir)  # Fails fast, before TensorFlow loads.
    except CheckpointError as error:
        raise DemoError(str(error))
    height, width = config.canvas_height, config.canvas_width
    initial = None
    if args.image:
        initial = load_picture(args.image, height, width)

    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    try:
        find_checkpoint(args.model_dir)
    except CheckpointError as error:
        raise DemoError(str(error))
    if args.sample is not None:
        initial = load_sample(args.data, args.sample, height, width)

    import numpy as np
    try:
        import tkinter as tk
    except ImportError as error:
        raise DemoError("this Python (%s) has no tkinter: %s (Debian: apt-get install "
                        "python3-tk, or rebuild Python with tk-dev installed)"
                        % (sys.executable, error))
    try:
        root = tk.Tk()
    except tk.TclError as error:
        raise DemoError("cannot open display %s: %s" % (display, error))
    try:
        try:
            model = inference.LoadedModel(args.model_dir, threads=args.threads)
        except CheckpointError as error:
            raise DemoError(str(error))
        # The first run of a graph also optimises it (about a second): do it before the
        # window opens, so the first refresh shows the steady-state inference time.
        model.predict(np.zeros(model.canvas_shape, np.float32))
        app = DemoApp(root, model, args, initial)
        # Ctrl-C and SIGTERM close the window cleanly (the refresh timer lets Python see them).
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *unused: root.quit())
        signal.signal(signal.SIGUSR1, lambda *unused: setattr(app, "screenshot_requested", True))
        if args.log:
            print("ready: %s, drawing area at x=%d y=%d width=%d height=%d, window at x=%d y=%d"
                  % ((model.checkpoint,) + app.drawing_area_geometry()
                     + (root.winfo_rootx(), root.winfo_rooty())), flush=True)
        root.mainloop()
    finally:
        try:
            root.destroy()
        except tk.TclError:
            pass  # Already closed by the user or by --exit-after-screenshot.
    return 0


def main(argv=None):
    return cli.main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
