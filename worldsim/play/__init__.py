"""Live play of a worldsim world in a pygame window (`python play.py --help`).

`session` holds the rules (pure logic), `worlds` the neural/real backends, `controls` the key
bindings, `render` the drawing, `app` the loop, `recording`/`video` the outputs, `cli` the command.
"""
from worldsim.play.cli import main

__all__ = ["main"]
