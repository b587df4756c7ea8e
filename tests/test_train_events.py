"""Stage `events` and the game-agnostic event vocabulary hook (worldsim/training/events.py, event_conditioning)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from resume_helpers import straight_and_resumed
from worldsim.model import Tokenizer
from worldsim.model.text import PAD_ID, UNK_ID
from worldsim.training import events as E
from worldsim.training import stages
from worldsim.training.config import ConfigError
from worldsim.training.event_conditioning import (EventVocabulary, describe_event, known_events,
                                                  training_texts_for, world_event_vocabulary)


# ------------------------------------------------------------------------------ vocabulary hook


def test_a_world_ships_its_event_vocabulary_as_a_module():
    from worldsim.envs.explorer import events as explorer_events

    assert world_event_vocabulary("explorer") is explorer_events
    assert world_event_vocabulary("no_such_game") is None
    assert world_event_vocabulary("../explorer") is None  # not a module name: never imported


def test_paraphrases_come_from_the_world_vocabulary_or_the_text_itself():
    night = describe_event("it gets dark", "explorer")
    assert night.canonical == "night falls" and night.texts[0] == "night falls" and "it gets dark" in night.texts
    assert night.held_out and not set(night.held_out) & set(night.texts)
    assert describe_event("purple", "explorer").texts == ("purple",)
    assert describe_event("night falls", "toy").held_out == ()
    events = known_events(["it gets dark", "", "night falls", "rain", "purple"], "explorer")
    assert [event.canonical for event in events] == ["night falls", "it starts raining", "purple"]
    vocabulary = EventVocabulary(["night falls", "purple"], "explorer")
    assert vocabulary.choices[1] == ["purple"] and "midnight" in vocabulary.choices[0]
    assert training_texts_for(["a", "b"], "toy") == ["a", "b"]


# ------------------------------------------------------------------------------ augmentation


def test_misspell_edits_one_letter():
    rng = random.Random(0)
    for _ in range(50):
        word = rng.choice(["darkness", "rain", "lava"])
        typo = E.misspell(word, rng)
        assert abs(len(typo) - len(word)) <= 1
        assert sum(a != b for a, b in zip(typo, word)) <= len(word)
    assert E.misspell("it", rng) == "it"


def test_augment_words_keeps_a_word_and_is_the_identity_without_noise():
    rng = random.Random(1)
    words = ["the", "lava", "cools"]
    assert E.augment_words(words, 0.0, 0.0, 0.0, rng) == words
    assert len(E.augment_words(words, 1.0, 0.0, 0.0, rng)) == 1
    assert sorted(E.augment_words(words, 0.0, 1.0, 0.0, rng)) == sorted(words)
    assert E.augment_words([], 0.5, 0.5, 0.5, rng) == []
    same = [E.augment_words(words, 0.3, 0.3, 0.3, random.Random(7)) for _ in range(2)]
    assert same[0] == same[1]  # a function of the generator's seed
    # extra=0 draws nothing more: the other noise is what it was before the option existed
    assert E.augment_words(words, 0.3, 0.3, 0.3, random.Random(7), extra=0.0) == same[0]


def test_augment_words_can_insert_a_word_never_seen():
    rng = random.Random(5)
    for _ in range(20):
        out = E.augment_words(["the", "lava", "cools"], 0.0, 0.0, 0.0, rng, extra=1.0)
        new = [word for word in out if word not in ("the", "lava", "cools")]
        assert len(out) == 4 and len(new) == 1 and new[0].isalpha() and 2 <= len(new[0]) <= 9
        assert [word for word in out if word in ("the", "lava", "cools")] == ["the", "lava", "cools"]


def test_nonsense_texts_are_one_to_four_letter_words():
    rng = random.Random(2)
    for _ in range(20):
        words = E.nonsense_text(rng).split()
        assert 1 <= len(words) <= 4 and all(w.isalpha() and 2 <= len(w) <= 9 for w in words)


def test_templated_nonsense_keeps_only_the_generic_words():
    from worldsim.model.event_understanding import KnownEvent

    events = [KnownEvent("night", ("the night falls", "it is dark")), KnownEvent("rain", ("the rain", "it rains")),
              KnownEvent("lava", ("the lava is hot",))]
    generic = E.generic_words(events)
    assert generic == {"the", "it", "is"}  # in two of the three events
    rng = random.Random(4)
    words = E.templated_nonsense("the night is over", generic, rng).split()
    assert words[0] == "the" and words[2] == "is" and words[1] != "night" and words[3] != "over"
    assert E.templated_nonsense("it is", generic, rng).split() != ["it", "is"]  # never all generic


def test_word_token_ids_hide_word_ids_but_keep_trigrams():
    tok = Tokenizer.build(["night falls"], trigram_buckets=64)
    plain = E.word_token_ids(["night", "falls"], tok, 0.0, random.Random(0))
    assert plain == tok.encode("night falls")
    hidden = E.word_token_ids(["night", "falls"], tok, 1.0, random.Random(0))
    assert hidden == [UNK_ID, *tok.encode("night")[1:], UNK_ID, *tok.encode("falls")[1:]]
    ids = E.pad_token_ids([[5, 6, 7], [8]], max_tokens=2)
    assert ids.tolist() == [[5, 6], [8, PAD_ID]] and E.pad_token_ids([], 4).shape == (0, 1)


def test_paraphrase_batches_are_a_function_of_the_step():
    from worldsim.model.event_understanding import KnownEvent

    events = [KnownEvent("night falls", ("night falls", "it gets dark")), KnownEvent("rain", ("rain",))]
    tok = Tokenizer.build(["night falls", "it gets dark", "rain"], trigram_buckets=64)
    batches = E.ParaphraseBatches(events, tok, E.Augmentation(), batch_size=20, nonsense_share=0.25, seed=3)
    ids, labels = batches.batch(5)
    assert ids.shape[0] == 20 and labels.tolist()[:5] == [2] * 5  # the nonsense rows come first, as "unknown"
    assert set(labels[5:].tolist()) == {0, 1}
    again, other = batches.batch(5), batches.batch(6)
    assert torch.equal(again[0], ids) and not torch.equal(other[0][: len(ids)], ids)
    with pytest.raises(ValueError, match="no known events"):
        E.ParaphraseBatches([], tok, E.Augmentation(), 4)


def test_remap_keeps_the_rows_of_shared_tokens():
    old, new = Tokenizer.build(["a b"], trigram_buckets=4), Tokenizer.build(["b c"], trigram_buckets=4)
    old_weight = torch.arange(old.vocab_size, dtype=torch.float32)[:, None].repeat(1, 2)
    new_weight = torch.full((new.vocab_size, 2), -1.0)
    weight = E.remap_token_embeddings(old, new, old_weight, new_weight)
    assert weight[:2].tolist() == old_weight[:2].tolist()
    assert weight[2 + new.words.index("b")].tolist() == [3.0, 3.0]  # "b" was row 3 of the old table
    assert weight[2 + new.words.index("c")].tolist() == [-1.0, -1.0]  # new word: its own initialisation
    assert torch.equal(weight[4:], old_weight[4:])  # the trigram buckets


def test_split_dev_takes_a_seeded_share_of_each_events_paraphrases():
    from worldsim.model.event_understanding import KnownEvent

    events = [KnownEvent("night falls", ("night falls", *[f"dark {i}" for i in range(10)]), ("held",)),
              KnownEvent("rain", ("rain", "wet"))]
    kept, dev = E.split_dev(events, 0.2, seed=0)
    assert len(dev) == 2 and {label for _, label in dev} == {0}  # 2 of 10; 1 paraphrase gives 0
    assert kept[0].texts[0] == "night falls" and len(kept[0].texts) == 9 and kept[0].held_out == ("held",)
    assert not {text for text, _ in dev} & set(kept[0].texts) and kept[1] == events[1]
    assert E.split_dev(events, 0.2, seed=0) == (kept, dev) and E.split_dev(events, 0.0, seed=0) == (events, [])


def test_threshold_is_the_midpoint_between_known_and_unrelated():
    known, unrelated = torch.linspace(0.8, 1.0, 101), torch.linspace(0.0, 0.4, 101)
    assert E.choose_threshold(known, unrelated) == pytest.approx((0.81 + 0.38) / 2)


# ------------------------------------------------------------------------------ the stage


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A dataset that only names its events, and a random tiny world knowing three texts."""
    from worldsim.data import DatasetWriter
    from worldsim.world import WorldModel

    root = tmp_path_factory.mktemp("events")
    texts = ["night falls", "it starts raining", "lava erupts"]
    with DatasetWriter(root / "data", "explorer", (32, 32, 3), 5, event_texts=texts) as writer:
        for _ in range(2):
            writer.add(np.zeros((32, 32, 3), np.uint8), 0)
    from worldsim.training.common import world_config_for

    world = WorldModel.create(world_config_for("tiny", 32), event_texts=texts, seed=0)
    world.metadata["data"] = {"world": "explorer"}
    return root / "data", world.save_pretrained(root / "world")


def _config(data, world, **extra):
    overrides = [f"data={data}", f"init={world}", "steps=6", "batch_size=16", "checkpoint_every=3",
                 "log_every=1", "progress=false"]
    return stages.build_config("events", None, overrides + [f"{k}={v}" for k, v in extra.items()])


def test_events_stage_writes_a_world_that_understands_its_events(tiny_setup, tmp_path):
    from worldsim.envs.explorer import events as explorer_events
    from worldsim.world import WorldModel

    data, init = tiny_setup
    summary = stages.run_stage("events", _config(data, init, steps=80, lr=3e-3), tmp_path / "run")
    assert summary.last_loss < summary.first_loss
    world = WorldModel.from_pretrained(tmp_path / "run" / "final")
    # The tokenizer was rebuilt over every training text of the game (the init world knew three).
    assert set(world.event_texts) == set(explorer_events.training_texts())
    assert world.event_encoder.vocab_size == world.tokenizer.vocab_size
    entry = world.metadata["event_understanding"]
    assert len(entry["events"]) == len(explorer_events.EVENT_TYPES) and -1 <= entry["threshold"] <= 1
    assert entry["held_out_total"] == len(explorer_events.eval_texts())
    report = E.held_out_accuracy(world)
    assert report.total == 80 and report.correct == entry["held_out_correct"] and report.accuracy is not None
    assert len(report.misses) == report.total - report.correct
    # a few dozen tiny steps over 16 events of ~80 texts each: most canonical texts (chance: 1 in 16)
    got = world.understand_events([event.canonical for event in explorer_events.EVENT_TYPES])
    assert sum(item.nearest == event.canonical for item, event in zip(got, explorer_events.EVENT_TYPES)) >= 8
    assert world.metadata["training"][-1]["stage"] == "events"


def test_events_stage_keeps_the_worlds_event_vectors_when_asked(tiny_setup, tmp_path):
    """targets=world: the vectors stay where the generator learnt them — those of the texts the init
    world was trained with, not of the game's other paraphrases, which its encoder was never taught."""
    from worldsim.world import WorldModel

    data, init = tiny_setup
    before = WorldModel.from_pretrained(init)
    stages.run_stage("events", _config(data, init, steps=40, lr=3e-3, anchor_weight=10.0), tmp_path / "run")
    after = WorldModel.from_pretrained(tmp_path / "run" / "final")
    for canonical in before.event_texts:  # the tiny world was trained on each event's canonical text only
        old = before.encode_events([canonical])[0]
        assert (after.encode_events([canonical])[0] - old).norm() < 0.5 * old.norm(), canonical
        # the event's other paraphrases gather on the same vector
        mean = after.encode_events(list(after.event_table.events[canonical])).mean(0)
        assert (mean - old).norm() < 0.5 * old.norm(), canonical


def test_a_dev_run_scores_its_dev_texts_and_never_the_held_out_ones(tiny_setup, tmp_path):
    """dev_share: the dev texts are left out of training and of the vocabulary and scored at the end;
    fresh_encoder: new weights (not the init world's), the same however often it runs."""
    from safetensors.torch import load_file

    from worldsim.envs.explorer import events as explorer_events
    from worldsim.world import WorldModel

    data, init = tiny_setup
    for run in ("a", "b"):
        stages.run_stage("events", _config(data, init, steps=6, dev_share=0.2, fresh_encoder="true"), tmp_path / run)
    world = WorldModel.from_pretrained(tmp_path / "a" / "final")
    record = world.metadata["training"][-1]
    assert 0 <= record["dev_accuracy"] <= 1 and record["dev_total"] > 100 and "held_out_accuracy" not in record
    assert "held_out_total" not in world.metadata["event_understanding"]
    _, dev = E.split_dev(known_events(sorted(explorer_events.training_texts()), "explorer"), 0.2, seed=0)
    dev_texts = {text for text, _ in dev}
    assert len(dev_texts) == record["dev_total"] and not dev_texts & set(world.event_texts)
    a, b = (load_file(tmp_path / run / "final" / "events.safetensors") for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_killed_events_stage_resumes_to_identical_weights(tiny_setup, tmp_path):
    from safetensors.torch import load_file

    data, init = tiny_setup
    config = _config(data, init)
    straight, resumed = straight_and_resumed("events", config, tmp_path, kill_at_step=4)  # checkpoint at 3
    a = load_file(tmp_path / "straight" / "final" / "events.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "events.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and resumed.last_loss == straight.last_loss
    metadata = [json.loads((tmp_path / run / "final" / "config.json").read_text())["metadata"]
                for run in ("straight", "killed")]
    assert metadata[0]["event_understanding"] == metadata[1]["event_understanding"]


def test_event_alignment_holds_paraphrases_on_their_events(tiny_setup):
    """The auxiliary loss a generator stage can add: small where the encoder already agrees, with gradients."""
    from worldsim.world import WorldModel

    world = WorldModel.from_pretrained(tiny_setup[1])
    alignment = E.EventAlignment(world, world_name="explorer", batch_size=8, seed=0)
    assert alignment.targets.shape == (3, world.config.events.dim)  # the three events the world knows
    loss = alignment.loss(0)
    loss.backward()
    assert loss.ndim == 0 and world.event_encoder.token_embed.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("key, value, message", [
    ("targets", "both", "targets"), ("augment.typo", "1.5", "augment.typo"),
    ("augment.extra_word", "-0.1", "extra_word"), ("temperature", "0", "temperature"),
    ("nonsense_share", "1.0", "nonsense_share"), ("templated_share", "2", "templated_share"), ("init", "", "init"),
    ("dev_share", "1.0", "dev_share"),
])
def test_bad_settings_are_refused(tiny_setup, key, value, message):
    data, init = tiny_setup
    with pytest.raises(ConfigError, match=message):
        _config(data, init, **{key: value}).validate()


def test_held_out_accuracy_needs_to_know_the_game(tiny_setup):
    from worldsim.world import WorldModel

    world = WorldModel.from_pretrained(tiny_setup[1])
    world.metadata.pop("data")
    with pytest.raises(ValueError, match="world_name"):
        E.held_out_accuracy(world)
    assert E.held_out_accuracy(world, "explorer").total == 15  # the held-out texts of its three events
