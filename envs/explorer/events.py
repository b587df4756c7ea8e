"""The Explorer event vocabulary: event types, their texts, and text -> event lookup.

The vocabulary lives in `events.json` (data, not code). Each event type has

- `name`      a stable identifier used by the simulator (`"night"`, `"lava_eruption"`, ...),
- `group`     the aspect of the world it sets (`time`, `weather`, `season`, `coins`, `enemies`, `lava`);
              an event stays in force until another event of the same group replaces it, so events
              of different groups combine (night + rain),
- `canonical` the text shown to people,
- `train`     paraphrases that training may use (together with the canonical text),
- `eval`      held-out paraphrases, used only to evaluate generalisation and never for training.

The real game understands every text of the vocabulary (`parse_event`); an unknown text raises
`UnknownEventError`, whose message lists the known events.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

_VOCABULARY_FILE = Path(__file__).with_name("events.json")


class UnknownEventError(ValueError):
    """An event text that is not in the Explorer vocabulary."""


@dataclass(frozen=True)
class EventType:
    name: str
    group: str
    canonical: str
    train: tuple[str, ...]
    eval: tuple[str, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        """Every text that names this event: canonical, training and held-out paraphrases."""
        return (self.canonical, *self.train, *self.eval)


def normalize(text: str) -> str:
    """Lookup key of a text: lower case, single spaces, no surrounding spaces or final '.'/'!'."""
    return " ".join(text.lower().split()).rstrip(".!").strip()


def _load(path: Path) -> tuple[tuple[str, ...], tuple[EventType, ...]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    groups = tuple(data["groups"])
    event_types = tuple(
        EventType(
            name=entry["name"],
            group=entry["group"],
            canonical=entry["canonical"],
            train=tuple(entry["train"]),
            eval=tuple(entry["eval"]),
        )
        for entry in data["events"]
    )
    unknown_groups = {event.group for event in event_types} - set(groups)
    if unknown_groups:
        raise ValueError(f"{path}: events use undeclared groups {sorted(unknown_groups)}")
    return groups, event_types


GROUPS, EVENT_TYPES = _load(_VOCABULARY_FILE)
EVENT_NAMES: tuple[str, ...] = tuple(event.name for event in EVENT_TYPES)
_BY_NAME: dict[str, EventType] = {event.name: event for event in EVENT_TYPES}
_BY_TEXT: dict[str, EventType] = {
    normalize(text): event for event in EVENT_TYPES for text in event.texts
}


def _known_events_message() -> str:
    return "; ".join(f"{event.name}: '{event.canonical}'" for event in EVENT_TYPES)


def parse_event(text: str) -> EventType:
    """The event named by `text` (canonical text or any paraphrase, case/space-insensitive)."""
    if not isinstance(text, str):
        raise TypeError(f"event text must be a str, got {type(text).__name__}")
    event = _BY_TEXT.get(normalize(text))
    if event is None:
        raise UnknownEventError(
            f"unknown Explorer event {text!r}; known events (name: canonical text) are "
            f"{_known_events_message()} (paraphrases of these are accepted too)"
        )
    return event


def parse_events(texts: Iterable[str | None]) -> list[EventType | None]:
    """`parse_event` for each text; None or a blank text means 'no new event' and gives None."""
    return [None if text is None or not text.strip() else parse_event(text) for text in texts]


def event_by_name(name: str) -> EventType:
    """The event type with this `name` (e.g. 'night')."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownEventError(
            f"unknown Explorer event name {name!r}; known names are {', '.join(EVENT_NAMES)}"
        ) from None


def events_in_group(group: str) -> tuple[EventType, ...]:
    """The event types of one group, in vocabulary order."""
    if group not in GROUPS:
        raise ValueError(f"unknown event group {group!r}; groups are {', '.join(GROUPS)}")
    return tuple(event for event in EVENT_TYPES if event.group == group)


def training_texts() -> list[str]:
    """Every text training may use: each event's canonical text and training paraphrases."""
    return [text for event in EVENT_TYPES for text in (event.canonical, *event.train)]


def eval_texts() -> list[str]:
    """The held-out evaluation paraphrases (never to be used for training)."""
    return [text for event in EVENT_TYPES for text in event.eval]
