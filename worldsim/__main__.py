"""`python -m worldsim ...`: the `worldsim` command, for environments where its script is not on PATH."""
from __future__ import annotations

import sys

from worldsim.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m worldsim"))
