"""The event-branch test: how much a switch changes the next frame in the world, against the game.

The action-branch test asks whether the next frame depends on the key pressed; this asks the same
of an event. From the true frames up to a switch, the world generates the switch frame twice with
the same noise: under the events of the switch scenario and under those of its matched no-switch
control. The mean absolute pixel difference of the two frames is the event's effect in the world;
the difference between the real game's switch frame and its control frame is the effect in the
game. Their ratio, per event group, tells an event the world follows from one it ignores — a coin
shower has to scatter coins at once, and a world that paints a faint haze scores near 0 — apart
from how the world's own rollouts carry the change afterwards, which reactivity measures.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from worldsim.eval import metrics
from worldsim.eval.replay import Trajectory, teacher_forced_frames
from worldsim.eval.scenarios import Scenario

__all__ = ["pixel_effect", "event_effects", "summarise_effects"]


def pixel_effect(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per frame, the mean absolute difference (grey levels, 0-255) of uint8 frames `[N, H, W, 3]`."""
    if first.shape != second.shape or first.ndim != 4:
        raise ValueError(f"pixel_effect: frames must be [N, H, W, 3] of one shape, "
                         f"got {first.shape} and {second.shape}")
    return np.abs(first.astype(np.float64) - second.astype(np.float64)).mean(axis=(1, 2, 3))


def event_effects(world: Any, switched: Scenario, control: Scenario, truth: Trajectory, truth_control: Trajectory,
                  frame: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(world_effect, truth_effect)`, each `[N]`: the switch's effect on frame `frame` of every
    rollout, teacher-forced in `world` (true frames before it, same noise under both scripts) and in
    the real game (`truth` replayed under `switched`, `truth_control` under `control`)."""
    past = truth.frames[:, : frame + 1]  # frames 0..frame; the last is only the predictions' count
    actions = switched.actions[:, :frame]

    def switch_frame(script: Scenario) -> np.ndarray:
        texts = [row[: frame + 1] for row in script.texts_in_force()]
        return teacher_forced_frames(world, past, actions, texts, seed)[:, -1]

    world_effect = pixel_effect(switch_frame(switched), switch_frame(control))
    return world_effect, pixel_effect(truth.frames[:, frame], truth_control.frames[:, frame])


def summarise_effects(world_effect: np.ndarray, truth_effect: np.ndarray, groups: list[str],
                      seed: int) -> dict[str, Any]:
    """metrics.json's `event_branch` block: the world's effect over the game's, overall and per group,
    each a ratio of sums over rollouts with its bootstrap 95 % interval."""
    world_effect, truth_effect = np.asarray(world_effect, np.float64), np.asarray(truth_effect, np.float64)
    group_of = np.array(groups)
    if world_effect.shape != truth_effect.shape or group_of.shape != world_effect.shape:
        raise ValueError("summarise_effects: one effect of each kind and one group per rollout")

    def block(mask: np.ndarray) -> dict[str, Any]:
        ratio, interval = metrics.ratio_with_interval(world_effect[mask], truth_effect[mask], seed=seed)
        return {"switches": int(mask.sum()), "world_effect_grey_levels": float(world_effect[mask].mean()),
                "truth_effect_grey_levels": float(truth_effect[mask].mean()),
                "effect_ratio": ratio, "effect_ratio_ci95": interval}

    found = block(np.ones(len(group_of), dtype=bool))
    found["by_group"] = {group: block(group_of == group) for group in dict.fromkeys(groups)}
    return found
