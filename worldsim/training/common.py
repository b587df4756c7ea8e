"""What the stage modules share: the stage config base, world and dataset I/O, small helpers.

Every stage reads a world folder (`init`, the previous stage's `final/`) and writes one
(`<out>/final`, via `WorldModel.save_pretrained`), so any stage's result loads with
`worldsim.load(path)` and the chain can be evaluated stage by stage. The training history (one
record per stage: steps, wall time, throughput, first and last loss) travels in the world's
metadata under `"training"`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from worldsim.data.clips import check_label_boost
from worldsim.model import WorldConfig
from worldsim.training.config import ConfigError, TrainConfig
from worldsim.training.stages import GENERATOR_STAGES

if TYPE_CHECKING:
    from worldsim.training.trainer import TrainSummary
    from worldsim.world import WorldModel

__all__ = [
    "StageConfig",
    "load_world",
    "save_world",
    "world_config_for",
    "with_new_transformer",
    "with_grown_transformer",
    "load_grown_world",
    "freeze",
    "ema_decay_at",
    "sample_sigma",
]


@dataclass
class StageConfig(TrainConfig):
    """Fields of every stage that trains on a dataset and a world."""

    data: str = ""  # dataset folder
    init: str = ""  # world folder to start from (the previous stage's <out>/final)
    ema_decay: float = 0.0  # > 0 keeps an EMA of the trained network and saves it
    # Draw clips holding labelled steps more often: {"blocked": 4.0} gives a clip weight
    # 1 + 4 x its moves into walls (labels of generated datasets; see worldsim.data.format).
    label_boost: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("data: set the dataset folder (--data DIR or --set data=DIR)")
        try:
            check_label_boost(self.label_boost)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def require_init(self, what: str) -> None:
        if not self.init:
            raise ConfigError(f"init: set the world folder to start from ({what})")


def load_world(path: str, device: torch.device) -> "WorldModel":
    """A world folder (or any name `worldsim.load` resolves) on `device`, in training mode."""
    from worldsim.world import WorldModel

    return WorldModel.from_pretrained(path, device=str(device))


def with_new_transformer(world: "WorldModel", overrides: dict[str, Any], seed: int = 0) -> "WorldModel":
    """`world` with a freshly initialised transformer of its config plus `overrides` (dotted
    ``transformer.*`` keys), sharing every other network: a new generator design on a trained
    autoencoder and event encoder."""
    from worldsim.model import CausalTransformer
    from worldsim.world import WorldModel

    foreign = sorted(key for key in overrides if not key.startswith("transformer."))
    if foreign:
        raise ConfigError(f"{foreign[0]}: only transformer.* keys may change here")
    config = world.config.with_overrides(overrides)
    torch.manual_seed(seed)
    transformer = CausalTransformer(config.transformer).to(world.device)
    return WorldModel(config, world.autoencoder, transformer, world.tokenizer, world.event_encoder,
                      world.reward_model, world.context_frames, world.event_texts, dict(world.metadata))


def with_grown_transformer(world: "WorldModel", changes: list[str]) -> "WorldModel":
    """`world` with its transformer rebuilt under `changes` (``"key=value"`` of transformer config
    keys, e.g. ``"local_positions=true"``) keeping every trained weight: the changes may only add
    parameters, which start at their initial values, add residual blocks (``"local_blocks=2"``,
    ``"depth=4"``), which start as the identity, or lengthen the local path's history
    (``"local_frames=6"``), whose older predecessors start unused, or add a history reader
    (``"local_reader_channels=64"``), whose guess the stem starts ignoring. One change removes
    weights: ``"local_reader_feeds_stem=false"``, allowed while the stem's weights on the guess are
    still zero. A warm start for a grown design."""
    import json

    overrides: dict[str, Any] = {}
    for change in changes:
        key, sep, text = change.partition("=")
        if not sep or not key:
            raise ConfigError(f"transformer_changes: {change!r} is not of the form key=value")
        try:
            overrides[f"transformer.{key}"] = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(f"transformer_changes: cannot parse the value of {change!r}") from None
    grown = with_new_transformer(world, overrides)
    try:
        old = _with_local_inputs_of(world, grown)
    except ValueError as error:
        raise ConfigError(f"transformer_changes {changes}: {error}") from None
    new = grown.transformer.state_dict()
    changed = sorted(key for key in old if key not in new or old[key].shape != new[key].shape)
    if changed:
        raise ConfigError(f"transformer_changes {changes} remove or reshape trained weights ({changed[0]}); "
                          "only changes that add parameters can warm-start")
    grown.transformer.load_state_dict(old, strict=False)
    _added_blocks_start_as_identity(grown.transformer, set(old))
    return grown


def load_grown_world(path: str, changes: list[str], device: torch.device) -> "WorldModel":
    """The world at `path`, its transformer grown under `changes` when there are any
    (`with_grown_transformer`): a stage's `init` with its config's `transformer_changes`."""
    world = load_world(path, device)
    return with_grown_transformer(world, changes) if changes else world


def _added_blocks_start_as_identity(transformer: nn.Module, trained_keys: set[str]) -> None:
    """The local path's residual blocks that `with_grown_transformer` added (``local_blocks``) pass
    their input through, so the grown network starts as the trained one (the transformer's own
    blocks start so by their AdaLN-zero modulation)."""
    from worldsim.model.local_path import FiLMBlock

    for name, module in transformer.named_modules():
        if isinstance(module, FiLMBlock) and f"{name}.conv_out.weight" not in trained_keys:
            module.start_as_identity()


def _with_local_inputs_of(world: "WorldModel", grown: "WorldModel") -> dict[str, Any]:
    """`world`'s transformer weights, with the local path's inputs fitted to `grown`'s: padded for
    what it adds to them, a longer history (model.local_path.widened_history_weights) and a history reader's
    prediction (widened_reader_weights), each with zero weights; or without the guess's inputs
    when `grown`'s stem stops reading it (unread_reader_weights)."""
    from worldsim.model.local_path import unread_reader_weights, widened_history_weights, widened_reader_weights

    state = world.transformer.state_dict()
    before, after = world.config.transformer, grown.config.transformer
    if world.transformer.local is None:
        return state
    if after.local_frames > before.local_frames:
        state = widened_history_weights(state, before.latent_channels, before.local_frames, after.local_frames,
                                        prefix="local.")
    read_before = bool(before.local_reader_channels and before.local_reader_feeds_stem)
    read_after = bool(after.local_reader_channels and after.local_reader_feeds_stem)
    if read_after and not read_before:
        state = widened_reader_weights(state, before.latent_channels, prefix="local.")
    if read_before and not read_after:
        state = unread_reader_weights(state, before.latent_channels, prefix="local.")
    return state


def save_world(world: "WorldModel", out_dir: Path, summary: "TrainSummary", **metadata: Any) -> None:
    """Save `world` with this stage's record appended to its training history."""
    history = list(world.metadata.get("training", []))
    history.append({
        "stage": summary.stage, "steps": summary.steps, "wall_time_s": summary.wall_time_s,
        "samples_per_s": summary.samples_per_s, "first_loss": summary.first_loss,
        "last_loss": summary.last_loss, **metadata,
    })
    world.metadata["training"] = history
    recipe = world.metadata.get("recipe")
    if recipe and summary.stage in GENERATOR_STAGES:
        # Trained on top of a recipe's world, it now ships this stage's generator, not the recipe's.
        world.metadata["recipe"] = {**recipe, "generator_stage": summary.stage}
    world.save_pretrained(out_dir)


def world_config_for(size: str, image_size: int) -> WorldConfig:
    """The `size` preset, resized to the dataset's frames (latents stay image_size / downsample)."""
    config = WorldConfig.preset(size)
    if config.image_size == image_size:
        return config
    downsample = config.autoencoder.downsample
    if image_size % downsample:
        raise ConfigError(f"frames of {image_size} px are not divisible by the autoencoder's {downsample}x downsampling")
    latent = image_size // downsample
    return config.with_overrides({
        "image_size": image_size, "autoencoder.image_size": image_size,
        "transformer.latent_size": latent, "reward.latent_size": latent,
    })


class WorldDiagnostics:
    """The action-branch test and collision probe of a training world as it is now (games with a
    ground truth only; see worldsim.eval.training_probe); empty for other games. Built on the first
    call, which samples its true contexts once."""

    def __init__(self, game: str, image_size: int) -> None:
        self.game, self.image_size = game, image_size
        self._diagnose = None

    def __call__(self, world: "WorldModel") -> dict[str, float]:
        from worldsim.eval.training_probe import training_diagnostics

        if self._diagnose is None:
            self._diagnose = training_diagnostics(self.game, self.image_size) or (lambda world: {})
        world.event_cache.clear()  # the event encoder may have changed since the last call
        return self._diagnose(world)


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode, no gradients: a network that is only read (teacher, autoencoder)."""
    module.eval()
    module.requires_grad_(False)
    return module


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay with warm-up: `min(decay, (1 + step) / (10 + step))`, so short runs still move it."""
    return min(decay, (1 + step) / (10 + step))


def sample_sigma(shape: tuple[int, ...], shift: float, device: torch.device,
                 low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Noise levels uniform in [low, high] before the schedule's shift (the levels sampling uses).

    Stratified over the batch: row b of B draws from the b-th of B equal slices of [0, 1), so every
    batch covers the whole schedule. Each level is still uniform, and the loss of a small batch
    varies far less from step to step.
    """
    from worldsim.model import flow

    batch = shape[0]
    offset = torch.arange(batch, device=device, dtype=torch.float32).view(batch, *([1] * (len(shape) - 1)))
    uniform = (offset + torch.rand(shape, device=device)) / batch
    return flow.shift_sigma(low + (high - low) * uniform, shift)
