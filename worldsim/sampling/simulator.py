"""The Simulator: B worlds stepped together, one action (and optionally a new event) per env.

    sim = world.simulator(batch_size=4, seed=0)
    frames = sim.reset(event="a sunny meadow")              # uint8 [B,H,W,3] on the world's device
    frames, reward, terminated = sim.step(actions, events=None)

State per env: its rows of the KV cache, the last generated frame (pending: generated but not yet
in the cache, see frame_sampler), the last K latents for the reward model, its current event and
its noise stream. Every public method validates all its inputs before it changes anything, so a
bad call raises ValueError and leaves the simulator exactly as it was.

Randomness is per row (`RowNoise`): an int seed s gives rows s, s+1, ..., so `simulator(B, seed=s)`
row i equals `simulator(1, seed=s+i)` driven with the same actions and events.

Reward alignment: a step's reward (classes -1/0/+1) and termination come from the last K latents
ending with the frame the action was taken from, plus that action — the dataset's `rewards[i]`,
`terminated[i]` for the step after frame i, exactly as the reward stage trains (a terminal step's
next frame is never stored, so a window ending with the new frame could not learn termination).

Samplers: "frame" (default) generates each frame with the few-step sampler after its action;
"rolling" keeps W = steps frames in flight at staggered noise levels and runs one pass per step
(see rolling.py): the frame returned by a step is the oldest in flight, so an action shows W-1
steps later. After a reset the frames in flight are noised copies of the start frame under
action 0 (noop), so the window is full from the first step.

Devices: plain fp32 on CPU; bf16 autocast and a bf16 cache on CUDA, where the transformer blocks and
the decoder are also compiled (`compile=None` means: on CUDA only; `WorldModel.compile`), with
dynamo falling back to eager code if compilation fails. Sampling runs under
`torch.inference_mode`, but event embeddings are computed outside it, so the world's embedding cache
never holds inference tensors that a trainer could trip over.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.profiler import record_function

from worldsim.model.frames import to_frames, to_pixels
from worldsim.model.kv_cache import KVCache
from worldsim.model.reward import advance_window, predict_outcomes, start_window
from worldsim.sampling import inputs
from worldsim.sampling.frame_sampler import CleanFrames, Conditions, sample_frames, sample_frames_guided, step_sigmas
from worldsim.sampling.noise import RowNoise, seeds_for_batch
from worldsim.sampling.recache import FrameHistory, recache_rows
from worldsim.sampling.rolling import RollingSampler

if TYPE_CHECKING:
    from worldsim.model.event_understanding import EventUnderstanding
    from worldsim.world import WorldModel

SAMPLERS = ("frame", "rolling")


class Simulator:
    """A batch of B independent worlds sharing one set of networks and one KV cache."""

    def __init__(
        self,
        world: "WorldModel",
        batch_size: int,
        seed: int | Sequence[int] = 0,
        steps: int | Sequence[float] | None = None,
        recache_on_switch: bool | None = None,
        sampler: str = "frame",
        compile: bool | None = None,
        switch_guidance: float = 1.0,
        switch_guidance_frames: int = 4,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        sampling = world.config.sampling
        if sampler == "rolling" and sampling.fresh_noise != 1.0:
            raise ValueError("sampling.fresh_noise below 1 is implemented for the frame sampler only")
        if sampler == "rolling" and sampling.reader_start:
            raise ValueError("sampling.reader_start is implemented for the frame sampler only")
        self.world = world
        self.batch_size = batch_size
        self.sigmas = step_sigmas(sampling.num_steps if steps is None else steps, sampling.sigma_shift)
        self.first_frame_sigmas = step_sigmas(sampling.first_frame_steps, sampling.sigma_shift)
        self.fresh_noise, self.reader_start = sampling.fresh_noise, sampling.reader_start
        recache = sampling.recache_on_switch if recache_on_switch is None else recache_on_switch
        if recache and self.reader_start:
            # Re-caching rewrites the pending frame's event, which is how the sampler sees a switch.
            raise ValueError("re-cache on switch and sampling.reader_start cannot be combined")
        if recache and sampler == "rolling":
            raise ValueError("re-cache on switch is implemented for the frame sampler only")
        if switch_guidance != 1.0 and sampler == "rolling":
            raise ValueError("switch guidance is implemented for the frame sampler only")
        self.switch_guidance, self.switch_guidance_frames = float(switch_guidance), int(switch_guidance_frames)
        self.device = world.device
        self._use_bf16 = self.device.type == "cuda"
        self._compiled = self.device.type == "cuda" if compile is None else compile
        if self._compiled:
            world.compile()
        seeds = seeds_for_batch(seed, batch_size)
        net = world.transformer
        latent_shape = (net.config.latent_channels, net.config.latent_size, net.config.latent_size)
        with torch.inference_mode():
            self._noise = RowNoise(seeds, self.device)
            cache_dtype = torch.bfloat16 if self._use_bf16 else torch.float32
            self._cache = net.new_cache(batch_size, device=self.device, dtype=cache_dtype)
            self._history = FrameHistory(self._cache, latent_shape, net.config.event_dim) if recache else None
            self._event_vectors = torch.zeros(batch_size, world.config.events.dim, device=self.device)
            # the event before each row's last switch, and the frames generated since (guidance)
            self._previous_vectors = torch.zeros_like(self._event_vectors)
            self._since_switch = torch.full((batch_size,), self.switch_guidance_frames, device=self.device)
            self._rolling = None
            if sampler == "rolling":
                self._rolling = RollingSampler(net, self._cache, self.sigmas, self._noise)
        self._event_texts: list[str] = [""] * batch_size
        self._pending: CleanFrames | None = None  # the last frame of every env, not yet cached
        self._recent: Tensor | None = None  # [B, K, C, h, w] latents for the reward model
        self._frames: Tensor | None = None  # uint8 [B, H, W, 3], the last observation

    # ------------------------------------------------------------------------------ read-only

    @property
    def events(self) -> list[str]:
        """The event text in force in each env ("" = none)."""
        return list(self._event_texts)

    @property
    def understood_events(self) -> list["EventUnderstanding | None"]:
        """Per env, the `EventUnderstanding` of its event text: which known event it is understood
        as (`.event`, None when none is close) and how close (`.similarity`); None where no event is in force."""
        understood = self.world.understand_events(self._event_texts)
        return [None if not text.strip() else item for text, item in zip(self._event_texts, understood)]

    @property
    def frames(self) -> Tensor:
        """The last observation of every env, uint8 [B, H, W, 3]."""
        self._require_reset()
        return self._frames.clone()

    @property
    def reward_window(self) -> Tensor:
        """The latents the reward model reads at the next step, [B, K, C, h, w]: the last K frames
        ending with the current one, the first frame repeated at an episode's start."""
        self._require_reset()
        return self._recent.clone()

    @property
    def action_latency(self) -> int:
        """Steps from an action to the frame that shows it: 0 with the frame sampler, W-1 with the
        rolling one (a step returns the oldest frame in flight)."""
        return 0 if self._rolling is None else self._rolling.window - 1

    @property
    def cache(self) -> KVCache:
        """The KV cache (read it, do not write it)."""
        return self._cache

    def nbytes(self) -> int:
        """Bytes of all per-simulator state: constant over any number of steps."""
        tensors = [self._event_vectors, self._previous_vectors, self._since_switch, self._noise.seeds,
                   self._noise.counters]
        if self._pending is not None:
            conditions = self._pending.conditions
            tensors += [self._pending.latents, conditions.actions, conditions.events, self._recent, self._frames]
        if self._history is not None:
            tensors += [self._history.latents, self._history.actions, self._history.events]
        if self._rolling is not None and self._rolling.latents is not None:
            in_flight = self._rolling.conditions
            tensors += [self._rolling.latents, in_flight.actions, in_flight.events]
        return self._cache.nbytes() + sum(t.numel() * t.element_size() for t in tensors)

    # ------------------------------------------------------------------------------- actions

    def reset(
        self,
        event: str | Sequence[str | None] | None = None,
        context: Any = None,
        rows: Any = None,
        seed: int | Sequence[int] | None = None,
    ) -> Tensor:
        """Start new episodes in every env, or in the envs where `rows` (bool [B]) is True.

        event: None (no event), one text for all envs, or a list of B texts/None.
        context: a start frame uint8 [H,W,3] (all envs) or [B,H,W,3]. Without it, each env starts
          from one of the checkpoint's context frames (picked by its noise stream) or, when the
          checkpoint ships none, from a frame generated from noise with the first-frame steps.
        seed: restart the reset envs' noise streams (int s -> env i gets s + i, or B ints).
        Returns the observation of all B envs (unchanged ones included).
        """
        world, batch = self.world, self.batch_size
        mask = inputs.check_rows(rows, batch)
        texts = inputs.check_reset_events(event, batch, world.tokenizer.num_tokens, world.tokenizer.max_tokens)
        context_frames = inputs.check_context(context, batch, world.config.image_size)
        seeds = inputs.check_seed(seed, batch)
        if self._pending is None and not bool(mask.all()):
            raise ValueError("the first reset must start every env (rows=None or all True)")
        selected = mask.nonzero()[:, 0].tolist()
        vectors = world.condition_events([texts[row] for row in selected]).to(self.device)
        with self._inference():
            rows_on_device = mask.to(self.device)
            if seeds is not None:
                self._noise.reseed(rows_on_device, [seeds[row] for row in selected])
            self._cache.reset(rows_on_device)
            context_rows = None if context_frames is None else context_frames[mask]
            latents = self._first_latents(rows_on_device, vectors, context_rows)
            self._start_rows(rows_on_device, latents, vectors)
        for row in selected:
            self._event_texts[row] = texts[row]
        return self._frames.clone()

    def step(self, actions: Any, events: Sequence[str | None] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Advance every env by one frame.

        actions: integers [B] in 0..num_actions-1 (torch, numpy or a list).
        events: None, or a list of B entries: a new event text for that env, or None to keep it.
        Returns (frames uint8 [B,H,W,3], reward float32 [B], terminated bool [B]) on the device.
        """
        world, batch = self.world, self.batch_size
        self._require_reset()
        action_values = inputs.check_actions(actions, batch, world.config.num_actions)
        new_texts = inputs.check_step_events(events, batch, world.tokenizer.num_tokens, world.tokenizer.max_tokens)
        switched = [row for row, text in enumerate(new_texts) if text is not None and text != self._event_texts[row]]
        vectors = world.condition_events([new_texts[row] for row in switched]).to(self.device) if switched else None
        with self._inference():
            if switched:
                self._switch_events(torch.tensor(switched, device=self.device), vectors)
            frames, reward, terminated = self._advance(action_values.to(self.device))
        for row in switched:
            self._event_texts[row] = new_texts[row]
        return frames, reward, terminated

    # ----------------------------------------------------------------------------- internals

    def _advance(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        world, pending = self.world, self._pending
        if self._history is not None:
            self._history.record(self._cache.num_frames, pending)
        conditions = Conditions(actions[:, None], self._event_vectors[:, None].clone())
        if self._rolling is None:
            latents = self._sample(conditions, pending)
            self._pending = CleanFrames(latents, conditions)
        else:
            latents = self._rolling.push(conditions)
            self._pending = self._rolling.pending
        led_to_frame = self._pending.conditions.actions[:, 0]
        # As trained (training/reward.py): the K latents ending with the frame the action was taken
        # from, so the window is advanced only after the reward model has seen it.
        with record_function("worldsim.reward"):  # labels for `worldsim bench --profile`
            reward, terminated = predict_outcomes(world.reward_model, self._recent, led_to_frame)
        self._recent = advance_window(self._recent, latents[:, 0])
        self._frames = self._decode(latents[:, 0])
        return self._frames.clone(), reward, terminated

    def _sample(self, conditions: Conditions, pending: CleanFrames) -> Tensor:
        """The frame sampler's next latents, guided away from the old event in the rows that
        switched less than `switch_guidance_frames` frames ago."""
        net = self.world.transformer
        if self.switch_guidance != 1.0:  # off, the per-frame path keeps no guidance bookkeeping
            guided = self._since_switch < self.switch_guidance_frames
            self._since_switch = (self._since_switch + 1).clamp_max(self.switch_guidance_frames)
            if bool(guided.any()):
                scale = torch.where(guided, self.switch_guidance, 1.0)
                return sample_frames_guided(net, self._cache, conditions, self._previous_vectors[:, None].clone(),
                                            scale, self.sigmas, self._noise, pending, self.fresh_noise)
        return sample_frames(net, self._cache, conditions, self.sigmas, self._noise, pending, self.fresh_noise,
                             self.reader_start)

    def _switch_events(self, rows: Tensor, vectors: Tensor) -> None:
        self._previous_vectors[rows] = self._event_vectors[rows]
        self._since_switch[rows] = 0
        self._event_vectors[rows] = vectors
        if self._history is not None:
            recache_rows(self.world.transformer, self._cache, self._history, rows, vectors)
            # The frame not yet cached is committed under the new event too.
            self._pending.conditions.events[rows] = vectors[:, None]

    def _first_latents(self, rows: Tensor, vectors: Tensor, context: Tensor | None) -> Tensor:
        """Latents [n, C, h, w] of the first frame of each reset env."""
        world = self.world
        if context is None and len(world.context_frames):
            # floor(u * K) for a uniform u in (0, 1) is an index in 0..K-1.
            picks = (self._noise.uniform(rows) * len(world.context_frames)).long().cpu()
            context = world.context_frames[picks]
        if context is not None:
            return world.autoencoder.encode(to_pixels(context, device=self.device)).float()
        num_rows = len(vectors)
        scratch = world.transformer.new_cache(num_rows, device=self.device, dtype=self._cache.dtype)
        no_action = torch.full((num_rows, 1), world.config.no_action, device=self.device)
        conditions = Conditions(no_action, vectors[:, None])
        latents = sample_frames(
            world.transformer, scratch, conditions, self.first_frame_sigmas, lambda shape: self._noise(shape, rows),
            fresh_noise=self.fresh_noise,
        )
        return latents[:, 0].float()

    def _start_rows(self, rows: Tensor, latents: Tensor, vectors: Tensor) -> None:
        """Make `latents` the first (pending, uncached) frame of the reset rows."""
        world = self.world
        frames = self._decode(latents)
        no_action = torch.full((len(latents), 1), world.config.no_action, device=self.device)
        start = CleanFrames(latents[:, None].clone(), Conditions(no_action, vectors[:, None].clone()))
        recent = start_window(latents, world.config.reward.context_frames)
        if self._rolling is not None:
            in_flight = self._rolling.window - 1
            noop = torch.zeros(len(latents), in_flight, dtype=torch.long, device=self.device)
            waiting = Conditions(noop, vectors[:, None].expand(-1, in_flight, -1).clone())
            self._rolling.restart(rows, start, waiting, lambda shape: self._noise(shape, rows))
            start = self._rolling.pending
        if self._pending is None:  # the very first reset covers every row
            self._pending, self._recent, self._frames = start, recent, frames
        else:
            if self._rolling is None:
                self._pending.latents[rows] = start.latents
                self._pending.conditions.actions[rows] = start.conditions.actions
                self._pending.conditions.events[rows] = start.conditions.events
            self._recent[rows] = recent
            self._frames[rows] = frames
        self._event_vectors[rows] = vectors
        self._since_switch[rows] = self.switch_guidance_frames

    def _decode(self, latents: Tensor) -> Tensor:
        with record_function("worldsim.decode"):
            return to_frames(self.world.autoencoder.decode(latents))

    def _require_reset(self) -> None:
        if self._pending is None:
            raise RuntimeError("call reset() before step() or reading frames")

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self._use_bf16:
                stack.enter_context(torch.autocast(self.device.type, dtype=torch.bfloat16))
            if self._compiled:
                stack.enter_context(torch._dynamo.config.patch(suppress_errors=True))
            yield
