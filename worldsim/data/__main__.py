"""`python -m worldsim.data generate|record|info ...`: the `worldsim data` command on its own.

Same arguments as `worldsim data`; it loads only numpy-level modules (no torch), which makes it
start fast on machines that only generate or inspect data.
"""
from __future__ import annotations

import argparse
import sys

from worldsim.cli import run_command
from worldsim.data.cli import DESCRIPTION, add_subcommands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worldsim.data", description=DESCRIPTION)
    add_subcommands(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
