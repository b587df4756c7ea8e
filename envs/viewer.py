"""A pygame window for `render_mode="human"` (pygame is imported here only, and only when used)."""
from __future__ import annotations

import numpy as np


class Viewer:
    """Shows frames scaled up by an integer factor, at most `fps` frames per second."""

    def __init__(self, size: int, scale: int = 8, fps: int = 15, title: str = "worldsim") -> None:
        import pygame  # optional dependency: only the human render mode needs it

        self._pygame = pygame
        pygame.display.init()
        self._window = pygame.display.set_mode((size * scale, size * scale))
        pygame.display.set_caption(title)
        self._clock = pygame.time.Clock()
        self._scale = scale
        self._fps = fps

    def show(self, frame: np.ndarray) -> None:
        pygame = self._pygame
        pygame.event.pump()  # keep the window responsive
        big = np.repeat(np.repeat(frame, self._scale, axis=0), self._scale, axis=1)
        pygame.surfarray.blit_array(self._window, big.swapaxes(0, 1))
        pygame.display.flip()
        self._clock.tick(self._fps)

    def close(self) -> None:
        self._pygame.display.quit()
