"""The `worldsim` command. It only dispatches: each command lives beside its concern."""
from __future__ import annotations

import argparse
import importlib
import sys

from worldsim import __version__

# Each module exposes add_parser(subparsers) and sets `func(args) -> int | None` on its parser.
COMMAND_MODULES: tuple[str, ...] = (
    "worldsim.data.cli",
    "worldsim.play.cli",
    "worldsim.training.cli",
    "worldsim.bench",
    "worldsim.rollout",
    "worldsim.eval.cli",
    "worldsim.merge",
)


def build_parser(prog: str = "worldsim") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Learned video world models as playable, trainable game engines.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command; Ctrl-C ends it with the shell's usual exit code, not a traceback."""
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None, prog: str = "worldsim") -> int:
    return run_command(build_parser(prog).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
