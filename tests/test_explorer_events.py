"""The Explorer event vocabulary: sizes, separation of training and held-out texts, lookup."""
import pytest

from worldsim.envs.explorer import events
from worldsim.envs.explorer.batch import EVENT_EFFECTS
from worldsim.model import Tokenizer
from worldsim.model.config import EventEncoderConfig


def test_vocabulary_has_enough_events_and_paraphrases():
    assert len(events.EVENT_TYPES) >= 10
    for event in events.EVENT_TYPES:
        assert len(event.train) >= 15, event.name
        assert len(event.eval) >= 5, event.name
        assert event.group in events.GROUPS
    for group in events.GROUPS:
        assert len(events.events_in_group(group)) >= 2, f"group {group} cannot be switched back"


def test_texts_are_unique_across_events_and_splits():
    seen: dict[str, str] = {}
    for event in events.EVENT_TYPES:
        for text in event.texts:
            key = events.normalize(text)
            assert key not in seen, f"{text!r} belongs to both {seen[key]} and {event.name}"
            seen[key] = event.name
    train = {events.normalize(text) for text in events.training_texts()}
    held_out = {events.normalize(text) for text in events.eval_texts()}
    assert train.isdisjoint(held_out)
    assert len(held_out) == sum(len(event.eval) for event in events.EVENT_TYPES)


def test_every_text_fits_the_text_window_whole():
    # Scenarios put held-out texts in force through the Simulator, which refuses a text longer
    # than the tokenizer's window; a longer one would also be scored truncated by the held-out measure.
    window = EventEncoderConfig().max_tokens
    tokenizer = Tokenizer.build(events.training_texts(), max_tokens=window)
    too_long = [text for event in events.EVENT_TYPES for text in event.texts if tokenizer.num_tokens(text) > window]
    assert too_long == []


def test_every_text_parses_to_its_event():
    for event in events.EVENT_TYPES:
        for text in event.texts:
            assert events.parse_event(text) is event


def test_design_examples_are_known_and_lookup_ignores_case_and_spacing():
    assert events.parse_event("a sunny meadow").group == "time"
    assert events.parse_event("  NIGHT   falls. ").name == "night"
    assert events.parse_event("It starts snowing!").name == "snow"
    assert events.parse_event("enemies appear").name == "enemies_appear"


def test_unknown_text_is_a_clear_error_listing_known_events():
    with pytest.raises(events.UnknownEventError) as error:
        events.parse_event("purple elephants dance")
    message = str(error.value)
    assert "purple elephants dance" in message
    for event in events.EVENT_TYPES:
        assert event.canonical in message
    assert isinstance(error.value, ValueError)
    with pytest.raises(TypeError):
        events.parse_event(3)


def test_parse_events_treats_none_and_blank_as_no_event():
    night = events.event_by_name("night")
    assert events.parse_events([None, "", "  ", "night falls"]) == [None, None, None, night]
    with pytest.raises(events.UnknownEventError):
        events.event_by_name("nope")


def test_simulator_implements_every_event():
    assert set(EVENT_EFFECTS) >= {event.name for event in events.EVENT_TYPES}
