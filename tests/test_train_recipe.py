"""`worldsim train recipe --size tiny` end to end: every stage learns, the world loads and plays."""
import json
import math

import pytest
import torch

import worldsim
from worldsim.training.recipe import RECIPE_STAGES, build_recipe_config, run_recipe


@pytest.mark.slow
def test_tiny_recipe_trains_every_stage_and_writes_a_loadable_world(tmp_path, capsys):
    from worldsim.cli import main

    # the README's command (plus a quiet progress bar)
    assert main(["train", "recipe", "--size", "tiny", "--out", str(tmp_path / "run"), "--set", "progress=false"]) == 0
    printed = json.loads(capsys.readouterr().out)
    config = build_recipe_config(None, ["size=tiny", "progress=false"])
    result = run_recipe(config, tmp_path / "run", resume=True)  # finished: reads the records, trains nothing
    assert printed["world"] == str(result.world_dir)

    # every supervised stage's logged loss falls (mean of the first vs the last fifth of the logged
    # values). The distribution-matching stages log their critic's flow-matching loss on the
    # generator's fresh rollouts: over a few dozen tiny steps it moves by less than its noise from
    # batch to batch, so there it only has to stay finite.
    assert [record["stage"] for record in result.stages] == [stage for stage, _ in RECIPE_STAGES]
    for record in result.stages:
        if record["stage"] in ("dmd", "stream", "delta", "rolling"):
            assert math.isfinite(record["first_loss"]) and math.isfinite(record["last_loss"]), record
        else:
            assert record["last_loss"] < record["first_loss"], record

    world = worldsim.load(str(result.world_dir))
    assert world.config.image_size == 32 and len(world.context_frames) == 4
    assert [r["stage"] for r in world.metadata["training"]] == [stage for stage, _ in RECIPE_STAGES]
    assert world.metadata["data"]["frames"] == config.data_frames
    assert world.metadata["hardware"]["torch"] == torch.__version__
    assert "Training" in (result.world_dir / "README.md").read_text()
    recipe = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert recipe["world"] == str(result.world_dir)

    sim = world.simulator(batch_size=2, seed=0)
    frames = sim.reset(event="night falls")
    for _ in range(3):
        frames, reward, terminated = sim.step([1, 3])
    assert frames.shape == (2, 32, 32, 3) and frames.dtype == torch.uint8
    assert reward.shape == (2,) and terminated.dtype == torch.bool

    with pytest.raises(ValueError, match="--resume"):
        run_recipe(config, tmp_path / "run")

    # shipping an earlier generator stage: its transformer and event encoder, the reward stage's reward model
    shipped = run_recipe(build_recipe_config(None, ["size=tiny", "progress=false", "ship_generator=dmd"]),
                         tmp_path / "run", resume=True)
    chosen, dmd = worldsim.load(str(shipped.world_dir)), worldsim.load(str(tmp_path / "run" / "stages" / "dmd" / "final"))
    assert chosen.metadata["recipe"]["generator_stage"] == "dmd"
    for module in ("transformer", "event_encoder"):
        assert all(torch.equal(a, b) for a, b in zip(getattr(chosen, module).state_dict().values(),
                                                      getattr(dmd, module).state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(chosen.reward_model.state_dict().values(),
                                                  world.reward_model.state_dict().values()))
    with pytest.raises(ValueError, match="ship_generator"):
        build_recipe_config(None, ["size=tiny", "ship_generator=teacher"])


def test_the_playable_chain_starts_each_stage_from_the_one_before_it(tmp_path):
    from worldsim.training.recipe import stage_config

    config = build_recipe_config(None, ["size=tiny", "chain=playable"])
    assert config.stages == ("autoencoder", "events", "ar-teacher", "reward")
    assert config.generator_stages == ("ar-teacher",)
    inits = {stage: stage_config(config, stage, field, "data", tmp_path).init
             for stage, field in RECIPE_STAGES if stage in config.stages and stage != "autoencoder"}
    assert inits == {"events": str(tmp_path / "autoencoder" / "final"),
                     "ar-teacher": str(tmp_path / "events" / "final"),
                     "reward": str(tmp_path / "ar-teacher" / "final")}
    with pytest.raises(Exception, match="ship_generator"):
        build_recipe_config(None, ["size=tiny", "chain=playable", "ship_generator=dmd"])
    assert build_recipe_config(None, ["size=compact"]).chain == "playable"
