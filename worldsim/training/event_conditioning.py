"""Event conditions for training: paraphrase augmentation, encoding and condition dropout.

A dataset stores one event text id per frame. During training each id is replaced by a random
training paraphrase of the same event, so the event encoder learns the meaning, not the wording;
the held-out evaluation paraphrases are never used. Whole rows are dropped to "no event" (zeros)
with a small probability so that the models also learn the unconditional velocity that
classifier-free guidance needs.

Where paraphrases come from: the game's event vocabulary, found by
`worldsim.model.event_understanding.world_event_vocabulary` (no game is named here).
"""
from __future__ import annotations

import torch
from torch import Tensor

from worldsim.model import EventEncoder, Tokenizer
from worldsim.model.event_understanding import KnownEvent, describe_event, known_events, world_event_vocabulary

__all__ = ["KnownEvent", "world_event_vocabulary", "describe_event", "known_events", "EventVocabulary",
           "training_texts_for", "embed_texts", "encode_event_ids"]


class EventVocabulary:
    """The training texts that may stand for each of a dataset's event texts."""

    def __init__(self, dataset_texts: list[str], world: str, paraphrase: bool = True):
        self.dataset_texts = list(dataset_texts)
        self.choices: list[list[str]] = [
            list(describe_event(text, world).texts) if paraphrase else [text] for text in self.dataset_texts
        ]

    def all_texts(self) -> list[str]:
        """Every text training may feed the encoder (for building a tokenizer)."""
        return sorted({text for choices in self.choices for text in choices})

    def sample_texts(self, event_ids: Tensor) -> tuple[list[str], Tensor]:
        """Pick one paraphrase per (row, event id): (distinct texts, index into them `[B, F]`, -1 = none).

        Uses the global torch RNG, so the choice is restored with the checkpoint on resume.
        """
        texts: list[str] = []
        index = torch.full_like(event_ids, -1)
        for row in range(event_ids.shape[0]):
            for event_id in event_ids[row].unique().tolist():
                if event_id < 0:
                    continue
                if event_id >= len(self.choices):
                    raise ValueError(f"event id {event_id} is outside the dataset's {len(self.choices)} event texts")
                choices = self.choices[event_id]
                pick = choices[int(torch.randint(len(choices), ()))]
                if pick not in texts:
                    texts.append(pick)
                index[row][event_ids[row] == event_id] = texts.index(pick)
        return texts, index


def training_texts_for(dataset_texts: list[str], world: str) -> list[str]:
    """All texts a world trained on this dataset should know (its tokenizer's vocabulary source)."""
    texts = EventVocabulary(dataset_texts, world).all_texts()
    vocabulary = world_event_vocabulary(world)
    if vocabulary is not None:
        texts = sorted(set(texts) | set(vocabulary.training_texts()))
    return texts


def embed_texts(texts: list[str], index: Tensor, tokenizer: Tokenizer, encoder: EventEncoder,
                drop_prob: float = 0.0) -> Tensor:
    """Distinct texts + an index `[B, F]` into them (-1 = none) → event vectors `[B, F, E]`.

    Rows are dropped to "no event" (zeros) with probability `drop_prob`. Gradients flow into
    `encoder` unless the caller runs this under `torch.no_grad()`.
    """
    batch, frames = index.shape
    device = encoder.position_embed.device
    dim = encoder.config.dim
    if not texts:
        return torch.zeros(batch, frames, dim, device=device)
    vectors = encoder(tokenizer(texts).to(device))  # [U, E]
    padded = torch.cat([vectors, torch.zeros(1, dim, device=device, dtype=vectors.dtype)])
    index = index.to(device)
    events = padded[torch.where(index < 0, len(texts), index)]
    if drop_prob > 0:
        keep = (torch.rand(batch, device=device) >= drop_prob).to(events.dtype)
        events = events * keep[:, None, None]
    return events


def encode_event_ids(event_ids: Tensor, vocabulary: EventVocabulary, tokenizer: Tokenizer,
                     encoder: EventEncoder, drop_prob: float = 0.0) -> Tensor:
    """Dataset event ids `[B, F]` → vectors `[B, F, E]` of random training paraphrases."""
    texts, index = vocabulary.sample_texts(event_ids)
    return embed_texts(texts, index, tokenizer, encoder, drop_prob)
