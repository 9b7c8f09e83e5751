"""The gradient noise of the z_pres estimators, measured: the variance of the gradient that the
z_pres network's parameters receive, over independent draws on one fixed training batch.

For each estimator measured, a training-mode model of the same variables is built on the batch;
each draw is one run of its training objective's gradient (the samplers draw anew every run).
The figure is the variance over draws of each parameter's gradient, averaged over the parameters
(the trace of the covariance divided by their number). An estimator can be measured in a run
of another only if it has no learnt parts of its own: a concrete run measures the relaxation;
an NVIL run measures NVIL (with its trained baseline) and the relaxation, on the same weights;
a VIMCO run measures VIMCO (its K samples of each image: K times a draw's cost) and the
relaxation.
"""
import numpy as np

# The variable scope of the z_pres network inside the model's scope (air/model/air_model.py).
Z_PRES_NETWORK_SCOPE = "air/z_pres/"


def column(estimator):
    """The metrics.csv column of an estimator's gradient variance."""
    return "z_pres_gradient_variance_" + estimator


def measurable_estimators(config):
    """The estimators a run of ``config`` can measure: its own first, then the relaxation."""
    return [config.z_pres_estimator] + (["concrete"] if config.z_pres_estimator != "concrete"
                                        else [])


class GradientNoiseProbe:
    """Builds, in the current graph, one gradient per estimator on a fed batch of images."""

    def __init__(self, config, images, global_step, draws):
        import tensorflow.compat.v1 as tf
        from air.config import with_estimator
        from air.model.air_model import AIRModel
        self.images = np.asarray(images, np.float32)
        self.draws = draws
        self._placeholder = tf.placeholder(tf.float32, [None, config.canvas_height,
                                                        config.canvas_width])
        variables_before = set(tf.global_variables())
        self.gradients = {}
        for estimator in measurable_estimators(config):
            model = AIRModel(self._placeholder, with_estimator(config, estimator)
                             if estimator != config.z_pres_estimator else config,
                             training=True, global_step=global_step)
            variables = [v for v in tf.trainable_variables()
                         if v.name.startswith(Z_PRES_NETWORK_SCOPE)]
            self.gradients[estimator] = tf.gradients(model.objective.loss, variables)
        # The probe shares the run's variables: a new one would be untrained (and unsaved).
        created = set(tf.global_variables()) - variables_before
        if created:
            raise ValueError("the gradient probe created variables: %s"
                             % ", ".join(sorted(v.name for v in created)))

    def measure(self, session):
        """{metrics.csv column: the mean over the z_pres network's parameters of the variance of
        their gradient over ``draws`` runs}."""
        feed = {self._placeholder: self.images}
        results = {}
        for estimator, gradients in self.gradients.items():
            draws = [np.concatenate([g.ravel() for g in session.run(gradients, feed)])
                     for _ in range(self.draws)]
            results[column(estimator)] = float(np.mean(np.var(np.stack(draws), axis=0, ddof=1)))
        return results
