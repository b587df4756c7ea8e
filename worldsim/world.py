"""`WorldModel`: the networks of one world, its event tokenizer and start frames, and their files.

    wm = WorldModel.create(WorldConfig.preset("tiny"), event_texts=[...], seed=0)   # random weights
    wm = worldsim.load("explorer-64")          # bundled name, local folder or Hub repo id
    sim = wm.simulator(batch_size=4, seed=0)   # see worldsim.sampling.simulator
    wm.save_pretrained("out/world"); wm.push_to_hub("org/world")

The checkpoint format and name resolution live in worldsim.hub; this module only maps a
WorldModel onto them.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from worldsim import hub
from worldsim.data.atomic import atomic_write_bytes, atomic_write_json
from worldsim.model import (
    CausalTransformer,
    ConfigError,
    EventEmbeddingCache,
    EventEncoder,
    FrameAutoencoder,
    RewardModel,
    Tokenizer,
    TokenizerError,
    WorldConfig,
)
from worldsim.model.event_understanding import EventTable, EventUnderstanding
from worldsim.sampling.simulator import Simulator

__all__ = ["Simulator", "WorldModel"]


class WorldModel:
    """Autoencoder, causal transformer, event encoder (+ tokenizer), reward model, start frames."""

    def __init__(
        self,
        config: WorldConfig,
        autoencoder: FrameAutoencoder,
        transformer: CausalTransformer,
        tokenizer: Tokenizer,
        event_encoder: EventEncoder,
        reward_model: RewardModel,
        context_frames: Tensor | np.ndarray | None = None,
        event_texts: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.autoencoder = autoencoder
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.event_encoder = event_encoder
        self.reward_model = reward_model
        self.context_frames = _check_context_frames(context_frames, config.image_size)
        self.event_texts = list(event_texts)
        self.metadata = dict(metadata or {})
        # Event vectors per distinct string; clear it after changing the event encoder's weights.
        self.event_cache = EventEmbeddingCache(tokenizer, event_encoder)
        self._compiled = False

    # ------------------------------------------------------------------------------ building

    @classmethod
    def create(
        cls,
        config: WorldConfig,
        event_texts: Sequence[str] = (),
        seed: int = 0,
        device: str | torch.device = "cpu",
        context_frames: Tensor | np.ndarray | None = None,
    ) -> "WorldModel":
        """A world with freshly initialised (random) weights; the tokenizer learns `event_texts`."""
        tokenizer = Tokenizer.build(
            list(event_texts), trigram_buckets=config.events.trigram_buckets, max_tokens=config.events.max_tokens
        )
        networks = dict(zip(hub.MODULE_FILES, _build_networks(config, tokenizer, seed)))
        world = cls(config, **networks, tokenizer=tokenizer, context_frames=context_frames, event_texts=event_texts)
        return world.to(device)

    @property
    def networks(self) -> dict[str, nn.Module]:
        """The four networks by attribute name (the same names as their weight files in hub)."""
        return {name: getattr(self, name) for name in hub.MODULE_FILES}

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def to(self, device: str | torch.device) -> "WorldModel":
        for network in self.networks.values():
            network.to(device)
        self.event_cache.clear()
        return self

    @property
    def compiled(self) -> bool:
        return self._compiled

    def compile(self) -> "WorldModel":
        """torch.compile the per-frame hot paths in place: transformer blocks and the decoder.

        Weights and state_dict keys are unchanged; calling it again does nothing.
        """
        if not self._compiled:
            for block in self.transformer.blocks:
                block.compile()
            self.autoencoder.decoder.compile()
            self._compiled = True
        return self

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in network.parameters()) for name, network in self.networks.items()}

    # ------------------------------------------------------------------------------ inference

    def encode_events(self, texts: Sequence[str | None]) -> Tensor:
        """Event vectors [N, E] on the world's device; "" and None give zeros. Cached per string."""
        return self.event_cache(list(texts))

    @property
    def event_table(self) -> EventTable:
        """The known events (canonical text -> its texts) and the similarity needed to understand a text."""
        return EventTable.from_metadata(self.metadata, self.event_texts)

    def understand_event(self, text: str | None) -> EventUnderstanding:
        """The known event `text` is closest to (`.event`: canonical text, None when none is close enough;
        `.similarity`: cosine similarity to `.nearest`). See worldsim.model.event_understanding."""
        return self.understand_events([text])[0]

    def understand_events(self, texts: Sequence[str | None]) -> list[EventUnderstanding]:
        return self.event_table.understand(list(texts), self.encode_events)

    def condition_events(self, texts: Sequence[str | None]) -> Tensor:
        """The event vectors [N, E] the generator is conditioned on for `texts`.

        With `config.sampling.snap_events` a text understood as a known event is conditioned on that
        event's canonical text, so every wording the world understands plays as the event it names
        (a paraphrase's own vector sits off the vectors the generator was trained on and restyles
        the scene less); a text that is not understood keeps its own vector. Without it: `encode_events`.
        """
        texts = list(texts)
        if self.config.sampling.snap_events:
            understood = self.understand_events(texts)
            texts = [item.event if item.event is not None else text for text, item in zip(texts, understood)]
        return self.encode_events(texts)

    def simulator(
        self,
        batch_size: int = 1,
        seed: int | Sequence[int] = 0,
        steps: int | Sequence[float] | None = None,
        recache_on_switch: bool | None = None,
        sampler: str = "frame",
        compile: bool | None = None,
        switch_guidance: float = 1.0,
        switch_guidance_frames: int = 4,
    ) -> Simulator:
        """A Simulator of `batch_size` envs (see worldsim.sampling.simulator for the options).

        `steps` overrides the config's step count (or gives a sigma list); `sampler` is "frame"
        or "rolling"; `recache_on_switch` overrides `config.sampling.recache_on_switch`;
        `compile` (None = on CUDA only) compiles the world's hot paths first.
        """
        return Simulator(
            self, batch_size, seed=seed, steps=steps, recache_on_switch=recache_on_switch, sampler=sampler,
            compile=compile, switch_guidance=switch_guidance, switch_guidance_frames=switch_guidance_frames,
        )  # fmt: skip

    # ------------------------------------------------------------------------------ files

    def save_pretrained(self, path: str | Path, repo_id: str | None = None) -> Path:
        """Write the checkpoint folder (each file atomically; config.json last)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for name, network in self.networks.items():
            hub.save_tensors(folder / hub.MODULE_FILES[name], network.state_dict())
        hub.save_tensors(folder / hub.CONTEXT_FILE, {"frames": self.context_frames})
        atomic_write_json(folder / hub.TOKENIZER_FILE, self.tokenizer.to_dict())
        checkpoint = hub.CheckpointConfig(self.config.to_dict(), self.event_texts, self.metadata)
        card = hub.model_card(checkpoint, self.parameter_counts(), len(self.context_frames), repo_id)
        atomic_write_bytes(folder / hub.CARD_FILE, card.encode("utf-8"))
        atomic_write_json(folder / hub.CONFIG_FILE, checkpoint.to_dict())
        return folder

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        device: str | torch.device = "cpu",
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        token: str | bool | None = None,
        force_download: bool = False,
        local_files_only: bool | None = None,
        check_finite: bool = False,
    ) -> "WorldModel":
        """Load a bundled world, a local folder or a Hub repo (see worldsim.hub.resolve_checkpoint).

        The Hub arguments are huggingface_hub's (`hub.HubDownload`); `local_files_only=None` follows
        `HF_HUB_OFFLINE`. `check_finite=True` also rejects NaN or infinite weights.
        """
        download = hub.HubDownload(revision=revision, cache_dir=cache_dir, token=token,
                                   force_download=force_download, local_files_only=local_files_only)  # fmt: skip
        folder = hub.resolve_checkpoint(name_or_path, download)
        return cls.load_folder(folder, device=device, check_finite=check_finite)

    @classmethod
    def load_folder(
        cls, folder: str | Path, device: str | torch.device = "cpu", check_finite: bool = False
    ) -> "WorldModel":
        """Strictly load a checkpoint folder: every file is validated before any weight is used."""
        folder = Path(folder)
        checkpoint = hub.parse_checkpoint_config(hub.read_json(folder / hub.CONFIG_FILE), str(folder / hub.CONFIG_FILE))
        try:
            config = WorldConfig.from_dict(checkpoint.world)
        except ConfigError as error:
            raise hub.CheckpointError(f"{folder / hub.CONFIG_FILE}: world.{error}") from None
        tokenizer = _load_tokenizer(folder / hub.TOKENIZER_FILE, config)
        networks = dict(zip(hub.MODULE_FILES, _build_networks(config, tokenizer, seed=0)))
        states = {
            name: hub.read_module_state(network, folder / hub.MODULE_FILES[name], finite=check_finite)
            for name, network in networks.items()
        }
        for name, network in networks.items():
            network.load_state_dict(states[name], strict=True)
        context = _load_context(folder / hub.CONTEXT_FILE, config.image_size)
        world = cls(config, **networks, tokenizer=tokenizer, context_frames=context,
                    event_texts=checkpoint.event_texts, metadata=checkpoint.metadata)  # fmt: skip
        return world.to(device)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        branch: str | None = None,
        create_pr: bool | None = None,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload worldsim world",
    ) -> str:
        """Save to a temporary folder and upload it to the Hub model repo `repo_id` in one commit.

        `branch` / `create_pr` as in huggingface_hub's `push_to_hub` (see hub.upload_folder);
        returns the commit URL.
        """
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(tmp, repo_id=repo_id)
            return hub.upload_folder(folder, repo_id, branch=branch, create_pr=create_pr, private=private,
                                     token=token, commit_message=commit_message)  # fmt: skip


def _build_networks(
    config: WorldConfig, tokenizer: Tokenizer, seed: int
) -> tuple[FrameAutoencoder, CausalTransformer, EventEncoder, RewardModel]:
    """Freshly initialised networks, seeded without disturbing the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        networks = (
            FrameAutoencoder(config.autoencoder),
            CausalTransformer(config.transformer),
            EventEncoder(config.events, tokenizer.vocab_size),
            RewardModel(config.reward),
        )
    for network in networks:
        network.eval()
    return networks


def _load_tokenizer(path: Path, config: WorldConfig) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_dict(hub.read_json(path))
    except TokenizerError as error:
        raise hub.CheckpointError(f"{path}: {error}") from None
    settings = {"trigram_buckets": config.events.trigram_buckets, "max_tokens": config.events.max_tokens}
    for key, expected in settings.items():
        if getattr(tokenizer, key) != expected:
            raise hub.CheckpointError(
                f"{path}: {key} is {getattr(tokenizer, key)} but config.json has events.{key} = {expected}"
            )
    return tokenizer


def _load_context(path: Path, image_size: int) -> Tensor:
    tensors = hub.load_tensors(path)
    if set(tensors) != {"frames"}:
        raise hub.CheckpointError(f"{path}: expected exactly one tensor 'frames', got {sorted(tensors)}")
    try:
        return _check_context_frames(tensors["frames"], image_size)
    except ValueError as error:
        raise hub.CheckpointError(f"{path}: {error}") from None


def _check_context_frames(frames: Tensor | np.ndarray | None, image_size: int) -> Tensor:
    """uint8 [K, H, W, 3] on the CPU (K may be 0)."""
    if frames is None:
        return torch.zeros(0, image_size, image_size, 3, dtype=torch.uint8)
    frames = torch.as_tensor(frames).cpu()
    expected = (image_size, image_size, 3)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or tuple(frames.shape[1:]) != expected:
        raise ValueError(
            f"context frames must be uint8 [K, {image_size}, {image_size}, 3], got {frames.dtype} {tuple(frames.shape)}"
        )
    return frames.contiguous()
