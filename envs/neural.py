"""Gymnasium environments whose frames, rewards and terminations come from a learned world model.

`NeuralWorldEnv` is one env (`gym.make("worldsim/Neural-v0", checkpoint=DIR)` for any world,
`worldsim/NeuralExplorer-v0` for the default one); `NeuralWorldVectorEnv` steps
`num_envs` envs as one batch through a single `Simulator` on the device
(`gym.make_vec(..., vectorization_mode="vector_entry_point")`). Both drive the simulator through
`NeuralWorldCore`, which holds what they share: the spaces, the events and the seeding.

- Spaces: the world's own: frames uint8 [S, S, 3] and `Discrete(num_actions)` of the game it was
  trained on (for the default world, those of `worldsim/Explorer-v0`).
- Events: `reset(options={"event": text})` and `env.unwrapped.trigger_event(text)`; an event applies
  from the next frame the env produces ("" = no event).
- Start states: one of the real context frames bundled with the checkpoint (picked by the env's
  noise stream), or, when it ships none, a first frame generated for the event text (the prompt);
  `reset(options={"context": frame})` starts from a frame of your own, and `start_frames=frames`
  (uint8 [K, S, S, 3]) gives a bank that every reset naming no context draws from (autoresets
  too), uniformly with the env's `np_random`: e.g. first frames of many maps of the real game, so
  that an agent trained inside the world meets as many maps as in the game.
- Seeding: every reset draws the env's sampler seed from its `np_random`, so a seeded reset repeats
  exactly, and env i of a vector env reset with seed s equals a single env reset with seed s + i.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from worldsim.envs.viewer import Viewer
from worldsim.envs.inputs import check_action, check_options, check_render_mode, env_rows, reset_rows
from worldsim.envs.seeding import (EnvGenerators, PerEnvGenerators, check_seed, check_vector_seed,
                                   generator_restored_on_error, is_int)
from worldsim.sampling.inputs import check_event_text

if TYPE_CHECKING:
    from worldsim.world import WorldModel

__all__ = ["NeuralWorldCore", "NeuralWorldEnv", "NeuralWorldVectorEnv", "load_world"]

ArrayType = Literal["numpy", "torch"]
RENDER_FPS = 15
# Sampler seeds drawn from an env's np_random lie in [0, SEED_BOUND).
SEED_BOUND = 2**31


def load_world(checkpoint: "str | os.PathLike | WorldModel | None", device: str | torch.device,
               revision: str | None = None, cache_dir: str | os.PathLike | None = None) -> "WorldModel":
    """A world model from a bundled name, a folder, a Hub repo id, None (the default world), or as is.

    `revision` (Hub branch, tag or commit) and `cache_dir` (Hub cache folder) are huggingface_hub's.
    """
    from worldsim.world import WorldModel

    if isinstance(checkpoint, WorldModel):
        if revision is not None or cache_dir is not None:
            raise ValueError("revision and cache_dir choose a checkpoint to download; a loaded WorldModel takes neither")
        if checkpoint.device != torch.device(device):
            raise ValueError(f"the world model is on {checkpoint.device} but device={device!r} was asked for")
        return checkpoint
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a name, a folder, a Hub repo id or a WorldModel, "
                        f"got {type(checkpoint).__name__}")
    return WorldModel.from_pretrained(None if checkpoint is None else os.fspath(checkpoint), device=device,
                                      revision=revision, cache_dir=cache_dir)  # fmt: skip


class NeuralWorldCore:
    """A `Simulator` of `num_envs` rows plus the per-env state the envs add: events waiting for the
    next frame and the default event. Frames, rewards and terminations stay torch tensors on the device."""

    def __init__(self, world: "WorldModel", num_envs: int, steps: int | None, event: str,
                 start_frames: Any = None) -> None:
        self.world = world
        self.num_envs = num_envs
        self.simulator = world.simulator(batch_size=num_envs, steps=steps)
        self.default_event = self.check_event(event, "event")
        size = world.config.image_size
        self.start_frames = check_start_frames(start_frames, size)
        self.frame_space = gym.spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(world.config.num_actions)
        self.pending = np.full(num_envs, None, dtype=object)  # event text for each env's next frame
        self.started = False

    def check_event(self, text: Any, where: str) -> str:
        """Validate an event text now rather than at the step that would use it."""
        tokenizer = self.world.tokenizer
        return check_event_text(text, where, tokenizer.num_tokens, tokenizer.max_tokens)

    def start_events(self, event: Any, rows: np.ndarray) -> list[str]:
        """Per-env start texts from `options["event"]`: None (default), a str, or one str/None per env."""
        if event is None or isinstance(event, str):
            text = self.default_event if event is None else self.check_event(event, "options['event']")
            return [text] * self.num_envs
        if not isinstance(event, Sequence) or len(event) != self.num_envs:
            raise ValueError(f"options['event'] must be a str or a list of {self.num_envs} str/None, got {event!r}")
        return [self.default_event if text is None or not rows[i] else self.check_event(text, f"options['event'][{i}]")
                for i, text in enumerate(event)]

    def reset(self, rows: np.ndarray, texts: list[str], rngs: Sequence[np.random.Generator],
              context: Any = None) -> torch.Tensor:
        """Start new episodes in `rows` (bool [B]); each draws its sampler seed from its env's rng
        and, without a `context`, its start frame from the bank when there is one."""
        seeds = [int(rngs[i].integers(SEED_BOUND)) if rows[i] else 0 for i in range(self.num_envs)]
        if context is None and self.start_frames is not None:
            picks = [int(rngs[i].integers(len(self.start_frames))) if rows[i] else 0 for i in range(self.num_envs)]
            context = self.start_frames[picks]
        frames = self.simulator.reset(event=texts, context=context, rows=torch.from_numpy(rows), seed=seeds)
        self.pending[rows] = None
        self.started = True
        return frames

    def step(self, actions: Any, skip: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance every env one frame under its pending event; `skip` rows keep theirs for later."""
        due = self.pending != None  # noqa: E711 (element-wise on an object array)
        if skip is not None:
            due &= ~skip
        events = np.where(due, self.pending, None).tolist() if due.any() else None
        if isinstance(actions, torch.Tensor):
            actions = actions.clone()  # the simulator may keep (and later edit) the tensor it is given
        result = self.simulator.step(actions, events=events)
        self.pending[due] = None
        return result

    def events(self) -> np.ndarray:
        """The event text in force in each env, object array [B] (a fresh one every call)."""
        return np.array(self.simulator.events, dtype=object)


def check_start_frames(frames: Any, size: int) -> np.ndarray | None:
    """A bank of start frames: None, or uint8 [K, size, size, 3] with K >= 1 (kept as a private copy)."""
    if frames is None:
        return None
    bank = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if bank.dtype != np.uint8 or bank.ndim != 4 or bank.shape[1:] != (size, size, 3) or len(bank) == 0:
        raise ValueError(f"start_frames must be uint8 [K, {size}, {size}, 3] with K >= 1, "
                         f"got {bank.dtype} {tuple(bank.shape)}")
    return bank.copy()


def frames_to_numpy(frames: torch.Tensor) -> np.ndarray:
    """A fresh host copy: returned observations never alias the simulator's buffers."""
    return frames.detach().to("cpu", copy=True).numpy()


class NeuralWorldEnv(gym.Env):
    """One env of a learned world: `gym.make("worldsim/Neural-v0", checkpoint=..., ...)`.

    Args:
        checkpoint: a bundled name, a folder, a Hub repo id, a loaded `WorldModel`, or None (default world).
        revision, cache_dir: for a Hub repo id, the branch, tag or commit and the Hub cache folder.
        device: where the model runs ("cpu", "cuda", ...).
        steps: denoising steps per frame (None: the checkpoint's sampling config).
        event: the event text of a reset that names none ("" = no event).
        start_frames: uint8 [K, S, S, 3], the frames a reset without a "context" starts from (None:
          the checkpoint's own).
        render_mode: None, "rgb_array" or "human" (a pygame window).
    Truncation: `gym.make(..., max_episode_steps=N)` (Gymnasium's TimeLimit).
    Reset options: "event" (str), "context" (a start frame uint8 [H, W, 3]).
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": RENDER_FPS}
    RESET_OPTIONS = frozenset({"event", "context"})

    def __init__(self, checkpoint: Any = None, device: str = "cpu", steps: int | None = None, event: str = "",
                 render_mode: str | None = None, revision: str | None = None,
                 cache_dir: str | os.PathLike | None = None, start_frames: Any = None) -> None:
        check_render_mode(render_mode, self.metadata)
        self.core = NeuralWorldCore(load_world(checkpoint, device, revision, cache_dir), 1, steps, event, start_frames)
        self.observation_space = self.core.frame_space
        self.action_space = self.core.action_space
        self.render_mode = render_mode
        self._viewer: Viewer | None = None

    @property
    def world(self) -> "WorldModel":
        return self.core.world

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = check_seed(seed)
        options = check_options(options, self.RESET_OPTIONS)
        rows = np.ones(1, dtype=bool)
        texts = self.core.start_events(options.get("event"), rows)
        with generator_restored_on_error(self):  # a bad context frame is found after the seed is drawn
            super().reset(seed=seed)
            frames = self.core.reset(rows, texts, [self.np_random], options.get("context"))
        self._show(frames)
        return frames_to_numpy(frames[0]), self._info()

    def step(self, action: Any):
        if not self.core.started:
            raise RuntimeError("call reset() before step()")
        action = check_action(action, self.action_space)
        frames, rewards, terminated = self.core.step(torch.tensor([action]))
        self._show(frames)
        return frames_to_numpy(frames[0]), float(rewards[0]), bool(terminated[0]), False, self._info()

    def trigger_event(self, text: str) -> None:
        """Switch to event `text` from the next frame on ("" = no event)."""
        self.core.pending[0] = self.core.check_event(text, "event")

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or not self.core.started:
            return None  # "human" draws in reset and step
        return frames_to_numpy(self.core.simulator.frames[0])

    def close(self) -> None:
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    def _info(self) -> dict[str, Any]:
        return {"event": self.core.simulator.events[0]}

    def _show(self, frames: torch.Tensor) -> None:
        if self.render_mode == "human":
            if self._viewer is None:
                size = self.observation_space.shape[0]
                self._viewer = Viewer(size, fps=self.metadata["render_fps"], title="worldsim neural world")
            self._viewer.show(frames_to_numpy(frames[0]))


class NeuralWorldVectorEnv(PerEnvGenerators, VectorEnv):
    """`num_envs` envs of a learned world, stepped as one batch on the device.

    Gymnasium's vector API, as `SyncVectorEnv` over `NeuralWorldEnv` would behave:
    - NEXT_STEP autoreset: the step after an env terminates or truncates returns its new reset frame,
      reward 0 and both flags False, and ignores its action;
    - `reset(seed=s)` seeds env i with s + i (or a list of seeds), `options["reset_mask"]` resets only
      some envs, `np_random` is the tuple of the envs' generators;
    - infos are dicts of arrays with `_key` masks; rewards float64, flags bool.
    Observations, rewards and flags are numpy arrays, or torch tensors on the device with
    `array_type="torch"`. Per-env events: `trigger_event(text, env_ids=None)` and
    `reset(options={"event": text or a list of one text per env})`.

    Args: as `NeuralWorldEnv`, plus num_envs, max_episode_steps (truncation; None = never) and array_type.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS, "autoreset_mode": AutoresetMode.NEXT_STEP}
    RESET_OPTIONS = frozenset({"event", "context", "reset_mask"})

    def __init__(self, num_envs: int = 1, checkpoint: Any = None, device: str = "cpu", steps: int | None = None,
                 event: str = "", max_episode_steps: int | None = 1000, render_mode: str | None = None,
                 array_type: ArrayType = "numpy", revision: str | None = None,
                 cache_dir: str | os.PathLike | None = None, start_frames: Any = None) -> None:
        check_render_mode(render_mode, self.metadata)
        if array_type not in ("numpy", "torch"):
            raise ValueError(f"array_type must be 'numpy' or 'torch', got {array_type!r}")
        if max_episode_steps is not None and (not is_int(max_episode_steps) or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be an int >= 1 or None, got {max_episode_steps!r}")
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.core = NeuralWorldCore(load_world(checkpoint, device, revision, cache_dir), num_envs, steps, event,
                                    start_frames)
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.array_type = array_type
        self.single_observation_space = self.core.frame_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._generators = EnvGenerators(num_envs)
        self._episode_steps = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=bool)  # envs that ended at the last step

    @property
    def world(self) -> "WorldModel":
        return self.core.world

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        options = check_options(options, self.RESET_OPTIONS)
        rows = reset_rows(options.get("reset_mask"), self.num_envs, self.core.started)
        texts = self.core.start_events(options.get("event"), rows)
        seeds = check_vector_seed(seed, self.num_envs)
        with self._generators.restored_on_error():  # a bad context frame is found after the seeds are drawn
            self._generators.seed(seeds, rows)
            frames = self.core.reset(rows, texts, self.np_random, options.get("context"))
        self._episode_steps[rows] = 0
        self._autoreset[rows] = False
        return self._frames_out(frames), self._info(rows)

    def step(self, actions: Any):
        if not self.core.started:
            raise RuntimeError("call reset() before step()")
        restarting = self._autoreset
        frames, rewards, terminated = self.core.step(actions, skip=restarting)
        if restarting.any():
            # Every row was stepped; restarting the ended ones over that step is NEXT_STEP autoreset.
            # An event triggered for a restarting env (still pending) is its new episode's start event.
            start_texts = [self.core.default_event if text is None else text for text in self.core.pending]
            frames = self.core.reset(restarting, start_texts, self.np_random)
            restarting_device = torch.from_numpy(restarting).to(rewards.device)
            rewards = rewards.masked_fill(restarting_device, 0.0)
            terminated = terminated & ~restarting_device
        self._episode_steps = np.where(restarting, 0, self._episode_steps + 1)
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = self._episode_steps >= self.max_episode_steps
        terminated_host = terminated.cpu().numpy()
        self._autoreset = terminated_host | truncated
        info = self._info(np.ones(self.num_envs, dtype=bool))
        if self.array_type == "torch":
            return frames, rewards.double(), terminated, torch.from_numpy(truncated).to(frames.device), info
        return frames_to_numpy(frames), rewards.double().cpu().numpy(), terminated_host.copy(), truncated, info

    def trigger_event(self, text: str, env_ids: Any = None) -> None:
        """Switch the envs in `env_ids` (None = all; an int, ints or a bool mask) to `text` from their next frame."""
        rows = env_rows(env_ids, self.num_envs)
        self.core.pending[rows] = self.core.check_event(text, "event")

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array" or not self.core.started:
            return None
        return tuple(frames_to_numpy(self.core.simulator.frames))

    def _frames_out(self, frames: torch.Tensor) -> Any:
        return frames if self.array_type == "torch" else frames_to_numpy(frames)

    def _info(self, rows: np.ndarray) -> dict[str, Any]:
        return {"event": self.core.events(), "_event": rows.copy()}
