"""Keyboard bindings: pygame events become calls on a `GameSession`.

Action keys come from the game's action names (`action_keys`); the help overlay is drawn from
them and from `HELP_LINES` below, the same place the bindings live, so the two cannot drift apart.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import pygame

from worldsim.play.session import GameSession

# Keys for actions named after a direction or FIRE (as the shipped games and Atari name them, any case).
NAMED_KEYS: dict[str, tuple[int, ...]] = {
    "up": (pygame.K_w, pygame.K_UP), "down": (pygame.K_s, pygame.K_DOWN),
    "left": (pygame.K_a, pygame.K_LEFT), "right": (pygame.K_d, pygame.K_RIGHT), "fire": (pygame.K_SPACE,),
}
# Other actions (UPFIRE, "action 3", ...) get these letters in order: none of them is a command key.
SPARE_KEYS: tuple[int, ...] = tuple(getattr(pygame, f"K_{letter}") for letter in "zxcvbnmfgjkluioyqe")
# Action 0 is what the world gets while no action key is held; it needs no key of its own.
IDLE_ACTION = 0


@dataclass(frozen=True)
class ActionKeys:
    """Which key presses which action of a game, and the help overlay's lines for them."""

    action_for_key: dict[int, int]
    help_lines: tuple[tuple[str, str], ...]


@functools.lru_cache(maxsize=16)
def action_keys(action_names: tuple[str, ...]) -> ActionKeys:
    """Keys for a game's actions, from their names: directions on WASD/arrows, FIRE on Space, the
    rest on spare letters (at most len(SPARE_KEYS) of them; more actions stay scripted-only)."""
    action_for_key: dict[int, int] = {}
    lines: list[tuple[str, str]] = []
    spare = iter(SPARE_KEYS)
    for action, name in enumerate(action_names):
        if action == IDLE_ACTION:
            lines.append(("(no key)", name))
            continue
        keys = NAMED_KEYS.get(name.strip().lower())
        if keys is None or any(key in action_for_key for key in keys):
            keys = tuple(key for key in (next(spare, None),) if key is not None)
        for key in keys:
            action_for_key[key] = action
        if keys:
            lines.append((" / ".join(_key_label(key) for key in keys), name))
    return ActionKeys(action_for_key, tuple(lines))


def _key_label(key: int) -> str:
    name = pygame.key.name(key)
    return {"up": "Up", "down": "Down", "left": "Left", "right": "Right", "space": "Space"}.get(name, name.upper())


# 1..9 then 0 pick the first ten example events; with Shift, the next ten.
NUMBER_KEYS: dict[int, int] = {pygame.K_1 + i: i for i in range(9)} | {pygame.K_0: 9}
SHIFTED_OFFSET = 10
ENTER_KEYS = (pygame.K_RETURN, pygame.K_KP_ENTER)



def example_key_name(index: int) -> str:
    """The key that triggers example event `index` (0-based), as the help overlay writes it."""
    digit = str((index % SHIFTED_OFFSET + 1) % 10)
    return digit if index < SHIFTED_OFFSET else f"S+{digit}"


HELP_LINES: tuple[tuple[str, str], ...] = (
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
    elif event.type == pygame.KEYUP and event.key in _keys(session).action_for_key:
        session.release_action(_keys(session).action_for_key[event.key])
    elif event.type == pygame.KEYDOWN:
        if session.text_box is not None:
            _handle_typing(session, event)
        else:
            return _handle_game_key(session, event)
    return True


def _keys(session: GameSession) -> ActionKeys:
    return action_keys(session.worlds[0].action_names)


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
    action_for_key = _keys(session).action_for_key
    if key in action_for_key:
        session.press_action(action_for_key[key])
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
