"""`python -m worldsim.data generate|record|info ...`: the `worldsim data` command on its own.

Same arguments as `worldsim data`; it loads only numpy-level modules (no torch), which makes it
start fast on machines that only generate or inspect data.
"""
from __future__ import annotations

import argparse
import sys

from worldsim.data.cli import DESCRIPTION, add_subcommands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worldsim.data", description=DESCRIPTION)
    add_subcommands(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
