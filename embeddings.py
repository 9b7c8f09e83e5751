"""TensorBoard projector of the z_what space: does appearance cluster by digit label, unsupervised?

    python embeddings.py [--model-dir model/] [--data FILE] [--num-images N]
                         [--output-dir embeddings/] [--max-distance 0.2]
    tensorboard --logdir embeddings/    # then the PROJECTOR tab: t-SNE or PCA, colour by label

The test-mode model (z_pres rounded, posterior means) reads held-out images. Every attended
(live) window whose centre lies within ``--max-distance`` of a true digit's centre (as a fraction
of the canvas side) is kept with that digit's label; its z_what mean is one point of the
projection. Output folder:

  embeddings.ckpt-*    checkpoint of the variable ``z_what`` [points, z_what size]
  checkpoint           TensorFlow's index of it (relative paths: the folder can be moved)
  metadata.tsv         header + one row per point: label, digits in image, step (1-based)
  sprite.png           the attended windows, one tile per point, row-major
  projector_config.pbtxt   names the tensor, metadata and sprite for TensorBoard
  pca.png              first two principal components coloured by label (numpy SVD)
"""
import argparse
import os
import sys

from air import cli
from air.visualisation import projector


def build_parser():
    parser = argparse.ArgumentParser(
        description="Write a TensorBoard projector log of the z_what of attended digits, and a "
                    "PCA plot.", formatter_class=cli.HelpFormatter)
    parser.add_argument("--model-dir", default="model/",
                        help="folder with config.json and checkpoints (training.py's "
                             "RESULTS_DIR/model)")
    parser.add_argument("--data", default="multi_mnist_data/test.tfrecords",
                        help="held-out record file (with digit positions and labels)")
    parser.add_argument("--num-images", type=cli.integer(minimum=1), default=None,
                        help="use the first N images of --data (default: all)")
    parser.add_argument("--output-dir", default="embeddings/",
                        help="TensorBoard log folder to write (files in it are replaced)")
    parser.add_argument("--max-distance", type=cli.number(0.0, exclusive_minimum=True),
                        default=0.2,
                        help="largest distance between a window's centre and a true digit's "
                             "centre, as a fraction of the canvas side")
    parser.add_argument("--batch-size", type=cli.integer(minimum=1), default=500,
                        help="images per forward pass")
    return parser


def run(args):
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise cli.UserError("--output-dir %s is a file, not a folder" % args.output_dir)
    from air.training.checkpoints import read_config
    read_config(args.model_dir)  # Fails fast, before TensorFlow loads.
    if not os.path.isfile(args.data):
        raise cli.UserError("record file %s not found (run `make data`, or give --data)"
                            % args.data)

    import numpy as np
    cli.import_tensorflow()
    from air.evaluation import model_folder
    from air.data import records

    try:
        data = records.read_records(args.data)
    except Exception as error:  # Any failure to parse is the file's fault.
        raise cli.UserError("cannot read %s: %s" % (args.data, error))
    count = len(data.images) if args.num_images is None else min(args.num_images,
                                                                   len(data.images))
    if count == 0:
        raise cli.UserError("%s holds no images" % args.data)
    model = model_folder.LoadedModel(args.model_dir)
    config = model.config
    mismatch = records.shape_mismatch(args.data, data.images.shape[1:], model.canvas_shape)
    if mismatch:
        raise cli.UserError(mismatch)
    with model:
        result = model.predict_batches(data.images[:count], args.batch_size)

    kept = projector.match_windows(result["boxes"], result["live"], data.positions[:count],
                                   data.boxes[:count], data.labels[:count], data.digits[:count],
                                   config.canvas_height, config.canvas_width, args.max_distance)
    attended = int(np.sum(result["live"] > 0.5))
    if not kept:
        raise cli.UserError(
            "none of the %d attended windows in %d images lies within %.2f of a digit's centre "
            "(a barely trained model attends to little: train longer or raise --max-distance)"
            % (attended, count, args.max_distance))
    images = np.array([k[0] for k in kept])
    steps = np.array([k[1] for k in kept])
    points = result["z_what_mean"][images, steps]
    windows = result["windows"][images, steps]

    sprite = projector.sprite_image(windows)
    if max(sprite.size) > projector.MAX_SPRITE_SIDE:
        raise cli.UserError("%d windows make a %dx%d sprite, larger than TensorBoard's %d "
                            "pixels: use fewer --num-images" % ((len(kept),) + sprite.size
                                                                 + (projector.MAX_SPRITE_SIDE,)))
    metadata = [(label, int(data.digits[image]), step + 1) for image, step, label in kept]
    projector.write_files(args.output_dir, points.astype(np.float32), metadata, sprite,
                          config.window_size)

    digits = int(np.sum(data.digits[:count]))
    print("%d of %d attended windows matched a digit (%d digits in %d images); wrote %s"
          % (len(kept), attended, digits, count, args.output_dir))
    print("view with: tensorboard --logdir %s  (PROJECTOR tab, colour by label)" % args.output_dir)
    return 0


main = cli.entry_point(build_parser, run)  # main(argv=None) -> exit status


if __name__ == "__main__":
    sys.exit(main())
