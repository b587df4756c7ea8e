"""Drawing: world panels scaled with nearest-neighbour, the HUD strip, the text box and the help overlay."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pygame

from worldsim.play.controls import HELP_LINES, SHIFTED_OFFSET, action_keys, example_key_name
from worldsim.play.session import GameSession, Hud
from worldsim.play.worlds import Understanding

BACKGROUND = (18, 20, 26)
HUD_BACKGROUND = (28, 31, 40)
TEXT = (235, 238, 245)
DIM = (150, 156, 172)
EVENT = (120, 210, 255)
WARNING = (255, 196, 90)
BOX = (60, 66, 84)
PANEL_GAP = 6
PADDING = 8
LINE_HEIGHT = 24
HUD_LINES = 4
# Side-by-side panels are named in a strip above them, never drawn over the game view.
LABEL_STRIP = 24
# Narrow panels (a low --scale) are centred in a window this wide so the HUD stays readable.
MIN_WINDOW_WIDTH = 480


@dataclass(frozen=True)
class Layout:
    """Where things go in the window, computed once from the frame size, panel count and scale."""

    panel_size: tuple[int, int]
    panel_origins: tuple[tuple[int, int], ...]
    hud_top: int
    window_size: tuple[int, int]

    @classmethod
    def build(cls, frame_shape: tuple[int, int, int], num_panels: int, scale: int) -> "Layout":
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        panel_w, panel_h = frame_shape[1] * scale, frame_shape[0] * scale
        panels_w = num_panels * panel_w + (num_panels - 1) * PANEL_GAP
        width = max(panels_w, MIN_WINDOW_WIDTH)
        left = (width - panels_w) // 2
        top = LABEL_STRIP if num_panels > 1 else 0
        origins = tuple((left + i * (panel_w + PANEL_GAP), top) for i in range(num_panels))
        hud_height = HUD_LINES * LINE_HEIGHT + 2 * PADDING
        return cls((panel_w, panel_h), origins, top + panel_h, (width, top + panel_h + hud_height))


class Renderer:
    """Draws a `GameSession` onto a pygame surface (the window, or an off-screen one)."""

    def __init__(self, surface: pygame.Surface, layout: Layout, panel_names: list[str]) -> None:
        self.surface = surface
        self.layout = layout
        self.panel_names = panel_names
        self.font = pygame.font.Font(None, 24)
        self.small_font = pygame.font.Font(None, 20)
        self.title_font = pygame.font.Font(None, 34)

    def draw(self, session: GameSession) -> None:
        hud = session.hud()
        self.surface.fill(BACKGROUND)
        for index, frame in enumerate(session.frames):
            self._draw_panel(index, frame, hud)
        self._draw_hud(hud)
        if session.help_visible:
            self._draw_help(action_keys(session.worlds[0].action_names).help_lines, session.example_events)
        elif hud.paused:
            self._draw_banner("PAUSED  (P to resume)")

    # ----------------------------------------------------------------------------- panels
    def _draw_panel(self, index: int, frame: np.ndarray, hud: Hud) -> None:
        origin = self.layout.panel_origins[index]
        image = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        # pygame.transform.scale samples nearest-neighbour: pixels stay crisp squares.
        self.surface.blit(pygame.transform.scale(image, self.layout.panel_size), origin)
        if len(self.layout.panel_origins) > 1:
            rendered = self._panel_label(self.panel_names[index], hud.returns[index], self.layout.panel_size[0])
            # in the strip above the panel (Layout leaves LABEL_STRIP rows there)
            y = origin[1] - LABEL_STRIP + (LABEL_STRIP - rendered.get_height()) // 2
            self.surface.blit(rendered, (origin[0] + 2, y))

    def _panel_label(self, name: str, episode_return: float, width: int):
        """The longest form of a panel's label that fits its width (side-by-side labels must not
        run into each other at small scales); measured without rendering, rendered once."""
        forms = (f"{name}   return {episode_return:+g}", f"{name} {episode_return:+g}")
        fitting = next((form for form in forms if self.small_font.size(form)[0] <= width - 4), name)
        return self.small_font.render(fitting, True, TEXT)

    # ----------------------------------------------------------------------------- HUD
    def _draw_hud(self, hud: Hud) -> None:
        width, height = self.layout.window_size
        top = self.layout.hud_top
        pygame.draw.rect(self.surface, HUD_BACKGROUND, (0, top, width, height - top))
        y = top + PADDING
        stats = (f"FPS {hud.fps:4.1f}   model {hud.model_ms:4.1f} ms/frame   "
                 f"step {hud.step}   ep {hud.episode}   return {hud.returns[0]:+g}")
        self._text(stats, (PADDING, y), TEXT)
        y += LINE_HEIGHT
        if hud.text_box is not None:
            self._draw_text_box(hud.text_box, y)
        else:
            self._text(self._event_line(hud), (PADDING, y), EVENT)
        y += LINE_HEIGHT
        understood = hud.understood
        self._text(understanding_line(understood), (PADDING, y),
                   EVENT if understood is not None and understood.event is not None else WARNING)
        y += LINE_HEIGHT
        if hud.message:
            self._text(hud.message, (PADDING, y), WARNING)
        elif hud.text_box is not None:
            self._text("Enter applies the event   Esc cancels", (PADDING, y), DIM)
        else:
            self._text("H help   T event   1-9 examples   P pause   R reset   Esc quit", (PADDING, y), DIM)

    @staticmethod
    def _event_line(hud: Hud) -> str:
        line = f"event: {hud.event or '(none)'}"
        if hud.pending_event is not None:
            line += f"   ->  {hud.pending_event}"
        return line

    def _draw_text_box(self, typed: str, y: int) -> None:
        width = self.layout.window_size[0]
        pygame.draw.rect(self.surface, BOX, (PADDING - 4, y - 3, width - 2 * PADDING + 8, LINE_HEIGHT - 2),
                         border_radius=4)
        self._text(f"event> {typed}_", (PADDING, y), TEXT, keep_end=True)

    def _text(self, text: str, position: tuple[int, int], color: tuple[int, int, int],
              keep_end: bool = False, font: pygame.font.Font | None = None,
              max_width: int | None = None) -> None:
        font = font or self.font
        room = self.layout.window_size[0] - position[0] - PADDING
        fitted = fit_text(font, text, room if max_width is None else min(room, max_width), keep_end)
        self.surface.blit(font.render(fitted, True, color), position)

    # ----------------------------------------------------------------------------- overlays
    def _draw_banner(self, text: str) -> None:
        rendered = self.title_font.render(text, True, TEXT)
        panels_h = self.layout.hud_top
        backing = pygame.Surface((self.layout.window_size[0], rendered.get_height() + 20), pygame.SRCALPHA)
        backing.fill((0, 0, 0, 160))
        y = (panels_h - backing.get_height()) // 2
        self.surface.blit(backing, (0, y))
        self.surface.blit(rendered, ((self.layout.window_size[0] - rendered.get_width()) // 2, y + 10))

    def _draw_help(self, action_lines: tuple[tuple[str, str], ...], example_events: tuple[str, ...]) -> None:
        width, _ = self.layout.window_size
        shade = pygame.Surface((width, self.layout.hud_top), pygame.SRCALPHA)
        shade.fill((8, 10, 16, 220))
        self.surface.blit(shade, (0, 0))
        x, y = 2 * PADDING, 2 * PADDING
        self.surface.blit(self.title_font.render("Controls", True, TEXT), (x, y))
        y += 34
        for keys, action in (*action_lines, *HELP_LINES):
            self._text(keys, (x, y), EVENT)
            self._text(action, (x + 160, y), TEXT)
            y += LINE_HEIGHT - 3
        y += 12
        if not example_events:
            return
        self.surface.blit(self.title_font.render("Example events", True, TEXT), (x, y))
        self._text("or press T and type your own", (x + 200, y + 8), DIM, font=self.small_font)
        y += 32
        # Two columns (plain digits, then Shift+digits) keep every example on screen.
        column_width = (width - 3 * PADDING) // 2
        examples = example_events[: 2 * SHIFTED_OFFSET]
        for index, text in enumerate(examples):
            column, row = divmod(index, SHIFTED_OFFSET)
            left = x + column * column_width
            top = y + row * (LINE_HEIGHT - 5)
            self._text(example_key_name(index), (left, top), EVENT, font=self.small_font)
            self._text(text, (left + 34, top), TEXT, font=self.small_font,
                       max_width=column_width - 40)


def understanding_line(understood: Understanding | None) -> str:
    """The HUD's reading of the event in force: "understood as: night falls (0.93)" or "not understood"."""
    if understood is None:
        return ""
    closeness = "" if understood.similarity is None else f"  (similarity {understood.similarity:.2f})"
    if understood.event is None:
        return f"not understood: no known event is close{closeness}"
    return f"understood as: {understood.event}{closeness}"


def fit_text(font: pygame.font.Font, text: str, max_width: int, keep_end: bool = False) -> str:
    """`text` shortened with an ellipsis until it fits `max_width` pixels (from the left if keep_end)."""
    if font.size(text)[0] <= max_width:
        return text
    while len(text) > 1:
        text = text[1:] if keep_end else text[:-1]
        candidate = "..." + text if keep_end else text + "..."
        if font.size(candidate)[0] <= max_width:
            return candidate
    return ""
