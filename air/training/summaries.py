"""TensorBoard summaries of an AIRModel: they only read its outputs (the model never imports this).

Four groups, each merged separately so the training loop can run them at their own period:
scalars, variable/latent histograms, gradient histograms and attention images.
"""
import tensorflow.compat.v1 as tf

from air.visualisation.colours import step_colour


def scalar_summaries(model, train_ops=None, learning_rate=None, digit_counts=(0, 1, 2)):
    """Loss and each term, count accuracy (overall and per true count), steps, prior, optimiser."""
    summaries = [
        tf.summary.scalar("loss/negative_elbo", model.loss),
        tf.summary.scalar("loss/reconstruction", tf.reduce_mean(model.reconstruction_loss)),
        tf.summary.scalar("loss/kl_z_pres", tf.reduce_mean(model.kl_z_pres)),
        tf.summary.scalar("loss/kl_z_where", tf.reduce_mean(model.kl_z_where)),
        tf.summary.scalar("loss/kl_z_what", tf.reduce_mean(model.kl_z_what)),
        tf.summary.scalar("steps/average_digits_found",
                          tf.reduce_mean(tf.cast(model.digit_count, tf.float32))),
        tf.summary.scalar("steps/average_steps_attempted",
                          tf.reduce_mean(tf.reduce_sum(model.steps.attempted, axis=1))),
        tf.summary.scalar("z_pres/prior_log_odds", model.z_pres_prior_log_odds),
    ]
    if hasattr(model, "accuracy"):
        summaries.append(tf.summary.scalar("accuracy/all", model.accuracy))
        for k in digit_counts:
            summaries.append(tf.summary.scalar("accuracy/%d_digits" % k,
                                               model.accuracy_by_count[k]))
    if train_ops is not None:
        summaries += [tf.summary.scalar("optimiser/gradient_global_norm", train_ops.gradient_norm),
                      tf.summary.scalar("optimiser/skipped_updates", train_ops.skipped_updates)]
    if learning_rate is not None:
        summaries.append(tf.summary.scalar("optimiser/learning_rate", learning_rate))
    return tf.summary.merge(summaries)


def finite_histogram(name, values):
    """A histogram summary of the finite entries of ``values``.

    TensorFlow's histogram op fails on NaN or inf ("Nan in summary histogram"), and a
    non-finite loss, whose update is skipped, must not end the run through its summaries.
    """
    flat = tf.reshape(values, [-1])
    return tf.summary.histogram(name, tf.boolean_mask(flat, tf.is_finite(flat)))


def variable_summaries(model):
    """Histograms of the trainable variables and of the inferred latents of each step."""
    summaries = [finite_histogram("variables/" + v.op.name, v)
                 for v in tf.trainable_variables()]
    steps = model.steps
    for t in range(model.config.max_steps):
        live = steps.live[:, t] > 0.5
        summaries += [
            finite_histogram("z_pres/step_%d" % (t + 1), steps.z_pres[:, t]),
            finite_histogram("z_pres_log_odds/step_%d" % (t + 1), steps.z_pres_log_odds[:, t]),
            # Only objects that exist: the positions of stopped steps say nothing.
            finite_histogram("z_where/scale_step_%d" % (t + 1),
                                 tf.boolean_mask(steps.scale[:, t], live)),
            finite_histogram("z_where/shift_x_step_%d" % (t + 1),
                                 tf.boolean_mask(steps.shift[:, t, 0], live)),
            finite_histogram("z_where/shift_y_step_%d" % (t + 1),
                                 tf.boolean_mask(steps.shift[:, t, 1], live)),
            finite_histogram("z_what/step_%d" % (t + 1),
                                 tf.boolean_mask(steps.z_what[:, t], live)),
        ]
    return tf.summary.merge(summaries)


def gradient_summaries(train_ops):
    """Histograms of the clipped gradient of every variable."""
    return tf.summary.merge([finite_histogram("gradients/" + v.op.name, g)
                             for g, v in train_ops.gradients if g is not None])


def box_outlines(boxes, height, width):
    """Takes pixel boxes [B, 4] (x_min, y_min, w, h) to 1-pixel outline masks [B, H, W]."""
    rows = tf.range(height, dtype=tf.float32)[None, :, None] + 0.5
    cols = tf.range(width, dtype=tf.float32)[None, None, :] + 0.5
    x0 = boxes[:, 0, None, None]
    y0 = boxes[:, 1, None, None]
    x1 = x0 + boxes[:, 2, None, None]
    y1 = y0 + boxes[:, 3, None, None]
    inside_x = (cols >= x0 - 0.5) & (cols <= x1 + 0.5)
    inside_y = (rows >= y0 - 0.5) & (rows <= y1 + 0.5)
    on_vertical = ((tf.abs(cols - x0) <= 0.5) | (tf.abs(cols - x1) <= 0.5)) & inside_y
    on_horizontal = ((tf.abs(rows - y0) <= 0.5) | (tf.abs(rows - y1) <= 0.5)) & inside_x
    return tf.cast(on_vertical | on_horizontal, tf.float32)


def attention_images(model, max_images=8):
    """RGB [N, H, 2W + 1, 3]: each original with live windows drawn in colour | reconstruction."""
    config = model.config
    height, width = config.canvas_height, config.canvas_width
    images = model.images[:max_images]
    canvas = tf.clip_by_value(model.canvas[:max_images], 0.0, 1.0)
    drawn = tf.tile(images[..., None], [1, 1, 1, 3])
    for t in range(config.max_steps):
        outline = box_outlines(model.boxes[:max_images, t], height, width)
        # Reshape, not [:n, t, None, None]: TF 2.21's graph optimiser drops the new axes of
        # that slice when it takes the whole batch (batch_size == max_images) -> shape error.
        outline *= tf.reshape(model.steps.live[:max_images, t], [-1, 1, 1])
        colour = tf.constant(step_colour(t))
        drawn = drawn * (1.0 - outline[..., None]) + outline[..., None] * colour
    separator = tf.ones_like(images[:, :, :1, None]) * tf.constant([0.5, 0.5, 0.5])
    reconstruction = tf.tile(canvas[..., None], [1, 1, 1, 3])
    return tf.concat([drawn, separator, reconstruction], axis=2)


def image_summaries(model, max_images=8):
    """Originals with each step's attention window (red, green, blue) beside reconstructions."""
    return tf.summary.image("attention", attention_images(model, max_images), max_images)
