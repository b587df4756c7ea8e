"""Per-switch measurements that pool across seeds: reactivity and consistency with 95 % intervals.

One unit is one switch rollout of the suite together with its matched control (same map, actions
and start event, no switch). Measures over several seeds are the same functions applied to the
concatenated units, so an interval over 144 switches resamples whole switches, never frames.

    units = SwitchUnits.concatenate([units_seed0, units_seed1, ...])
    drop, (low, high) = units.consistency_drop()
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from worldsim.eval import metrics

__all__ = ["SwitchUnits"]


@dataclass
class SwitchUnits:
    groups: list[str]  # the event group each switch changes
    recognised: np.ndarray  # bool [N]: the event classifier saw the new state on the model's frames within k frames
    truth_recognised: np.ndarray  # bool [N]: ... on the real game's frames (enemies and lava may be out of view)
    # Known-map tiles (seen before the switch, left alone by the event in the real game) from the
    # switch on: one mask for both rollouts, so one count; how many the parser reads as the truth does.
    counted: np.ndarray  # [N] known-map tiles counted
    agreement_switch: np.ndarray  # [N] agreeing tiles of the switch rollout
    agreement_no_switch: np.ndarray  # [N] agreeing tiles of the matched control rollout

    def __post_init__(self) -> None:
        arrays = (self.recognised, self.truth_recognised, self.counted, self.agreement_switch, self.agreement_no_switch)
        if any(np.shape(array) != (len(self.groups),) for array in arrays):
            raise ValueError(f"SwitchUnits: every array needs one entry per switch ({len(self.groups)})")

    @property
    def switches(self) -> int:
        return len(self.groups)

    @staticmethod
    def concatenate(parts: list["SwitchUnits"]) -> "SwitchUnits":
        if not parts:
            raise ValueError("SwitchUnits.concatenate: nothing to pool")
        arrays = {field.name: np.concatenate([getattr(part, field.name) for part in parts])
                  for field in fields(SwitchUnits) if field.name != "groups"}
        return SwitchUnits(groups=[group for part in parts for group in part.groups], **arrays)

    def tile_agreement(self, switched: bool) -> float:
        """Known-map tile agreement after the switch (or on the control's same tiles)."""
        return metrics.ratio_of_sums(self.agreement_switch if switched else self.agreement_no_switch, self.counted)

    def _drop_at(self, idx: np.ndarray) -> float:
        """The consistency drop over the switches `idx` (with repeats, for the bootstrap)."""
        return (metrics.ratio_of_sums(self.agreement_no_switch[idx], self.counted[idx])
                - metrics.ratio_of_sums(self.agreement_switch[idx], self.counted[idx]))

    def consistency_drop(self, seed: int = 0) -> tuple[float, list[float]]:
        """Known-map tile agreement lost because of the switch (control minus switch); each switch is
        resampled with its own control, so what a map does to both cancels."""
        interval = metrics.bootstrap_interval(self.switches, self._drop_at, seed=seed)
        return self._drop_at(np.arange(self.switches)), list(interval)

    def drop_difference(self, other: "SwitchUnits", seed: int = 0) -> tuple[float, list[float]]:
        """This consistency drop minus `other`'s on the same switches (two checkpoints replaying the same
        seeds), with an interval that resamples each switch for both: tighter than comparing two intervals."""
        if other.groups != self.groups or other.switches != self.switches:
            raise ValueError("drop_difference: the two sets of units are not the same switches")
        interval = metrics.bootstrap_interval(self.switches, lambda idx: self._drop_at(idx) - other._drop_at(idx),
                                              seed=seed)
        everything = np.arange(self.switches)
        return self._drop_at(everything) - other._drop_at(everything), list(interval)

    def reactivity(self) -> tuple[float, list[float]]:
        """Share of switches recognised within k frames on the model's frames (Wilson interval)."""
        share, interval, _ = metrics.share_with_interval(self.recognised)
        return share, interval

    def reactivity_relative_to_truth(self, seed: int = 0) -> tuple[float, list[float]]:
        """Switches recognised in time on the model's frames per switch recognised on the truth's."""
        return metrics.ratio_with_interval(self.recognised, self.truth_recognised, seed=seed)

    def summary(self, seed: int = 0) -> dict[str, object]:
        """The pooled measures, JSON-ready."""
        drop, drop_interval = self.consistency_drop(seed)
        reactivity, reactivity_interval = self.reactivity()
        relative, relative_interval = self.reactivity_relative_to_truth(seed)
        return {"switches": self.switches, "consistency_drop": drop, "consistency_drop_ci95": drop_interval,
                "known_map_agreement_switch": self.tile_agreement(True),
                "known_map_agreement_no_switch": self.tile_agreement(False),
                "reactivity": reactivity, "reactivity_ci95": reactivity_interval,
                "reactivity_relative_to_truth": relative, "reactivity_relative_to_truth_ci95": relative_interval}
