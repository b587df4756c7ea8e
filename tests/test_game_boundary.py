"""The engine reaches a game only through its GameSpec: no module of the `worldsim` package (the
games live in `worldsim.envs`, the top-level envs/ folder) imports a game's package or tests a
world's name against a game's, and what the engine needs from a game comes from the spec."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import worldsim
from worldsim.cli import main as worldsim_main
from worldsim.data.cli import _generated_games
from worldsim.envs.explorer.env import ExplorerEnv
from worldsim.envs.explorer.game import GAME
from worldsim.games import GameSpec, shipped_games
from worldsim.model import WorldConfig
from worldsim.play.cli import PlayError, build_parser, play, real_world
from worldsim.world import WorldModel

PACKAGE = Path(worldsim.__file__).resolve().parent
# An import of the Explorer's package, in any spelling, and a comparison of a name with the Explorer's.
NAMES_THE_GAME = {
    "import": re.compile(r"worldsim\.envs\.explorer\b|from\s+worldsim\.envs\s+import\s[^\n]*\bexplorer\b"),
    "name test": re.compile(r"""[=!]=\s*['"]explorer['"]|['"]explorer['"]\s*[=!]="""),
}


def engine_sources() -> list[Path]:
    sources = sorted(path for path in PACKAGE.rglob("*.py") if "envs" not in path.relative_to(PACKAGE).parts)
    assert len(sources) > 50 and PACKAGE / "games.py" in sources  # the whole package, not an empty glob
    return sources


@pytest.mark.parametrize("kind", sorted(NAMES_THE_GAME))
def test_no_engine_module_imports_the_explorer_or_tests_for_its_name(kind):
    pattern = NAMES_THE_GAME[kind]
    found = [f"{path.relative_to(PACKAGE.parent)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
             for path in engine_sources() for text in [path.read_text()] for match in pattern.finditer(text)]
    assert found == []


def test_the_patterns_catch_what_they_are_meant_to():
    assert NAMES_THE_GAME["import"].search("from worldsim.envs.explorer.batch import MOVES")
    assert NAMES_THE_GAME["import"].search("from worldsim.envs import neural, explorer")
    assert NAMES_THE_GAME["name test"].search("if dataset.world == 'explorer':")
    assert not NAMES_THE_GAME["name test"].search('DEFAULT_GAME = "explorer"')


def test_the_explorer_spec_gives_what_the_engine_asks_for():
    truth = GAME.ground_truth(3, 32, 0)
    truth.reset(np.arange(3, dtype=np.int64))
    assert truth.render().shape == (3, 32, 32, 3) and truth.tile_classes().max() < len(GAME.tile_classes)
    real = GAME.play_world(32)
    assert real.frame_shape == (32, 32, 3) and real.action_names == GAME.action_names
    assert real.dataset_world == GAME.name and GAME.fps == ExplorerEnv.metadata["render_fps"]
    settings = GAME.generate_settings(frames=10, seed=1, size=16, shard_frames=10, envs_per_shard=2, compress=False)
    assert settings.world == GAME.name and settings.layout().frame_shape == (16, 16, 3)


def test_data_generate_offers_the_shipped_games_that_have_generate_settings(capsys):
    assert GAME in shipped_games()
    assert _generated_games() == [game.name for game in shipped_games() if game.generate_settings is not None]
    assert GAME.name in _generated_games()
    with pytest.raises(SystemExit) as exit_info:
        worldsim_main(["data", "generate", "--world", "no-such-game", "--frames", "8", "--out", "x"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_a_game_without_a_real_world_cannot_be_played_for_real(tmp_path, capsys):
    recorded = GameSpec(name="ALE/Pong-v5", action_names=("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE"))
    with pytest.raises(PlayError, match=r"--compare: the world's game \(ALE/Pong-v5\) has no real game"):
        real_world(recorded, "--compare")
    world = WorldModel.create(WorldConfig.preset("tiny"), seed=0)
    assert world.config.num_actions == recorded.num_actions
    world.metadata["game"] = recorded.to_metadata()
    folder = str(world.save_pretrained(tmp_path / "pong"))
    for option in (["--world", "real"], ["--compare"]):
        with torch.no_grad():
            status = play(build_parser().parse_args([*option, "--checkpoint", folder, "--headless", "--frames", "2"]))
        err = capsys.readouterr().err
        assert status == 2 and "(ALE/Pong-v5) has no real game" in err and "Traceback" not in err
