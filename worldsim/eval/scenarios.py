"""Seeded action/event scripts, replayed identically in the suite's true game and in a neural Simulator.

A `Scenario` fixes, for N rollouts of T steps: the map seed, the action after each frame and the
event text put in force at each frame. Event texts are always *held-out* evaluation paraphrases
(`events.eval_texts()`), never training ones, so reactivity measures understanding, not recall.
Actions come from the datasets' exploration policy (sticky moves, stretches of standing still), so
the model is scored on the kind of play it was trained on.

Frame/step alignment (as in datasets): the event listed at frame t is in force from frame t on;
`actions[:, t]` is taken after frame t and leads to frame t + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldsim.data.policy import ExplorationPolicy, PolicyConfig
from worldsim.eval.true_frames import EventClasses
from worldsim.eval.truth import TRUTH, events

_ACTION_POLICY = PolicyConfig(event_every=None, episode_frames=None)
# Script families of `scenario_rng` (fidelity 0, switches 1, memory walks 10 + N): the suite's long
# rollouts and the drift study draw theirs from these.
DRIFT_FAMILY, LONG_DRIFT_FAMILY = 2, 3


@dataclass
class Scenario:
    name: str
    seeds: np.ndarray  # int64 [N] map seeds
    actions: np.ndarray  # int64 [N, T]
    switches: list[dict[int, str]]  # per rollout: frame -> held-out event text put in force there

    def __post_init__(self) -> None:
        n, t = self.actions.shape
        if self.seeds.shape != (n,) or len(self.switches) != n:
            raise ValueError(f"scenario {self.name}: seeds {self.seeds.shape} and switches ({len(self.switches)}) "
                             f"must match the {n} rollouts of actions {self.actions.shape}")
        if any(frame < 0 or frame > t for s in self.switches for frame in s):
            raise ValueError(f"scenario {self.name}: a switch lies outside frames 0..{t}")

    @property
    def num_rollouts(self) -> int:
        return self.actions.shape[0]

    @property
    def num_steps(self) -> int:
        return self.actions.shape[1]

    def events_at(self, frame: int) -> list[str | None]:
        """The text put in force at `frame` in each rollout (None = keep the current one)."""
        return [switches.get(frame) for switches in self.switches]

    def texts_in_force(self) -> list[list[str]]:
        """`[N][T + 1]` the event text in force at every frame ("" before any event)."""
        table = []
        for switches in self.switches:
            current, row = "", []
            for frame in range(self.num_steps + 1):
                current = switches.get(frame, current)
                row.append(current)
            table.append(row)
        return table

    def with_switches(self, name: str, switches: list[dict[int, str]]) -> "Scenario":
        """The same maps and actions under another event script (the matched control)."""
        return Scenario(name, self.seeds, self.actions, switches)


@dataclass(frozen=True)
class SwitchTargets:
    """What each rollout of a switch scenario switches to, for reactivity."""

    frame: int  # the first frame under the new event (same for every rollout)
    groups: list[str]  # [N] the event group that switches
    classes: np.ndarray  # int64 [N] the event class (EventClasses index in that group) switched to


def scenario_rng(seed: int, family: int) -> np.random.Generator:
    """Independent streams per family of scripts, so resizing one family leaves the others' scripts unchanged."""
    return np.random.default_rng(np.random.SeedSequence([seed, family]))


def exploration_actions(rng: np.random.Generator, num_rollouts: int, num_steps: int) -> np.ndarray:
    """`int64 [N, T]` actions of the datasets' sticky exploration policy."""
    policy = ExplorationPolicy(num_rollouts, TRUTH.num_actions, [], _ACTION_POLICY, rng)
    actions = np.zeros((num_rollouts, num_steps), dtype=np.int64)
    for step in range(num_steps):
        actions[:, step] = policy.step().actions
    return actions


def map_seeds(rng: np.random.Generator, num_rollouts: int) -> np.ndarray:
    return rng.integers(0, 2**31 - 1, size=num_rollouts, dtype=np.int64)


def held_out_text(rng: np.random.Generator, event: events.EventType) -> str:
    return event.eval[int(rng.integers(len(event.eval)))]


def plain_scenario(name: str, rng: np.random.Generator, num_rollouts: int, num_steps: int,
                   start_event_prob: float = 0.5) -> Scenario:
    """No switches after the start; some rollouts start under a random event."""
    seeds, actions = map_seeds(rng, num_rollouts), exploration_actions(rng, num_rollouts, num_steps)
    switches = []
    for _ in range(num_rollouts):
        event = events.EVENT_TYPES[int(rng.integers(len(events.EVENT_TYPES)))]
        switches.append({0: held_out_text(rng, event)} if rng.random() < start_event_prob else {})
    return Scenario(name, seeds, actions, switches)


def switch_scenarios(rng: np.random.Generator, num_rollouts: int, num_steps: int, switch_frame: int,
                     event_classes: EventClasses) -> tuple[Scenario, Scenario, SwitchTargets]:
    """One event switch per rollout at `switch_frame`, to a state that looks different, plus the
    matched control with the same maps, actions and start event but no switch.

    Groups take turns (rollout i switches group i mod 6), so every group gets its share.
    """
    if not 0 < switch_frame <= num_steps:
        raise ValueError(f"switch_frame must be in 1..{num_steps}, got {switch_frame}")
    seeds, actions = map_seeds(rng, num_rollouts), exploration_actions(rng, num_rollouts, num_steps)
    with_switch, without_switch, groups, classes = [], [], [], []
    for row in range(num_rollouts):
        group = events.GROUPS[row % len(events.GROUPS)]
        members = events.events_in_group(group)
        start = members[int(rng.integers(len(members)))] if rng.random() < 0.5 else None
        start_class = event_classes.class_of(group, start.name if start else None)
        targets = [e for e in members if event_classes.class_of(group, e.name) != start_class]
        target = targets[int(rng.integers(len(targets)))]
        opening = {0: held_out_text(rng, start)} if start else {}
        without_switch.append(opening)
        with_switch.append({**opening, switch_frame: held_out_text(rng, target)})
        groups.append(group)
        classes.append(event_classes.class_of(group, target.name))
    switched = Scenario("switch", seeds, actions, with_switch)
    control = switched.with_switches("no-switch", without_switch)
    return switched, control, SwitchTargets(switch_frame, groups, np.array(classes, dtype=np.int64))


def drift_scenario(rng: np.random.Generator, num_rollouts: int, num_steps: int,
                   switch_every: tuple[int, int]) -> Scenario:
    """Long play with an event switch every `switch_every` frames (a random event each time)."""
    seeds, actions = map_seeds(rng, num_rollouts), exploration_actions(rng, num_rollouts, num_steps)
    switches = []
    for _ in range(num_rollouts):
        script, frame = {}, 0
        while frame <= num_steps:
            script[frame] = held_out_text(rng, events.EVENT_TYPES[int(rng.integers(len(events.EVENT_TYPES)))])
            frame += int(rng.integers(switch_every[0], switch_every[1] + 1))
        switches.append(script)
    return Scenario("drift", seeds, actions, switches)
