"""Which known event a free text is understood as: the maths, the table, the world and Simulator API."""
from __future__ import annotations

import pytest
import torch

from worldsim.model import WorldConfig
from worldsim.model.event_understanding import (DEFAULT_THRESHOLD, METADATA_KEY, EventTable, EventUnderstanding,
                                                event_vectors, nearest_events)

AXES = {"night": 0, "dark": 0, "rain": 1, "wet": 1}


def keyword_encode(texts: list[str]) -> torch.Tensor:
    """A stand-in encoder: one axis per meaning, a little of axis 2 for every text."""
    vectors = torch.zeros(len(texts), 3)
    for row, text in enumerate(texts):
        for word in text.split():
            if word in AXES:
                vectors[row, AXES[word]] += 1.0
        vectors[row, 2] = 0.1
    return vectors


TABLE = EventTable({"night falls": ("night falls", "it gets dark"), "it starts raining": ("rain", "wet rain")},
                   threshold=0.8)


def test_event_vectors_are_unit_means_and_nearest_is_by_cosine():
    texts = torch.tensor([[2.0, 0.0], [0.0, 2.0], [4.0, 0.0]])
    known = event_vectors(texts, torch.tensor([0, 1, 0]), 2)
    torch.testing.assert_close(known, torch.eye(2))
    index, similarity = nearest_events(torch.tensor([[3.0, 1.0], [-1.0, 0.1]]), known)
    assert index.tolist() == [0, 1]
    torch.testing.assert_close(similarity, torch.tensor([3 / 10 ** 0.5, 0.1 / 1.01 ** 0.5]))


def test_understanding_uses_the_threshold_and_keeps_the_order():
    results = TABLE.understand(["dark", None, "purple elephants", "  ", "wet"], keyword_encode)
    assert [r.event for r in results] == ["night falls", None, None, None, "it starts raining"]
    assert results[0].nearest == "night falls" and results[0].similarity > 0.99
    assert results[1] == EventUnderstanding("", None, None, 0.0)  # no event is never an event
    assert results[2].nearest is not None and results[2].similarity < 0.8  # nearest, but not close
    assert TABLE.understand([], keyword_encode) == []


def test_table_round_trips_through_metadata_and_falls_back_to_one_event_per_text():
    again = EventTable.from_metadata({METADATA_KEY: TABLE.to_metadata()}, ["ignored"])
    assert again == EventTable(dict(TABLE.events), 0.8)
    plain = EventTable.from_metadata({}, ["night falls", "", "rain", "rain"])
    assert dict(plain.events) == {"night falls": ("night falls",), "rain": ("rain",)}
    assert plain.threshold == DEFAULT_THRESHOLD
    grouped = EventTable.from_metadata({"data": {"world": "explorer"}}, ["it gets dark", "night falls", "rain", "odd"])
    assert dict(grouped.events) == {"night falls": ("night falls", "it gets dark"), "it starts raining": ("rain",),
                                    "odd": ("odd",)}  # a world's texts grouped by the game's events


@pytest.mark.parametrize("entry, message", [
    ({"events": {"a": ["a"]}}, "threshold"),
    ({"events": ["a"], "threshold": 0.5}, "events"),
    ({"events": {"a": ["a"]}, "threshold": 3.0}, "threshold"),
    ({"events": {"a": []}, "threshold": 0.5}, "non-blank"),
])
def test_malformed_tables_are_refused(entry, message):
    with pytest.raises(ValueError, match=message):
        EventTable.from_metadata({METADATA_KEY: entry}, [])


@pytest.fixture(scope="module")
def world():
    from worldsim.world import WorldModel

    texts = ["night falls", "it gets dark", "rain", "it is raining"]
    world = WorldModel.create(WorldConfig.preset("tiny"), event_texts=texts, seed=0)
    world.metadata[METADATA_KEY] = EventTable(
        {"night falls": ("night falls", "it gets dark"), "rain": ("rain", "it is raining")}, threshold=0.0
    ).to_metadata()
    return world


def test_world_understands_texts_against_its_event_table(world):
    understood = world.understand_event("night falls")
    assert understood.text == "night falls" and understood.nearest in ("night falls", "rain")
    assert understood.event == understood.nearest  # threshold 0: everything is understood
    assert -1.0 <= understood.similarity <= 1.0
    assert world.understand_event(None).event is None and world.understand_event("").similarity == 0.0
    assert [u.text for u in world.understand_events(["rain", "🌙"])] == ["rain", "🌙"]


def test_simulator_reports_what_each_row_is_understood_as(world):
    sim = world.simulator(batch_size=2, seed=0, steps=1)
    sim.reset(event=["it gets dark", None])
    first, none = sim.understood_events
    alone = world.understand_event("it gets dark")
    assert none is None and (first.text, first.event, first.nearest) == (alone.text, alone.event, alone.nearest)
    assert first.similarity == pytest.approx(alone.similarity, abs=1e-5)  # batched with other texts or not
    sim.step([0, 0], events=[None, "rain"])
    assert sim.understood_events[1].event == world.understand_event("rain").event
    assert sim.understood_events[0].text == "it gets dark"  # kept while the event stays in force


def test_non_ascii_events_are_events(world):
    """An emoji or a text in another script is an (unknown) event, never silently "no event"."""
    vectors = world.encode_events(["🌙", "夜が来る", "été", "t", ""])
    assert all(torch.count_nonzero(v) > 0 for v in vectors[:4]) and torch.count_nonzero(vectors[4]) == 0
    assert not torch.allclose(vectors[2], vectors[3])
    sim = world.simulator(batch_size=1, seed=0, steps=1)
    sim.reset(event="🌙")
    assert sim.events == ["🌙"] and sim.understood_events[0] is not None


def test_the_generator_is_conditioned_on_the_known_event_a_text_is_understood_as(world):
    """A paraphrase plays exactly as the event it is understood as; a text not understood keeps its vector."""
    texts = ["it gets dark", "it is raining", None]
    understood = world.understand_events(texts)
    assert all(u.event is not None for u in understood[:2])  # threshold 0
    expected = world.encode_events([understood[0].event, understood[1].event, None])
    torch.testing.assert_close(world.condition_events(texts), expected)
    same = [world.simulator(batch_size=1, seed=4, steps=1) for _ in range(2)]
    frames = [sim.reset(event=text) for sim, text in zip(same, ["it gets dark", understood[0].event])]
    assert torch.equal(frames[0], frames[1])
    assert torch.equal(same[0].step([1])[0], same[1].step([1])[0])


def test_texts_not_understood_and_worlds_without_snapping_keep_their_own_vectors(world):
    import dataclasses

    strict = dict(world.metadata)
    sampling = world.config.sampling
    try:
        world.metadata[METADATA_KEY] = {**world.metadata[METADATA_KEY], "threshold": 1.0}
        assert world.understand_event("it gets dark").event is None
        torch.testing.assert_close(world.condition_events(["it gets dark"]), world.encode_events(["it gets dark"]))
        world.metadata.update(strict)
        world.config.sampling = dataclasses.replace(sampling, snap_events=False)
        torch.testing.assert_close(world.condition_events(["it gets dark"]), world.encode_events(["it gets dark"]))
    finally:
        world.metadata.update(strict)
        world.config.sampling = sampling


def test_a_world_saved_before_snapping_existed_loads_without_it(world, tmp_path):
    import json

    from worldsim.world import WorldModel

    world.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["world"]["sampling"]["snap_events"] is True
    saved["format_version"] = 3  # what format 3 wrote: every text conditioned on its own vector
    del saved["world"]["sampling"]["snap_events"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert WorldModel.from_pretrained(tmp_path).config.sampling.snap_events is False
