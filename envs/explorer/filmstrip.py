"""The README picture: one Explorer world under every event, one row per event group.

    python -m worldsim.envs.explorer.filmstrip            # -> docs/img/explorer_events.png
    python -m worldsim.envs.explorer.filmstrip --seed 7 --scale 4 --out my.png

Every tile shows the same world (same seed, same place) a few steps after its event was put in
force, with the other groups in their base state (day, clear, summer). "the lava cools" is shown
after an eruption, so that the cooled fields are visible.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .batch import ExplorerBatch, ExplorerConfig
from .events import EVENT_TYPES, GROUPS, event_by_name, events_in_group
from worldsim.imaging.font import GLYPH_HEIGHT, draw_text, text_mask
from worldsim.imaging.png import write_png

DEFAULT_OUT = Path("docs/img/explorer_events.png")
DEFAULT_SEED = 156
SHOWN_AFTER = {"lava_cools": "lava_eruption"}
_BACKGROUND = (28, 30, 36)
_TITLE, _LABEL, _CAPTION = (236, 238, 244), (212, 216, 226), (140, 146, 160)
_MARGIN, _GAP, _ROW_HEADER = 20, 14, 120


def event_frames(seed: int = DEFAULT_SEED, steps: int = 3, size: int = 64) -> dict[str, np.ndarray]:
    """The frame of world `seed` under each event, `steps` no-op steps after the event."""
    sim = ExplorerBatch(len(EVENT_TYPES), ExplorerConfig(size=size))
    sim.reset(np.full(len(EVENT_TYPES), seed, dtype=np.int64))
    sim.apply_events([event_by_name(SHOWN_AFTER[e.name]) if e.name in SHOWN_AFTER else None
                      for e in EVENT_TYPES])
    sim.apply_events(list(EVENT_TYPES))
    for _ in range(steps):
        sim.step(np.zeros(len(EVENT_TYPES), dtype=np.int64))
    return dict(zip((event.name for event in EVENT_TYPES), sim.render()))


def _label(event) -> str:
    return event.name.replace("_", " ").upper()


def _caption(event) -> str:
    return f"'{event.canonical}'"


def compose(frames: dict[str, np.ndarray], scale: int = 3, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Lay the frames out in rows of event groups, each tile labelled with its event."""
    tile = next(iter(frames.values())).shape[0] * scale
    title = f"THE EXPLORER WORLD UNDER EACH EVENT  (SEED {seed})"
    cell = max([tile] + [text_mask(_label(event), 2).shape[1] for event in EVENT_TYPES]
               + [text_mask(_caption(event), 1).shape[1] for event in EVENT_TYPES])
    columns = max(len(events_in_group(group)) for group in GROUPS)
    label_height = 2 * GLYPH_HEIGHT + 4 + GLYPH_HEIGHT + 6
    row_height = tile + 8 + label_height + _GAP
    width = 2 * _MARGIN + max(_ROW_HEADER + columns * (cell + _GAP) - _GAP, text_mask(title, 2).shape[1])
    top = _MARGIN + 2 * GLYPH_HEIGHT + 18
    image = np.empty((top + len(GROUPS) * row_height + _MARGIN - _GAP, width, 3), np.uint8)
    image[:] = _BACKGROUND
    draw_text(image, title, _MARGIN, _MARGIN, _TITLE, 2)
    for row, group in enumerate(GROUPS):
        y = top + row * row_height
        draw_text(image, group.upper(), _MARGIN, y + tile // 2 - GLYPH_HEIGHT, _LABEL, 2)
        for column, event in enumerate(events_in_group(group)):
            x = _MARGIN + _ROW_HEADER + column * (cell + _GAP)
            left = x + (cell - tile) // 2
            image[y:y + tile, left:left + tile] = np.repeat(np.repeat(frames[event.name], scale, 0), scale, 1)
            _centred(image, _label(event), x, cell, y + tile + 8, _LABEL, 2)
            _centred(image, _caption(event), x, cell, y + tile + 12 + 2 * GLYPH_HEIGHT, _CAPTION, 1)
    return image


def _centred(image: np.ndarray, text: str, x: int, width: int, y: int, colour, scale: int) -> None:
    draw_text(image, text, x + (width - text_mask(text, scale).shape[1]) // 2, y, colour, scale)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--scale", type=int, default=3, help="pixels per frame pixel")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    image = compose(event_frames(args.seed), args.scale, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, image)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    main()
