"""How well a frame autoencoder reconstructs real frames of the suite's game, per event and per tile class.

    python -m worldsim.eval.reconstruction WORLD [--frames 2048] [--seed 0]

Held-out frames come from `TrueFrameStream` with `held_out=True` (map seeds the training
streams never use) under random events in every group, so each event class is represented.
Two views of one reconstruction:

- PSNR per frame (uint8 pixels), averaged per event class of every group ("time/night") and per
  tile class over the pixels of the tiles of that class (the small sprites, which an average over
  whole frames hides);
- the frame parser's agreement: the share of tiles it reads the same in the reconstruction as in
  the original, over all tiles and per tile class of the original's reading ("player", "coin").
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worldsim.eval import metrics
from worldsim.eval.true_frames import EventClasses, StreamConfig, TrueFrameStream
from worldsim.eval.truth import TRUTH

TILE_CLASSES = TRUTH.tile_classes
TILE_PIXELS = 4  # pixels per tile side: one tile = one latent cell
_DECODE_CHUNK = 128


@dataclass
class LabelledFrames:
    """Real frames with their event class per group and their true tile classes."""

    frames: np.ndarray  # uint8 [N, H, W, 3]
    tiles: np.ndarray  # uint8 [N, H/4, W/4], true tile classes
    events: dict[str, np.ndarray]  # group -> int64 [N], index into event_classes.groups[group]
    event_classes: EventClasses


def held_out_frames(num_frames: int, seed: int = 0, size: int = 64, num_worlds: int = 64) -> LabelledFrames:
    """`num_frames` frames of held-out maps under random events (every group, both directions)."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    event_classes = EventClasses.from_world(size)
    stream = TrueFrameStream(StreamConfig(num_worlds=num_worlds, size=size), seed, event_classes, held_out=True)
    batches = [stream.next_batch() for _ in range(-(-num_frames // num_worlds))]
    events = {g: np.concatenate([b.events[g] for b in batches])[:num_frames] for g in event_classes.groups}
    return LabelledFrames(np.concatenate([b.frames for b in batches])[:num_frames],
                          np.concatenate([b.tiles for b in batches])[:num_frames], events, event_classes)


@torch.no_grad()
def reconstruct(autoencoder: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    """uint8 `[N, H, W, 3]` → its decoded encoding, uint8 `[N, H, W, 3]` (autoencoder in eval mode)."""
    from worldsim.model import to_frames, to_pixels

    device = next(autoencoder.parameters()).device
    parts = [to_frames(autoencoder.decode(autoencoder.encode(to_pixels(frames[start:start + _DECODE_CHUNK],
                                                                        device=device)))).cpu().numpy()
             for start in range(0, len(frames), _DECODE_CHUNK)]
    return np.concatenate(parts)


def psnr_by_event(frame_psnr: np.ndarray, events: dict[str, np.ndarray], event_classes: EventClasses) -> dict[str, float]:
    """Mean per-frame PSNR of the frames of each event class: `{"group/name": dB}` (present classes only)."""
    result = {}
    for group, names in event_classes.groups.items():
        for index, name in enumerate(names):
            chosen = events[group] == index
            if chosen.any():
                result[f"{group}/{name}"] = float(frame_psnr[chosen].mean())
    return result


def tile_pixel_mask(tiles: np.ndarray, tile_class: int) -> np.ndarray:
    """bool `[N, H, W]`: the pixels of the tiles of `tile_class` (`tiles` is `[N, H/4, W/4]`)."""
    chosen = tiles == tile_class
    return chosen.repeat(TILE_PIXELS, axis=-2).repeat(TILE_PIXELS, axis=-1)


def psnr_by_tile_class(recon: np.ndarray, frames: np.ndarray, tiles: np.ndarray,
                       class_names: tuple[str, ...] = TILE_CLASSES) -> dict[str, float]:
    """PSNR over the pixels of each tile class's tiles, pooled over frames (present classes only)."""
    if recon.shape != frames.shape or tiles.shape[:-2] != frames.shape[:-3]:
        raise ValueError(f"recon {recon.shape}, frames {frames.shape} and tiles {tiles.shape} do not match")
    squared_error = ((recon.astype(np.float64) - frames.astype(np.float64)) ** 2).mean(axis=-1)
    result = {}
    for index, name in enumerate(class_names):
        mask = tile_pixel_mask(tiles, index)
        if mask.any():
            mse = squared_error[mask].mean()
            result[name] = float(min(10 * np.log10(255.0**2 / max(mse, 1e-12)), metrics.PSNR_CAP_DB))
    return result


def parser_agreement(recon_tiles: np.ndarray, original_tiles: np.ndarray,
                     class_names: tuple[str, ...] = TILE_CLASSES) -> dict[str, float]:
    """Share of tiles read the same in both: `{"all": share, name: share over the tiles the
    original reads as that class}` (present classes only)."""
    result = {"all": metrics.masked_accuracy(recon_tiles, original_tiles)}
    for index, name in enumerate(class_names):
        chosen = original_tiles == index
        if chosen.any():
            result[name] = metrics.masked_accuracy(recon_tiles, original_tiles, chosen)
    return result


def evaluate_reconstruction(autoencoder: torch.nn.Module, data: LabelledFrames, probes: Any) -> dict[str, Any]:
    """Every reconstruction measure of `autoencoder` on `data`; `probes` is a loaded `Probes`."""
    was_training = autoencoder.training
    autoencoder.eval()
    try:
        recon = reconstruct(autoencoder, data.frames)
    finally:
        autoencoder.train(was_training)
    frame_psnr = metrics.psnr(recon, data.frames)
    by_event = psnr_by_event(frame_psnr, data.events, data.event_classes)
    agreement = parser_agreement(probes.parse_tiles(recon), probes.parse_tiles(data.frames))
    return {
        "frames": len(data.frames),
        "psnr_db": float(frame_psnr.mean()),
        "psnr_db_worst_event": min(by_event.values()),
        "psnr_db_by_event": by_event,
        "psnr_db_by_tile_class": psnr_by_tile_class(recon, data.frames, data.tiles),
        "parser_agreement": agreement,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m worldsim.eval.reconstruction",
                                     description="Reconstruction PSNR per event and frame-parser agreement "
                                                 "per tile class of a world's autoencoder on held-out frames.")
    parser.add_argument("world", help="world folder or name worldsim.load resolves")
    parser.add_argument("--frames", type=int, default=2048, help="held-out frames (default: 2048)")
    parser.add_argument("--seed", type=int, default=0, help="held-out stream seed (default: 0)")
    args = parser.parse_args(argv)
    from worldsim.eval.probes import Probes
    from worldsim.world import WorldModel

    world = WorldModel.from_pretrained(args.world)
    data = held_out_frames(args.frames, args.seed, world.config.image_size)
    print(json.dumps(evaluate_reconstruction(world.autoencoder, data, Probes.load()), indent=2))


if __name__ == "__main__":
    main()
