"""The networks of a world: autoencoder, causal transformer + kv cache, text events, reward.

See docs/ARCHITECTURE.md (worldsim/model) for the contract other modules code against.
"""
from worldsim.model import flow
from worldsim.model.autoencoder import FrameAutoencoder
from worldsim.model.config import (PRESETS, AutoencoderConfig, ConfigError, EventEncoderConfig,
                                   RewardConfig, SamplingConfig, TransformerConfig, WorldConfig)
from worldsim.model.frames import to_frames, to_pixels
from worldsim.model.kv_cache import KVCache
from worldsim.model.reward import REWARD_VALUES, RewardModel, class_to_reward, reward_to_class
from worldsim.model.text import EventEmbeddingCache, EventEncoder, Tokenizer, TokenizerError
from worldsim.model.transformer import CausalTransformer

__all__ = [
    "PRESETS", "REWARD_VALUES", "AutoencoderConfig", "CausalTransformer", "ConfigError",
    "EventEmbeddingCache", "EventEncoder", "EventEncoderConfig", "FrameAutoencoder", "KVCache",
    "RewardConfig", "RewardModel", "SamplingConfig", "Tokenizer", "TokenizerError",
    "TransformerConfig", "WorldConfig", "class_to_reward", "flow", "reward_to_class",
    "to_frames", "to_pixels",
]
