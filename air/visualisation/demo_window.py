"""The demo's Tk window: the drawing area with the mouse, the controls, the panels of
air/visualisation/rendering.py, the refresh loop that re-runs the model when the drawing changed, and the
screenshots.
"""
import os
import time

from air.visualisation.rendering import (BACKGROUND, RECONSTRUCTION_ZOOM, WINDOW_ZOOM, Drawing, drawing_panel,
                           is_blank, reconstruction_panel, render_screen, status_text,
                           text_colour, window_caption, window_panel)
from air.visualisation.colours import step_colour_8bit

DEFAULT_BRUSH = 3         # brush width in canvas pixels (MNIST strokes are about 2-3 wide)
DEFAULT_SCREENSHOT = "demo-screenshot.png"  # where SIGUSR1 saves one without --screenshot


class DemoApp:
    """The Tk window: drawing area, controls, reconstruction and step panels, status line.

    ``model`` is an inference.LoadedModel; ``args`` demo.py's options (zoom, period, model_dir,
    screenshot, exit_after_screenshot, log); ``initial`` an optional starting canvas [H, W].
    """

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
            colour = "#%02x%02x%02x" % step_colour_8bit(t)
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
