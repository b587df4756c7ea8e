"""Seeds and random generators of the worldsim envs, as Gymnasium seeds its envs.

A single env seeds its `np_random` in `reset(seed=s)`; a vector env keeps one generator per env,
as `SyncVectorEnv` does (an int s seeds env i with s + i, a list gives each env its seed). Seeds
are checked before anything is seeded, and a reset that fails later restores the generators, so a
rejected reset leaves the env exactly as it was.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

__all__ = ["SEED_LIMIT", "EnvGenerators", "check_seed", "check_vector_seed", "generator_restored_on_error", "is_int"]

# Seeds are non-negative int64 values: the Explorer world of a seed is built from an int64.
SEED_LIMIT = 2**63


def is_int(value: Any) -> bool:
    """An int or numpy integer, but not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_seed(seed: Any, what: str = "seed") -> int | None:
    """None, or an int in [0, 2**63); anything else is a ValueError."""
    if seed is None:
        return None
    if not is_int(seed) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{what} must be None or an int in [0, 2**63), got {seed!r}")
    return int(seed)


def check_vector_seed(seed: Any, num_envs: int) -> list[int | None]:
    """The seed of each env: None (none), an int s (env i gets s + i) or one int/None per env."""
    if seed is None:
        return [None] * num_envs
    if is_int(seed):
        check_seed(seed)
        return [check_seed(seed + i, f"seed + {i} (the seed of env {i})") for i in range(num_envs)]
    if isinstance(seed, Sequence) and not isinstance(seed, str) and len(seed) == num_envs:
        return [check_seed(value, f"seed[{i}]") for i, value in enumerate(seed)]
    raise ValueError(f"seed must be None, an int or a list of {num_envs} ints/None, got {seed!r}")


class EnvGenerators:
    """One `np_random` per env of a vector env (unseeded ones start from OS entropy when first used)."""

    def __init__(self, num_envs: int) -> None:
        self._generators: list[np.random.Generator | None] = [None] * num_envs
        self._seeds: list[int | None] = [None] * num_envs

    def __getitem__(self, i: int) -> np.random.Generator:
        if self._generators[i] is None:
            self._generators[i], self._seeds[i] = seeding.np_random()
        return self._generators[i]

    def all(self) -> tuple[np.random.Generator, ...]:
        return tuple(self[i] for i in range(len(self._generators)))

    def seeds(self) -> tuple[int | None, ...]:
        self.all()  # creates the missing generators and their seeds
        return tuple(self._seeds)

    def seed(self, seeds: Sequence[int | None], rows: np.ndarray) -> None:
        """Reseed env i (where rows[i]) with seeds[i]; a None seed keeps the env's generator."""
        for i in np.flatnonzero(rows):
            if seeds[i] is not None:
                self._generators[i], self._seeds[i] = seeding.np_random(seeds[i])

    @contextmanager
    def restored_on_error(self) -> Iterator[None]:
        """Undo every seeding and draw made inside the block if it raises."""
        saved = [(g, None if g is None else g.bit_generator.state) for g in self._generators], list(self._seeds)
        try:
            yield
        except BaseException:
            generators, self._seeds = saved
            self._generators = [_restore(g, state) for g, state in generators]
            raise


@contextmanager
def generator_restored_on_error(env: gym.Env) -> Iterator[None]:
    """Undo the seeding and draws of a single env's `np_random` made inside the block if it raises."""
    generator, seed = env._np_random, env._np_random_seed
    state = None if generator is None else generator.bit_generator.state
    try:
        yield
    except BaseException:
        env._np_random, env._np_random_seed = _restore(generator, state), seed
        raise


def _restore(generator: np.random.Generator | None, state: dict | None) -> np.random.Generator | None:
    if generator is not None:
        generator.bit_generator.state = state
    return generator


class PerEnvGenerators:
    """`np_random` / `np_random_seed` of a natively batched vector env with one generator per env
    (`self._generators`, an `EnvGenerators`), as `SyncVectorEnv` reports them."""

    _generators: EnvGenerators

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """One generator per env (unseeded ones start from OS entropy)."""
        return self._generators.all()

    @property
    def np_random_seed(self) -> tuple[int | None, ...]:
        return self._generators.seeds()
