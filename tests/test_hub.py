"""Checkpoints: round trip, strict validation, name resolution (bundled, local, offline Hub cache), upload."""
from __future__ import annotations

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from hub_cache import add_snapshot
from test_world_fixtures import make_world

import worldsim
import worldsim.pretrained
from worldsim import hub
from worldsim.world import WorldModel


@pytest.fixture(scope="module")
def world():
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    model = make_world(seed=0, context_frames=frames)
    model.metadata = {"name": "test world", "stages": ["dmd"], "steps": 12}
    return model


@pytest.fixture()
def saved(world, tmp_path):
    return world.save_pretrained(tmp_path / "world")


def assert_same_world(a: WorldModel, b: WorldModel) -> None:
    for name in hub.MODULE_FILES:
        state_a, state_b = a.networks[name].state_dict(), b.networks[name].state_dict()
        assert state_a.keys() == state_b.keys()
        assert all(torch.equal(state_a[key], state_b[key]) for key in state_a), name
    assert torch.equal(a.context_frames, b.context_frames)
    assert a.tokenizer.to_dict() == b.tokenizer.to_dict()
    assert a.config.to_dict() == b.config.to_dict()


def play(world: WorldModel) -> torch.Tensor:
    sim = world.simulator(batch_size=2, seed=0)
    frames = [sim.reset(event="night falls")]
    frames += [sim.step([1, 2])[0], sim.step([3, 4], events=["enemies appear", None])[0]]
    return torch.stack(frames)


# ----------------------------------------------------------------------------------------------
# round trip


def test_save_load_round_trip_is_bit_exact(world, saved):
    loaded = WorldModel.from_pretrained(saved)
    assert_same_world(world, loaded)
    assert loaded.event_texts == world.event_texts and loaded.metadata == world.metadata
    assert torch.equal(play(world), play(loaded))


def test_checkpoint_folder_holds_exactly_our_files(saved):
    expected = {hub.CONFIG_FILE, hub.TOKENIZER_FILE, hub.CARD_FILE, hub.CONTEXT_FILE, *hub.MODULE_FILES.values()}
    assert {path.name for path in saved.iterdir()} == expected  # no temporary files left behind
    assert all(path.stat().st_size < 16 * 2**20 for path in saved.iterdir())


def test_saving_over_a_checkpoint_replaces_it(world, saved):
    other = make_world(seed=7)
    other.save_pretrained(saved)
    assert_same_world(other, WorldModel.from_pretrained(saved))


def test_model_card_describes_the_world(world, tmp_path):
    from huggingface_hub import ModelCard

    folder = world.save_pretrained(tmp_path / "card", repo_id="org/explorer-test")
    card = (folder / hub.CARD_FILE).read_text()
    data = ModelCard.load(folder / hub.CARD_FILE).data  # the Hub's own parser reads the metadata
    assert (data.library_name, data.license) == ("worldsim", "apache-2.0")
    assert {"worldsim", "world-model", "reinforcement-learning"} <= set(data.tags)
    assert 'worldsim.load("org/explorer-test"' in card
    assert f"{sum(world.parameter_counts().values()):,}" in card
    assert "night falls" in card and '"stages"' in card and "# test world" in card


# ----------------------------------------------------------------------------------------------
# strict loading


def edit_config(folder: Path, change) -> None:
    data = json.loads((folder / hub.CONFIG_FILE).read_text())
    change(data)
    (folder / hub.CONFIG_FILE).write_text(json.dumps(data))


CONFIG_TAMPERING = [
    (lambda d: d.update(extra=1), "unknown key 'extra'"),
    (lambda d: d.pop("metadata"), "missing key 'metadata'"),
    (lambda d: d.update(format="pickle"), "format"),
    (lambda d: d.update(format_version=99), "format_version"),
    (lambda d: d.update(event_texts="night falls"), "event_texts"),
    (lambda d: d["world"]["transformer"].update(depth="6"), "transformer.depth"),
    (lambda d: d["world"]["transformer"].update(dropout=0.1), "transformer.dropout"),
    (lambda d: d["world"].pop("reward"), "reward"),
    (lambda d: d["world"]["transformer"].update(latent_channels=5), "transformer.latent_channels"),
    (lambda d: d["world"]["transformer"].update(rope_base=float("inf")), "transformer.rope_base"),
    (lambda d: d["world"]["transformer"].update(mlp_ratio=float("inf")), "transformer.mlp_ratio"),
    (lambda d: d["world"]["transformer"].update(mlp_ratio=1e7), "transformer.mlp_ratio"),
    (lambda d: d["world"]["transformer"].update(dim=2**20), "transformer.dim"),
    (lambda d: d["world"]["sampling"].update(sigma_shift=float("nan")), "sampling.sigma_shift"),
    (lambda d: d["world"]["autoencoder"].update(channels=[8, 10**9, 16]), "autoencoder.channels"),
]


@pytest.mark.parametrize("change, message", CONFIG_TAMPERING)
def test_a_tampered_config_is_a_clear_error(saved, change, message):
    edit_config(saved, change)
    with pytest.raises(hub.CheckpointError, match=message.replace(".", r"\.")):
        WorldModel.from_pretrained(saved)


def test_config_that_is_not_json_is_a_clear_error(saved):
    (saved / hub.CONFIG_FILE).write_text("{not json")
    with pytest.raises(hub.CheckpointError, match="not valid JSON"):
        WorldModel.from_pretrained(saved)


def edit_tensors(path: Path, change) -> None:
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_a_missing_tensor_is_named(saved):
    name = sorted(load_file(str(saved / "transformer.safetensors")))[-1]
    edit_tensors(saved / "transformer.safetensors", lambda t: t.pop(name))
    with pytest.raises(hub.CheckpointError, match=f"missing tensor '{name}'"):
        WorldModel.from_pretrained(saved)


def test_an_extra_tensor_is_named(saved):
    edit_tensors(saved / "reward.safetensors", lambda t: t.update(backdoor=torch.zeros(1)))
    with pytest.raises(hub.CheckpointError, match="unexpected tensor 'backdoor'"):
        WorldModel.from_pretrained(saved)


def test_a_wrongly_shaped_tensor_is_named(saved):
    edit_tensors(saved / "autoencoder.safetensors", lambda t: t.update(latent_scale=torch.ones(9)))
    with pytest.raises(hub.CheckpointError, match="latent_scale.*shape"):
        WorldModel.from_pretrained(saved)


def test_a_tensor_of_the_wrong_dtype_is_named(saved):
    edit_tensors(saved / "reward.safetensors", lambda t: t.update({name: t[name].to(torch.int64) for name in list(t)[:1]}))
    with pytest.raises(hub.CheckpointError, match="reward.safetensors: tensor .* has dtype torch.int64, expected torch.float32"):
        WorldModel.from_pretrained(saved)


def test_non_finite_weights_are_named_when_asked_for(world, saved):
    name = sorted(load_file(str(saved / "transformer.safetensors")))[0]
    edit_tensors(saved / "transformer.safetensors", lambda t: t[name].view(-1)[0].fill_(float("nan")))
    with pytest.raises(hub.CheckpointError, match=f"transformer.safetensors: non-finite .*'{name}'"):
        WorldModel.from_pretrained(saved, check_finite=True)
    with pytest.raises(hub.CheckpointError, match="non-finite"):
        worldsim.load(str(saved), check_finite=True)
    assert WorldModel.from_pretrained(saved).transformer.state_dict()[name].isnan().any()  # opt-in: loads


def test_corrupt_or_missing_weight_files_are_named(saved):
    (saved / "events.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(hub.CheckpointError, match="events.safetensors"):
        WorldModel.from_pretrained(saved)
    (saved / "events.safetensors").unlink()
    with pytest.raises(hub.CheckpointError, match="events.safetensors: file is missing"):
        WorldModel.from_pretrained(saved)


def test_context_frames_and_tokenizer_are_validated(saved):
    save_file({"frames": torch.zeros(2, 32, 32, 3, dtype=torch.uint8)}, str(saved / hub.CONTEXT_FILE))
    with pytest.raises(hub.CheckpointError, match="context frames"):
        WorldModel.from_pretrained(saved)
    save_file({"frames": torch.zeros(0, 64, 64, 3, dtype=torch.uint8)}, str(saved / hub.CONTEXT_FILE))
    tokenizer = json.loads((saved / hub.TOKENIZER_FILE).read_text())
    (saved / hub.TOKENIZER_FILE).write_text(json.dumps({**tokenizer, "max_tokens": 7}))
    with pytest.raises(hub.CheckpointError, match="max_tokens"):
        WorldModel.from_pretrained(saved)


# ----------------------------------------------------------------------------------------------
# name resolution


def test_loading_by_repo_id_from_an_offline_hub_cache(world, saved, tmp_path, monkeypatch):
    other = make_world(seed=3)
    other_folder = other.save_pretrained(tmp_path / "other")
    cache = tmp_path / "hub-cache"
    main_commit, tagged_commit = "a" * 40, "b" * 40
    add_snapshot(cache, "org/explorer", saved, main_commit, refs=("main",))
    add_snapshot(cache, "org/explorer", other_folder, tagged_commit, refs=("v1",))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    assert_same_world(world, worldsim.load("org/explorer"))
    assert_same_world(other, worldsim.load("org/explorer", revision="v1"))
    assert_same_world(other, worldsim.load("org/explorer", revision=tagged_commit))
    assert_same_world(world, WorldModel.from_pretrained("org/explorer", local_files_only=True))
    with pytest.raises(hub.CheckpointNotFoundError, match="org/explorer.*revision v2.*offline"):
        worldsim.load("org/explorer", revision="v2")


def test_cache_dir_argument_loads_from_that_cache(world, saved, tmp_path, monkeypatch):
    cache = tmp_path / "my-cache"
    add_snapshot(cache, "org/explorer", saved, "c" * 40, refs=("main", "v2"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert_same_world(world, worldsim.load("org/explorer", revision="v2", cache_dir=cache, local_files_only=True))
    assert_same_world(world, WorldModel.from_pretrained("org/explorer", cache_dir=str(cache), local_files_only=True))
    with pytest.raises(hub.CheckpointNotFoundError, match="org/explorer"):
        worldsim.load("org/explorer", cache_dir=tmp_path / "elsewhere", local_files_only=True)


def test_hub_arguments_reach_snapshot_download(saved, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **options):
        calls.append((repo_id, options))
        return str(saved)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    worldsim.load("org/explorer", revision="v3", cache_dir="/tmp/c", token="hf_x", force_download=True,
                  local_files_only=False)
    repo_id, options = calls[0]
    assert repo_id == "org/explorer"
    assert {key: options[key] for key in ("revision", "cache_dir", "token", "force_download", "local_files_only")} == {
        "revision": "v3", "cache_dir": "/tmp/c", "token": "hf_x", "force_download": True, "local_files_only": False}
    assert options["allow_patterns"] == hub.HUB_PATTERNS  # never a pickle


@pytest.mark.parametrize("arguments, message", [
    ({"revision": ""}, "revision"), ({"revision": 3}, "revision"), ({"cache_dir": 5}, "cache_dir"),
    ({"force_download": "yes"}, "force_download"), ({"local_files_only": 1}, "local_files_only"),
    ({"token": 1.5}, "token"),
])
def test_bad_hub_arguments_are_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        worldsim.load("org/explorer", **arguments)


def test_a_failed_resolution_lists_every_place_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hub.CheckpointNotFoundError) as error:
        worldsim.load("nobody/nothing")
    message = str(error.value)
    assert "bundled world" in message and "local folder" in message and "Hugging Face Hub repo 'nobody/nothing'" in message
    (tmp_path / "not-a-checkpoint").mkdir()
    with pytest.raises(hub.CheckpointNotFoundError, match="has no config.json"):
        worldsim.load("not-a-checkpoint")


def test_the_default_bundled_world_says_where_its_weights_come_from(tmp_path, monkeypatch):
    monkeypatch.setattr(worldsim.pretrained, "PRETRAINED_DIR", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hub.CheckpointNotFoundError, match="worldsim train recipe"):
        worldsim.load()


def test_a_bundled_name_resolves_first(world, tmp_path, monkeypatch):
    monkeypatch.setattr(worldsim.pretrained, "PRETRAINED_DIR", tmp_path)
    world.save_pretrained(tmp_path / worldsim.pretrained.DEFAULT_WORLD)
    assert_same_world(world, worldsim.load())
    assert_same_world(world, worldsim.load("explorer-64"))


# ----------------------------------------------------------------------------------------------
# upload


def test_push_to_hub_uploads_a_complete_checkpoint(world, monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **options):
            calls["create"] = (repo_id, options)

        def create_branch(self, repo_id, **options):
            calls["branch"] = (repo_id, options)

        def upload_folder(self, *, repo_id, folder_path, **options):
            folder = Path(folder_path)
            calls["files"] = sorted(path.name for path in folder.iterdir())
            calls["card"] = (folder / hub.CARD_FILE).read_text()
            calls["upload"] = (repo_id, options)
            assert_same_world(world, WorldModel.from_pretrained(folder))
            return types.SimpleNamespace(commit_url="https://huggingface.co/org/w/commit/1")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = world.push_to_hub("org/w", private=True, token="secret", branch="dev", create_pr=True)
    assert url == "https://huggingface.co/org/w/commit/1"
    assert calls["token"] == "secret"
    assert calls["create"] == ("org/w", {"private": True, "repo_type": "model", "exist_ok": True})
    assert calls["branch"] == ("org/w", {"branch": "dev", "repo_type": "model", "exist_ok": True})
    assert calls["upload"][0] == "org/w" and calls["upload"][1]["revision"] == "dev"
    assert calls["upload"][1]["create_pr"] is True
    assert calls["upload"][1]["allow_patterns"] == hub.HUB_PATTERNS
    assert hub.CONFIG_FILE in calls["files"] and "transformer.safetensors" in calls["files"]
    assert 'worldsim.load("org/w"' in calls["card"]


def test_a_world_saved_before_the_cells_reward_head_loads_with_the_flattened_one(tmp_path):
    world = make_world(seed=1, overrides={"reward.head": "flatten"})
    world.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["format_version"] == hub.FORMAT_VERSION >= 7
    saved["format_version"] = 6  # what format 6 wrote: no such key, every reward model flattened its map
    del saved["world"]["reward"]["head"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = WorldModel.from_pretrained(tmp_path)
    assert loaded.config.reward.head == "flatten" and not hasattr(loaded.reward_model, "cell_prior")
