"""The quality bar a shipped world is held to, checked against one checkpoint's metrics.

Each target names a dotted metrics.json key, a threshold and, where overshooting is a failure too,
a ceiling; `check_targets` reports the value, its 95 % interval (the sibling `<key>_ci95` when there
is one), whether it is met and by how much it misses (below the threshold or above the ceiling). A key the suite did not produce (a horizon the tiny suite skips) is
reported as not measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    key: str  # dotted metrics.json key
    minimum: float  # the value must reach at least this
    meaning: str
    maximum: float | None = None  # and, where given, stay at or below this

    def miss(self, value: float) -> float:
        """How far `value` lies outside the allowed range (0 when met)."""
        above = 0.0 if self.maximum is None else value - self.maximum
        return max(0.0, self.minimum - value, above)


SPRITE_CEILING = 1.25  # 1 / 0.8: as far above the truth's count as the floor lies below it

TARGETS: tuple[Target, ...] = (
    Target("action_branch.inverse_dynamics_accuracy_moved", 0.95, "IDM on generated moved pairs from true contexts"),
    Target("controllability.rollout_inverse_dynamics.accuracy.32", 0.95, "IDM along rollouts, steps 17-32"),
    Target("collision.read_as_noop_share", 0.90, "forced moves into walls read as noop"),
    Target("collision.still_read_as_noop_share", 0.97, "still frames read as noop"),
    Target("memory.4.agreement_with_outgoing", 0.90, "memory: way back agrees with way out, N = 4"),
    # Two-sided: a world that paints sprites everywhere is not keeping the ones it was shown.
    Target("sprites.enemy_count_ratio", 0.8, "enemies along 32-frame rollouts vs the truth's count", SPRITE_CEILING),
    Target("sprites.coin_count_ratio", 0.8, "coins along 32-frame rollouts vs the truth's count", SPRITE_CEILING),
    Target("fidelity.known_region_teacher_forced_psnr_db_mean", 32.0, "known-region teacher-forced PSNR (dB)"),
    Target("fidelity.known_region_rollout_psnr_db.8", 27.0, "known-region rollout PSNR at frame 8 (dB)"),
    Target("fidelity.known_region_rollout_psnr_db.32", 23.0, "known-region rollout PSNR at frame 32 (dB)"),
    Target("reactivity.relative_to_truth", 0.95, "event reactivity within k frames relative to the truth's"),
)


def _lookup(document: dict[str, Any], key: str) -> Any:
    node: Any = document
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _interval_key(key: str) -> str:
    """`a.b.c` → `a.b_ci95.c` when the last part is a horizon/band label, else `a.b.c_ci95`."""
    parent, last = key.rsplit(".", 1)
    return f"{parent}_ci95.{last}" if last.isdigit() else f"{key}_ci95"


def check_targets(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{key: {meaning, value, ci95, target, ceiling, met, shortfall}}` for every target (value None = not
    measured; ceiling None = no upper bound; shortfall = the distance outside the allowed range)."""
    found = {}
    for target in TARGETS:
        value = _lookup(document, target.key)
        measured = isinstance(value, (int, float)) and math.isfinite(value)
        found[target.key] = {
            "meaning": target.meaning,
            "value": value if measured else None,
            "ci95": _lookup(document, _interval_key(target.key)),
            "target": target.minimum,
            "ceiling": target.maximum,
            "met": bool(measured and target.miss(value) == 0.0),
            "shortfall": target.miss(value) if measured else None,
        }
    return found
