"""Merging two worlds of one lineage weight by weight (`worldsim merge`)."""
import json

import pytest
import torch

from worldsim.cli import main
from worldsim.model import WorldConfig
from worldsim.merge import interpolate_states, interpolate_worlds
from worldsim.world import WorldModel

TEXTS = ["a sunny meadow", "night falls"]


def _world(seed: int, history: list[dict]) -> WorldModel:
    world = WorldModel.create(WorldConfig.preset("tiny"), event_texts=TEXTS, seed=seed)
    world.metadata["training"] = history
    return world


SHARED = [{"stage": "autoencoder", "steps": 5}, {"stage": "ar-teacher", "steps": 7}]
FIRST = _world(0, SHARED + [{"stage": "delta", "steps": 3}])
SECOND = _world(1, SHARED + [{"stage": "ar-teacher", "steps": 2}, {"stage": "delta", "steps": 4}])


def test_interpolation_is_the_straight_line_between_the_states():
    first = {"w": torch.tensor([0.0, 2.0]), "count": torch.tensor([3])}
    second = {"w": torch.tensor([4.0, -2.0]), "count": torch.tensor([3])}
    assert torch.equal(interpolate_states(first, second, 0.0)["w"], first["w"])
    assert torch.equal(interpolate_states(first, second, 1.0)["w"], second["w"])
    merged = interpolate_states(first, second, 0.25)
    assert torch.allclose(merged["w"], torch.tensor([1.0, 1.0])) and torch.equal(merged["count"], first["count"])


@pytest.mark.parametrize("second, message", [
    ({"w": torch.zeros(2)}, "differ in their tensors"),
    ({"w": torch.zeros(3), "count": torch.tensor([3])}, "shapes differ"),
    ({"w": torch.zeros(2), "count": torch.tensor([4])}, "non-float tensor differs"),
])
def test_states_that_cannot_be_interpolated_are_refused(second, message):
    first = {"w": torch.ones(2), "count": torch.tensor([3])}
    with pytest.raises(ValueError, match=message):
        interpolate_states(first, second, 0.5)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        interpolate_states(first, first, 1.5)


def test_a_merged_world_interpolates_every_network_and_records_both_branches():
    before = {key: value.clone() for key, value in SECOND.transformer.state_dict().items()}
    merged = interpolate_worlds(FIRST, SECOND, 0.7, names=("A", "B"))
    for name, network in merged.networks.items():
        for key, value in network.state_dict().items():
            expected = 0.3 * FIRST.networks[name].state_dict()[key] + 0.7 * SECOND.networks[name].state_dict()[key]
            assert torch.allclose(value, expected, atol=1e-6), (name, key)
    record = merged.metadata["training"][-1]
    assert merged.metadata["training"][:-1] == SECOND.metadata["training"]
    assert record["stage"] == "merge" and record["weight"] == 0.7 and (record["first"], record["second"]) == ("A", "B")
    assert record["first_only"] == [{"stage": "delta", "steps": 3}]
    # The sources are left as they were.
    assert all(torch.equal(value, before[key]) for key, value in SECOND.transformer.state_dict().items())


def test_worlds_of_different_shape_are_refused():
    other = WorldModel.create(WorldConfig.preset("tiny"), event_texts=TEXTS + ["it snows"], seed=0)
    with pytest.raises(ValueError, match="event texts"):
        interpolate_worlds(FIRST, other, 0.5)


def test_the_command_writes_a_world_that_loads_and_refuses_to_overwrite(tmp_path, capsys):
    FIRST.save_pretrained(tmp_path / "a")
    SECOND.save_pretrained(tmp_path / "b")
    out = tmp_path / "merged"
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--weight", "0.5", "--out", str(out)]) == 0
    loaded = WorldModel.load_folder(out)
    expected = interpolate_worlds(FIRST, SECOND, 0.5)
    for key, value in loaded.transformer.state_dict().items():
        assert torch.equal(value, expected.transformer.state_dict()[key])
    record = json.loads((out / "config.json").read_text())["metadata"]["training"][-1]
    assert record["first"] == str(tmp_path / "a") and record["weight"] == 0.5
    before = (out / "transformer.safetensors").read_bytes()
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--weight", "0.2", "--out", str(out)]) == 2
    assert "already holds a world" in capsys.readouterr().err
    assert (out / "transformer.safetensors").read_bytes() == before
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--weight", "2", "--out", str(tmp_path / "x")]) == 2
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "nothing"), "--weight", "0.5",
                 "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
