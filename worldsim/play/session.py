"""The game's state and rules of play, free of pygame so that every rule can be tested directly.

A `GameSession` drives one or more worlds (the neural world, the real game, or both side by
side) under the same actions and events. The pygame front end (`worldsim.play.app`) only turns
key presses into calls on the session and draws what `session.hud()` and `session.frames` hold.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from worldsim.play.worlds import Understanding, World

NOOP = 0
# Long enough to read a rejection message, short enough not to hide the next one.
MESSAGE_SECONDS = 4.0
# The text box stops accepting characters here; the world's own validation still has the last word.
MAX_TYPED_CHARS = 120
# Frame-rate and model-time figures are medians over this many recent steps, so the HUD stays calm.
STATS_WINDOW = 30


class SessionListener(Protocol):
    """Observes the primary world (the first one): recorders and video writers implement this."""

    def on_reset(self, frame: np.ndarray, event: str, episode: int) -> None: ...

    def on_step(self, action: int, frame: np.ndarray, event: str, reward: float,
                terminated: bool) -> None: ...


@dataclass(frozen=True)
class Hud:
    """Everything the heads-up display shows, as plain values."""

    fps: float                # world frames per second actually produced
    model_ms: float           # milliseconds the primary world took per frame (median)
    event: str                # the event text in force ("" = none)
    pending_event: str | None  # an accepted event that applies on the next frame
    step: int                 # frames since the start of the episode
    episode: int
    returns: tuple[float, ...]  # return so far in this episode, one per world
    paused: bool
    message: str              # a transient note or error ("" = none)
    text_box: str | None      # the text being typed, or None when the box is closed
    understood: Understanding | None = None  # how the primary world reads `event` (None = no event)


class GameSession:
    """State of a live game: worlds, current event, held keys, pause/help/text-box modes, HUD stats."""

    def __init__(self, worlds: Sequence[World], *, event: str = "", seed: int = 0,
                 listeners: Sequence[SessionListener] = (),
                 clock: Callable[[], float] = time.perf_counter,
                 on_message: Callable[[str], None] | None = None) -> None:
        if not worlds:
            raise ValueError("GameSession needs at least one world")
        shapes = {world.frame_shape for world in worlds}
        if len(shapes) > 1:
            raise ValueError(f"worlds shown side by side must share a frame shape, got {sorted(shapes)}")
        self.worlds = list(worlds)
        self.seed = seed
        self.event = event
        self.listeners = list(listeners)
        self.clock = clock
        self.on_message = on_message  # also told every message (headless play prints them)
        self.frames: list[np.ndarray] = []
        self.returns = [0.0] * len(self.worlds)
        self.episode = -1
        self.episode_step = 0
        self.total_steps = 0
        self.paused = False
        self.help_visible = False
        self.text_box: str | None = None
        self._held_actions: list[int] = []
        self._pending_event: str | None = None
        self._episode_over = False
        self._message = ""
        self._message_until = 0.0
        self._understood: Understanding | None = None
        self._model_ms: deque[float] = deque(maxlen=STATS_WINDOW)
        self._step_times: deque[float] = deque(maxlen=STATS_WINDOW)

    # ----------------------------------------------------------------------------- worlds
    @property
    def example_events(self) -> tuple[str, ...]:
        """Events offered on the number keys: those of the primary world."""
        return tuple(self.worlds[0].example_events)

    def reset(self) -> None:
        """Start a new episode in every world under the current event.

        A ground-truth world is reset first and its frame handed to the others as context, so that
        a neural world shown beside the real game starts from the same place.
        """
        self.episode += 1
        seed = self.seed + self.episode
        frames: dict[int, np.ndarray] = {}
        order = sorted(range(len(self.worlds)), key=lambda i: not self.worlds[i].is_ground_truth)
        context = None
        for index in order:
            frames[index] = self.worlds[index].reset(self.event, seed=seed, context=context)
            if self.worlds[index].is_ground_truth and context is None:
                context = frames[index]
        self.frames = [frames[index] for index in range(len(self.worlds))]
        self.returns = [0.0] * len(self.worlds)
        self.episode_step = 0
        self._episode_over = False
        self._understand_event()
        for listener in self.listeners:
            listener.on_reset(self.frames[0], self.event, self.episode)

    @property
    def will_step(self) -> bool:
        """Whether the next tick advances the worlds with an action (not a reset, not paused)."""
        return bool(self.frames) and not self._episode_over and not (self.paused or self.help_visible)

    def tick(self, action: int | None = None) -> bool:
        """Advance every world by one frame unless paused; returns whether a frame was produced.

        `action` overrides the held keys (scripted play). An episode that ended is restarted here,
        one tick after the frame that ended it, so that the final frame is seen and recorded.
        """
        if self.frames and (self.paused or self.help_visible):
            return False
        if not self.frames or self._episode_over:
            self.reset()
        else:
            self._step_worlds(self.current_action() if action is None else action)
        return True

    def _step_worlds(self, action: int) -> None:
        event = self._take_pending_event()
        started = self.clock()
        try:
            primary = self.worlds[0].step(action, event)
        except ValueError as error:
            if event is None:
                raise
            # The world refused the event and changed nothing: say so and keep playing without it.
            self.show_message(f"event rejected: {error}")
            event = None
            primary = self.worlds[0].step(action, None)
        self._model_ms.append((self.clock() - started) * 1000.0)
        results = [primary] + [world.step(action, event) for world in self.worlds[1:]]
        if event is not None:
            self.event = event
            self._understand_event()
        self.frames = [result.frame for result in results]
        for index, result in enumerate(results):
            self.returns[index] += result.reward
        self.episode_step += 1
        self.total_steps += 1
        self._step_times.append(self.clock())
        if any(result.terminated for result in results):
            self._episode_over = True
            self.show_message(f"episode over, return {self.returns[0]:+g}: a new one starts")
        for listener in self.listeners:
            listener.on_step(action, primary.frame, self.event, primary.reward, primary.terminated)

    def _understand_event(self) -> None:
        """Ask the primary world once per event (not every frame) how it reads the event in force."""
        self._understood = self.worlds[0].understand(self.event) if self.event.strip() else None

    def _take_pending_event(self) -> str | None:
        event, self._pending_event = self._pending_event, None
        return event

    # ----------------------------------------------------------------------------- actions
    def press_action(self, action: int) -> None:
        """A movement key went down; the most recently pressed held key wins."""
        if not 0 <= action < self.worlds[0].num_actions:
            return
        if action in self._held_actions:
            self._held_actions.remove(action)
        self._held_actions.append(action)

    def release_action(self, action: int) -> None:
        if action in self._held_actions:
            self._held_actions.remove(action)

    def release_all_actions(self) -> None:
        """Forget held keys (focus lost, text box opened): their key-up may never arrive."""
        self._held_actions.clear()

    def current_action(self) -> int:
        return self._held_actions[-1] if self._held_actions else NOOP

    # ----------------------------------------------------------------------------- events
    def request_event(self, text: str) -> bool:
        """Queue an event for the next frame after every world accepted it; True when queued.

        A rejected event only shows a message: the game goes on under the current event.
        """
        text = text.strip()
        if not text:
            return False
        for world in self.worlds:
            problem = world.check_event(text)
            if problem is not None:
                self.show_message(f"{world.name}: {problem}")
                return False
        self._pending_event = text
        return True

    def trigger_example(self, index: int) -> None:
        """Number keys: queue the index-th example event (0-based), if there is one."""
        if 0 <= index < len(self.example_events):
            self.request_event(self.example_events[index])

    # ----------------------------------------------------------------------------- text box
    def open_text_box(self) -> None:
        self.text_box = ""
        self.help_visible = False
        self.release_all_actions()

    def type_text(self, characters: str) -> None:
        if self.text_box is None:
            return
        printable = "".join(c for c in characters if c.isprintable())
        self.text_box = (self.text_box + printable)[:MAX_TYPED_CHARS]

    def backspace(self) -> None:
        if self.text_box:
            self.text_box = self.text_box[:-1]

    def submit_text_box(self) -> None:
        text, self.text_box = self.text_box, None
        if text is not None:
            self.request_event(text)

    def cancel_text_box(self) -> None:
        self.text_box = None

    # ----------------------------------------------------------------------------- modes
    def toggle_pause(self) -> None:
        self.paused = not self.paused

    def toggle_help(self) -> None:
        self.help_visible = not self.help_visible

    def show_message(self, text: str) -> None:
        self._message = text
        self._message_until = self.clock() + MESSAGE_SECONDS
        if self.on_message is not None:
            self.on_message(text)

    # ----------------------------------------------------------------------------- display
    def hud(self) -> Hud:
        now = self.clock()
        return Hud(
            fps=self._frames_per_second(now),
            model_ms=float(np.median(self._model_ms)) if self._model_ms else 0.0,
            event=self.event,
            pending_event=self._pending_event,
            step=self.episode_step,
            episode=max(self.episode, 0),
            returns=tuple(self.returns),
            paused=self.paused or self.help_visible,
            message=self._message if now < self._message_until else "",
            text_box=self.text_box,
            understood=self._understood,
        )

    def _frames_per_second(self, now: float) -> float:
        # A stalled or paused game reads 0 rather than the rate it last had.
        if len(self._step_times) < 2 or now - self._step_times[-1] > 1.0:
            return 0.0
        elapsed = self._step_times[-1] - self._step_times[0]
        return (len(self._step_times) - 1) / elapsed if elapsed > 0 else 0.0
