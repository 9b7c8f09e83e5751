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

from air import cli
from air.visualisation.rendering import DEFAULT_ZOOM

DEFAULT_PERIOD_MS = 50
MAX_THREADS = 1024


def build_parser():
    parser = argparse.ArgumentParser(
        description="Draw digits and watch AIR attend to and reconstruct them in real time.",
        formatter_class=cli.HelpFormatter)
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


def load_sample(path, index, height, width):
    """Takes a record file and an index to that held-out image, float32 [height, width]."""
    from air.data import records
    if not os.path.isfile(path):
        raise cli.UserError("--sample: record file %s not found (run `make data`, or give --data)"
                            % path)
    try:
        images = records.read_records(path).images
    except Exception as error:  # Any failure to parse is the file's fault, not the demo's.
        raise cli.UserError("--sample: cannot read %s: %s" % (path, error))
    if not 0 <= index < len(images):
        raise cli.UserError("--sample %d: %s holds images 0 to %d" % (index, path, len(images) - 1))
    mismatch = records.shape_mismatch(path, images.shape[1:], (height, width))
    if mismatch:
        raise cli.UserError(mismatch)
    return images[index]


def run(args):
    display = os.environ.get("DISPLAY")
    if not display:
        raise cli.UserError("no display: $DISPLAY is not set (run on a desktop, over ssh -X, or "
                            "under xvfb-run)")
    if args.exit_after_screenshot and not args.screenshot:
        raise cli.UserError("--exit-after-screenshot needs --screenshot PATH")
    if args.screenshot and os.path.isdir(args.screenshot):
        raise cli.UserError("--screenshot %s is a folder: give a file name" % args.screenshot)
    from air.training.checkpoints import find_checkpoint, read_config
    from air.visualisation.rendering import load_picture
    config = read_config(args.model_dir)  # Fails fast, before TensorFlow loads.
    height, width = config.canvas_height, config.canvas_width
    initial = None
    if args.image:
        initial = load_picture(args.image, height, width)

    cli.import_tensorflow()
    from air.evaluation import model_folder
    from air.visualisation.demo_window import DemoApp
    find_checkpoint(args.model_dir)
    if args.sample is not None:
        initial = load_sample(args.data, args.sample, height, width)

    import numpy as np
    try:
        import tkinter as tk
    except ImportError as error:
        raise cli.UserError("this Python (%s) has no tkinter: %s (Debian: apt-get install "
                            "python3-tk, or rebuild Python with tk-dev installed)"
                            % (sys.executable, error))
    try:
        root = tk.Tk()
    except tk.TclError as error:
        raise cli.UserError("cannot open display %s: %s" % (display, error))
    try:
        model = model_folder.LoadedModel(args.model_dir, threads=args.threads)
        # The first run of a graph also optimises it (about a second): do it before the
        # window opens, so the first refresh shows the steady-state inference time.
        model.predict(np.zeros(model.canvas_shape, np.float32))
        app = DemoApp(root, model, args, initial)
        # Ctrl-C and SIGTERM close the window cleanly (the refresh timer lets Python see them).
        cli.StopSignals(on_signal=lambda signum: root.quit())
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


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
