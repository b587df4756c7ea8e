"""Keyboard bindings: pygame events become calls on a `GameSession`.

The help overlay is drawn from `HELP_LINES` below, the same place the bindings live, so the two
cannot drift apart.
"""
from __future__ import annotations

import pygame

from worldsim.envs.explorer import ACTIONS
from worldsim.play.session import GameSession

# Worlds use the Explorer's action order (noop, up, down, left, right); look indices up by name.
MOVE_KEYS: dict[int, int] = {
    key: ACTIONS.index(name)
    for name, keys in (("up", (pygame.K_w, pygame.K_UP)), ("down", (pygame.K_s, pygame.K_DOWN)),
                       ("left", (pygame.K_a, pygame.K_LEFT)), ("right", (pygame.K_d, pygame.K_RIGHT)))
    for key in keys
}
# 1..9 then 0 pick the first ten example events; with Shift, the next ten.
NUMBER_KEYS: dict[int, int] = {pygame.K_1 + i: i for i in range(9)} | {pygame.K_0: 9}
SHIFTED_OFFSET = 10
ENTER_KEYS = (pygame.K_RETURN, pygame.K_KP_ENTER)



def example_key_name(index: int) -> str:
    """The key that triggers example event `index` (0-based), as the help overlay writes it."""
    digit = str((index % SHIFTED_OFFSET + 1) % 10)
    return digit if index < SHIFTED_OFFSET else f"S+{digit}"


HELP_LINES: tuple[tuple[str, str], ...] = (
    ("W A S D / arrows", "move"),
    ("T or Enter", "type an event"),
    ("   Enter / Esc", "apply / cancel the typed event"),
    ("1 - 9, 0", "example event (listed below)"),
    ("Shift + 1 - 9, 0", "more example events"),
    ("P", "pause / resume"),
    ("R", "reset the episode"),
    ("H", "show / hide this help"),
    ("Esc", "close help, or quit"),
)


def handle_event(session: GameSession, event: pygame.event.Event) -> bool:
    """Apply one pygame event to the session; returns False when the player asked to quit."""
    if event.type == pygame.QUIT:
        return False
    if event.type == pygame.WINDOWFOCUSLOST:
        session.release_all_actions()
    elif event.type == pygame.KEYUP and event.key in MOVE_KEYS:
        session.release_action(MOVE_KEYS[event.key])
    elif event.type == pygame.KEYDOWN:
        if session.text_box is not None:
            _handle_typing(session, event)
        else:
            return _handle_game_key(session, event)
    return True


def _handle_typing(session: GameSession, event: pygame.event.Event) -> None:
    if event.key in ENTER_KEYS:
        session.submit_text_box()
    elif event.key == pygame.K_ESCAPE:
        session.cancel_text_box()
    elif event.key == pygame.K_BACKSPACE:
        session.backspace()
    else:
        session.type_text(getattr(event, "unicode", ""))


def _handle_game_key(session: GameSession, event: pygame.event.Event) -> bool:
    key = event.key
    if key in MOVE_KEYS:
        session.press_action(MOVE_KEYS[key])
    elif key in NUMBER_KEYS:
        shifted = bool(getattr(event, "mod", 0) & pygame.KMOD_SHIFT)
        session.trigger_example(NUMBER_KEYS[key] + (SHIFTED_OFFSET if shifted else 0))
    elif key == pygame.K_t or key in ENTER_KEYS:
        session.open_text_box()
    elif key == pygame.K_p:
        session.toggle_pause()
    elif key == pygame.K_r:
        session.reset()
    elif key == pygame.K_h:
        session.toggle_help()
    elif key == pygame.K_ESCAPE:
        if not session.help_visible:
            return False
        session.toggle_help()
    return True
