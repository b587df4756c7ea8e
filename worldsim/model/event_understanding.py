"""Which known event a free text is understood as: the nearest event by cosine similarity.

A world knows a table of events: each event's canonical text ("night falls") and the texts it
was trained under (its paraphrases, canonical included). An event's vector is the normalised
mean of the encoder's vectors of those texts, rather than of the canonical text alone, because
the generator was trained on all of them and the mean is the centre of that cloud. A text is
understood as the event of highest cosine similarity when that similarity reaches the table's
`threshold`; below it the text is "not understood" (event None), although the nearest event is
still reported. "No event" (None or a blank text) is never understood as anything.

The table and its threshold travel in the checkpoint's metadata under `METADATA_KEY`, written
by the `events` training stage, which measures the threshold between training texts and
nonsense/unrelated texts. A world without that entry groups its event texts by the game's event
vocabulary (below) when there is one, else treats each text as its own event, with
`DEFAULT_THRESHOLD`.

Game event vocabularies. A game (a dataset's `world` name) may ship its events in its game spec
(`worldsim.games.GameSpec.events`) as a module with
  - `parse_event(text)` -> an event with `canonical` (str), `train` and `eval` (held-out) texts,
    raising ValueError for a text it does not know, and
  - `training_texts()` -> every canonical and training text of the game.
Training draws paraphrases from it and evaluation its held-out texts; no game is named here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["METADATA_KEY", "DEFAULT_THRESHOLD", "EventUnderstanding", "EventTable", "event_vectors",
           "nearest_events", "KnownEvent", "world_event_vocabulary", "describe_event", "known_events"]

METADATA_KEY = "event_understanding"
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class KnownEvent:
    """One event of a game: its canonical text, the texts training may use, the held-out ones."""

    canonical: str
    texts: tuple[str, ...]  # canonical first, then the training paraphrases
    held_out: tuple[str, ...] = ()  # evaluation paraphrases, never trained on


def world_event_vocabulary(world: str) -> ModuleType | None:
    """The event vocabulary of the game named `world` (its `GameSpec.events`), None when it has none."""
    from worldsim.games import shipped_game

    game = shipped_game(world)
    return None if game is None else game.events


def describe_event(text: str, world: str) -> KnownEvent:
    """The event `text` names in `world`'s vocabulary; a text it does not know stands for itself."""
    vocabulary = world_event_vocabulary(world)
    if vocabulary is not None:
        try:
            event = vocabulary.parse_event(text)
        except ValueError:
            pass
        else:
            return KnownEvent(event.canonical, tuple(dict.fromkeys((event.canonical, *event.train))),
                              tuple(event.eval))
    return KnownEvent(text, (text,))


def known_events(texts: Sequence[str], world: str) -> list[KnownEvent]:
    """The distinct events that `texts` name (first-seen order), e.g. a world's `event_texts`."""
    events: dict[str, KnownEvent] = {}
    for text in texts:
        if text.strip():
            event = describe_event(text, world)
            events.setdefault(event.canonical, event)
    return list(events.values())


@dataclass(frozen=True)
class EventUnderstanding:
    """How a text is understood: `event` is the canonical text of the known event, or None."""

    text: str
    event: str | None  # the nearest known event when it is close enough, else None
    nearest: str | None  # the nearest known event however far (None for "no event")
    similarity: float  # cosine similarity to `nearest` (0.0 for "no event")


def event_vectors(text_vectors: Tensor, event_of_text: Tensor, num_events: int) -> Tensor:
    """Unit vectors `[K, E]`: the mean of each event's text vectors `[T, E]` (`event_of_text` `[T]`)."""
    sums = torch.zeros(num_events, text_vectors.shape[1], dtype=text_vectors.dtype, device=text_vectors.device)
    sums.index_add_(0, event_of_text.to(text_vectors.device), text_vectors)
    return F.normalize(sums, dim=-1)


def nearest_events(vectors: Tensor, known: Tensor) -> tuple[Tensor, Tensor]:
    """For vectors `[N, E]` and unit event vectors `[K, E]`: (index long `[N]`, cosine similarity `[N]`)."""
    similarity = F.normalize(vectors, dim=-1) @ known.T
    best, index = similarity.max(dim=1)
    return index, best


@dataclass(frozen=True)
class EventTable:
    """Known events (canonical text -> its texts) and the similarity needed to be understood."""

    events: Mapping[str, tuple[str, ...]]
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {self.threshold}")
        for canonical, texts in self.events.items():
            if not canonical.strip() or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise ValueError(f"event {canonical!r}: needs a canonical text and non-blank texts, got {texts!r}")

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], event_texts: Sequence[str]) -> "EventTable":
        """The table stored in a world's metadata; else `event_texts` grouped by the game's vocabulary."""
        entry = metadata.get(METADATA_KEY)
        if entry is None:
            data = metadata.get("data")
            world = str(data.get("world", "")) if isinstance(data, Mapping) else ""
            known = set(event_texts)
            # only the texts the world was trained under stand for an event
            return cls({event.canonical: tuple(t for t in event.texts if t in known) or (event.canonical,)
                        for event in known_events(list(event_texts), world)})
        try:
            events = {str(canonical): tuple(texts) for canonical, texts in entry["events"].items()}
            return cls(events, float(entry["threshold"]))
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"metadata.{METADATA_KEY}: expected {{'events': {{canonical: [texts]}}, "
                             f"'threshold': float}} ({error!r})") from None

    def to_metadata(self) -> dict[str, Any]:
        return {"events": {canonical: list(texts) for canonical, texts in self.events.items()},
                "threshold": self.threshold}

    def known_vectors(self, encode: Callable[[list[str]], Tensor]) -> Tensor:
        """Unit vectors `[K, E]` of the events, in table order, through `encode(texts) -> [T, E]`."""
        texts = [text for event_texts in self.events.values() for text in event_texts]
        owner = torch.tensor([k for k, event_texts in enumerate(self.events.values()) for _ in event_texts])
        return event_vectors(encode(texts).float(), owner, len(self.events))

    def understand(self, texts: Sequence[str | None], encode: Callable[[list[str]], Tensor]
                   ) -> list[EventUnderstanding]:
        """How each text is understood, with `encode(texts) -> [N, E]` (the world's event encoder)."""
        events = [text for text in texts if text is not None and text.strip()]
        if not events or not self.events:
            return [EventUnderstanding(text or "", None, None, 0.0) for text in texts]
        index, similarity = nearest_events(encode(events).float(), self.known_vectors(encode))
        canonical = list(self.events)
        found = iter(zip(index.tolist(), similarity.tolist()))
        results = []
        for text in texts:
            if text is None or not text.strip():
                results.append(EventUnderstanding(text or "", None, None, 0.0))
                continue
            k, score = next(found)
            event = canonical[k] if score >= self.threshold else None
            results.append(EventUnderstanding(text, event, canonical[k], score))
        return results
