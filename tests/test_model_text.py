"""Text events: tokenizer, encoder and embedding cache."""
from __future__ import annotations

import json

import pytest
import torch

from worldsim.model import (EventEmbeddingCache, EventEncoder, Tokenizer, TokenizerError,
                            WorldConfig)
from worldsim.model.text import PAD_ID, UNK_ID, split_words

TEXTS = ["A sunny meadow", "night falls", "it starts snowing", "enemies appear!"]


def test_vocabulary_is_lowercase_words_and_round_trips_through_json():
    tok = Tokenizer.build(TEXTS, trigram_buckets=64, max_tokens=40)
    assert tok.words == sorted({"a", "sunny", "meadow", "night", "falls", "it", "starts",
                                "snowing", "enemies", "appear"})
    again = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert torch.equal(again(TEXTS), tok(TEXTS))
    assert again.vocab_size == tok.vocab_size == 2 + 10 + 64


def test_tokens_are_a_word_then_its_trigrams():
    tok = Tokenizer.build(TEXTS, trigram_buckets=64)
    ids = tok.encode("Night")
    assert ids[0] == 2 + tok.words.index("night")
    assert len(ids) == 1 + len("<night>") - 2
    assert all(2 + len(tok.words) <= i < tok.vocab_size for i in ids[1:])


def test_unknown_words_share_trigrams_with_known_ones():
    tok = Tokenizer.build(TEXTS, trigram_buckets=4096)
    unseen = tok.encode("snowfall")
    assert unseen[0] == UNK_ID
    shared = set(unseen[1:]) & set(tok.encode("snowing")[1:])
    assert len(shared) >= 2  # "<sn", "sno", "now"


def test_padding_truncation_and_empty_texts():
    tok = Tokenizer.build(TEXTS, max_tokens=10)
    ids = tok(["night falls", "", None, "it starts snowing"])
    assert ids.shape == (4, 10)
    assert (ids[1:3] == PAD_ID).all()
    assert tok.num_tokens("it starts snowing") > 10  # truncated to the first 10 tokens
    assert ids[3].tolist() == tok.encode("it starts snowing")[:10]
    assert tok([""]).shape == (1, 1)
    with pytest.raises(TypeError, match="string"):
        tok.encode(3)


@pytest.mark.parametrize("data, message", [
    ({"version": 1, "words": ["a"], "trigram_buckets": 8}, "expected keys"),
    ({"version": 2, "words": ["a"], "trigram_buckets": 8, "max_tokens": 4}, "version"),
    ({"version": 1, "words": "a", "trigram_buckets": 8, "max_tokens": 4}, "words"),
    ({"version": 1, "words": ["a", "a"], "trigram_buckets": 8, "max_tokens": 4}, "duplicate"),
    ({"version": 1, "words": ["a"], "trigram_buckets": "8", "max_tokens": 4}, "trigram_buckets"),
])
def test_from_dict_rejects_malformed(data, message):
    with pytest.raises(TokenizerError, match=message):
        Tokenizer.from_dict(data)


def _encoder(tok: Tokenizer) -> EventEncoder:
    torch.manual_seed(0)
    return EventEncoder(WorldConfig.preset("tiny").events, tok.vocab_size)


def test_encoder_gives_zeros_for_no_event_and_distinct_vectors_otherwise():
    tok = Tokenizer.build(TEXTS, max_tokens=48)
    encoder = _encoder(tok)
    vectors = encoder(tok(["", "night falls", "  ", "a sunny meadow"]))
    assert vectors.shape == (4, encoder.config.dim)
    assert torch.count_nonzero(vectors[0]) == 0 and torch.count_nonzero(vectors[2]) == 0
    assert not torch.allclose(vectors[1], vectors[3])
    # Padding does not change a text's vector.
    alone = encoder(tok(["night falls"]))
    assert torch.allclose(alone[0], vectors[1], atol=1e-6)
    vectors.sum().backward()
    assert encoder.token_embed.weight.grad.abs().sum() > 0


def test_embedding_cache_reuses_and_bounds_entries():
    tok = Tokenizer.build(TEXTS)
    encoder = _encoder(tok)
    cache = EventEmbeddingCache(tok, encoder, max_entries=2)
    first = cache(["night falls", None, "night falls"])
    assert first.shape == (3, encoder.config.dim) and not first.requires_grad
    assert torch.equal(first[0], first[2]) and torch.count_nonzero(first[1]) == 0
    assert torch.allclose(first[0], encoder(tok(["night falls"]))[0].detach(), atol=1e-6)
    cache(["a sunny meadow"])
    assert len(cache) == 2  # "" was the least recently used and was dropped
    assert cache([]).shape == (0, encoder.config.dim)


def test_ascii_words_are_split_exactly_as_before():
    """Checkpoints whose tokenizers were built with the ASCII-only splitter read ASCII text the same."""
    import re

    from worldsim.envs.explorer import events

    texts = [*events.training_texts(), *events.eval_texts(), "Don't STOP!", "snake_case x2 'quoted'", "a-b,c;d"]
    for text in texts:
        assert split_words(text) == re.findall(r"[a-z0-9']+", text.lower()), text


def test_letters_of_any_script_are_kept():
    tok = Tokenizer.build(["été", "night falls"], trigram_buckets=4096)
    assert split_words("Été à Paris") == ["été", "à", "paris"]
    assert split_words("夜が来る") == ["夜が来る"]
    assert split_words("Ｎｉｇｈｔ ﬁre") == ["night", "fire"]  # NFKC: full-width letters, ligatures
    assert tok.encode("été") != tok.encode("t") and tok.encode("été")[0] == 2 + tok.words.index("été")
    assert tok.encode("ÉTÉ") == tok.encode("été")
    assert tok.encode("夜が来る")[0] == UNK_ID and len(tok.encode("夜が来る")) == 1 + len("<夜が来る>") - 2


def test_text_without_words_is_an_unknown_event_not_no_event():
    tok = Tokenizer.build(TEXTS)
    assert tok.encode("🌙") == tok.encode(" ! ") == [UNK_ID]
    assert tok.encode("") == tok.encode(" \t ") == tok.encode(None) == []
    encoder = _encoder(tok)
    vectors = encoder(tok(["🌙", "", "夜が来る", "t"]))
    assert torch.count_nonzero(vectors[0]) > 0 and torch.count_nonzero(vectors[1]) == 0
    assert torch.count_nonzero(vectors[2]) > 0 and not torch.allclose(vectors[2], vectors[3])
