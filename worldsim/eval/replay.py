"""Replaying a `Scenario`: in the suite's true game, in a neural Simulator, and teacher-forced.

Replays are generators that yield one `Step` per frame for all rollouts at once, so long drift
rollouts never hold their whole video in memory; `collect` stacks a short replay into arrays.

The neural replay starts from the true first frame (the Simulator's context) under the same start
event, then takes the scenario's actions and event switches. Frame t's reward and termination are
those of the step that *led to* frame t (the truth reports the same step), so both line up.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from worldsim.eval.scenarios import Scenario
from worldsim.eval.true_frames import EventClasses
from worldsim.eval.truth import TRUTH, events
from worldsim.games import GroundTruth


@dataclass
class Step:
    """Frame t of every rollout (and what the step into it produced; zeros at t = 0)."""

    t: int
    frames: np.ndarray  # uint8 [N, H, W, 3]
    rewards: np.ndarray  # float32 [N]
    terminated: np.ndarray  # bool [N]
    tiles: np.ndarray | None = None  # truth only: uint8 [N, h, w]
    moved: np.ndarray | None = None  # truth only: bool [N], the player moved into this frame
    alive: np.ndarray | None = None  # truth only: bool [N], no termination before this frame
    event_labels: dict[str, np.ndarray] = field(default_factory=dict)  # truth only: group -> int64 [N]
    positions: np.ndarray | None = None  # truth only: int64 [N, 2], the player's (x, y) map tile


def _apply_texts(world: GroundTruth, texts: list[str | None]) -> None:
    if any(text is not None for text in texts):
        world.apply_events(events.parse_events(texts))


def truth_steps(scenario: Scenario, size: int, event_classes: EventClasses,
                restart_dead: bool = False) -> Iterator[Step]:
    """The true replay. With `restart_dead`, a world that died starts over on a fresh map
    (seeded by its old seed) under the events in force, so long rollouts keep yielding live frames."""
    n = scenario.num_rollouts
    world = TRUTH.ground_truth(n, size, 0)
    world.reset(scenario.seeds)
    alive = np.ones(n, dtype=bool)
    in_force: list[dict[str, str]] = [{} for _ in range(n)]  # group -> text, for restarts
    rewards, terminated, moved = np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
    for t in range(scenario.num_steps + 1):
        texts = scenario.events_at(t)
        for row, text in enumerate(texts):
            if text is not None:
                in_force[row][events.parse_event(text).group] = text
        _apply_texts(world, texts)
        states = [world.state(i) for i in range(n)]
        positions = np.array([s["position"] for s in states], dtype=np.int64)
        yield Step(t, world.render(), rewards, terminated, world.tile_classes(), moved, alive.copy(),
                   event_classes.labels([s["events"] for s in states]), positions)
        if t == scenario.num_steps:
            return
        rewards, terminated = world.step(scenario.actions[:, t])
        moved = np.any(np.array([world.state(i)["position"] for i in range(n)]) != positions, axis=1)
        alive &= ~terminated
        if restart_dead and terminated.any():
            _restart(world, terminated, restart_seeds(scenario.seeds, t), in_force)
            alive |= terminated


def restart_seeds(seeds: np.ndarray, t: int) -> np.ndarray:
    """Map seeds for worlds that start over at frame t: a hash of (map seed, t), below 2**31. A linear
    mix such as seed·7919 + t would send map seed s at frame t + 7919 and map seed s + 1 (the real
    floor's map) at frame t onto one map, where the two replays then play the same frames."""
    return np.array([np.random.SeedSequence([int(seed), t]).generate_state(1)[0] >> 1 for seed in seeds],
                    dtype=np.int64)


def _restart(world: GroundTruth, rows: np.ndarray, seeds: np.ndarray, in_force: list[dict[str, str]]) -> None:
    world.reset(seeds, mask=rows)
    for group in events.GROUPS:
        _apply_texts(world, [in_force[i].get(group) if rows[i] else None for i in range(len(rows))])


def generated_steps(world, scenario: Scenario, first_frames: np.ndarray, seed: int,
                    sampler: str = "frame") -> Iterator[Step]:
    """The neural replay in `world.simulator` (either sampler), started from the true first frames.

    Frame t always follows actions 0..t-1 under the events in force at t, as in the truth. The
    rolling sampler returns each frame `lag = sim.action_latency` steps after its action (after a
    reset its frames in flight are noised copies of the start frame, which the first `lag` steps
    return again): those repeats are skipped and the script is padded with `lag` noop steps, whose
    frames are never returned, so that frame T comes out.
    """
    n = scenario.num_rollouts
    sim = world.simulator(batch_size=n, seed=seed, sampler=sampler)
    start_texts = scenario.events_at(0)
    frames = sim.reset(event=start_texts, context=torch.as_tensor(first_frames))
    yield Step(0, frames.cpu().numpy(), np.zeros(n, np.float32), np.zeros(n, bool))
    lag = sim.action_latency
    actions = np.pad(scenario.actions, ((0, 0), (0, lag)))  # action 0: noop, as the sampler's own fill
    for step in range(1, scenario.num_steps + lag + 1):
        frames, rewards, terminated = sim.step(actions[:, step - 1], events=scenario.events_at(step))
        if step > lag:
            yield Step(step - lag, frames.cpu().numpy(), rewards.cpu().numpy(), terminated.cpu().numpy())


@torch.inference_mode()
def _true_latents(world, frames: np.ndarray) -> torch.Tensor:
    """float latents `[N, T, C, h, w]` of true uint8 frames `[N, T, H, W, 3]` on the world's device."""
    from worldsim.model.frames import to_pixels

    pixels = to_pixels(torch.as_tensor(frames.reshape(-1, *frames.shape[2:])), device=world.device)
    latents = world.autoencoder.encode(pixels).float()
    return latents.reshape(*frames.shape[:2], *latents.shape[1:])


def teacher_forced_frames(world, frames: np.ndarray, actions: np.ndarray, texts: list[list[str]],
                          seed: int) -> np.ndarray:
    """Next-frame predictions with the true past in the cache: `uint8 [N, T, H, W, 3]` for frames 1..T.

    frames: true `uint8 [N, T + 1, H, W, 3]`; actions `[N, T]`; texts `[N][T + 1]` in force per frame.
    For each t the model sees the true frames 0..t (their clean latents are committed to its KV
    cache, exactly as the Simulator commits its own frames) and generates frame t + 1.
    """
    from worldsim.model.frames import to_frames
    from worldsim.sampling.frame_sampler import CleanFrames, Conditions, sample_frames, step_sigmas

    n, num_frames = frames.shape[:2]
    device, net, sampling = world.device, world.transformer, world.config.sampling
    latents = _true_latents(world, frames)
    vectors = world.condition_events([text for row in texts for text in row]).to(device).reshape(n, num_frames, -1)
    actions = torch.as_tensor(actions, device=device, dtype=torch.long)
    generator = torch.Generator(device=device).manual_seed(seed)

    def noise(shape):
        return torch.randn((n, *shape), generator=generator, device=device)

    cache = net.new_cache(n, device=device, dtype=torch.float32)
    no_action = torch.full((n, 1), world.config.no_action, device=device, dtype=torch.long)
    pending = CleanFrames(latents[:, :1], Conditions(no_action, vectors[:, :1]))
    sigmas = step_sigmas(sampling.num_steps, sampling.sigma_shift)
    predictions = []
    for t in range(num_frames - 1):
        conditions = Conditions(actions[:, t : t + 1], vectors[:, t + 1 : t + 2])
        generated = sample_frames(net, cache, conditions, sigmas, noise, pending, sampling.fresh_noise,
                                  sampling.reader_start)
        predictions.append(to_frames(world.autoencoder.decode(generated[:, 0])).cpu().numpy())
        pending = CleanFrames(latents[:, t + 1 : t + 2], conditions)
    return np.stack(predictions, axis=1)


def reader_guessed_frames(world, frames: np.ndarray, actions: np.ndarray, texts: list[list[str]],
                          seed: int) -> np.ndarray:
    """The history reader's guess of each next frame from the true frames before it, decoded:
    `uint8 [N, T, H, W, 3]` for frames 1..T, with `teacher_forced_frames`'s arguments (`texts` and
    `seed` unused: the reader reads neither events nor noise)."""
    from worldsim.model.frames import to_frames

    n, num_frames = frames.shape[:2]
    device = world.device
    latents = _true_latents(world, frames)
    leading = torch.full((n, num_frames), world.config.no_action, device=device, dtype=torch.long)
    leading[:, 1:] = torch.as_tensor(actions, device=device, dtype=torch.long)  # actions[:, t] leads to t + 1
    guess = world.transformer.read_next(latents, latents.new_zeros(n, num_frames), leading)[:, 1:]
    decoded = to_frames(world.autoencoder.decode(guess.flatten(0, 1))).cpu().numpy()
    return decoded.reshape(n, num_frames - 1, *decoded.shape[1:])


@dataclass
class Trajectory:
    """A whole short replay, stacked: time is axis 1."""

    frames: np.ndarray  # uint8 [N, T + 1, H, W, 3]
    rewards: np.ndarray  # float32 [N, T + 1] (index 0 unused)
    terminated: np.ndarray  # bool [N, T + 1] (index 0 unused)
    tiles: np.ndarray | None = None  # uint8 [N, T + 1, h, w]
    moved: np.ndarray | None = None  # bool [N, T + 1]
    alive: np.ndarray | None = None  # bool [N, T + 1]
    event_labels: dict[str, np.ndarray] = field(default_factory=dict)  # group -> int64 [N, T + 1]
    positions: np.ndarray | None = None  # int64 [N, T + 1, 2]


def collect(steps: Iterator[Step]) -> Trajectory:
    """Stack a replay's steps along time."""
    steps = list(steps)

    def stacked(name: str) -> np.ndarray | None:
        values = [getattr(s, name) for s in steps]
        return None if values[0] is None else np.stack(values, axis=1)

    labels = {g: np.stack([s.event_labels[g] for s in steps], axis=1) for g in steps[0].event_labels}
    return Trajectory(stacked("frames"), stacked("rewards"), stacked("terminated"), stacked("tiles"),
                      stacked("moved"), stacked("alive"), labels, stacked("positions"))
