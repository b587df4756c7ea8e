"""Model configurations: one dataclass per network plus `WorldConfig` that holds them all.

Configs are plain dataclasses so they read like documentation and serialise to `config.json`.
`WorldConfig.from_dict` is strict: an unknown key, a missing key or a value of the
wrong type raises `ConfigError` naming the dotted key, e.g. ``transformer.depth``.

Several sizes appear in more than one sub-config (latent channels, latent size, number of
actions, event width) because each network is built from its own sub-config alone;
`WorldConfig.validate` checks that they agree.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or inconsistent."""


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _require_at_most(config: Any, prefix: str, limits: Mapping[str, float]) -> None:
    """Finite values no larger than `limits`: a checkpoint's config.json must not make the
    networks' constructors try absurd allocations (far above every preset, still generous)."""
    for name, limit in limits.items():
        values = getattr(config, name)
        for value in values if isinstance(values, tuple) else (values,):
            _require(math.isfinite(value) and value <= limit, f"{prefix}.{name}" if prefix else name,
                     f"must be a finite number <= {limit:g}, got {value!r}")


@dataclass
class AutoencoderConfig:
    """Frame autoencoder: `image_size`² RGB → `latent_size`² × `latent_channels`."""

    image_size: int = 64
    latent_channels: int = 8
    # Conv widths per resolution level, the stem's resolution first; each further level halves
    # the resolution. With patch_size 1 three levels give the 4x spatial downsampling; with
    # patch_size 4 (one cell per 4-pixel tile) a single level does.
    channels: tuple[int, ...] = (24, 48, 96)
    blocks_per_level: int = 1
    # Pixels per side that the stem folds into one cell (1 = a pixel-level conv stem).
    patch_size: int = 1

    @property
    def downsample(self) -> int:
        return self.patch_size * 2 ** (len(self.channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    def validate(self, prefix: str = "autoencoder") -> None:
        _require(len(self.channels) >= 1, f"{prefix}.channels", "needs at least one level")
        for name in ("image_size", "latent_channels", "blocks_per_level", "patch_size"):
            _require(getattr(self, name) > 0, f"{prefix}.{name}", "must be positive")
        _require(all(c > 0 for c in self.channels), f"{prefix}.channels", "must be positive")
        _require(len(self.channels) <= 8, f"{prefix}.channels", "has more than 8 levels")
        _require_at_most(self, prefix, {"image_size": 1024, "latent_channels": 256, "channels": 4096,
                                        "blocks_per_level": 64, "patch_size": 64})
        _require(
            self.image_size % self.downsample == 0,
            f"{prefix}.image_size",
            f"{self.image_size} is not divisible by the downsampling factor {self.downsample}",
        )


@dataclass
class TransformerConfig:
    """Causal diffusion transformer over latent patches and its kv cache."""

    latent_channels: int = 8
    latent_size: int = 16
    patch_size: int = 2
    dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 3.0
    num_actions: int = 5
    event_dim: int = 64
    # Rotary base shared by the temporal and the two spatial axes; positions stay small
    # (at most sink + window + chunk frames, and latent_size / patch_size cells).
    rope_base: float = 100.0
    sink_frames: int = 1
    window_frames: int = 16
    # The full-resolution local path (model/local_path.py): conv width at latent-cell resolution
    # (0 = none, tokens are linear patch embeddings), residual blocks in its stem and in its head,
    # and how many previous latent frames the frame being denoised sees there.
    local_channels: int = 0
    local_blocks: int = 1
    local_frames: int = 0
    # The previous latents also pass a 3x3 conv whose kernel the action picks (local_path.ActionConv).
    local_action_conv: bool = True
    # A learned vector per latent cell added to the stem's features: absolute position, so that
    # a fixed place (the cells beside a player the view is centred on) is something every token
    # can attend to, rather than something found by content. Starts at zero (warm starts exact).
    local_positions: bool = False
    # Line the older predecessors up with the newest one by the scroll read from the frames
    # (model/scroll.py), so a map cell's recent past (where an enemy stood four to six frames ago)
    # sits in that cell whatever the view did. No weights of its own: a warm start changes inputs only.
    local_align_history: bool = False
    # A history reader (local_path.HistoryReader): a conv net of this width (0 = none) and this many
    # residual blocks that predicts the next latent from the local path's predecessors alone,
    # trained on its own regression loss (stage `reader`); the stem reads its prediction as C more
    # inputs. An enemy's way is in frames t-4 and t-5, which the flow-matching loss hardly teaches
    # the stem to read, while a separate regression learns it in minutes. Zero stem weights at the
    # start (warm starts exact).
    local_reader_channels: int = 0
    local_reader_blocks: int = 4
    # Whether the stem reads the reader's guess. A world that uses the guess only to start its
    # frames (sampling.reader_start) skips computing it in every pass.
    local_reader_feeds_stem: bool = True
    # The event's change since the frame before (its vector minus the previous frame's) as a
    # condition of its own, zero while an event holds. Conditioned on "coin shower" alone, a frame
    # cannot tell the frame the shower starts (coins appear at once) from the frames after it (the
    # coins lie still), so a world trained to show the switch keeps adding coins while the shower
    # holds. Zero weights at the start (warm starts exact).
    event_change: bool = False

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def grid_size(self) -> int:
        """Patches per side of a frame."""
        return self.latent_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_size**2

    @property
    def patch_dim(self) -> int:
        return self.latent_channels * self.patch_size**2

    def validate(self, prefix: str = "transformer") -> None:
        for name in ("latent_channels", "latent_size", "patch_size", "dim", "depth", "num_heads",
                     "num_actions", "event_dim", "window_frames"):
            _require(getattr(self, name) > 0, f"{prefix}.{name}", "must be positive")
        _require(self.sink_frames >= 0, f"{prefix}.sink_frames", "must be >= 0")
        for name in ("local_channels", "local_blocks", "local_frames", "local_reader_channels",
                     "local_reader_blocks"):
            _require(getattr(self, name) >= 0, f"{prefix}.{name}", "must be >= 0")
        _require(self.local_channels > 0 or self.local_frames == 0, f"{prefix}.local_frames",
                 "previous frames enter through the local path: set local_channels > 0")
        _require(not self.local_align_history or self.local_frames >= 2, f"{prefix}.local_align_history",
                 "lines older predecessors up with the newest: needs local_frames >= 2")
        _require(not self.local_reader_channels or self.local_frames >= 1, f"{prefix}.local_reader_channels",
                 "the history reader reads the local path's predecessors: needs local_frames >= 1")
        _require(self.mlp_ratio > 0, f"{prefix}.mlp_ratio", "must be positive")
        _require(self.rope_base > 1, f"{prefix}.rope_base", "must be > 1")
        _require_at_most(self, prefix, {
            "latent_channels": 256, "latent_size": 1024, "patch_size": 64, "dim": 8192, "depth": 256,
            "num_heads": 256, "mlp_ratio": 64, "num_actions": 4096, "event_dim": 8192, "rope_base": 1e9,
            "sink_frames": 4096, "window_frames": 65536, "local_channels": 4096, "local_blocks": 64,
            "local_frames": 64, "local_reader_channels": 4096, "local_reader_blocks": 64})
        _require(self.latent_size % self.patch_size == 0, f"{prefix}.patch_size",
                 f"must divide latent_size {self.latent_size}")
        _require(self.dim % self.num_heads == 0, f"{prefix}.num_heads", f"must divide dim {self.dim}")
        # The head is split into a temporal quarter and two spatial 3/8 parts, each rotated in pairs.
        _require(self.head_dim % 16 == 0, f"{prefix}.dim",
                 f"dim / num_heads = {self.head_dim} must be a multiple of 16")


@dataclass
class EventEncoderConfig:
    """Text-event encoder and the tokenizer settings it is built with."""

    dim: int = 64  # E: width of the event vector handed to the transformer
    width: int = 64
    depth: int = 2
    num_heads: int = 2
    max_tokens: int = 48
    trigram_buckets: int = 512

    def validate(self, prefix: str = "events") -> None:
        for name in ("dim", "width", "depth", "num_heads", "max_tokens", "trigram_buckets"):
            _require(getattr(self, name) > 0, f"{prefix}.{name}", "must be positive")
        _require_at_most(self, prefix, {"dim": 8192, "width": 8192, "depth": 64, "num_heads": 256,
                                        "max_tokens": 4096, "trigram_buckets": 2**20})
        _require(self.width % self.num_heads == 0, f"{prefix}.num_heads",
                 f"must divide width {self.width}")


# The reward model's heads (model/reward.py).
REWARD_HEADS = ("cells", "flatten")


@dataclass
class RewardConfig:
    """Reward/termination model on the latents of the last `context_frames` frames."""

    context_frames: int = 4
    latent_channels: int = 8
    latent_size: int = 16
    num_actions: int = 5
    width: int = 32
    # "cells": every latent cell scored by shared full-resolution convolutions (the action as input
    # planes), pooled over the cells; "flatten": strided convolutions, flattened (model/reward.py).
    head: str = "cells"

    def validate(self, prefix: str = "reward") -> None:
        for name in ("context_frames", "latent_channels", "latent_size", "num_actions", "width"):
            _require(getattr(self, name) > 0, f"{prefix}.{name}", "must be positive")
        _require_at_most(self, prefix, {"context_frames": 1024, "latent_channels": 256, "latent_size": 1024,
                                        "num_actions": 4096, "width": 8192})
        _require(self.head in REWARD_HEADS, f"{prefix}.head", f"must be one of {REWARD_HEADS}")
        _require(self.head == "cells" or self.latent_size % 4 == 0, f"{prefix}.latent_size",
                 "must be a multiple of 4 with the flatten head")


@dataclass
class SamplingConfig:
    """Few-step sampling: step counts, sigma shift and the re-cache-on-switch ablation flag."""

    num_steps: int = 2
    first_frame_steps: int = 4
    # s in sigma' = s*sigma / (1 + (s-1)*sigma); s > 1 spends more of the few steps at high noise.
    sigma_shift: float = 2.0
    # LongLive-style: when an event switches, re-encode the cached frames under the new event.
    recache_on_switch: bool = False
    # Condition on the canonical text of the known event a free text is understood as
    # (WorldModel.condition_events); texts not understood keep their own vector.
    snap_events: bool = True
    # Share of fresh noise when a step re-noises its x0 (1: all fresh; 0: the noise the velocity
    # implies, i.e. Euler steps of the flow's ODE, which commit to what the first step started and
    # carry errors forward).
    fresh_noise: float = 1.0
    # 0 = off. Otherwise every frame after the first starts from the history reader's guess of it
    # (transformer.local_reader_channels > 0), noised to this level, and takes only the steps below
    # it; a frame whose event just changed starts from noise (the reader does not see events).
    # The guess carries the sprites the reader follows (an enemy's patrol) into the frame's start,
    # where two steps from pure noise average rare sprites away.
    reader_start: float = 0.0

    def step_sigmas(self, first_frame: bool = False) -> list[float]:
        """The descending sigma levels from 1 to 0 (num_steps + 1 values) used by the sampler."""
        from worldsim.model.flow import sigma_grid

        steps = self.first_frame_steps if first_frame else self.num_steps
        return sigma_grid(steps, self.sigma_shift).tolist()

    def validate(self, prefix: str = "sampling") -> None:
        _require(self.num_steps > 0, f"{prefix}.num_steps", "must be positive")
        _require(self.first_frame_steps > 0, f"{prefix}.first_frame_steps", "must be positive")
        _require(self.sigma_shift > 0, f"{prefix}.sigma_shift", "must be positive")
        _require(0.0 <= self.fresh_noise <= 1.0, f"{prefix}.fresh_noise", "must be in [0, 1]")
        _require(0.0 <= self.reader_start < 1.0, f"{prefix}.reader_start", "must be in [0, 1)")
        _require_at_most(self, prefix, {"num_steps": 1000, "first_frame_steps": 1000, "sigma_shift": 1000})


@dataclass
class WorldConfig:
    """Every network of a world plus the frame size and action count they share."""

    image_size: int = 64
    num_actions: int = 5
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    events: EventEncoderConfig = field(default_factory=EventEncoderConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def no_action(self) -> int:
        """Action index used for the first frame of an episode (no action led to it)."""
        return self.num_actions

    @staticmethod
    def preset(name: str, num_actions: int = 5) -> "WorldConfig":
        """A fresh config of a named size: "tiny" (tests), "compact" (CPU-trained default), "small", "base",
        for a game of `num_actions` actions (default: the bundled default game's five; a dataset gives its own)."""
        if name not in PRESETS:
            raise ConfigError(f"preset: unknown name {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name](num_actions=num_actions)

    def validate(self) -> None:
        """Check each sub-config and that the sizes they share agree."""
        _require(self.image_size > 0, "image_size", "must be positive")
        _require(self.num_actions > 0, "num_actions", "must be positive")
        _require_at_most(self, "", {"image_size": 1024, "num_actions": 4096})
        for name in ("autoencoder", "transformer", "events", "reward", "sampling"):
            getattr(self, name).validate(name)
        ae, net, rew = self.autoencoder, self.transformer, self.reward
        shared = {
            "autoencoder.image_size": (ae.image_size, self.image_size, "image_size"),
            "transformer.latent_channels": (net.latent_channels, ae.latent_channels,
                                            "autoencoder.latent_channels"),
            "reward.latent_channels": (rew.latent_channels, ae.latent_channels,
                                       "autoencoder.latent_channels"),
            "transformer.latent_size": (net.latent_size, ae.latent_size,
                                        "the autoencoder's latent size"),
            "reward.latent_size": (rew.latent_size, ae.latent_size, "the autoencoder's latent size"),
            "transformer.num_actions": (net.num_actions, self.num_actions, "num_actions"),
            "reward.num_actions": (rew.num_actions, self.num_actions, "num_actions"),
            "transformer.event_dim": (net.event_dim, self.events.dim, "events.dim"),
        }
        for key, (value, expected, source) in shared.items():
            _require(value == expected, key, f"is {value} but must equal {source} ({expected})")
        _require(self.sampling.reader_start == 0.0 or net.local_reader_channels > 0, "sampling.reader_start",
                 "needs a history reader (transformer.local_reader_channels > 0)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able nested dict (tuples become lists)."""
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WorldConfig":
        """Strict inverse of `to_dict`; raises `ConfigError` naming the offending dotted key."""
        return _build_dataclass(cls, data, prefix="")

    def with_overrides(self, overrides: Mapping[str, Any]) -> "WorldConfig":
        """A copy with dotted keys replaced, e.g. ``{"transformer.depth": 4}``; strict like from_dict."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"{dotted}: unknown key")
                node = node[part]
            if leaf not in node or isinstance(node[leaf], dict):
                raise ConfigError(f"{dotted}: unknown key")
            node[leaf] = value
        return WorldConfig.from_dict(data)


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(item) for item in value]
    return value


def _build_dataclass(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key")
    missing = [name for name in names if name not in data]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}: missing key")
    values = {name: _convert(hints[name], data[name], f"{prefix}{name}") for name in names}
    return cls(**values)  # WorldConfig validates itself; its errors name dotted keys


def _convert(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build_dataclass(hint, value, prefix=f"{key}.")
    if typing.get_origin(hint) is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return tuple(_convert(item_hint, item, f"{key}[{i}]") for i, item in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected a bool, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an int, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported config field type {hint!r}")


def _sized(image_size: int, latent_channels: int, ae_channels: tuple[int, ...], dim: int,
           depth: int, num_heads: int, event_dim: int, event_width: int, window_frames: int,
           reward_width: int, local_channels: int = 0, local_frames: int = 0,
           local_blocks: int = 1, ae_patch_size: int = 1, ae_blocks: int = 1, local_positions: bool = False, *,
           num_actions: int) -> WorldConfig:
    """A consistent WorldConfig: the shared sizes are written once here; the action count is the game's."""
    autoencoder = AutoencoderConfig(image_size=image_size, latent_channels=latent_channels,
                                    channels=ae_channels, patch_size=ae_patch_size, blocks_per_level=ae_blocks)
    latent_size = autoencoder.latent_size
    return WorldConfig(
        image_size=image_size,
        num_actions=num_actions,
        autoencoder=autoencoder,
        transformer=TransformerConfig(latent_channels=latent_channels, latent_size=latent_size,
                                      dim=dim, depth=depth, num_heads=num_heads,
                                      event_dim=event_dim, window_frames=window_frames, num_actions=num_actions,
                                      local_channels=local_channels, local_frames=local_frames,
                                      local_blocks=local_blocks, local_positions=local_positions),
        events=EventEncoderConfig(dim=event_dim, width=event_width),
        reward=RewardConfig(latent_channels=latent_channels, latent_size=latent_size,
                            width=reward_width, num_actions=num_actions),
        sampling=SamplingConfig(),
    )


PRESETS: dict[str, Callable[..., WorldConfig]] = {  # called with num_actions=
    # Milliseconds per forward: for tests. 64x64 frames, like the bundled world.
    "tiny": functools.partial(_sized, 64, 4, (8, 16, 16), dim=32, depth=2, num_heads=2, event_dim=16,
                              event_width=16, window_frames=4, reward_width=8, local_channels=8,
                              local_frames=2),
    # The default world: about 5 M parameters in all (3.7 M in the transformer), sized so that
    # 2 denoising passes + decode per frame can reach 30 FPS at batch 1 on 2 CPU cores. Attention
    # over the 17-frame cache costs as much as the linear layers here, so width is what is spent.
    "small": functools.partial(_sized, 64, 8, (24, 48, 96), dim=192, depth=6, num_heads=3, event_dim=64,
                               event_width=64, window_frames=16, reward_width=32),
    # The shipped CPU-trained default world, trained and played on 2 CPU cores. Its autoencoder
    # folds each 4-pixel tile into one latent cell (patch stem, 3 blocks of 64); its generator
    # moves the view through the conv local path (48 channels, the 2 previous latents, the
    # action-chosen kernel, a learned position per cell) and remembers and reacts to events through 3 transformer blocks over
    # a 1 + 12 frame cache (docs/generator-design.md).
    "compact": functools.partial(_sized, 64, 8, (64,), ae_patch_size=4, ae_blocks=3, dim=128, depth=3, num_heads=2,
                                 event_dim=64, event_width=64, window_frames=12, reward_width=32,
                                 local_channels=48, local_frames=2, local_positions=True),
    # A bigger world for GPUs.
    "base": functools.partial(_sized, 64, 8, (64, 128, 192), dim=512, depth=12, num_heads=8, event_dim=128,
                              event_width=128, window_frames=16, reward_width=64),
}
