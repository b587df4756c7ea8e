"""Seeded scenario scripts and their replay in the real Explorer."""
import numpy as np
import pytest

from worldsim.envs.explorer import ExplorerBatch, events
from worldsim.eval import scenarios
from worldsim.eval.replay import collect, truth_steps
from worldsim.eval.true_frames import EventClasses


@pytest.fixture(scope="module")
def event_classes():
    return EventClasses.from_world()


def _switch_family(seed, event_classes):
    return scenarios.switch_scenarios(np.random.default_rng(seed), 12, 10, 4, event_classes)


def test_scenarios_are_reproducible_from_their_seed(event_classes):
    first, second, other = (_switch_family(s, event_classes)[0] for s in (3, 3, 4))
    np.testing.assert_array_equal(first.actions, second.actions)
    np.testing.assert_array_equal(first.seeds, second.seeds)
    assert first.switches == second.switches
    assert not np.array_equal(first.seeds, other.seeds)


def test_switches_use_held_out_paraphrases_and_change_the_look(event_classes):
    switched, control, targets = _switch_family(0, event_classes)
    held_out = set(events.eval_texts())
    assert all(text in held_out for script in switched.switches for text in script.values())
    assert targets.groups == [events.GROUPS[i % len(events.GROUPS)] for i in range(12)]
    for row, (with_switch, without) in enumerate(zip(switched.switches, control.switches)):
        assert 4 in with_switch and 4 not in without
        assert {k: v for k, v in with_switch.items() if k != 4} == without
        start = events.parse_event(without[0]).name if 0 in without else None
        group = targets.groups[row]
        assert events.parse_event(with_switch[4]).group == group
        assert targets.classes[row] != event_classes.class_of(group, start)
    np.testing.assert_array_equal(control.actions, switched.actions)


def test_texts_in_force_carry_each_switch_forward():
    scenario = scenarios.Scenario("s", np.zeros(1, np.int64), np.zeros((1, 4), np.int64),
                                  [{1: "drizzle", 3: "sundown"}])
    assert scenario.texts_in_force() == [["", "drizzle", "drizzle", "sundown", "sundown"]]
    assert scenario.events_at(3) == ["sundown"] and scenario.events_at(2) == [None]
    with pytest.raises(ValueError, match="outside frames"):
        scenarios.Scenario("s", np.zeros(1, np.int64), np.zeros((1, 4), np.int64), [{5: "drizzle"}])


def test_drift_scenario_switches_within_the_requested_spacing():
    scenario = scenarios.drift_scenario(np.random.default_rng(0), 3, 200, (30, 60))
    for script in scenario.switches:
        frames = sorted(script)
        assert frames[0] == 0 and all(30 <= b - a <= 60 for a, b in zip(frames, frames[1:]))


def test_truth_replay_matches_the_explorer_step_by_step(event_classes):
    scenario = scenarios.plain_scenario("p", np.random.default_rng(1), 3, 12, start_event_prob=1.0)
    truth = collect(truth_steps(scenario, 64, event_classes))
    world = ExplorerBatch(3)
    world.reset(scenario.seeds)
    world.apply_events(events.parse_events(scenario.events_at(0)))
    np.testing.assert_array_equal(truth.frames[:, 0], world.render())
    for t in range(12):
        rewards, terminated = world.step(scenario.actions[:, t])
        np.testing.assert_array_equal(truth.frames[:, t + 1], world.render())
        np.testing.assert_array_equal(truth.rewards[:, t + 1], rewards)
        np.testing.assert_array_equal(truth.terminated[:, t + 1], terminated)
    # A world is alive at frame t unless a step into a frame <= t terminated it.
    np.testing.assert_array_equal(truth.alive[:, 1:], ~np.logical_or.accumulate(truth.terminated[:, 1:], axis=1))


def test_restarting_dead_worlds_keeps_every_frame_alive(event_classes):
    scenario = scenarios.drift_scenario(np.random.default_rng(2), 4, 60, (10, 20))
    truth = collect(truth_steps(scenario, 64, event_classes, restart_dead=True))
    assert truth.alive.all()
