"""AIRConfig: every hyper-parameter of the model and its training, documented once.

The defaults are the published training configuration of continuous-relaxation AIR on
50x50 multi-MNIST, but for two fields the convergence study chose on 10 seeds (docs/study.md): the
window-scale prior's mean and the speed of the z_pres prior's annealing (``--preset original``
restores the published values, with the original code's graph). A config is saved as
``config.json`` beside every checkpoint and read back by evaluation, the demo and the
embeddings, so these numbers live only here.
"""
import argparse
import dataclasses
import json
import math
from typing import Tuple

from air import cli

CONFIG_FILENAME = "config.json"

# The allowed values of each string field; the first is the original code's choice where the
# field is one of the departures below.
CHOICES = {
    "scale_transform": ("sigmoid", "exp"),
    "lstm_input": ("image", "image_and_latents"),
    "lstm_kernel_init": ("joint", "split"),
    "z_where_heads": ("separate", "shared"),
    "shift_transform": ("tanh", "identity"),
    "transformer_grid": ("align_corners", "pixel_centres"),
    "vae_activation": ("softplus", "relu"),
    "z_what_variance_head": ("log_variance", "softplus_std"),
    "likelihood_epsilon_placement": ("inside_log", "clip"),
    "z_pres_estimator": ("concrete", "nvil", "vimco"),
    "nvil_kl_gradient": ("closed_form", "autodiff"),
}
SCALE_TRANSFORMS = CHOICES["scale_transform"]

# The original code (github.com/aakhundov/tf-attend-infer-repeat, air/air_model.py, air/vae.py
# and training.py) where this project's first graph departed from it. ``--preset original``
# applies these values; each departure can also be switched on its own.
# One departure stays out of the preset: the original's transformer grid
# (``transformer_grid=align_corners``, the same sampling as its code, tested), because this
# graph does not learn to reconstruct with it; docs/history.md gives the runs that show it.
ORIGINAL_CHOICES = {
    "lstm_input": "image",
    "lstm_kernel_init": "joint",
    "z_where_heads": "separate",
    "shift_transform": "tanh",
    "vae_activation": "softplus",
    "z_what_variance_head": "log_variance",
    "likelihood_epsilon_placement": "inside_log",
    "likelihood_epsilon": 1e-9,
    "z_pres_prior_odds_epsilon": 1e-9,
    "scale_prior_mean": -1.0,
    "z_pres_prior_odds_decay_steps": 3000,
    # A constant window-scale prior and learning rate (its training.py has a learning-rate
    # schedule, commented out).
    "scale_prior_anneal_steps": 0,
    "learning_rate_decay": 1.0,
}

# What a config.json written before a field existed meant: the graph of that time. A missing
# field takes this value, not the current default, so old checkpoints keep their graph.
LEGACY_VALUES = {
    "preset": "default",
    "lstm_input": "image_and_latents",
    "lstm_kernel_init": "split",
    "z_where_heads": "shared",
    "shift_transform": "identity",
    "transformer_grid": "pixel_centres",
    "vae_activation": "relu",
    "z_what_variance_head": "softplus_std",
    "likelihood_epsilon_placement": "clip",
    "likelihood_epsilon": 1e-6,
    "z_pres_prior_odds_epsilon": 0.0,
    "scale_prior_mean": -1.0,
    "z_pres_prior_odds_decay_steps": 3000,
    "z_pres_estimator": "concrete",
    "scale_prior_anneal_steps": 0,
    "learning_rate_decay": 1.0,
}

# LEGACY_VALUES of one estimator's own fields: a saved config of that estimator without the
# field trained with this value (with another estimator the field keeps its default).
LEGACY_ESTIMATOR_VALUES = {
    "nvil": {"nvil_kl_gradient": "autodiff"},
}

# The fields that belong to one z_pres estimator: with another estimator they must keep their
# defaults, so that a run never records a setting that had no effect.
ESTIMATOR_FIELDS = {
    "nvil": ("nvil_baseline_learning_rate", "nvil_baseline_hidden_units", "nvil_signal_decay",
             "nvil_variance_normalisation", "nvil_kl_gradient"),
    "vimco": ("vimco_samples",),
}


def _field(default, help_text, positive=False):
    """A config field: its default, its help (the flag's and the documentation's), and whether
    it must be positive (checked by AIRConfig)."""
    return dataclasses.field(default=default, metadata={"help": help_text, "positive": positive})


def _with_legacy_values(values):
    """A saved config's values with each missing field at its LEGACY_VALUES value (and its
    estimator's LEGACY_ESTIMATOR_VALUES); anything but a dict is left to from_dict to refuse."""
    if not isinstance(values, dict):
        return values
    legacy = dict(LEGACY_VALUES)
    estimator = values.get("z_pres_estimator", legacy["z_pres_estimator"])
    if isinstance(estimator, str):
        legacy.update(LEGACY_ESTIMATOR_VALUES.get(estimator, {}))
    return dict({k: v for k, v in legacy.items() if k not in values}, **values)


@dataclasses.dataclass(frozen=True)
class AIRConfig:
    preset: str = _field(
        "default", "the named set of fields it was built from: 'default', 'first-default' (the "
        "default before the study) or 'original' (the original code's); given fields override it")

    # Canvas and recurrence.
    canvas_height: int = _field(50, "height of the input images in pixels", positive=True)
    canvas_width: int = _field(50, "width of the input images in pixels", positive=True)
    max_steps: int = _field(
        3, "maximum number of inference steps (objects) per image", positive=True)
    window_size: int = _field(
        28, "side in pixels of the square attention window the VAE sees", positive=True)
    rnn_units: int = _field(
        256, "units of the LSTM that decides where to attend next", positive=True)
    cnn_encoder: bool = _field(
        False, "encode the image with a small CNN before the LSTM instead of feeding raw pixels")
    cnn_filters: Tuple[int, ...] = _field(
        (16, 32, 32), "filters of each 5x5, stride-2 convolution of the optional CNN encoder")
    lstm_input: str = _field(
        "image_and_latents", "what the LSTM reads at each step: 'image' (the original) or "
        "'image_and_latents' (the image plus the previous z_where, z_what and z_pres)")
    lstm_kernel_init: str = _field(
        "split", "Glorot range of the LSTM kernels: 'joint' (one kernel over image and state, as "
        "the original's LSTM cell) or 'split' (image and step kernels each by their own shape)")

    # Object appearance (VAE on the attention window).
    vae_latent: int = _field(
        50, "dimension of z_what, the latent code of one object", positive=True)
    vae_recognition_units: Tuple[int, ...] = _field(
        (512, 256), "hidden layers of the encoder: window -> mean and scale of z_what")
    vae_generative_units: Tuple[int, ...] = _field(
        (256, 512), "hidden layers of the decoder: z_what -> window logits")
    vae_activation: str = _field(
        "relu", "activation of the VAE's hidden layers: 'softplus' (the original) or 'relu'")
    z_what_variance_head: str = _field(
        "softplus_std", "how the encoder outputs the spread of z_what: 'log_variance' (separate "
        "mean and log-variance layers, the original) or 'softplus_std' (one layer, std = "
        "softplus + 1e-4)")
    vae_likelihood_std: float = _field(
        0.3, "std of the Gaussian noise added to the decoder logits while training")
    z_what_prior_mean: float = _field(0.0, "mean of the N(mean, variance) prior of each z_what unit")
    z_what_prior_variance: float = _field(
        1.0, "variance of the prior of each z_what unit", positive=True)

    # Object position (z_where = scale latent, shift x, shift y).
    z_where_hidden_units: int = _field(
        64, "hidden units of the LSTM output -> z_where network", positive=True)
    z_where_heads: str = _field(
        "shared", "'separate': four hidden-layer nets for the scale mean, scale log-variance, "
        "shift mean and shift log-variance (the original); 'shared': one hidden layer with six "
        "outputs, std = softplus + 1e-4")
    shift_transform: str = _field(
        "identity", "maps the shift latent to the window centre: 'tanh' (bounded to the canvas, "
        "the original) or 'identity'; the prior is on the latent either way")
    scale_transform: str = _field(
        "sigmoid", "maps the scale latent to window side / canvas side: 'sigmoid' or 'exp'")
    transformer_grid: str = _field(
        "pixel_centres", "where the spatial transformer samples: 'pixel_centres' (n points at "
        "the pixel centres of [-1, 1], zero padding faded over one pixel) or 'align_corners' "
        "(the original's: n points from -1 to 1 inclusive on pixels 0 to n - 1.001, zero off "
        "the image with no fade)")
    scale_prior_mean: float = _field(
        -0.4, "prior mean of the scale latent (see scale_transform): -0.4 is a 20-pixel window "
        "on the 50-pixel canvas, about a digit's height; the original's -1.0 is 13.4 pixels")
    scale_prior_variance: float = _field(0.05, "prior variance of the scale latent", positive=True)
    shift_prior_mean: float = _field(
        0.0, "prior mean of the window centre, in canvas coordinates from -1 to 1")
    shift_prior_variance: float = _field(1.0, "prior variance of the window centre", positive=True)

    # Object presence (relaxed z_pres) and stopping.
    z_pres_hidden_units: int = _field(
        64, "hidden units of the LSTM output -> z_pres log-odds network", positive=True)
    z_pres_log_odds_bound: float = _field(
        0.0, "B > 0: posterior z_pres log-odds clipped to [-B, B], the gradient passed straight "
        "through, so a saturated presence keeps a gradient of order sigmoid(-B); 0: unbounded")
    z_pres_prior_odds_initial: float = _field(
        1e4, "prior odds of z_pres = 1 at iteration 0 (large: attend to everything at first)",
        positive=True)
    z_pres_prior_odds_decay: float = _field(
        0.1, "factor applied to the prior odds every z_pres_prior_odds_decay_steps iterations",
        positive=True)
    z_pres_prior_odds_decay_steps: int = _field(
        2000, "iterations per decay factor; the decay is smooth, applied a little every iteration "
        "(2000: the floor arrives at iteration 26,000; the original's 3000 takes 39,000)",
        positive=True)
    z_pres_prior_odds_floor: float = _field(
        1e-9, "the prior odds never fall below this value", positive=True)
    z_pres_prior_odds_epsilon: float = _field(
        0.0, "added to the prior odds before the log (the original adds 1e-9, so its floor is "
        "log(2e-9) = -20.03 rather than log(1e-9) = -20.72)")
    concrete_temperature: float = _field(
        1.0, "temperature of the binary Concrete relaxation of z_pres (prior and posterior)",
        positive=True)
    stopping_threshold: float = _field(
        0.99, "a step is live while the running sum of (1 - z_pres) stays below this value")

    # How z_pres is trained (air/model/z_pres.py, nvil.py, vimco.py).
    z_pres_estimator: str = _field(
        "concrete", "training estimator of z_pres: 'concrete' (binary Concrete relaxation, "
        "reparameterised), 'nvil' (the original AIR's: discrete z_pres, NVIL's score function) "
        "or 'vimco' (discrete z_pres, K-sample bound, leave-one-out baselines)")
    nvil_baseline_learning_rate: float = _field(
        1e-3, "nvil: Adam learning rate of the input-dependent baseline network", positive=True)
    nvil_baseline_hidden_units: int = _field(
        256, "nvil: hidden units of the baseline network (image -> one baseline per step)",
        positive=True)
    nvil_signal_decay: float = _field(
        0.9, "nvil: decay of the running mean and variance that centre and scale the learning "
        "signal (0: this batch's statistics only)")
    nvil_variance_normalisation: bool = _field(
        True, "nvil: divide the centred learning signal by max(1, its running std) (NVIL's "
        "variance normalisation; it weakens the score function against the exact KL's "
        "gradient); false: centre it only")
    nvil_kl_gradient: str = _field(
        "closed_form", "nvil: the z_pres KL's gradient, 'closed_form' (exact in float32) or "
        "'autodiff' (the formula's, (a - b) times too small above log-odds 16.6; earlier runs)")
    vimco_samples: int = _field(
        5, "vimco: samples per image (K >= 2) of the K-sample bound; K times the rows")

    # Likelihood.
    likelihood_epsilon_placement: str = _field(
        "clip", "how the Bernoulli likelihood stays finite: 'inside_log' (canvas clipped to "
        "[0, 1], log(p + eps) and log(1 - p + eps), the original) or 'clip' (canvas clipped to "
        "[eps, 1 - eps], no gradient where the canvas is outside)")
    likelihood_epsilon: float = _field(1e-6, "the eps of likelihood_epsilon_placement")

    # Optimisation.
    learning_rate: float = _field(1e-4, "Adam learning rate", positive=True)
    gradient_clip_norm: float = _field(
        1.0, "gradients are clipped to this global norm", positive=True)
    batch_size: int = _field(64, "images per training iteration", positive=True)

    # Schedules of the window-scale prior and the learning rate (SCHEDULE_FIELDS; default off).
    scale_prior_mean_final: float = _field(-1.0, "where the scale prior's mean moves to")
    scale_prior_anneal_start: int = _field(0, "iteration the scale prior's mean starts moving")
    scale_prior_anneal_steps: int = _field(
        0, "iterations it moves for, linearly in the latent (0: a constant scale_prior_mean)")
    learning_rate_decay: float = _field(
        1.0, "factor per learning_rate_decay_steps, applied smoothly (1: no decay)", positive=True)
    learning_rate_decay_start: int = _field(0, "iteration the learning rate starts decaying")
    learning_rate_decay_steps: int = _field(10000, "iterations per decay factor", positive=True)

    def __post_init__(self):
        _check_fields(self)
        _check_estimator_fields(self)
        _check_schedule_fields(self)

    @property
    def z_pres_prior_log_odds_range(self):
        """(first, last) prior log-odds of the annealing schedule."""
        return _z_pres_prior_log_odds_range(self)

    def z_pres_prior_log_odds_at(self, iteration):
        """The prior log-odds of z_pres at an iteration, as a number (for reports): the schedule
        ``air_model.z_pres_prior_log_odds`` builds in the graph (tested equal)."""
        return _z_pres_prior_log_odds_at(self, iteration)

    @classmethod
    def from_preset(cls, name, **changes):
        """The config of a named preset (see PRESETS), with some fields changed."""
        if name not in PRESETS:
            raise ValueError("unknown preset %r (one of %s)" % (name, ", ".join(PRESETS)))
        return cls.from_dict(dict(PRESETS[name], preset=name, **changes))

    def replace(self, **changes):
        """A copy with some fields changed (unknown names are a ValueError)."""
        return AIRConfig.from_dict(dict(self.to_dict(), **changes))

    def to_dict(self):
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f, v in ((f, getattr(self, f.name)) for f in dataclasses.fields(self))}

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError("unknown config field(s): %s" % ", ".join(unknown))
        return cls(**values)

    @classmethod
    def from_saved_dict(cls, values):
        """Like from_dict, for a saved config: a field it lacks takes its legacy value."""
        return cls.from_dict(_with_legacy_values(values))

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text):
        return cls.from_saved_dict(_json_object(text))

    def save(self, path):
        with open(path, "w") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_json(f.read())


def _z_pres_prior_log_odds_range(config):
    epsilon = config.z_pres_prior_odds_epsilon
    return (math.log(config.z_pres_prior_odds_initial + epsilon),
            math.log(config.z_pres_prior_odds_floor + epsilon))


def _z_pres_prior_log_odds_at(config, iteration):
    log_odds = max(math.log(config.z_pres_prior_odds_initial)
                   + math.log(config.z_pres_prior_odds_decay) * iteration
                   / config.z_pres_prior_odds_decay_steps,
                   math.log(config.z_pres_prior_odds_floor))
    return math.log(math.exp(log_odds) + config.z_pres_prior_odds_epsilon)


def scale_prior_mean_at(config, iteration):
    """The prior mean of the scale latent at an iteration, as a number (for reports): the
    schedule ``air_model.scale_prior_mean`` builds in the graph (tested equal)."""
    if config.scale_prior_anneal_steps == 0:
        return config.scale_prior_mean
    progress = min(max((iteration - config.scale_prior_anneal_start)
                       / float(config.scale_prior_anneal_steps), 0.0), 1.0)
    return config.scale_prior_mean + (config.scale_prior_mean_final
                                      - config.scale_prior_mean) * progress


def prior_window_height(config, iteration):
    """The height in pixels of the window whose scale latent is the prior's mean at an
    iteration (through ``scale_transform``): where the window-scale prior pulls the windows."""
    mean = scale_prior_mean_at(config, iteration)
    side = 1.0 / (1.0 + math.exp(-mean)) if config.scale_transform == "sigmoid" else math.exp(mean)
    return side * config.canvas_height


def _json_object(text):
    """The dict of a config's JSON text; ValueError when it is not valid JSON of an object."""
    try:
        values = json.loads(text)
    except ValueError as error:
        raise ValueError("config is not valid JSON: %s" % error)
    if not isinstance(values, dict):
        raise ValueError("config JSON must be an object of field: value")
    return values


# Named sets of the departure fields: "default" is the class defaults, "original" the original
# code's choices, "first-default" this project's graph with the original's window-scale prior
# and annealing (the default before the convergence study chose those two).
_DEFAULT_CHOICES = {f.name: f.default for f in dataclasses.fields(AIRConfig)
                    if f.name in ORIGINAL_CHOICES}
PRESETS = {
    "default": _DEFAULT_CHOICES,
    "first-default": dict(_DEFAULT_CHOICES, scale_prior_mean=-1.0,
                          z_pres_prior_odds_decay_steps=3000),
    "original": ORIGINAL_CHOICES,
}


def _check_fields(config):
    """Raises ValueError naming the first field of ``config`` of a wrong type or out of its
    range; lists become tuples and integral numbers floats where the field wants them."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.type in (Tuple[int, ...],):
            if isinstance(value, list):
                object.__setattr__(config, f.name, tuple(value))
                value = tuple(value)
            if not (isinstance(value, tuple) and value
                    and all(_is_int(v) and v > 0 for v in value)):
                raise ValueError("config field %r must be a non-empty list of positive "
                                 "integers, got %r" % (f.name, value))
        elif f.type is str:
            if not isinstance(value, str):
                raise ValueError("config field %r must be a string, got %r" % (f.name, value))
        elif f.type is bool:
            if not isinstance(value, bool):
                raise ValueError("config field %r must be true or false, got %r" % (f.name, value))
        elif f.type is int:
            if not _is_int(value):
                raise ValueError("config field %r must be an integer, got %r" % (f.name, value))
        elif f.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("config field %r must be a number, got %r" % (f.name, value))
            if not math.isfinite(value):  # NaN would pass every range check below
                raise ValueError("config field %r must be finite, got %r" % (f.name, value))
            object.__setattr__(config, f.name, float(value))
    for f in dataclasses.fields(config):
        if f.metadata["positive"] and not getattr(config, f.name) > 0:
            raise ValueError("config field %r must be positive, got %r"
                             % (f.name, getattr(config, f.name)))
    for name in ("vae_likelihood_std", "z_pres_log_odds_bound"):
        if getattr(config, name) < 0:
            raise ValueError("config field %r must be 0 or more, got %r"
                             % (name, getattr(config, name)))
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            raise ValueError("%s must be one of %s, got %r"
                             % (name, ", ".join(allowed), getattr(config, name)))
    if config.preset not in PRESETS:
        raise ValueError("preset must be one of %s, got %r"
                         % (", ".join(PRESETS), config.preset))
    for name in ("likelihood_epsilon", "z_pres_prior_odds_epsilon"):
        if not 0.0 <= getattr(config, name) < 0.5:
            raise ValueError("%s must be in [0, 0.5), got %r" % (name, getattr(config, name)))
    if config.likelihood_epsilon_placement == "inside_log" and config.likelihood_epsilon <= 0:
        raise ValueError("likelihood_epsilon must be positive with 'inside_log' (log(0))")
    if not 0.0 < config.stopping_threshold <= 1.0:
        raise ValueError("stopping_threshold must be in (0, 1], got %r" % config.stopping_threshold)


def _check_estimator_fields(config):
    """Raises ValueError for a z_pres estimator's own field out of its range, or given (not at
    its default) with another estimator."""
    if not 0.0 <= config.nvil_signal_decay < 1.0:
        raise ValueError("nvil_signal_decay must be in [0, 1), got %r" % config.nvil_signal_decay)
    if config.vimco_samples < 2:  # the leave-one-out baseline needs another sample
        raise ValueError("vimco_samples must be 2 or more, got %r" % config.vimco_samples)
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for estimator, names in ESTIMATOR_FIELDS.items():
        for name in names:
            if config.z_pres_estimator != estimator and getattr(config, name) != defaults[name]:
                raise ValueError("%s belongs to z_pres_estimator=%s; with %r it has no "
                                 "effect" % (name, estimator, config.z_pres_estimator))


# The schedules: (the field that switches one on, its value when off, the fields of the
# schedule), which must keep their defaults while it is off.
SCHEDULE_FIELDS = (
    ("scale_prior_anneal_steps", 0, ("scale_prior_mean_final", "scale_prior_anneal_start")),
    ("learning_rate_decay", 1.0, ("learning_rate_decay_start", "learning_rate_decay_steps")),
)


def _check_schedule_fields(config):
    """Raises ValueError for a schedule's iteration out of range, or a schedule's own field
    given (not at its default) while the schedule is off."""
    for name in ("scale_prior_anneal_start", "scale_prior_anneal_steps",
                 "learning_rate_decay_start"):
        if getattr(config, name) < 0:
            raise ValueError("%s must be 0 or more, got %r" % (name, getattr(config, name)))
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for switch, off, names in SCHEDULE_FIELDS:
        for name in names:
            if getattr(config, switch) == off and getattr(config, name) != defaults[name]:
                raise ValueError("%s has no effect with %s=%s" % (name, switch, off))


def _enabling(name):
    """The field values that make a field of an estimator or a schedule take effect, so that
    the field can be checked alone (``overrides_from_args``)."""
    for estimator, names in ESTIMATOR_FIELDS.items():
        if name in names:
            return {"z_pres_estimator": estimator}
    # Any value other than the off one: both switches accept 2.
    return {switch: 2 for switch, _, names in SCHEDULE_FIELDS if name in names}


def with_estimator(config, name):
    """``config`` trained with the z_pres estimator ``name``, every estimator's own fields
    (ESTIMATOR_FIELDS) at their defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    fields = [field for names in ESTIMATOR_FIELDS.values() for field in names]
    return config.replace(z_pres_estimator=name, **{f: defaults[f] for f in fields})


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def config_fields():
    """(name, type, default, help) of every field, for generating command-line flags."""
    return [(f.name, f.type, f.default, f.metadata["help"]) for f in dataclasses.fields(AIRConfig)]


class FlagError(cli.UserError):
    """A model flag AIRConfig refuses; the message names the flag."""


def add_flags(parser):
    """Adds a flag for every AIRConfig field (``--rnn-units 128``, ``--cnn-encoder true``) in
    a group of its own; a flag not given is absent from the parsed arguments."""
    group = parser.add_argument_group(
        "model configuration (defaults: the published configuration with the convergence "
        "study's scale_prior_mean and z_pres_prior_odds_decay_steps; see air/config.py)")
    for name, kind, default, help_text in config_fields():
        flag = "--" + name.replace("_", "-")
        shown = list(default) if isinstance(default, tuple) else default
        help_text = "%s (default: %s)" % (help_text, shown)
        if kind is bool:
            group.add_argument(flag, dest=name, type=_parse_bool, metavar="true|false",
                               default=argparse.SUPPRESS, help=help_text)
        elif isinstance(default, tuple):
            group.add_argument(flag, dest=name, type=cli.integer(minimum=1), nargs="+",
                               default=argparse.SUPPRESS, help=help_text)
        else:
            # Ranges are AIRConfig's to check (overrides_from_args); the types reject text and NaN.
            parse = {int: cli.integer(), float: cli.number()}.get(kind, kind)
            group.add_argument(flag, dest=name, type=parse, default=argparse.SUPPRESS,
                               help=help_text)


def _parse_bool(text):
    value = text.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % text)


def overrides_from_args(args):
    """The config fields given as flags (``add_flags``), a --preset's own fields first.

    Raises FlagError naming the flag for a value AIRConfig refuses, or for a combination of
    values that are each valid alone.
    """
    given = {name: getattr(args, name) for name, _, _, _ in config_fields() if hasattr(args, name)}
    if "preset" in given:
        if given["preset"] not in PRESETS:
            raise FlagError("unknown --preset %r (one of %s)"
                            % (given["preset"], ", ".join(PRESETS)))
        given = dict(PRESETS[given["preset"]], **given)
    for name, value in sorted(given.items()):
        # An estimator's or a schedule's own field is checked alone with it switched on; the
        # combination below says when it was given without.
        alone = dict(_enabling(name), **{name: value})
        try:
            AIRConfig.from_dict(alone)
        except ValueError as error:
            raise FlagError("--%s: %s" % (name.replace("_", "-"), error))
    try:
        AIRConfig.from_dict(given)
    except ValueError as error:
        raise FlagError(error)
    return given

