"""The pygame loop: read input, advance the session, draw, pace to the frame rate, feed the video."""
from __future__ import annotations

import os
import time
from typing import Callable, Iterator, Mapping

import numpy as np
import pygame

from worldsim.play.controls import handle_event
from worldsim.play.render import Layout, Renderer
from worldsim.play.session import GameSession

WINDOW_TITLE = "worldsim"


class NoDisplayError(RuntimeError):
    """pygame could not open a window (no X/Wayland display, no video driver)."""


# SDL falls back to these when there is no display: they draw into memory and show nothing.
INVISIBLE_DRIVERS = ("dummy", "offscreen")


def open_window(size: tuple[int, int], headless: bool) -> pygame.Surface:
    """The display surface; headless play uses SDL's dummy driver (no window, same drawing)."""
    if headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    try:
        pygame.display.init()
        pygame.font.init()
        if not headless and pygame.display.get_driver() in INVISIBLE_DRIVERS:
            raise pygame.error(f"no display: SDL chose its invisible {pygame.display.get_driver()!r} driver")
        surface = pygame.display.set_mode(size)
    except pygame.error as error:
        pygame.display.quit()
        raise NoDisplayError(
            f"cannot open a window ({error}). Without a display, run headless, e.g.\n"
            "  python play.py --headless --frames 300 --video play.gif\n"
            "or start a virtual display: xvfb-run python play.py"
        ) from error
    pygame.display.set_caption(WINDOW_TITLE)
    pygame.key.set_repeat(350, 40)  # held Backspace keeps deleting in the text box
    return surface


class PlayApp:
    """One window (or headless surface) showing a `GameSession`.

    `frame_sinks` receive the composed window image (uint8 [H, W, 3]) every time a new world frame
    was drawn: this is how `--video` records exactly what the player saw. Headless, on-screen
    messages (a rejected event, an episode end) are also printed, since nobody sees the screen.
    """

    def __init__(self, session: GameSession, *, scale: int = 8, fps: float = 15.0,
                 headless: bool = False) -> None:
        self.session = session
        self.fps = fps
        self.headless = headless
        self.frame_sinks: list[Callable[[np.ndarray], None]] = []
        self.layout = Layout.build(session.worlds[0].frame_shape, len(session.worlds), scale)
        self.surface = open_window(self.layout.window_size, headless)
        self.renderer = Renderer(self.surface, self.layout, [world.name for world in session.worlds])
        self.clock = pygame.time.Clock()
        self.running = True
        self.frames_shown = 0  # world frames produced so far (resets included, paused ticks not)
        self._recording_seconds = 0.0
        if headless:
            session.on_message = self._print_message
            # Nobody watches a headless run live, so its HUD reports the game's own speed: the
            # time spent encoding the video is hidden from the session's clock.
            session.clock = lambda: time.perf_counter() - self._recording_seconds

    def tick(self, action: int | None = None) -> bool:
        """Handle queued input, advance one frame (unless paused), draw; False once the player quits."""
        for event in pygame.event.get():
            if not handle_event(self.session, event):
                self.running = False
        if not self.running:
            return False
        stepped = self.session.tick(action)
        self.renderer.draw(self.session)
        pygame.display.flip()
        if stepped:
            self.frames_shown += 1
            self._feed_sinks()
        if not self.headless:
            self.clock.tick(self.fps)  # caps a fast world so it stays playable; 0 = no cap
        return True

    def run(self, frames: int | None = None, actions: Iterator[int] | None = None,
            schedule: Mapping[int, str] | None = None) -> None:
        """Tick until the player quits or `frames` world frames have been shown.

        `actions` replaces the keyboard (scripted play): one is drawn for each step, none for a
        reset; `schedule` maps a frame index to an event text requested just before that frame
        is made (frame 0 is the reset frame, so its event is the session's start event instead).
        """
        schedule = dict(schedule or {})
        while frames is None or self.frames_shown < frames:
            if self.frames_shown > 0 and self.frames_shown in schedule:
                self.session.request_event(schedule.pop(self.frames_shown))
            action = next(actions) if actions is not None and self.session.will_step else None
            if not self.tick(action):
                break

    def screenshot(self, path: str) -> None:
        pygame.image.save(self.surface, path)

    def window_image(self) -> np.ndarray:
        return pygame.surfarray.array3d(self.surface).transpose(1, 0, 2).copy()

    def _feed_sinks(self) -> None:
        if self.frame_sinks:
            started = time.perf_counter()
            image = self.window_image()
            for sink in self.frame_sinks:
                sink(image)
            self._recording_seconds += time.perf_counter() - started

    def _print_message(self, text: str) -> None:
        print(f"play: frame {self.session.total_steps}: {text}")

    def close(self) -> None:
        pygame.display.quit()
