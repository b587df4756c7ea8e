"""WorldConfig: presets, strict dict round trip and the errors it names."""
from __future__ import annotations

import json

import pytest

from worldsim.model import (PRESETS, CausalTransformer, ConfigError, EventEncoder,
                            FrameAutoencoder, RewardModel, SamplingConfig, Tokenizer, WorldConfig)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    config = WorldConfig.preset(name)
    data = json.loads(json.dumps(config.to_dict()))
    assert WorldConfig.from_dict(data) == config
    assert data["transformer"]["latent_channels"] == data["autoencoder"]["latent_channels"]


def test_presets_are_fresh_copies():
    first = WorldConfig.preset("tiny")
    first.transformer.depth = 7
    assert WorldConfig.preset("tiny").transformer.depth != 7


def test_small_world_has_about_5_million_parameters_and_64_tokens_per_frame():
    config = WorldConfig.preset("small")
    tokenizer = Tokenizer.build(["a sunny meadow", "night falls"])
    networks = (FrameAutoencoder(config.autoencoder), CausalTransformer(config.transformer),
                EventEncoder(config.events, tokenizer.vocab_size), RewardModel(config.reward))
    assert 4.5e6 <= sum(p.numel() for net in networks for p in net.parameters()) <= 10e6
    assert config.transformer.tokens_per_frame == 64
    assert config.no_action == config.num_actions == 5


def _broken(path: str, value=None, delete: bool = False) -> dict:
    data = WorldConfig.preset("tiny").to_dict()
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if delete:
        del node[leaf]
    else:
        node[leaf] = value
    return data


@pytest.mark.parametrize("path, value, delete, message", [
    ("transformer.colour", 3, False, "transformer.colour: unknown key"),
    ("extra", 1, False, "extra: unknown key"),
    ("events.width", None, True, "events.width: missing key"),
    ("sampling", None, True, "sampling: missing key"),
    ("transformer.depth", "2", False, "transformer.depth: expected an int"),
    ("transformer.depth", True, False, "transformer.depth: expected an int"),
    ("sampling.sigma_shift", "fast", False, "sampling.sigma_shift: expected a number"),
    ("sampling.recache_on_switch", 1, False, "sampling.recache_on_switch: expected a bool"),
    ("autoencoder.channels", 8, False, "autoencoder.channels: expected a list"),
    ("autoencoder.channels", [8, "x"], False, r"autoencoder.channels\[1\]: expected an int"),
    ("reward", [], False, "reward: expected a mapping"),
    ("transformer.depth", 0, False, "transformer.depth: must be positive"),
    ("transformer.num_heads", 3, False, "transformer.num_heads: must divide"),
    ("transformer.latent_channels", 5, False, "transformer.latent_channels: is 5 but must"),
    ("events.dim", 24, False, "transformer.event_dim: is 16 but must equal events.dim"),
    ("image_size", 32, False, "autoencoder.image_size: is 64 but must equal image_size"),
])
def test_from_dict_names_the_bad_key(path, value, delete, message):
    with pytest.raises(ConfigError, match=message):
        WorldConfig.from_dict(_broken(path, value, delete))


def test_float_fields_accept_integers():
    config = WorldConfig.from_dict(_broken("sampling.sigma_shift", 3))
    assert config.sampling.sigma_shift == 3.0 and isinstance(config.sampling.sigma_shift, float)


def test_with_overrides_is_strict():
    config = WorldConfig.preset("tiny").with_overrides({"transformer.depth": 3})
    assert config.transformer.depth == 3
    with pytest.raises(ConfigError, match="transformer.deep: unknown key"):
        config.with_overrides({"transformer.deep": 3})
    with pytest.raises(ConfigError, match="transformer: unknown key"):
        config.with_overrides({"transformer": 3})


def test_unknown_preset():
    with pytest.raises(ConfigError, match="huge"):
        WorldConfig.preset("huge")


def test_sampling_step_sigmas():
    sampling = SamplingConfig(num_steps=2, first_frame_steps=4, sigma_shift=1.0)
    assert sampling.step_sigmas() == pytest.approx([1.0, 0.5, 0.0])
    assert sampling.step_sigmas(first_frame=True) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
