"""The files of the z_what projector (embeddings.py): which attended windows match which
digits, the sprite, the projector config, the checkpoint of the points and the PCA plot.

No TensorBoard import: the projector config is written as protobuf text by hand.
"""
import math
import os

TENSOR_NAME = "z_what"
CHECKPOINT_NAME = "embeddings.ckpt"
METADATA_NAME = "metadata.tsv"
SPRITE_NAME = "sprite.png"
PROJECTOR_CONFIG_NAME = "projector_config.pbtxt"  # The file name TensorBoard's plugin looks for.
PCA_NAME = "pca.png"
METADATA_COLUMNS = ("label", "digits", "step")
MAX_SPRITE_SIDE = 8192  # TensorBoard's projector refuses larger sprite images.


def true_centres(positions, boxes):
    """Takes digit corners and sizes [..., 2] (pixels) to their centres [..., 2] (x, y)."""
    return positions + boxes / 2.0


def window_centres(boxes):
    """Takes predicted pixel boxes [..., 4] (x_min, y_min, width, height) to centres [..., 2]."""
    return boxes[..., :2] + boxes[..., 2:] / 2.0


def match_windows(predicted_boxes, live, digit_positions, digit_boxes, digit_labels,
                  digit_counts, canvas_height, canvas_width, max_distance):
    """Pairs each live window with the nearest true digit, if close enough.

    Args:
        predicted_boxes: [N, T, 4] pixel boxes of the model's windows.
        live: [N, T] 1 where the step found an object.
        digit_positions, digit_boxes: [N, M, 2] true top-left corners and sizes (x, y), padded.
        digit_labels: [N, M] true classes, padded with -1.
        digit_counts: [N] true number of digits.
        canvas_height, canvas_width: canvas size, the units of ``max_distance``.
        max_distance: largest centre distance, as a fraction of the canvas side.

    Returns:
        A list of (image, step, label) for the kept windows, in image then step order. Two
        windows on the same digit are both kept: each is a view of that digit.
    """
    import numpy as np
    kept = []
    scale = np.array([canvas_width, canvas_height], np.float64)
    centres = window_centres(np.asarray(predicted_boxes, np.float64)) / scale
    digits = true_centres(np.asarray(digit_positions, np.float64),
                          np.asarray(digit_boxes, np.float64)) / scale
    for image in range(len(centres)):
        count = int(digit_counts[image])
        if count == 0:
            continue
        for step in range(centres.shape[1]):
            if live[image, step] < 0.5:
                continue  # A stopped step attends to nothing.
            distances = np.sqrt(np.sum((digits[image, :count] - centres[image, step]) ** 2,
                                       axis=1))
            nearest = int(np.argmin(distances))
            if distances[nearest] <= max_distance:
                kept.append((image, step, int(digit_labels[image, nearest])))
    return kept


def sprite_image(windows):
    """Takes windows [P, w, w] in [0, 1] to a square sprite (Pillow "L" image), row-major tiles."""
    import numpy as np
    from PIL import Image
    count, side = windows.shape[0], windows.shape[1]
    per_row = max(1, int(math.ceil(math.sqrt(count))))
    sheet = np.zeros([per_row * side, per_row * side], np.uint8)
    for i, window in enumerate(windows):
        row, column = divmod(i, per_row)
        sheet[row * side:(row + 1) * side, column * side:(column + 1) * side] = (
            np.clip(window, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(sheet, mode="L")


def projector_config_text(tensor_name, metadata_name, sprite_name, window_side):
    """The projector config in protobuf text format (written by hand: no TensorBoard import).

    No model_checkpoint_path: the plugin then uses the folder's latest checkpoint, which keeps
    the folder movable. Relative asset paths are resolved against the config's folder.
    """
    return ('embeddings {\n'
            '  tensor_name: "%s"\n'
            '  metadata_path: "%s"\n'
            '  sprite {\n'
            '    image_path: "%s"\n'
            '    single_image_dim: %d\n'
            '    single_image_dim: %d\n'
            '  }\n'
            '}\n' % (tensor_name, metadata_name, sprite_name, window_side, window_side))


def principal_components(points, count=2):
    """Takes points [P, D] to their coordinates [P, count] on the first principal axes (SVD).

    Missing axes (fewer points or dimensions than ``count``) are zero columns.
    """
    import numpy as np
    points = np.asarray(points, np.float64)
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    projected = centred.dot(axes[:count].T)
    if projected.shape[1] < count:
        projected = np.pad(projected, [(0, 0), (0, count - projected.shape[1])], "constant")
    return projected


def write_pca_plot(path, points, labels):
    """Scatter of the first two principal components, one colour per label, with a legend."""
    import matplotlib
    matplotlib.use("Agg")  # Files only: no display needed.
    import matplotlib.pyplot as plt
    import numpy as np
    projected = principal_components(points)
    figure, axes = plt.subplots(figsize=(7, 6), dpi=100)
    colours = plt.get_cmap("tab10")
    for label in sorted(set(int(v) for v in labels)):
        mask = np.asarray(labels) == label
        axes.scatter(projected[mask, 0], projected[mask, 1], s=8, alpha=0.7,
                     color=colours(label % 10), label=str(label))
    axes.set_xlabel("principal component 1")
    axes.set_ylabel("principal component 2")
    axes.set_title("z_what means of %d attended digits, coloured by true label" % len(points))
    axes.legend(title="label", loc="best", markerscale=2, fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_checkpoint(output_dir, values):
    """Saves ``values`` [P, D] as the variable ``z_what`` in a checkpoint in ``output_dir``."""
    import tensorflow.compat.v1 as tf
    from air import devices
    with tf.Graph().as_default():
        variable = tf.Variable(values, name=TENSOR_NAME, dtype=tf.float32)
        # Relative paths in the 'checkpoint' index keep the folder movable.
        saver = tf.train.Saver([variable], save_relative_paths=True)
        with tf.Session(config=devices.session_config()) as session:
            session.run(variable.initializer)
            # No meta graph: the projector reads only the variable (and the graph would hold
            # a second copy of the values as the initialiser's constant).
            return saver.save(session, os.path.join(output_dir, CHECKPOINT_NAME),
                              write_meta_graph=False)


def clear_previous_checkpoints(output_dir):
    """Removes an earlier run's checkpoint files, so TensorBoard finds only the new one."""
    for name in os.listdir(output_dir):
        if name == "checkpoint" or name.startswith(CHECKPOINT_NAME + "."):
            os.remove(os.path.join(output_dir, name))


def write_files(output_dir, points, metadata, sprite, window_side):
    """Writes the projector folder: the points [P, D] as the checkpointed variable, metadata.tsv
    (a (label, digits, step) row per point), the sprite, the projector config and pca.png."""
    os.makedirs(output_dir, exist_ok=True)
    clear_previous_checkpoints(output_dir)
    write_checkpoint(output_dir, points)
    with open(os.path.join(output_dir, METADATA_NAME), "w") as f:
        # The projector reads a header row only when there are several columns (we have three).
        f.write("\t".join(METADATA_COLUMNS) + "\n")
        for row in metadata:
            f.write("%d\t%d\t%d\n" % row)
    sprite.save(os.path.join(output_dir, SPRITE_NAME))
    with open(os.path.join(output_dir, PROJECTOR_CONFIG_NAME), "w") as f:
        f.write(projector_config_text(TENSOR_NAME, METADATA_NAME, SPRITE_NAME, window_side))
    write_pca_plot(os.path.join(output_dir, PCA_NAME), points, [row[0] for row in metadata])
