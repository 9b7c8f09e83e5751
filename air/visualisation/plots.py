"""Matplotlib figures of AIR runs: held-out accuracy, loss terms, attention samples.

Every function here builds a ``matplotlib.figure.Figure`` on the Agg canvas directly, not
through pyplot, so nothing here depends on a display or on global backend state; ``save``
writes a PNG. (The sweep report's and the projector's figures do use pyplot, on Agg.)
The inputs are plain numpy arrays and dicts, so demos and notebooks can reuse the drawing.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.patches import Rectangle

from air.visualisation.colours import step_colour

# Subsets of the accuracy chart: (metrics.csv column, panel title).
ACCURACY_PANELS = (("heldout_accuracy", "all held-out images"),
                   ("heldout_accuracy_0", "0 digits"),
                   ("heldout_accuracy_1", "1 digit"),
                   ("heldout_accuracy_2", "2 digits"))
# Loss panels: (metrics.csv column, title, sign applied to the column).
LOSS_PANELS = (("loss", "training loss (negative ELBO)", 1.0),
               ("reconstruction", "reconstruction (-log p(x|z))", 1.0),
               ("kl_z_pres", "KL z_pres", 1.0),
               ("kl_z_where", "KL z_where", 1.0),
               ("kl_z_what", "KL z_what", 1.0),
               ("heldout_discrete_elbo_final_prior",
                "held-out negative ELBO (sampled, final prior)", -1.0))
# Columns of older metrics.csv files, drawn dashed (and labelled) in the panel of the column
# that replaced them, for runs without that column: {new column: (old column, label suffix)}.
LEGACY_COLUMNS = {"heldout_discrete_elbo_final_prior": ("heldout_elbo", " (old: plug-in at means)")}


def new_figure(width, height):
    """A Figure of width x height inches on an Agg canvas."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save(figure, path, dpi=100):
    """Writes the figure as a PNG."""
    figure.savefig(path, dpi=dpi, format="png")


def _plot_runs(axes, runs, column, sign=1.0):
    """Draws one line per run of ``column`` (or of its LEGACY_COLUMNS column, dashed) against
    iteration; returns True if any was drawn."""
    drawn = False
    legacy_column, legacy_suffix = LEGACY_COLUMNS.get(column, (None, ""))
    for label, metrics in runs:
        style = {}
        if column not in metrics and legacy_column in metrics:
            column_drawn, label, style = legacy_column, label + legacy_suffix, {"linestyle": "--"}
        else:
            column_drawn = column
        if column_drawn not in metrics or len(metrics["iteration"]) == 0:
            continue
        values = sign * np.asarray(metrics[column_drawn], np.float64)
        # Markers while there are few points, so a short run is not an invisible stub.
        axes.plot(metrics["iteration"], values, label=label, linewidth=1.2,
                  marker="o" if len(values) < 30 else None, markersize=3, **style)
        drawn = True
    axes.grid(True, alpha=0.3)
    return drawn


def accuracy_figure(runs):
    """Held-out count accuracy over iterations: one large panel for all images, three small ones.

    Args:
        runs: list of (label, metrics) where metrics maps metrics.csv columns to arrays.
    """
    figure = new_figure(10, 7.5)
    grid = GridSpec(2, 3, figure=figure, height_ratios=[2, 1], hspace=0.35, wspace=0.25)
    panels = [figure.add_subplot(grid[0, :])] + [figure.add_subplot(grid[1, k]) for k in range(3)]
    for axes, (column, title) in zip(panels, ACCURACY_PANELS):
        _plot_runs(axes, runs, column)
        axes.set_title(title, fontsize=12 if axes is panels[0] else 10)
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlabel("iteration")
    panels[0].set_ylabel("count accuracy")
    _label(figure, panels[0], runs, "lower right")
    return figure


def _label(figure, axes, runs, location):
    """A legend when runs are compared; the run's name as the title when there is one."""
    if len(runs) > 1:
        axes.legend(loc=location, fontsize=8)
    elif runs and runs[0][0]:
        figure.suptitle(runs[0][0], fontsize=10)


def loss_figure(runs):
    """The loss terms (means over the iterations since the previous row) over iterations."""
    figure = new_figure(12, 6.5)
    grid = GridSpec(2, 3, figure=figure, hspace=0.4, wspace=0.3)
    for k, (column, title, sign) in enumerate(LOSS_PANELS):
        axes = figure.add_subplot(grid[k // 3, k % 3])
        _plot_runs(axes, runs, column, sign)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("iteration")
        if k == 0:
            _label(figure, axes, runs, "upper right")
    return figure


def draw_attention(axes, image, boxes, live):
    """Draws a grey image with the box of each live step in its colour (red, green, blue, ...).

    Args:
        image: [H, W] in [0, 1].
        boxes: [T, 4] pixel boxes (x_min, y_min, width, height), pixel i spanning [i, i + 1).
        live: [T], 1 where the step found an object.
    """
    axes.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    for t, (box, is_live) in enumerate(zip(boxes, live)):
        if is_live > 0.5:
            # imshow centres pixel i on coordinate i: shift the box by half a pixel.
            axes.add_patch(Rectangle((box[0] - 0.5, box[1] - 0.5), box[2], box[3], fill=False,
                                     linewidth=1.5,
                                     edgecolor=step_colour(t)))
    _bare(axes, image.shape)


def _bare(axes, shape):
    axes.set_xlim(-0.5, shape[1] - 0.5)
    axes.set_ylim(shape[0] - 0.5, -0.5)
    axes.set_xticks([])
    axes.set_yticks([])


def samples_figure(images, canvases, boxes, live, true_counts=None, columns=2, title=None):
    """A grid of samples, each the original with its attention windows | the reconstruction.

    Args:
        images, canvases: [N, H, W] originals and reconstructions.
        boxes: [N, T, 4] pixel boxes; live: [N, T].
        true_counts: optional [N] true digit counts, shown beside the number found.
        columns: samples per row.
    """
    count = len(images)
    rows = max(1, int(np.ceil(count / float(columns))))
    title_space = 0.45 if title else 0.05
    height = 1.45 * rows + title_space
    figure = new_figure(2.6 * columns, height)
    grid = GridSpec(rows, 2 * columns, figure=figure, wspace=0.05, hspace=0.3, left=0.02,
                    right=0.98, bottom=0.03, top=1.0 - title_space / height)
    for i in range(count):
        row, column = divmod(i, columns)
        left = figure.add_subplot(grid[row, 2 * column])
        right = figure.add_subplot(grid[row, 2 * column + 1])
        draw_attention(left, images[i], boxes[i], live[i])
        right.imshow(np.clip(canvases[i], 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0,
                     interpolation="nearest")
        _bare(right, canvases[i].shape)
        found = int(np.sum(np.asarray(live[i]) > 0.5))
        caption = ("found %d" % found if true_counts is None
                   else "%d digit%s, found %d" % (true_counts[i], "" if true_counts[i] == 1 else "s",
                                                  found))
        left.set_title(caption, fontsize=7, loc="left")
    if title:
        figure.suptitle(title, fontsize=10, y=1.0 - 0.1 / height, va="top")
    return figure


def pick_samples(digit_counts, count):
    """Indices of ``count`` images taking turns over the digit counts (0, 1, 2, 0, ...)."""
    by_count = [list(np.flatnonzero(digit_counts == k)) for k in np.unique(digit_counts)]
    chosen = []
    while len(chosen) < count and any(by_count):
        for indices in by_count:
            if indices and len(chosen) < count:
                chosen.append(indices.pop(0))
    return np.array(chosen, np.int64)
