"""Text events: tokenizer, encoder and a per-string embedding cache.

Tokenizer. Text is normalised (Unicode NFKC, then case-folded) and split into words: runs of
letters and digits of any script, and apostrophes ("été", "夜が来る" and "don't" are one word
each; for ASCII text this is exactly lower-casing and the runs of [a-z0-9']). Each word becomes
its vocabulary id (or [UNK]) followed by the ids of its hashed character trigrams of ``<word>``,
so an unseen paraphrase ("snowfall") still shares pieces with a known one ("snowing"). Ids:
0 = [PAD], 1 = [UNK], then the vocabulary words, then `trigram_buckets` hash buckets. The hash
is CRC-32 of the UTF-8 bytes, stable across processes (Python's `hash` is salted).
A text with more than `max_tokens` tokens is truncated to its first `max_tokens`; callers that
must not lose words (the Simulator) check `num_tokens` first.

No event vs unknown event. A blank text ("", "  ") or None has no tokens and means "no event".
A text with visible characters but no word ("🌙", "!") is a single [UNK] token: an event the
world does not know, which the encoder maps to its own (non-zero) vector, never to "no event".

Encoder. Token + position embeddings, a few pre-norm transformer layers, a masked mean over the
tokens and a projection to E; a text without tokens maps to exact zeros.
"""
from __future__ import annotations

import re
import unicodedata
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldsim.model.config import EventEncoderConfig

PAD_ID = 0
UNK_ID = 1
_SPECIAL = 2
# Letters and digits of any script (\w without the underscore) and apostrophes.
_WORD = re.compile(r"(?:[^\W_]|')+")
TOKENIZER_VERSION = 1


def normalize_text(text: str) -> str:
    """NFKC (full-width and composed forms become their plain letters), then case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def split_words(text: str) -> list[str]:
    return _WORD.findall(normalize_text(text))


def word_trigrams(word: str) -> list[str]:
    padded = f"<{word}>"
    return [padded[i:i + 3] for i in range(len(padded) - 2)]


class TokenizerError(ValueError):
    """A tokenizer description (from a checkpoint) is malformed."""


class Tokenizer:
    def __init__(self, words: Sequence[str], trigram_buckets: int = 512,
                 max_tokens: int = 48) -> None:
        if len(set(words)) != len(words):
            raise TokenizerError("words: duplicate entries")
        if trigram_buckets < 1 or max_tokens < 1:
            raise TokenizerError(f"trigram_buckets and max_tokens must be positive, "
                                 f"got {trigram_buckets} and {max_tokens}")
        self.words = list(words)
        self.trigram_buckets = trigram_buckets
        self.max_tokens = max_tokens
        self._ids = {word: _SPECIAL + index for index, word in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Sequence[str], trigram_buckets: int = 512,
              max_tokens: int = 48) -> "Tokenizer":
        """Vocabulary = every distinct word of `texts`, sorted (deterministic)."""
        words = sorted({word for text in texts for word in split_words(text)})
        return cls(words, trigram_buckets=trigram_buckets, max_tokens=max_tokens)

    @property
    def vocab_size(self) -> int:
        return _SPECIAL + len(self.words) + self.trigram_buckets

    def encode(self, text: str | None) -> list[int]:
        """All token ids of one text, not truncated."""
        if text is None:
            return []
        if not isinstance(text, str):
            raise TypeError(f"event text must be a string or None, got {type(text).__name__}")
        trigram_offset = _SPECIAL + len(self.words)
        ids: list[int] = []
        for word in split_words(text):
            ids.append(self._ids.get(word, UNK_ID))
            ids += [trigram_offset + zlib.crc32(gram.encode()) % self.trigram_buckets
                    for gram in word_trigrams(word)]
        if not ids and text.strip():
            return [UNK_ID]  # visible characters but no word: an unknown event, not "no event"
        return ids

    def num_tokens(self, text: str | None) -> int:
        return len(self.encode(text))

    def __call__(self, texts: Sequence[str | None]) -> Tensor:
        """long ``[N, T]``, right-padded with PAD_ID, T = longest (truncated) text, at least 1."""
        encoded = [self.encode(text)[: self.max_tokens] for text in texts]
        length = max([1, *map(len, encoded)])
        ids = torch.full((len(encoded), length), PAD_ID, dtype=torch.long)
        for row, tokens in enumerate(encoded):
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return ids

    def to_dict(self) -> dict[str, Any]:
        return {"version": TOKENIZER_VERSION, "words": list(self.words),
                "trigram_buckets": self.trigram_buckets, "max_tokens": self.max_tokens}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Tokenizer":
        expected = {"version", "words", "trigram_buckets", "max_tokens"}
        if not isinstance(data, Mapping) or set(data) != expected:
            keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise TokenizerError(f"tokenizer: expected keys {sorted(expected)}, got {keys}")
        if data["version"] != TOKENIZER_VERSION:
            raise TokenizerError(f"tokenizer.version: unsupported {data['version']!r}")
        words = data["words"]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise TokenizerError("tokenizer.words: expected a list of strings")
        for key in ("trigram_buckets", "max_tokens"):
            if isinstance(data[key], bool) or not isinstance(data[key], int):
                raise TokenizerError(f"tokenizer.{key}: expected an int, got {data[key]!r}")
        return cls(words, trigram_buckets=data["trigram_buckets"], max_tokens=data["max_tokens"])


class _TextBlock(nn.Module):
    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm_attn = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(self.norm_attn(x)).view(batch, length, 3, self.num_heads, -1)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attended = F.scaled_dot_product_attention(query, key, value,
                                                  attn_mask=key_mask[:, None, None, :])
        x = x + self.out(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp(self.norm_mlp(x))


class EventEncoder(nn.Module):
    """Token ids ``[N, T]`` → event vectors ``[N, E]``; exact zeros for texts without tokens."""

    def __init__(self, config: EventEncoderConfig, vocab_size: int) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.vocab_size = vocab_size
        self.token_embed = nn.Embedding(vocab_size, config.width, padding_idx=PAD_ID)
        self.position_embed = nn.Parameter(torch.randn(config.max_tokens, config.width) * 0.02)
        self.blocks = nn.ModuleList(_TextBlock(config.width, config.num_heads)
                                    for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.width)
        self.project = nn.Linear(config.width, config.dim)

    def forward(self, token_ids: Tensor) -> Tensor:
        if token_ids.ndim != 2 or token_ids.dtype != torch.long:
            raise ValueError(f"token_ids must be long [N, T], got {token_ids.dtype} "
                             f"{tuple(token_ids.shape)}")
        if token_ids.shape[1] > self.config.max_tokens:
            raise ValueError(f"at most {self.config.max_tokens} tokens, got {token_ids.shape[1]}")
        is_token = token_ids != PAD_ID
        has_tokens = is_token.any(dim=1)
        # A row of padding only would attend to nothing (NaN); let it attend to its padding,
        # its output is replaced by zeros below anyway.
        key_mask = is_token | ~has_tokens[:, None]
        x = self.token_embed(token_ids) + self.position_embed[: token_ids.shape[1]]
        for block in self.blocks:
            x = block(x, key_mask)
        weights = is_token.to(x.dtype)[..., None]
        pooled = (self.norm(x) * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        vectors = self.project(pooled)
        return torch.where(has_tokens[:, None], vectors, torch.zeros_like(vectors))


class EventEmbeddingCache:
    """Event vectors per distinct string, computed once (no grad) and kept in a bounded LRU.

    Call `clear()` whenever the encoder's weights change.
    """

    def __init__(self, tokenizer: Tokenizer, encoder: EventEncoder, max_entries: int = 4096
                 ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.max_entries = max_entries
        self._vectors: OrderedDict[str, Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        self._vectors.clear()

    def __call__(self, texts: Sequence[str | None]) -> Tensor:
        """``[N, E]`` on the encoder's device; None and "" give zeros."""
        keys = ["" if text is None else text for text in texts]
        missing = sorted({key for key in keys if key not in self._vectors})
        if missing:
            device = self.encoder.position_embed.device
            with torch.no_grad():
                vectors = self.encoder(self.tokenizer(missing).to(device))
            self._vectors.update(zip(missing, vectors))
        out = torch.stack([self._vectors[key] for key in keys]) if keys else torch.zeros(
            0, self.encoder.config.dim, device=self.encoder.position_embed.device)
        for key in keys:
            self._vectors.move_to_end(key)
        while len(self._vectors) > self.max_entries:
            self._vectors.popitem(last=False)
        return out
