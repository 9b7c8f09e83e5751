"""The colour of each inference step, shared by the summaries, the charts and the demo.

A module of its own, without dependencies, so that drawing code gets the colours without
importing TensorFlow (air/training/summaries.py) or matplotlib (air/visualisation/plots.py).
"""

# Colour of each step's attention window as RGB in [0, 1]: red, green, blue, then yellow,
# cyan, magenta.
STEP_COLOURS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0),
                (1.0, 1.0, 0.0), (0.0, 1.0, 1.0), (1.0, 0.0, 1.0))


def step_colour(step):
    """Takes a step index to its colour as RGB in [0, 1] (the steps beyond six repeat them)."""
    return STEP_COLOURS[step % len(STEP_COLOURS)]


def step_colour_8bit(step):
    """The same colour as 8-bit RGB in 0-255, for Pillow and Tk."""
    return tuple(int(255 * c) for c in step_colour(step))
