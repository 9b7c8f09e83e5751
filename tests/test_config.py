"""air/config.py: defaults are the published configuration but for two study-chosen fields,
JSON round trip, clear errors."""
import dataclasses
import json
import math
from typing import Tuple

import pytest

from air.config import AIRConfig, CONFIG_FILENAME, config_fields

# The published training configuration (issue 4), written out independently of config.py.
PUBLISHED = {
    "canvas_height": 50, "canvas_width": 50, "max_steps": 3, "window_size": 28,
    "rnn_units": 256, "vae_latent": 50,
    "vae_recognition_units": (512, 256), "vae_generative_units": (256, 512),
    "scale_prior_mean": -1.0, "scale_prior_variance": 0.05,
    "shift_prior_mean": 0.0, "shift_prior_variance": 1.0,
    "z_what_prior_mean": 0.0, "z_what_prior_variance": 1.0,
    "vae_likelihood_std": 0.3, "z_where_hidden_units": 64, "z_pres_hidden_units": 64,
    "z_pres_prior_odds_initial": 1e4, "z_pres_prior_odds_decay": 0.1,
    "z_pres_prior_odds_decay_steps": 3000, "z_pres_prior_odds_floor": 1e-9,
    "concrete_temperature": 1.0, "stopping_threshold": 0.99,
    "learning_rate": 1e-4, "gradient_clip_norm": 1.0, "batch_size": 64, "cnn_encoder": False,
}


def test_defaults_are_the_published_configuration():
    # The default departs from it only in fields --preset original restores (the study chose
    # the window-scale prior's mean and the z_pres annealing, docs/study.md); the preset is the
    # published configuration.
    config = AIRConfig()
    differing = {name for name, value in PUBLISHED.items() if getattr(config, name) != value}
    assert differing == {"scale_prior_mean", "z_pres_prior_odds_decay_steps"}
    original = AIRConfig.from_preset("original")
    for name, value in PUBLISHED.items():
        assert getattr(original, name) == value, name
    start, floor = config.z_pres_prior_log_odds_range
    assert start == pytest.approx(9.2103, abs=1e-4)
    assert floor == pytest.approx(-20.7233, abs=1e-4)
    assert CONFIG_FILENAME == "config.json"


# The dataclass declarations of air/config.py, written out: (name, type, default), in order.
# A field added, removed, renamed, retyped or with a new default must be changed here too.
INT_LIST = Tuple[int, ...]
DECLARED = [
    ("preset", str, "default"),
    ("canvas_height", int, 50), ("canvas_width", int, 50), ("max_steps", int, 3),
    ("window_size", int, 28), ("rnn_units", int, 256), ("cnn_encoder", bool, False),
    ("cnn_filters", INT_LIST, (16, 32, 32)), ("lstm_input", str, "image_and_latents"),
    ("lstm_kernel_init", str, "split"),
    ("vae_latent", int, 50), ("vae_recognition_units", INT_LIST, (512, 256)),
    ("vae_generative_units", INT_LIST, (256, 512)), ("vae_activation", str, "relu"),
    ("z_what_variance_head", str, "softplus_std"), ("vae_likelihood_std", float, 0.3),
    ("z_what_prior_mean", float, 0.0), ("z_what_prior_variance", float, 1.0),
    ("z_where_hidden_units", int, 64), ("z_where_heads", str, "shared"),
    ("shift_transform", str, "identity"), ("scale_transform", str, "sigmoid"),
    ("transformer_grid", str, "pixel_centres"),
    ("scale_prior_mean", float, -0.4), ("scale_prior_variance", float, 0.05),
    ("shift_prior_mean", float, 0.0), ("shift_prior_variance", float, 1.0),
    ("z_pres_hidden_units", int, 64), ("z_pres_log_odds_bound", float, 0.0),
    ("z_pres_prior_odds_initial", float, 1e4),
    ("z_pres_prior_odds_decay", float, 0.1), ("z_pres_prior_odds_decay_steps", int, 2000),
    ("z_pres_prior_odds_floor", float, 1e-9), ("z_pres_prior_odds_epsilon", float, 0.0),
    ("concrete_temperature", float, 1.0), ("stopping_threshold", float, 0.99),
    ("z_pres_estimator", str, "concrete"), ("nvil_baseline_learning_rate", float, 1e-3),
    ("nvil_baseline_hidden_units", int, 256), ("nvil_signal_decay", float, 0.9),
    ("nvil_variance_normalisation", bool, True), ("nvil_kl_gradient", str, "closed_form"),
    ("vimco_samples", int, 5),
    ("likelihood_epsilon_placement", str, "clip"), ("likelihood_epsilon", float, 1e-6),
    ("learning_rate", float, 1e-4), ("gradient_clip_norm", float, 1.0),
    ("batch_size", int, 64),
    ("scale_prior_mean_final", float, -1.0), ("scale_prior_anneal_start", int, 0),
    ("scale_prior_anneal_steps", int, 0), ("learning_rate_decay", float, 1.0),
    ("learning_rate_decay_start", int, 0), ("learning_rate_decay_steps", int, 10000),
]


def test_config_fields_are_the_declared_ones():
    fields = config_fields()
    assert [(name, kind, default) for name, kind, default, _ in fields] == DECLARED
    for name, _, _, help_text in fields:
        assert len(help_text.split()) >= 3, name  # a sentence, not a placeholder


def test_every_field_becomes_a_training_flag():
    import training
    flags = {option for action in training.build_parser()._actions
             for option in action.option_strings}
    for name, _, _ in DECLARED:
        assert "--" + name.replace("_", "-") in flags, name


def test_json_round_trip(tmp_path):
    changed = AIRConfig(rnn_units=32, vae_recognition_units=[64, 32], cnn_encoder=True,
                        learning_rate=1, concrete_temperature=0.5, max_steps=4)
    for config in (AIRConfig(), changed):
        assert AIRConfig.from_json(config.to_json()) == config
        assert AIRConfig.from_dict(config.to_dict()) == config
        path = str(tmp_path / CONFIG_FILENAME)
        config.save(path)
        assert AIRConfig.load(path) == config
        with open(path) as f:
            assert json.load(f) == config.to_dict()
    # Lists become tuples and integral numbers become floats where a float is expected.
    assert changed.vae_recognition_units == (64, 32)
    assert isinstance(changed.learning_rate, float)
    assert AIRConfig().replace(rnn_units=32).rnn_units == 32
    assert AIRConfig().replace(rnn_units=32).to_dict() == dict(AIRConfig().to_dict(), rnn_units=32)


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AIRConfig().rnn_units = 3


@pytest.mark.parametrize("values,message", [
    ({"rnn_unit": 256}, "rnn_unit"),                      # misspelt name
    ({"learning_rate": 1e-4, "lr": 1e-3}, "lr"),
    ({"rnn_units": "256"}, "rnn_units"),                  # wrong types
    ({"rnn_units": 256.0}, "rnn_units"),
    ({"rnn_units": True}, "rnn_units"),
    ({"cnn_encoder": 1}, "cnn_encoder"),
    ({"cnn_encoder": "false"}, "cnn_encoder"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"learning_rate": None}, "learning_rate"),
    ({"vae_recognition_units": 512}, "vae_recognition_units"),
    ({"vae_recognition_units": []}, "vae_recognition_units"),
    ({"vae_generative_units": [256, "512"]}, "vae_generative_units"),
    ({"max_steps": 0}, "max_steps"),                      # out of range
    ({"learning_rate": -1e-4}, "learning_rate"),
    ({"scale_prior_variance": 0.0}, "scale_prior_variance"),
    ({"stopping_threshold": 1.5}, "stopping_threshold"),
    ({"stopping_threshold": 0.0}, "stopping_threshold"),
    ({"scale_prior_anneal_steps": -1}, "scale_prior_anneal_steps"),
    ({"scale_prior_anneal_steps": 10, "scale_prior_anneal_start": -5}, "anneal_start"),
    ({"learning_rate_decay": 0.0}, "learning_rate_decay"),
    ({"learning_rate_decay": 0.5, "learning_rate_decay_steps": 0}, "learning_rate_decay_steps"),
    ({"learning_rate_decay": 0.5, "learning_rate_decay_start": -1}, "decay_start"),
    # A schedule's own field while the schedule is off would be recorded without an effect.
    ({"scale_prior_mean_final": -0.8}, "no effect with scale_prior_anneal_steps=0"),
    ({"learning_rate_decay_start": 5000}, "no effect with learning_rate_decay=1.0"),
])
def test_bad_values_are_a_clear_value_error(values, message):
    with pytest.raises(ValueError, match=message):
        AIRConfig.from_dict(values)
    with pytest.raises(ValueError, match=message):
        AIRConfig.from_json(json.dumps(values))


def test_bad_json_and_replace_are_value_errors():
    with pytest.raises(ValueError, match="JSON"):
        AIRConfig.from_json("{rnn_units: 3")
    with pytest.raises(ValueError, match="object"):
        AIRConfig.from_json("[1, 2]")
    with pytest.raises(ValueError, match="window"):
        AIRConfig().replace(window=28)


def test_prior_range_follows_the_fields():
    config = AIRConfig(z_pres_prior_odds_initial=100.0, z_pres_prior_odds_floor=0.01)
    assert config.z_pres_prior_log_odds_range == pytest.approx((math.log(100), math.log(0.01)))


def test_schedule_flags_given_with_their_schedule_are_taken_and_alone_are_refused():
    import training
    from air import config as air_config
    parse = training.build_parser().parse_args
    args = parse(["--scale-prior-anneal-steps", "5000", "--scale-prior-mean-final", "-0.8",
                  "--scale-prior-anneal-start", "15000", "--learning-rate-decay", "0.5",
                  "--learning-rate-decay-start", "100", "--learning-rate-decay-steps", "7"])
    config = AIRConfig.from_dict(air_config.overrides_from_args(args))
    assert (config.scale_prior_anneal_steps, config.scale_prior_mean_final,
            config.scale_prior_anneal_start, config.learning_rate_decay,
            config.learning_rate_decay_start, config.learning_rate_decay_steps) == (
        5000, -0.8, 15000, 0.5, 100, 7)
    # The original's choice: constant, as the default.
    original = AIRConfig.from_preset("original")
    assert (original.scale_prior_anneal_steps, original.learning_rate_decay) == (0, 1.0)
    for flags, message in ((["--scale-prior-mean-final", "-0.8"], "scale_prior_mean_final"),
                           (["--learning-rate-decay-steps", "7"], "learning_rate_decay_steps"),
                           (["--scale-prior-anneal-start", "-1", "--scale-prior-anneal-steps",
                             "9"], "--scale-prior-anneal-start")):
        with pytest.raises(air_config.FlagError, match=message):
            air_config.overrides_from_args(parse(flags))
