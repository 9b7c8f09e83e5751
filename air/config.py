"""AIRConfig: every hyper-parameter of the model and its training, documented once.

The defaults are the published training configuration of continuous-relaxation AIR on
50x50 multi-MNIST. A config is saved as ``config.json`` beside every checkpoint and read
back by evaluation, the demo and the embeddings, so these numbers live only here.
"""
import dataclasses
import json
import math
from typing import Tuple

CONFIG_FILENAME = "config.json"
SCALE_TRANSFORMS = ("sigmoid", "exp")


def _field(default, help_text):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class AIRConfig:
    # Canvas and recurrence.
    canvas_height: int = _field(50, "height of the input images in pixels")
    canvas_width: int = _field(50, "width of the input images in pixels")
    max_steps: int = _field(3, "maximum number of inference steps (objects) per image")
    window_size: int = _field(28, "side in pixels of the square attention window the VAE sees")
    rnn_units: int = _field(256, "units of the LSTM that decides where to attend next")
    cnn_encoder: bool = _field(
        False, "encode the image with a small CNN before the LSTM instead of feeding raw pixels")
    cnn_filters: Tuple[int, ...] = _field(
        (16, 32, 32), "filters of each 5x5, stride-2 convolution of the optional CNN encoder")

    # Object appearance (VAE on the attention window).
    vae_latent: int = _field(50, "dimension of z_what, the latent code of one object")
    vae_recognition_units: Tuple[int, ...] = _field(
        (512, 256), "hidden layers of the encoder: window -> mean and scale of z_what")
    vae_generative_units: Tuple[int, ...] = _field(
        (256, 512), "hidden layers of the decoder: z_what -> window logits")
    vae_likelihood_std: float = _field(
        0.3, "std of the Gaussian noise added to the decoder logits while training")
    z_what_prior_mean: float = _field(0.0, "mean of the N(mean, variance) prior of each z_what unit")
    z_what_prior_variance: float = _field(1.0, "variance of the prior of each z_what unit")

    # Object position (z_where = scale latent, shift x, shift y).
    z_where_hidden_units: int = _field(64, "hidden units of the LSTM output -> z_where network")
    scale_transform: str = _field(
        "sigmoid", "maps the scale latent to window side / canvas side: 'sigmoid' or 'exp'")
    scale_prior_mean: float = _field(-1.0, "prior mean of the scale latent (see scale_transform)")
    scale_prior_variance: float = _field(0.05, "prior variance of the scale latent")
    shift_prior_mean: float = _field(
        0.0, "prior mean of the window centre, in canvas coordinates from -1 to 1")
    shift_prior_variance: float = _field(1.0, "prior variance of the window centre")

    # Object presence (relaxed z_pres) and stopping.
    z_pres_hidden_units: int = _field(64, "hidden units of the LSTM output -> z_pres log-odds network")
    z_pres_prior_odds_initial: float = _field(
        1e4, "prior odds of z_pres = 1 at iteration 0 (large: attend to everything at first)")
    z_pres_prior_odds_decay: float = _field(
        0.1, "factor applied to the prior odds every z_pres_prior_odds_decay_steps iterations")
    z_pres_prior_odds_decay_steps: int = _field(
        3000, "iterations per decay factor; the decay is smooth, applied a little every iteration")
    z_pres_prior_odds_floor: float = _field(1e-9, "the prior odds never fall below this value")
    concrete_temperature: float = _field(
        1.0, "temperature of the binary Concrete relaxation of z_pres (prior and posterior)")
    stopping_threshold: float = _field(
        0.99, "a step is live while the running sum of (1 - z_pres) stays below this value")

    # Optimisation.
    learning_rate: float = _field(1e-4, "Adam learning rate")
    gradient_clip_norm: float = _field(1.0, "gradients are clipped to this global norm")
    batch_size: int = _field(64, "images per training iteration")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in (Tuple[int, ...],):
                if isinstance(value, list):
                    object.__setattr__(self, f.name, tuple(value))
                    value = tuple(value)
                if not (isinstance(value, tuple) and value
                        and all(_is_int(v) for v in value)):
                    raise ValueError("config field %r must be a non-empty list of integers, got %r"
                                     % (f.name, value))
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
                object.__setattr__(self, f.name, float(value))
        positive = ("canvas_height", "canvas_width", "max_steps", "window_size", "rnn_units",
                    "vae_latent", "z_where_hidden_units", "z_pres_hidden_units", "batch_size",
                    "z_pres_prior_odds_decay_steps", "concrete_temperature", "learning_rate",
                    "gradient_clip_norm", "z_pres_prior_odds_initial", "z_pres_prior_odds_floor",
                    "z_pres_prior_odds_decay", "scale_prior_variance", "shift_prior_variance",
                    "z_what_prior_variance")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError("config field %r must be positive, got %r" % (name, getattr(self, name)))
        if self.scale_transform not in SCALE_TRANSFORMS:
            raise ValueError("scale_transform must be one of %s, got %r"
                             % (", ".join(SCALE_TRANSFORMS), self.scale_transform))
        if not 0.0 < self.stopping_threshold <= 1.0:
            raise ValueError("stopping_threshold must be in (0, 1], got %r" % self.stopping_threshold)

    @property
    def z_pres_prior_log_odds_range(self):
        """(first, last) prior log-odds of the annealing schedule."""
        return math.log(self.z_pres_prior_odds_initial), math.log(self.z_pres_prior_odds_floor)

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

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text):
        try:
            values = json.loads(text)
        except ValueError as error:
            raise ValueError("config is not valid JSON: %s" % error)
        if not isinstance(values, dict):
            raise ValueError("config JSON must be an object of field: value")
        return cls.from_dict(values)

    def save(self, path):
        with open(path, "w") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_json(f.read())


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def config_fields():
    """(name, type, default, help) of every field, for generating command-line flags."""
    return [(f.name, f.type, f.default, f.metadata["help"]) for f in dataclasses.fields(AIRConfig)]
