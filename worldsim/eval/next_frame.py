"""Generated frames after a true context, under a chosen action: the model side of the
action-branch, collision and moved-pair tests.

    frames = generate_next_frames(world, context_frames, context_actions, texts, rows, actions, seed)
    held = generate_held_frames(world, context_frames, context_actions, texts, rows, actions, seed, 8)

The context frames' clean latents are committed to a fresh KV cache exactly as the Simulator
commits its own frames (the first frame conditioned on "no action", frame k on the action taken
after frame k - 1), and the next frame is sampled with the world's few-step sampler; a held
action repeats that for each further frame, on the world's own frames, as the Simulator does.

Noise: output row m uses the noise stream of its context `rows[m]` under `seed`, so every action
branched from one context sees the same noise and only the action differs; another `seed` gives
other noise. A row's result does not depend on which other rows are generated with it.
"""
from __future__ import annotations

import numpy as np
import torch

from worldsim.model.frames import to_frames, to_pixels
from worldsim.sampling.frame_sampler import CleanFrames, Conditions, sample_frames, step_sigmas
from worldsim.sampling.noise import RowNoise

ROWS_PER_PASS = 128  # bounds the memory of one sampling pass


def context_noise_seeds(contexts: np.ndarray, seed: int) -> list[int]:
    """The noise-stream seed of each context index under `seed` (distinct per context and seed)."""
    return [int(seed) * 1_000_003 + int(c) for c in contexts]


def _check_inputs(frames: np.ndarray, context_actions: np.ndarray, texts: list[str], rows: np.ndarray,
                  actions: np.ndarray, num_actions: int) -> None:
    n, k = frames.shape[:2]
    if frames.ndim != 5 or frames.dtype != np.uint8 or frames.shape[-1] != 3:
        raise ValueError(f"context frames must be uint8 [N, K, H, W, 3], got {frames.dtype} {frames.shape}")
    if context_actions.shape != (n, k - 1):
        raise ValueError(f"context actions must be [N, K - 1] = {(n, k - 1)}, got {context_actions.shape}")
    if len(texts) != n:
        raise ValueError(f"need one event text per context ({n}), got {len(texts)}")
    if rows.ndim != 1 or rows.shape != actions.shape:
        raise ValueError(f"rows and actions must be [M] alike, got {rows.shape} and {actions.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"rows must index the {n} contexts, got values in [{rows.min()}, {rows.max()}]")
    if actions.size and (actions.min() < 0 or actions.max() >= num_actions):
        raise ValueError(f"actions must be in [0, {num_actions}), got values in [{actions.min()}, {actions.max()}]")


def generate_next_frames(world, frames: np.ndarray, context_actions: np.ndarray, texts: list[str],
                         rows: np.ndarray, actions: np.ndarray, seed: int) -> np.ndarray:
    """`uint8 [M, H, W, 3]`: for each m, the frame the world generates after context `rows[m]`
    (frames `uint8 [N, K, H, W, 3]`, the K - 1 actions between them, its event text) under `actions[m]`."""
    return generate_held_frames(world, frames, context_actions, texts, rows, actions, seed, num_frames=1)[:, 0]


def generate_held_frames(world, frames: np.ndarray, context_actions: np.ndarray, texts: list[str],
                         rows: np.ndarray, actions: np.ndarray, seed: int, num_frames: int) -> np.ndarray:
    """`uint8 [M, F, H, W, 3]`: the F = `num_frames` frames the world generates after context `rows[m]`
    while `actions[m]` is held (as `generate_next_frames`, each frame following the generated ones)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    frames, context_actions = np.asarray(frames), np.asarray(context_actions, dtype=np.int64)
    rows, actions = np.asarray(rows, dtype=np.int64), np.asarray(actions, dtype=np.int64)
    _check_inputs(frames, context_actions, texts, rows, actions, world.config.num_actions)
    # Straight from the encoder, not through the world's embedding cache: a trainer calls this between
    # updates of the encoder's weights, when cached vectors would be stale.
    with torch.no_grad():
        vectors = world.event_encoder(world.tokenizer(list(texts)).to(world.device))
    outputs = [_generate(world, frames, context_actions, vectors, rows[start : start + ROWS_PER_PASS],
                         actions[start : start + ROWS_PER_PASS], seed, num_frames)
               for start in range(0, len(rows), ROWS_PER_PASS)]
    size = world.config.image_size
    return np.concatenate(outputs) if outputs else np.zeros((0, num_frames, size, size, 3), dtype=np.uint8)


@torch.inference_mode()
def _generate(world, frames: np.ndarray, context_actions: np.ndarray, vectors: torch.Tensor, rows: np.ndarray,
              actions: np.ndarray, seed: int, num_frames: int) -> np.ndarray:
    device, net, sampling = world.device, world.transformer, world.config.sampling
    count, num_context = len(rows), frames.shape[1]
    pixels = to_pixels(torch.as_tensor(frames[rows].reshape(-1, *frames.shape[2:])), device=device)
    latents = world.autoencoder.encode(pixels).float()
    latents = latents.reshape(count, num_context, *latents.shape[1:])
    no_action = np.full((count, 1), world.config.no_action, dtype=np.int64)
    led_to = torch.as_tensor(np.concatenate([no_action, context_actions[rows]], axis=1), device=device)
    events = vectors[torch.as_tensor(rows, device=device)].clone()[:, None].expand(count, num_context + 1, -1)
    pending = CleanFrames(latents, Conditions(led_to, events[:, :num_context]))
    conditions = Conditions(torch.as_tensor(actions, device=device)[:, None], events[:, num_context:])
    cache = net.new_cache(count, device=device, dtype=torch.float32)
    noise = RowNoise(context_noise_seeds(rows, seed), device)
    sigmas = step_sigmas(sampling.num_steps, sampling.sigma_shift)
    held = []
    for _ in range(num_frames):
        generated = sample_frames(net, cache, conditions, sigmas, noise, pending, sampling.fresh_noise,
                                  sampling.reader_start)
        held.append(to_frames(world.autoencoder.decode(generated[:, 0])).cpu().numpy())
        pending = CleanFrames(generated, conditions)
    return np.stack(held, axis=1)
