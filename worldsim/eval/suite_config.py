"""The evaluation suites' sizes (`SuiteConfig`) and the named suites, apart from the code that runs
them so that the `worldsim eval` parser can list them without importing torch."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    seed: int = 0
    fidelity_rollouts: int = 16
    teacher_forced_rollouts: int = 8  # the first fidelity rollouts are also replayed teacher-forced
    horizons: tuple[int, ...] = (1, 8, 32)  # the longest is the fidelity rollout length
    switch_rollouts: int = 12  # a multiple of 6 gives every event group the same share
    switch_frame: int = 8
    frames_after_switch: int = 24
    reactivity_within: int = 8  # k: a switch counts as recognised within k frames
    recognition_hold: int = 2  # frames in a row the classifier must agree
    drift_rollouts: int = 4
    drift_frames: int = 400
    drift_window: int = 100
    drift_switch_every: tuple[int, int] = (150, 300)
    long_rollout_frames: int = 0  # one more drift rollout this long, measured as it streams (0: none)
    event_tolerance: int = 1  # ± frames for reward/termination matching
    idm_steps: tuple[int, ...] = (1, 8, 16, 32)  # inverse dynamics and sprite counts along rollouts, by band
    branch_contexts: int = 96  # true contexts of the action-branch, collision and moved-pair tests
    branch_context_frames: int = 2  # real frames per context
    held_push_frames: int = 8  # frames each move into a wall is held in the held collision test
    memory_rollouts: int = 16  # out-and-back walks per walk length
    memory_steps: tuple[int, ...] = (4, 2)  # N of "N tiles out, N back" (kept only where N <= window / 2)

    def __post_init__(self) -> None:
        if sorted(self.horizons) != list(self.horizons) or self.horizons[0] < 1:
            raise ValueError(f"horizons must be increasing and >= 1, got {self.horizons}")
        if not 0 < self.teacher_forced_rollouts <= self.fidelity_rollouts:
            raise ValueError(f"teacher_forced_rollouts must be in 1..fidelity_rollouts ({self.fidelity_rollouts})")
        if sorted(self.idm_steps) != list(self.idm_steps) or self.idm_steps[0] < 1 \
                or self.idm_steps[-1] > self.horizons[-1]:
            raise ValueError(f"idm_steps must be increasing within 1..{self.horizons[-1]}, got {self.idm_steps}")
        if min(self.branch_contexts, self.branch_context_frames, self.memory_rollouts, self.held_push_frames) < 1:
            raise ValueError("branch_contexts, branch_context_frames, held_push_frames and memory_rollouts must be >= 1")
        if self.drift_frames < self.drift_window:
            raise ValueError(f"drift_frames ({self.drift_frames}) must cover one drift_window ({self.drift_window})")
        if self.long_rollout_frames and self.long_rollout_frames < self.drift_window:
            raise ValueError(f"long_rollout_frames ({self.long_rollout_frames}) must be 0 or cover one drift_window "
                             f"({self.drift_window})")


SUITES: dict[str, SuiteConfig] = {
    # Seconds on a random-init tiny model: for tests and smoke checks.
    "tiny": SuiteConfig("tiny", fidelity_rollouts=2, teacher_forced_rollouts=1, horizons=(1, 2, 4),
                        switch_rollouts=6, switch_frame=2, frames_after_switch=4, reactivity_within=2,
                        recognition_hold=1, drift_rollouts=2, drift_frames=20, drift_window=10,
                        drift_switch_every=(8, 12), idm_steps=(1, 2, 4), branch_contexts=4, memory_rollouts=2,
                        memory_steps=(2,)),
    # About 3 000 generated frames, >= 32 switches and >= 256 moved pairs: under 2 minutes on 2 CPU
    # cores for the compact world.
    "quick": SuiteConfig("quick", fidelity_rollouts=12, teacher_forced_rollouts=8, switch_rollouts=36, switch_frame=4,
                         frames_after_switch=10, drift_rollouts=2, drift_frames=300, drift_switch_every=(100, 200)),
    # The real measurement (≥ 2 000-frame drift rollouts and one of 10 000, ~180 000 generated frames); for a GPU.
    "full": SuiteConfig("full", fidelity_rollouts=256, teacher_forced_rollouts=64, switch_rollouts=240,
                        frames_after_switch=32, drift_rollouts=32, drift_frames=2000, drift_switch_every=(200, 400),
                        long_rollout_frames=10_000, branch_contexts=1024, memory_rollouts=128),
}
