"""Stage `events`: teach the event encoder what each known event means, from its paraphrases.

Input: a world (`init`) and a dataset, whose world name and event texts give the known events
(`event_understanding.known_events`: each event's canonical text, training paraphrases and
held-out paraphrases). Output: `<out>/final`, the same world with a retrained event encoder, a
tokenizer over every training text (rebuilt, with the known rows of the embedding table kept,
only when the world's tokenizer lacks some of their words), and its metadata's
`event_understanding` entry: the event table, the similarity threshold and the held-out measure
(worldsim.model.event_understanding reads it).

Objective. A step draws `batch_size` texts: training texts (canonical + training paraphrases,
never the held-out ones), one event at a time uniformly, then one of its texts, and a share of
nonsense texts labelled "unknown" (random letter strings, and event texts whose distinctive
words are replaced by random letters, so generic words alone mean nothing). Each text is
augmented at the token level: words dropped, shuffled, misspelt, word ids replaced by [UNK]
with their trigrams kept (so that the trigram path learns to carry the meaning of words never
seen), and optionally a random unseen word inserted. The loss
(`losses.event_prototype_loss`) is a cross-entropy over cosine similarities to one learnt
prototype per event (+ one for "unknown"). With `targets = "world"` each event's prototype
starts at, and its texts' vectors are held near, the vector the init world's encoder gives that
event (the mean over the texts the world was trained with, not over paraphrases added to the game
since): a generator trained on those vectors keeps its conditioning.
`targets = "learned"` leaves the vectors free (a world whose generator is not trained yet).

Dev split. With `dev_share` > 0 a seeded share of each event's training paraphrases is kept out
(of the texts trained on and of the vocabulary) and scored at the end (`dev_accuracy`: nearest
known event = own), the measure to choose settings by. Such a run does not score the held-out
paraphrases at all, so choosing settings never sees them. The init world's encoder has usually
been taught those paraphrases already: `fresh_encoder = true` starts from new weights (the event
vectors stay the world's), so the dev texts are truly unseen.

Threshold. After training, the similarity that separates "understood" from "not understood" is
the midpoint between the 5th percentile of the similarities of augmented training texts (words
dropped, shuffled, misspelt: stand-ins for unseen paraphrases) and the 95th percentile of
unrelated texts' (`unrelated_texts` + nonsense texts) — a measurement, stored with the table.

`held_out_accuracy(world)` is the measure `worldsim eval` reports: the share of the world's
held-out paraphrases whose nearest known event is their own.
"""
from __future__ import annotations

import math
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from worldsim.data import Dataset
from worldsim.model import EventEmbeddingCache, EventEncoder, Tokenizer
from worldsim.model.event_understanding import (METADATA_KEY, EventTable, EventUnderstanding, KnownEvent,
                                                known_events)
from worldsim.model.text import PAD_ID, UNK_ID, split_words
from worldsim.training import losses
from worldsim.training.common import StageConfig, load_world, save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.event_conditioning import training_texts_for
from worldsim.training.trainer import TrainSummary, make_adamw, optimizer_step

__all__ = [
    "EventsConfig", "EventsStage", "HeldOutReport", "held_out_accuracy", "EventAlignment", "Augmentation",
    "ParaphraseBatches", "augment_words", "misspell", "random_word", "nonsense_text", "generic_words",
    "templated_nonsense",
    "word_token_ids", "pad_token_ids", "choose_threshold", "remap_token_embeddings", "split_dev",
]

# Texts about nothing a game event names, for measuring the threshold (never trained on).
UNRELATED_TEXTS = (
    "open the door", "what time is it", "i would like a pizza", "the cat sleeps on the sofa",
    "buy more milk", "hello world", "play some music", "turn left at the bank", "my phone is broken",
    "the meeting starts at noon", "write a letter", "she reads a book", "the car is red", "count to ten",
    "a cup of tea", "the train is late", "save the game", "the printer needs paper", "call my mother",
    "the soup is too salty",
)


@dataclass
class Augmentation:
    """Probabilities of each kind of noise put on a training text (see `augment_words`, `word_token_ids`)."""

    drop_word: float = 0.1  # a word is dropped (a text keeps at least one)
    shuffle: float = 0.3  # a text's words are shuffled
    typo: float = 0.1  # a word is misspelt (one letter deleted, replaced or inserted)
    unknown_word: float = 0.3  # a word's id becomes [UNK] (its trigrams stay)
    # a random letter string is inserted into the text: a word the world has never seen, which a
    # paraphrase in the wild often holds, must not pull the text away from its event
    extra_word: float = 0.0

    def validate(self) -> None:
        for name in ("drop_word", "shuffle", "typo", "unknown_word", "extra_word"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name} must be a probability in [0, 1], got {getattr(self, name)}")


@dataclass
class EventsConfig(StageConfig):
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    targets: str = "world"  # "world": keep the init world's event vectors | "learned": free vectors
    temperature: float = 0.1  # of the cosine logits
    anchor_weight: float = 1.0  # targets="world": weight of the distance to the world's vectors
    augment: Augmentation = field(default_factory=Augmentation)
    nonsense_share: float = 0.1  # share of each batch made of nonsense texts labelled "unknown"
    templated_share: float = 0.5  # share of those that keep an event text's generic words (templated_nonsense)
    unrelated_texts: tuple[str, ...] = field(default_factory=lambda: UNRELATED_TEXTS)
    fresh_encoder: bool = False  # start from new encoder weights (the event vectors stay the world's)
    dev_share: float = 0.0  # share of each event's training paraphrases kept out and scored (dev_accuracy)

    def validate(self) -> None:
        super().validate()
        self.require_init("the world whose event encoder is trained")
        if not 0.0 <= self.dev_share < 1.0:
            raise ConfigError(f"dev_share must be in [0, 1), got {self.dev_share}")
        if self.targets not in ("world", "learned"):
            raise ConfigError(f"targets must be 'world' or 'learned', got {self.targets!r}")
        self.augment.validate()
        if not 0.0 <= self.nonsense_share < 1.0:
            raise ConfigError(f"nonsense_share must be in [0, 1), got {self.nonsense_share}")
        if not 0.0 <= self.templated_share <= 1.0:
            raise ConfigError(f"templated_share must be in [0, 1], got {self.templated_share}")
        if self.temperature <= 0 or self.anchor_weight < 0:
            raise ConfigError("temperature must be positive and anchor_weight non-negative")


# ------------------------------------------------------------------------------ augmentation


def misspell(word: str, rng: random.Random) -> str:
    """One letter deleted, replaced or inserted (words of fewer than 3 characters stay)."""
    if len(word) < 3:
        return word
    at, letter = rng.randrange(len(word)), rng.choice(string.ascii_lowercase)
    edit = rng.randrange(3)
    if edit == 0:
        return word[:at] + word[at + 1:]
    if edit == 1:
        return word[:at] + letter + word[at + 1:]
    return word[:at] + letter + word[at:]


def augment_words(words: list[str], drop: float, shuffle: float, typo: float, rng: random.Random,
                  extra: float = 0.0) -> list[str]:
    """Words dropped (at least one kept), shuffled and misspelt at the given probabilities; with
    probability `extra` a random letter string is inserted at a random place."""
    if not words:
        return []
    kept = [word for word in words if rng.random() >= drop] or [rng.choice(words)]
    if rng.random() < shuffle:
        rng.shuffle(kept)
    kept = [misspell(word, rng) if rng.random() < typo else word for word in kept]
    if extra and rng.random() < extra:  # no draw at 0: the other noise stays what it was without it
        kept.insert(rng.randrange(len(kept) + 1), random_word(rng))
    return kept


def random_word(rng: random.Random) -> str:
    """A random lower-case 'word' of 2 to 9 letters."""
    return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9)))


def nonsense_text(rng: random.Random) -> str:
    """One to four random lower-case 'words' of 2 to 9 letters."""
    return " ".join(random_word(rng) for _ in range(rng.randint(1, 4)))


def generic_words(events: Sequence[KnownEvent], min_share: float = 0.3) -> frozenset[str]:
    """Words found in the texts of at least `min_share` of the events (and of two): "the", "is",
    "it" — they carry grammar, not which event is meant."""
    counts: dict[str, int] = {}
    for event in events:
        for word in {word for text in event.texts for word in split_words(text)}:
            counts[word] = counts.get(word, 0) + 1
    least = max(2, math.ceil(min_share * len(events)))
    return frozenset(word for word, count in counts.items() if count >= least)


def templated_nonsense(text: str, generic: frozenset[str], rng: random.Random) -> str:
    """`text` with its non-generic words (at least one word) replaced by random letter strings: the
    grammar of an event text without its meaning ("the xqvk is pold"), a negative that keeps the
    encoder from reading an event into generic words alone."""
    words = split_words(text) or ["x"]
    keep = [word in generic for word in words]
    if all(keep):
        keep[rng.randrange(len(words))] = False
    return " ".join(word if kept else random_word(rng) for word, kept in zip(words, keep))


def word_token_ids(words: list[str], tokenizer: Tokenizer, unknown_word: float, rng: random.Random) -> list[int]:
    """The tokenizer's ids of `words`, each word's id replaced by [UNK] with probability `unknown_word`."""
    ids: list[int] = []
    for word in words:
        word_ids = tokenizer.encode(word)
        if word_ids and rng.random() < unknown_word:
            word_ids[0] = UNK_ID
        ids += word_ids
    return ids


def pad_token_ids(rows: list[list[int]], max_tokens: int) -> Tensor:
    """long `[N, T]`: each row truncated to `max_tokens`, right-padded with PAD_ID."""
    rows = [row[:max_tokens] for row in rows]
    ids = torch.full((len(rows), max([1, *map(len, rows)])), PAD_ID, dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, :len(row)] = torch.tensor(row, dtype=torch.long)
    return ids


class ParaphraseBatches:
    """Batches of augmented paraphrases and their event labels, a function of (seed, step).

    One event at a time uniformly, then one of its texts; the first `nonsense_share` of each batch
    are nonsense texts labelled `len(events)` ("unknown"): random letter strings, or with
    probability `templated_share` event texts whose non-generic words are replaced by random
    letters (`templated_nonsense`).
    """

    def __init__(self, events: Sequence[KnownEvent], tokenizer: Tokenizer, augmentation: Augmentation,
                 batch_size: int, nonsense_share: float = 0.0, seed: int = 0, templated_share: float = 0.5):
        if not events:
            raise ValueError("no known events to train the event encoder on")
        self.events, self.tokenizer, self.augmentation = list(events), tokenizer, augmentation
        self.batch_size, self.seed = batch_size, seed
        self.num_nonsense = round(nonsense_share * batch_size)
        self.generic, self.templated_share = generic_words(self.events), templated_share

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """Token ids long `[B, T]` and labels long `[B]`."""
        noise, rng = self.augmentation, random.Random(f"{self.seed}:{step}")
        rows, labels = [], []
        for index in range(self.batch_size):
            if index < self.num_nonsense:  # random letters, or an event's grammar without its words
                label = len(self.events)
                text = templated_nonsense(rng.choice(rng.choice(self.events).texts), self.generic, rng) \
                    if rng.random() < self.templated_share else nonsense_text(rng)
            else:
                label = rng.randrange(len(self.events))
                text = rng.choice(self.events[label].texts)
            words = augment_words(split_words(text), noise.drop_word, noise.shuffle, noise.typo, rng,
                                  noise.extra_word if label < len(self.events) else 0.0)
            rows.append(word_token_ids(words, self.tokenizer, noise.unknown_word, rng))
            labels.append(label)
        return pad_token_ids(rows, self.tokenizer.max_tokens), torch.tensor(labels)


class EventAlignment:
    """An auxiliary loss that keeps an event encoder's meaning while another stage trains it.

    Every event's paraphrases (augmented) are held on the vector the encoder gives that event when
    the alignment is made: `losses.event_prototype_loss` with those vectors as prototypes and
    anchors. A stage that trains the encoder through the generator adds it to its loss:

        alignment = EventAlignment(world, world_name=dataset.world, batch_size=32, seed=config.seed)
        loss = loss + weight * alignment.loss(step)
    """

    def __init__(self, world, world_name: str, batch_size: int = 32, seed: int = 0,
                 augmentation: Augmentation | None = None, temperature: float = 0.1):
        self.encoder, self.temperature = world.event_encoder, temperature
        table = world.event_table if METADATA_KEY in world.metadata else EventTable(
            {event.canonical: event.texts for event in known_events(world.event_texts, world_name)})
        events = [KnownEvent(canonical, tuple(texts)) for canonical, texts in table.events.items()]
        with torch.no_grad():
            self.targets = torch.stack([world.encode_events(list(event.texts)).mean(0) for event in events])
        self.batches = ParaphraseBatches(events, world.tokenizer, augmentation or Augmentation(), batch_size, 0.0, seed)

    def loss(self, step: int) -> Tensor:
        token_ids, labels = self.batches.batch(step)
        device = self.targets.device
        vectors = self.encoder(token_ids.to(device))
        return losses.event_prototype_loss(vectors, labels.to(device), self.targets, self.temperature,
                                           self.targets)


def remap_token_embeddings(old: Tokenizer, new: Tokenizer, old_weight: Tensor, new_weight: Tensor) -> Tensor:
    """`new_weight` with the rows of the tokens both tokenizers share copied from `old_weight`.

    Specials and words are matched by name; the trigram buckets when their counts agree.
    """
    weight = new_weight.detach().clone()
    weight[:2] = old_weight[:2]  # [PAD], [UNK]
    for word in set(old.words) & set(new.words):
        weight[2 + new.words.index(word)] = old_weight[2 + old.words.index(word)]
    if old.trigram_buckets == new.trigram_buckets:
        weight[2 + len(new.words):] = old_weight[2 + len(old.words):]
    return weight


def split_dev(events: Sequence[KnownEvent], share: float, seed: int
              ) -> tuple[list[KnownEvent], list[tuple[str, int]]]:
    """Each event with a seeded `share` of its paraphrases (never the canonical text) taken out, and
    the texts taken out with their event's index."""
    if not share:
        return list(events), []
    rng = random.Random(f"{seed}:dev")
    kept, dev = [], []
    for label, event in enumerate(events):
        paraphrases = list(event.texts[1:])
        rng.shuffle(paraphrases)
        out = set(paraphrases[:int(share * len(paraphrases))])
        kept.append(KnownEvent(event.canonical, tuple(t for t in event.texts if t not in out), event.held_out))
        dev += [(text, label) for text in sorted(out)]
    return kept, dev


def choose_threshold(known: Tensor, unrelated: Tensor) -> float:
    """Midpoint between the 5th percentile of known texts' similarities and the 95th of unrelated ones."""
    return float((known.float().quantile(0.05) + unrelated.float().quantile(0.95)) / 2)


# ------------------------------------------------------------------------------ measures


@dataclass(frozen=True)
class HeldOutReport:
    """Held-out paraphrases against the nearest known event (by cosine similarity)."""

    correct: int
    total: int
    understood: int  # held-out texts whose similarity reaches the threshold (whatever event)
    misses: tuple[tuple[str, str, str], ...]  # (text, its event, the nearest event)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None


def _nearest_is_own(understood: Sequence[EventUnderstanding], pairs: Sequence[tuple[str, str]]) -> list[bool]:
    """Per (text, its canonical event) pair: is the text's nearest known event its own?"""
    return [item.nearest == canonical for item, (_, canonical) in zip(understood, pairs)]


def held_out_accuracy(world, world_name: str | None = None) -> HeldOutReport:
    """How many of `world`'s held-out paraphrases land nearest their own event.

    `world_name` (default: the world's `metadata["data"]["world"]`) selects the game's event
    vocabulary, where the held-out texts come from; a world without one has no held-out texts.
    """
    if world_name is None:
        world_name = world.metadata.get("data", {}).get("world")
        if not world_name:
            raise ValueError("the world's metadata does not name its game (metadata.data.world): pass world_name")
    table = world.event_table
    pairs = [(text, event.canonical) for event in known_events(world.event_texts, world_name)
             for text in event.held_out]
    understood = world.understand_events([text for text, _ in pairs])
    own = _nearest_is_own(understood, pairs)
    correct = sum(own)
    misses = tuple((text, canonical, item.nearest)
                   for item, (text, canonical), hit in zip(understood, pairs, own) if not hit)
    above = sum(item.similarity >= table.threshold for item in understood)
    return HeldOutReport(correct, len(pairs), above, misses)


# ------------------------------------------------------------------------------ stage


class EventPrototypes(nn.Module):
    """One learnt direction per known event and one for "unknown" (the last row)."""

    def __init__(self, initial: Tensor):
        super().__init__()
        self.vectors = nn.Parameter(initial.clone())


class EventsStage:
    name = "events"

    def __init__(self, config: EventsConfig, context: DistributedContext):
        self.config, self.context = config, context
        dataset = Dataset(config.data)
        self.world_name = dataset.world
        self.world = load_world(config.init, context.device)
        texts = sorted(set(training_texts_for(dataset.event_texts, dataset.world)) | set(self.world.event_texts))
        self.events, self.dev = split_dev(known_events(texts, dataset.world), config.dev_share, config.seed)
        dev_texts = {text for text, _ in self.dev}
        texts = [text for text in texts if text not in dev_texts]
        # the vectors the world's generator was trained on, from its encoder before any change
        anchors = self._world_vectors() if config.targets == "world" else None
        self.anchors = anchors
        self._use_tokenizer(Tokenizer.build(texts, trigram_buckets=self.world.tokenizer.trigram_buckets,
                                            max_tokens=self.world.tokenizer.max_tokens), texts)
        self.encoder = self.world.event_encoder.train().requires_grad_(True)
        dim = self.encoder.config.dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            unknown = torch.randn(1, dim)
            initial = torch.cat([anchors, unknown]) if anchors is not None else torch.randn(len(self.events) + 1, dim)
        self.prototypes = EventPrototypes(initial).to(context.device)
        self.optimizer = make_adamw([*self.encoder.parameters(), *self.prototypes.parameters()], config)
        self.batches = ParaphraseBatches(self.events, self.world.tokenizer, config.augment, config.batch_size,
                                         config.nonsense_share, config.seed, config.templated_share)
        self.samples_per_step = config.batch_size

    def _use_tokenizer(self, tokenizer: Tokenizer, texts: list[str]) -> None:
        """Give the world `tokenizer` and an encoder sized for it when its own lacks words of `texts` (the
        known rows of the embedding table kept), or new weights when `fresh_encoder` asks for them."""
        world = self.world
        if tokenizer.words != world.tokenizer.words or self.config.fresh_encoder:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                encoder = EventEncoder(world.config.events, tokenizer.vocab_size).to(world.device)
            if not self.config.fresh_encoder:
                state = world.event_encoder.state_dict()
                state["token_embed.weight"] = remap_token_embeddings(
                    world.tokenizer, tokenizer, state["token_embed.weight"], encoder.token_embed.weight)
                encoder.load_state_dict(state)
            world.tokenizer, world.event_encoder = tokenizer, encoder
            world.event_cache = EventEmbeddingCache(tokenizer, encoder)
        world.event_texts = texts

    @torch.no_grad()
    def _world_vectors(self) -> Tensor:
        """`[K, E]`: each event's mean vector under the init world's encoder, over the texts its generator
        was trained with (the world's event texts; its canonical text for an event the world never saw).
        Paraphrases added to the game since then are left out: the init encoder has never been taught
        them, and their vectors would move the anchor away from where the generator expects the event."""
        trained = set(self.world.event_texts)
        return torch.stack([self.world.encode_events([text for text in event.texts if text in trained]
                                                     or [event.canonical]).mean(0) for event in self.events])

    def modules(self):
        return {"event_encoder": self.encoder, "event_prototypes": self.prototypes}

    def optimizers(self):
        return {"event_encoder": self.optimizer}

    def train_step(self, step: int) -> dict[str, float]:
        token_ids, labels = self.batches.batch(step)
        device = self.context.device
        token_ids, labels = token_ids.to(device), labels.to(device)
        vectors = self.encoder(token_ids)
        prototypes = self.prototypes.vectors
        loss = losses.event_prototype_loss(vectors, labels, prototypes, self.config.temperature,
                                           self.anchors, self.config.anchor_weight)
        optimizer_step(loss, self.optimizer, self.context, self.config.grad_clip)
        with torch.no_grad():
            predicted = (torch.nn.functional.normalize(vectors, dim=-1) @ prototypes.T).argmax(1)
        return {"loss": loss.item(), "accuracy": (predicted == labels).float().mean().item()}

    @torch.no_grad()
    def _threshold(self, table: EventTable) -> float:
        """The similarity that separates the training texts from unrelated and nonsense texts."""
        known = set(self.world.event_texts)
        rng = random.Random(f"{self.config.seed}:threshold")
        unrelated = [t for t in self.config.unrelated_texts if t not in known] + [nonsense_text(rng) for _ in range(64)]
        noise = self.config.augment
        # Augmented training texts stand in for paraphrases the world has not seen.
        training = [" ".join(augment_words(split_words(text), noise.drop_word, noise.shuffle, noise.typo, rng))
                    for event in self.events for text in event.texts]

        def similarities(texts: list[str]) -> Tensor:
            return torch.tensor([item.similarity for item in table.understand(texts, self.world.encode_events)])

        return choose_threshold(similarities(training), similarities(unrelated))

    def _dev_accuracy(self) -> float:
        """The share of the dev texts whose nearest known event is their own (after `finish` set the table)."""
        pairs = [(text, self.events[label].canonical) for text, label in self.dev]
        return sum(_nearest_is_own(self.world.understand_events([text for text, _ in pairs]), pairs)) / len(pairs)

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.encoder.eval().requires_grad_(False)
        self.world.event_cache.clear()
        table = EventTable({event.canonical: event.texts for event in self.events})
        table = EventTable(table.events, self._threshold(table))
        self.world.metadata[METADATA_KEY] = table.to_metadata()
        if self.dev:  # a run that chooses settings: the held-out paraphrases stay unscored
            measures = {"dev_accuracy": self._dev_accuracy(), "dev_total": len(self.dev)}
        else:
            report = held_out_accuracy(self.world, self.world_name)
            self.world.metadata[METADATA_KEY].update(
                held_out_accuracy=report.accuracy, held_out_correct=report.correct, held_out_total=report.total)
            measures = {"held_out_accuracy": report.accuracy}
        save_world(self.world, out_dir, summary, targets=self.config.targets, threshold=table.threshold, **measures)
