"""Every `worldsim ...` and `python play.py ...` command in the README parses with today's CLI.

The commands that run in seconds are exercised end to end by their own tests (data, train recipe
tiny, rollout, bench, eval, play headless); this test keeps the README's spelling of all of them,
including the GPU-sized ones, in step with the argument parsers.
"""
import re
import shlex
from pathlib import Path

import pytest

from worldsim.cli import build_parser
from worldsim.play.cli import build_parser as build_play_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands(program: str) -> list[list[str]]:
    """Command lines in the README's bash blocks that start with `program` (continuations joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith(program + " "):
            commands.append(shlex.split(line)[len(program.split()):])
    return commands


WORLDSIM = readme_commands("worldsim")
PLAY = readme_commands("python play.py")


def test_the_readme_shows_every_command():
    assert {argv[0] for argv in WORLDSIM} >= {"data", "train", "rollout", "bench", "eval"}
    assert len(PLAY) >= 4


@pytest.mark.parametrize("argv", WORLDSIM, ids=[" ".join(a[:2]) for a in WORLDSIM])
def test_worldsim_command_parses(argv):
    args = build_parser().parse_args(argv)
    assert callable(args.func)


@pytest.mark.parametrize("argv", PLAY, ids=[" ".join(a[:2]) or "play" for a in PLAY])
def test_play_command_parses(argv):
    build_play_parser().parse_args(argv)
