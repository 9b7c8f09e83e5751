"""TrainingOptions: every option of the training loop (what training.py runs, not the model).

AIRConfig (air/config.py) is the model and its optimiser; TrainingOptions is the run around it:
where the data and the results are, how long to train, how often to evaluate, summarise and
save, when to stop early. training.py's "run" flags are generated from these fields, sweep.py
and the benchmarks start from them, and a training run saves them as ``training_options.json``
beside its checkpoints (folders written before that file existed have none: ``read_saved``).
A file of these options is what ``training.py --options-file`` reads: how a sweep launches a trial.
"""
import argparse
import dataclasses
import json
import os
from typing import Optional

from air import cli, devices

FILENAME = "training_options.json"
MAX_THREADS = 1024


def _option(default, help_text, kind=None, metavar=None):
    """A field: its default, its help (the flag's), and its argparse type from air/cli.py
    (``cli.integer``/``cli.number`` with bounds; None for text and switches), which checks a
    value from a file as it checks one from the command line."""
    return dataclasses.field(default=default, metadata={
        "help": help_text, "kind": kind, "metavar": metavar})


_POSITIVE = cli.integer(minimum=1)


def _period(group, default):
    return _option(default, "iterations between %s summaries (0: none)" % group,
                   cli.integer(minimum=0))


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    data_dir: str = _option(
        "multi_mnist_data/", "folder with train.tfrecords and test.tfrecords (multi_mnist.py)")
    results_dir: str = _option("air_results/", "where everything is written")
    resume: bool = _option(False, "continue from the latest checkpoint in --results-dir")
    epochs: float = _option(300.0, "passes over the training set",
                            cli.number(0.0, exclusive_minimum=True))
    max_iterations: Optional[int] = _option(
        None, "stop after this many iterations (overrides --epochs)", _POSITIVE)
    seed: Optional[int] = _option(None, "graph, shuffle and sampler seed",
                                  cli.integer(0, cli.MAX_SEED))
    eval_every: int = _option(1000, "iterations between held-out evaluations", _POSITIVE)
    eval_batch_size: int = _option(
        500, "images per forward pass of the held-out evaluation", _POSITIVE)
    heldout_elbo_samples: int = _option(
        4, "samples per held-out image of the sampled ELBO of the discrete model at the final "
        "z_pres prior (metrics.csv heldout_discrete_elbo_final_prior)", _POSITIVE, "N")
    scalars_every: int = _period("scalars", 50)
    variables_every: int = _period("variables", 250)
    images_every: int = _period("images", 500)
    gradients_every: int = _period("gradients", 100)
    save_every: int = _option(10000, "iterations between checkpoints", _POSITIVE)
    keep_checkpoints: int = _option(5, "newest checkpoints kept", _POSITIVE)
    progress_seconds: float = _option(5.0, "seconds between progress lines",
                                      cli.number(minimum=0.0))
    max_skipped_in_a_row: int = _option(
        100, "stop when this many updates in a row had a non-finite loss", _POSITIVE)
    threads: int = _option(0, "TensorFlow intra/inter-op threads (0: TensorFlow's choice)",
                           cli.integer(0, MAX_THREADS))
    stop_at_accuracy: Optional[float] = _option(
        None, "stop once held-out count accuracy has been >= A at --patience evaluations in a "
        "row (resumed runs count their earlier evaluations)",
        cli.number(0.0, 1.0, exclusive_minimum=True), "A")
    patience: int = _option(3, "evaluations in a row at --stop-at-accuracy before stopping",
                            _POSITIVE)
    min_iterations: int = _option(
        0, "--stop-at-accuracy ends no run before this iteration: training goes on past "
        "convergence (through a late schedule of the window-scale prior, say)",
        cli.integer(minimum=0), "N")
    gradient_variance_draws: int = _option(
        20, "draws of the z_pres network's gradient on one fixed training batch at every "
        "held-out evaluation, for its variance per estimator (metrics.csv "
        "z_pres_gradient_variance_*; 0 or 1: not measured)", cli.integer(minimum=0), "M")
    final_evaluation: bool = _option(
        False, "when the run ends (converged or finished), write final_evaluation.json beside "
        "metrics.csv: the final model's held-out mean IoU of matched boxes, recall at IoU 0.5 "
        "and mean window height")
    extrapolation_data: str = _option(
        "", "with --final-evaluation, also the final model's count accuracy on this record file "
        "of images with more digits than trained on (sweep.py makes 3-digit ones), counted with "
        "max_steps one above its largest count")
    device: str = _option(
        "", "cpu, or the GPUs to use as indices among those visible (0 or 0,1); default: every "
        "visible GPU (CUDA_VISIBLE_DEVICES selects them), else the CPU")
    gpu_memory_fraction: Optional[float] = _option(
        None, "take at most this share of each GPU's memory (it is taken as needed either way, "
        "so processes can share a GPU; default: no limit)",
        cli.number(0.0, 1.0, exclusive_minimum=True), "F")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["kind"] is not None:
                if value is None and f.default is None:
                    continue
                object.__setattr__(self, f.name, _checked_number(f, value))
            elif not isinstance(value, type(f.default)):
                raise ValueError("training option %r must be %s, got %r" % (
                    f.name, "true or false" if f.type is bool else "text", value))
        if self.max_iterations is not None and self.min_iterations > self.max_iterations:
            raise ValueError("--min-iterations (%d) is above --max-iterations (%d)"
                             % (self.min_iterations, self.max_iterations))
        if self.extrapolation_data and not self.final_evaluation:
            raise ValueError("--extrapolation-data needs --final-evaluation")
        if self.device:
            try:
                object.__setattr__(self, "device", devices.device_option(self.device))
            except argparse.ArgumentTypeError as error:
                raise ValueError("--device: %s" % error)

    def replace(self, **changes):
        """A copy with some options changed (unknown names are a ValueError)."""
        return TrainingOptions.from_dict(dict(self.to_dict(), **changes))

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        if not isinstance(values, dict):
            raise ValueError("training options must be an object of option: value")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError("unknown training option(s): %s" % ", ".join(unknown))
        return cls(**values)

    def save(self, path):
        with open(path, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path):
        """The options of a JSON file; ValueError (or OSError) naming what is wrong."""
        with open(path) as f:
            text = f.read()
        try:
            values = json.loads(text)
        except ValueError as error:
            raise ValueError("not valid JSON: %s" % error)
        return cls.from_dict(values)


def _checked_number(field, value):
    """The value of a numeric option, checked by the option's own argparse type (so a file
    and the command line accept the same values); ints stay ints, floats become floats."""
    is_integer = field.metadata["kind"].__name__ == "integer"
    wrong_type = (isinstance(value, bool) or not isinstance(value, (int, float))
                  or (is_integer and not isinstance(value, int)))
    if wrong_type:
        raise ValueError("training option %r must be %s, got %r"
                         % (field.name, "a whole number" if is_integer else "a number", value))
    try:
        return field.metadata["kind"](repr(value))
    except argparse.ArgumentTypeError as error:
        raise ValueError("training option %r %s" % (field.name, error))


def read_saved(model_dir):
    """The TrainingOptions a run saved in its model folder, or None for a folder written
    before runs saved them (or one exported without them)."""
    path = os.path.join(model_dir, FILENAME)
    if not os.path.isfile(path):
        return None
    return TrainingOptions.load(path)


def add_flags(parser, defaults=None, names=None):
    """Adds a flag for each option (all, or ``names``) to an argparse parser or group, the
    help and type from the field; ``defaults`` (name -> value) replaces a field's default in
    the parser (sweep.py's trials run shorter than a training run). A flag not given is
    absent from the parsed arguments unless ``defaults`` names it (see ``from_args``)."""
    defaults = defaults or {}
    for f in dataclasses.fields(TrainingOptions):
        if names is not None and f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = defaults.get(f.name, f.default)
        shown = "" if default in (None, False) else " (default: %s)" % default
        keywords = {"dest": f.name, "help": f.metadata["help"] + shown,
                    "default": defaults.get(f.name, argparse.SUPPRESS)}
        if f.type is bool:
            parser.add_argument(flag, action="store_true", **keywords)
        else:
            parser.add_argument(flag, type=f.metadata["kind"], metavar=f.metadata["metavar"],
                                **keywords)


def given(args):
    """The options set in parsed arguments (``add_flags``): name -> value."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingOptions)
            if hasattr(args, f.name)}


def from_args(args, base=None):
    """The TrainingOptions of parsed arguments: ``base`` (default: the defaults) with the
    options the arguments set."""
    return (base or TrainingOptions()).replace(**given(args))
