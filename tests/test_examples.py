"""The runnable examples, end to end on a random tiny world with a budget of a few seconds."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from worldsim.envs.explorer import ACTIONS
from worldsim.model.config import WorldConfig
from worldsim.world import WorldModel

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ppo():
    return load_example("ppo_in_imagination")


def test_ppo_args_come_from_the_dataclass(ppo):
    args = ppo.parse_args(["--total-steps", "10", "--no-real-baseline", "--checkpoint", "some/world"])
    assert args.total_steps == 10 and args.real_baseline is False and args.checkpoint == "some/world"
    defaults = ppo.parse_args([])
    assert defaults == ppo.Args()


def test_gae_stops_at_episode_ends(ppo):
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.zeros(3, 1)
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    advantages = ppo.gae(rewards, values, dones, next_value=torch.tensor([10.0]), gamma=0.5, lam=1.0)
    # Step 1 ends an episode: nothing after it flows back into steps 0 and 1.
    assert advantages[:, 0].tolist() == [1.5, 1.0, 6.0]


def test_truncated_episodes_are_valued_at_their_last_frame(ppo):
    torch.manual_seed(0)
    agent = ppo.Agent((64, 64, 3), 5)
    final = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    values = ppo.truncation_values(agent, final, torch.tensor([True, False, True]))
    with torch.no_grad():
        expected = agent(final)[1]
    assert values[1] == 0.0  # ended for real (or still running): nothing to bootstrap
    torch.testing.assert_close(values[[0, 2]], expected[[0, 2]])
    assert ppo.truncation_values(agent, final, torch.zeros(3, dtype=torch.bool)).eq(0).all()


def test_transfer_summary_shares_the_real_gain_over_random(ppo):
    def result(mean):
        return {"return_mean": mean, "return_stderr": 0.1}

    summary = ppo.transfer_summary({"random": result(1.0), "real_ppo": result(3.0), "imagination_ppo": result(2.5)})
    assert summary["gain_ratio"] == pytest.approx(0.75)
    # d/d(imagination) = 1/2, d/d(real) = -1.5/4, d/d(random) = (1.5 - 2)/4, each mean with s.e. 0.1
    assert summary["gain_ratio_stderr"] == pytest.approx(0.1 * math.sqrt(0.5**2 + 0.375**2 + 0.125**2))
    assert summary["real_trained_return"] == {"mean": 3.0, "stderr": 0.1}
    # No gain to share when real PPO does not beat random, or when a policy was not trained.
    assert ppo.transfer_summary({"random": result(1.0), "real_ppo": result(0.5),
                                 "imagination_ppo": result(2.0)})["gain_ratio"] is None
    assert ppo.transfer_summary({"random": result(1.0), "real_ppo": result(3.0)})["gain_ratio"] is None


def test_ppo_in_imagination_runs_end_to_end(ppo, tmp_path):
    checkpoint = WorldModel.create(WorldConfig.preset("tiny"), event_texts=["night falls"], seed=0)
    folder = checkpoint.save_pretrained(tmp_path / "world")
    out = tmp_path / "ppo.json"
    ppo.main(["--checkpoint", str(folder), "--total-steps", "32", "--num-envs", "4", "--rollout-steps", "8",
              "--eval-episodes", "2", "--max-episode-steps", "12", "--update-epochs", "1", "--event", "night falls",
              "--calibration-episodes", "3", "--calibration-steps", "5", "--start-maps", "3",
              "--imagination-horizon", "5", "--save-agents", str(tmp_path / "agents"), "--out", str(out)])
    report = json.loads(out.read_text())
    for name in ("imagination_ppo", "real_ppo"):  # both trained agents saved, and they load back
        agent = ppo.load_agent(str(tmp_path / "agents" / f"{name}.safetensors"), (64, 64, 3), 5)
        assert sum(parameter.numel() for parameter in agent.parameters()) > 0
    assert set(report) == {"random_return", "real_trained_return", "imagination_trained_return", "gain_ratio",
                           "gain_ratio_stderr", "steps", "args", "reward_calibration", "results", "wall_s", "machine"}
    calibration = report["reward_calibration"]
    assert calibration["episodes"] == 3 and calibration["steps"] == 5
    for name in ("reward", "ended"):  # counts of detections on at most 3 x 5 steps; a share of nothing is null
        for found in (calibration[name], calibration["real_frames"][name]):
            assert 0 <= found["predicted"] <= 15 and 0 <= found["actual"] <= 15
            assert (found["precision"] is None) == (found["predicted"] == 0)
        assert calibration["real_frames"][name]["actual"] == calibration[name]["actual"]  # the same real outcomes
    assert set(report["results"]) == {"imagination_ppo", "random", "real_ppo"}
    for result in report["results"].values():
        assert result["episodes"] == 2
        assert math.isfinite(result["return_mean"]) and math.isfinite(result["return_std"])
        assert math.isfinite(result["return_stderr"])
        assert 0.0 <= result["died_share"] <= 1.0 and result["coins_mean"] >= 0.0
    for name, key in (("random", "random_return"), ("real_ppo", "real_trained_return"),
                      ("imagination_ppo", "imagination_trained_return")):
        assert report[key]["mean"] == report["results"][name]["return_mean"]
    assert report["results"]["imagination_ppo"]["train_steps"] == 32
    assert report["results"]["imagination_ppo"]["train_episodes"] >= 4  # 5-step imagined episodes in 8 steps
    assert report["results"]["real_ppo"]["train_steps"] == 32
    assert {"cpu_model", "cpu_cores", "torch_version", "date"} <= set(report["machine"])


def test_world_vs_game_plays_fixed_policies_side_by_side(tmp_path):
    example = load_example("world_vs_game")
    folder = WorldModel.create(WorldConfig.preset("tiny"), event_texts=["night falls"], seed=0).save_pretrained(
        tmp_path / "world")
    out = tmp_path / "world_vs_game.json"
    example.main(["--checkpoint", str(folder), "--episodes", "3", "--steps", "10", "--policies", "up,random",
                  "--event", "night falls", "--out", str(out)])
    report = json.loads(out.read_text())
    assert set(report["policies"]) == {"up", "random"}
    game_up = report["policies"]["up"]["game"]
    assert list(game_up["by_steps"]) == ["0-8", "8-10"]  # the stretches the 10 steps reach
    assert game_up["by_steps"]["0-8"]["moved_share"] > 0.0  # the probe sees the real player walk up
    for policy in report["policies"].values():
        for side in ("game", "world"):
            assert policy[side]["return"]["mean"] >= 0.0
            for stretch in policy[side]["by_steps"].values():
                assert 0.0 <= stretch["moved_share"] <= 1.0 and 0 <= stretch["episodes_ended"] <= 3
                assert 0.0 <= stretch["penalties_per_step"] <= 1.0
                assert stretch["coins_visible_per_step"] >= stretch["coins_appeared_per_step"] >= 0.0
    # the game's coins lie on the map: they come into view with the scroll, never out of known ground
    game_ledger = game_up["by_steps"]["0-8"]
    assert game_ledger["coins_visible_per_step"] > 0.0
    assert game_ledger["coins_appeared_per_step"] <= 0.1 * game_ledger["coins_visible_per_step"]
    # The real game is deterministic: the same maps and actions give the same figures.
    again = example.run(example.Args(checkpoint=str(folder), episodes=3, steps=10, policies="up", event="night falls"))
    assert again["policies"]["up"]["game"] == game_up
    with pytest.raises(ValueError, match="unknown policy"):
        example.policy_actions("jump", 4, 2, seed=0)
    up, down = ACTIONS.index("up"), ACTIONS.index("down")
    assert example.policy_actions("up-down", 4, 2, seed=0).tolist() == [[up, up], [down, down], [up, up], [down, down]]


def test_world_vs_game_plays_a_saved_agent_on_each_sides_own_frames(tmp_path):
    ppo, example = load_example("ppo_in_imagination"), load_example("world_vs_game")
    folder = WorldModel.create(WorldConfig.preset("tiny"), event_texts=["night falls"], seed=0).save_pretrained(
        tmp_path / "world")
    torch.manual_seed(0)
    ppo.save_agent(ppo.Agent((64, 64, 3), len(ACTIONS)), str(tmp_path), "agent")
    args = example.Args(checkpoint=str(folder), episodes=3, steps=6, policies="agent", event="night falls",
                        agent=str(tmp_path / "agent.safetensors"))
    report = example.run(args)
    game = report["policies"]["agent"]["game"]
    assert list(game["by_steps"]) == ["0-6"] and 0.0 <= game["by_steps"]["0-6"]["moved_share"] <= 1.0
    assert "world" in report["policies"]["agent"]
    # the agent samples from its own seeded generator: the deterministic game gives the same figures again
    assert example.run(args)["policies"]["agent"]["game"] == game
    with pytest.raises(ValueError, match="--agent"):
        example.run(example.Args(checkpoint=str(folder), episodes=3, steps=6, policies="agent"))
