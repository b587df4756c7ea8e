"""The bundled default world `explorer-64`: present, loadable by name, small files, a model card
that states its training and its measured fidelity, and frames that come out of it."""
import json

import torch

import worldsim
from worldsim.pretrained import DEFAULT_WORLD, bundled_folder
from worldsim.training.recipe import CHAINS

MAX_FILE_BYTES = 16 * 2**20


def test_the_default_world_ships_with_files_under_16_mib():
    folder = bundled_folder(DEFAULT_WORLD)
    files = sorted(path.name for path in folder.iterdir() if path.is_file())
    assert {"config.json", "tokenizer.json", "README.md", "transformer.safetensors"} <= set(files)
    assert all((folder / name).stat().st_size < MAX_FILE_BYTES for name in files)
    assert not any(name.endswith((".pt", ".pth", ".bin", ".pkl")) for name in files)


def test_its_metadata_records_every_recipe_stage_and_the_measured_fidelity():
    metadata = json.loads((bundled_folder(DEFAULT_WORLD) / "config.json").read_text())["metadata"]
    # The recipe's chain, then the stages that continued from its world (each recorded by name).
    chain = list(CHAINS[metadata["recipe"]["chain"]])
    stages = [record["stage"] for record in metadata["training"]]
    assert stages[:len(chain)] == chain
    assert stages[len(chain):] == [step["stage"] for step in metadata["recipe"].get("continued", [])]
    trained = [record for record in metadata["training"] if record["stage"] != "merge"]
    assert all(record["steps"] > 0 and record["wall_time_s"] > 0 for record in trained)
    # A merge of two branches keeps the other branch's trained stages on record.
    for merge in (record for record in metadata["training"] if record["stage"] == "merge"):
        assert 0 < merge["weight"] < 1 and all(record["steps"] > 0 for record in merge["first_only"])
    assert metadata["data"]["world"] == "explorer" and metadata["data"]["frames"] > 0
    assert metadata["hardware"]["cores"] > 0
    measures = metadata["evaluation"]["measures"]
    assert metadata["evaluation"]["suite"] in ("quick", "full")
    assert 10 < float(measures["TF PSNR"]) < 60 and 5 < float(measures["PSNR@32"]) < 60
    card = (bundled_folder(DEFAULT_WORLD) / "README.md").read_text()
    assert "## Measured against the Explorer truth" in card and "## Training" in card
    # The shipped world lines its local path's older frames up by the scroll, and its card says so.
    transformer = json.loads((bundled_folder(DEFAULT_WORLD) / "config.json").read_text())["world"]["transformer"]
    assert transformer["local_align_history"] and "older ones lined up by the scroll" in card


def test_load_with_no_name_gives_the_bundled_world_and_it_plays():
    world = worldsim.load()
    assert world.config.image_size == 64 and len(world.context_frames) > 0
    sim = world.simulator(batch_size=2, seed=0)
    first = sim.reset(event="a sunny meadow")
    frames, reward, terminated = sim.step(torch.tensor([1, 3]))
    assert first.shape == frames.shape == (2, 64, 64, 3) and first.dtype == torch.uint8
    assert reward.shape == terminated.shape == (2,)
    # a trained world keeps the scene: the next frame is close to the start frame, not noise
    change = (frames.float() - first.float()).abs().mean().item()
    assert change < 40, f"mean pixel change of {change:.1f} after one step"


def test_it_follows_its_keys():
    """From true contexts, the next frame under each move: the moves must differ far more than two
    noise draws do, and the inverse-dynamics probe must read the move from the generated pair
    (the first default world scored 0.002 and 5.5 % here)."""
    from worldsim.eval.action_branch import action_branch_test
    from worldsim.eval.branch_contexts import sample_branch_contexts
    from worldsim.eval.probes import Probes

    contexts = sample_branch_contexts(12, context_frames=2, size=64, seed=3)
    found = action_branch_test(worldsim.load(), contexts, seed=0, probes=Probes.load())
    assert found["move_to_seed_spread"] > 5
    assert found["wrong_minus_true_psnr_db"] < -3
    assert found["idm_moved_accuracy"] >= 0.9


def test_it_stops_at_walls():
    """Moves into water, trees or rock leave the view where it is: the inverse-dynamics probe reads
    noop from the generated pair (the first playable world scrolled anyway: 0 of 18)."""
    from worldsim.eval.action_branch import action_branch_test
    from worldsim.eval.branch_contexts import sample_branch_contexts
    from worldsim.eval.probes import Probes

    contexts = sample_branch_contexts(24, context_frames=2, size=64, seed=3)
    found = action_branch_test(worldsim.load(), contexts, seed=0, probes=Probes.load())
    assert found["idm_blocked_pairs"] >= 10
    assert found["idm_blocked_accuracy"] >= 0.7
