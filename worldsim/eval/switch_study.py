"""Delta Forcing against streaming tuning on the switches of several seeds: `worldsim eval --switch-study`.

Every checkpoint replays the suite's switch family (one held-out paraphrase switch per rollout and
its matched control) for each seed; the switches are pooled and each checkpoint gets its
consistency drop and reactivity with 95 % intervals (`SwitchUnits`). Checkpoints are labelled by
their training stage and Delta Forcing variant (`stream`, `delta-M1-clip`, ...). Delta's default
is chosen by a stated rule: among the delta variants whose reactivity is at most 0.02 below
stream's, the lowest consistency drop (all variants compete when none keeps the reactivity).

    summary = switch_study(["runs/stream/final", "runs/delta-m1/final"], seeds=(0, 1, 2, 3), out="eval/dvs")
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from worldsim.data.atomic import atomic_write_bytes, atomic_write_json
from worldsim.data.machine import describe_machine
from worldsim.eval.evaluation import load_labelled, resolve_device, suite_config
from worldsim.eval.probes import Probes
from worldsim.eval.report import json_ready
from worldsim.eval.suite import measure_switches
from worldsim.eval.switch_units import SwitchUnits

__all__ = ["switch_study", "choose_delta", "DEFAULT_SEEDS", "MAX_REACTIVITY_LOSS"]

DEFAULT_SEEDS = (0, 1, 2, 3)  # 36 switches per seed in the quick suite: 144 in all
MAX_REACTIVITY_LOSS = 0.02  # how much less reactive than stream a Delta variant may be
RULE = ("among the delta variants whose reactivity is at most 0.02 below stream's, the lowest consistency drop "
        "(all delta variants compete when none keeps the reactivity)")


def _keeps_reactivity(found: dict[str, Any], stream: dict[str, Any]) -> bool:
    return found["reactivity"] >= stream["reactivity"] - MAX_REACTIVITY_LOSS


def choose_delta(variants: dict[str, dict[str, Any]]) -> str | None:
    """The label of Delta's default by `RULE`; None without a delta variant."""
    deltas = {label: found for label, found in variants.items() if label.startswith("delta")}
    if not deltas:
        return None
    stream = variants.get("stream")
    eligible = deltas
    if stream is not None:
        eligible = {label: found for label, found in deltas.items() if _keeps_reactivity(found, stream)} or deltas
    return min(eligible, key=lambda label: eligible[label]["consistency_drop"])


def _pooled_units(world: Any, probes: Probes, suite: str, seeds: tuple[int, ...]) -> SwitchUnits:
    return SwitchUnits.concatenate([measure_switches(world, probes, suite_config(suite, seed)) for seed in seeds])


def _verdict(units: dict[str, SwitchUnits], variants: dict[str, dict[str, Any]], default: str | None) -> dict[str, Any]:
    """Whether the chosen Delta beats stream: its drop interval below stream's and reactivity kept."""
    if default is None or "stream" not in variants:
        return {}
    delta, stream = variants[default], variants["stream"]
    difference, interval = units[default].drop_difference(units["stream"])
    return {"delta_minus_stream_drop": difference, "delta_minus_stream_drop_ci95": interval,
            "delta_interval_below_stream": delta["consistency_drop_ci95"][1] < stream["consistency_drop_ci95"][0],
            "delta_reactivity_kept": _keeps_reactivity(delta, stream)}


def switch_study(checkpoints: list[str], out: str | Path, suite: str = "quick", seeds: tuple[int, ...] = DEFAULT_SEEDS,
                 device: str = "auto", probes_folder: str | Path | None = None,
                 revision: str | None = None) -> dict[str, Any]:
    """Measure every checkpoint on the pooled switches of `seeds`; write summary.json and report.md."""
    if not checkpoints or not seeds:
        raise ValueError("switch study: needs at least one checkpoint and one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"switch study: seeds repeat ({seeds}); repeated seeds replay the same switches")
    started, torch_device = time.time(), resolve_device(device)
    probes = Probes.load(probes_folder, device=torch_device)
    worlds, labels = load_labelled(checkpoints, str(torch_device), revision)
    units = {label: _pooled_units(world, probes, suite, tuple(seeds)) for label, world in zip(labels, worlds)}
    variants = {label: found.summary() for label, found in units.items()}
    default = choose_delta(variants)
    summary: dict[str, Any] = {
        "switches": next(iter(units.values())).switches, "seeds": list(seeds), "suite": suite,
        "within_frames": suite_config(suite).reactivity_within,
        "checkpoints": dict(zip(labels, map(str, checkpoints))), "rule": RULE, "default_delta": default,
        **variants, **({"delta": variants[default]} if default else {}), **_verdict(units, variants, default),
        "machine": describe_machine(torch_device), "wall_time_s": round(time.time() - started, 1),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", json_ready(summary))
    atomic_write_bytes(out / "report.md", _report(summary, labels).encode())
    return summary


def _report(summary: dict[str, Any], labels: list[str]) -> str:
    def percent(value: float) -> str:
        return f"{100 * value:.2f} %"

    def interval(found: dict[str, Any], key: str) -> str:
        low, high = found[f"{key}_ci95"]
        return f"{percent(found[key])} [{percent(low)}, {percent(high)}]"

    lines = ["# Event switches: consistency and reactivity", "",
             f"{summary['switches']} switches to held-out paraphrases (suite `{summary['suite']}`, seeds "
             f"{', '.join(map(str, summary['seeds']))}); every checkpoint replayed the same maps, actions and events.",
             "Consistency drop: tile agreement with the truth after the switch, lost against the matched rollout "
             "without it, on the known map (tiles seen before the switch that the event leaves as they are; lower "
             "keeps the map). Reactivity: switches the event classifier recognises within "
             f"{summary['within_frames']} frames. Intervals: 95 %, bootstrap over switches (drop), Wilson (reactivity).", "",
             "| checkpoint | consistency drop | reactivity | relative to the truth's |", "|---|---|---|---|"]
    for label in labels:
        found = summary[label]
        lines.append(f"| {label} | {interval(found, 'consistency_drop')} | {interval(found, 'reactivity')} | "
                     f"{interval(found, 'reactivity_relative_to_truth')} |")
    lines += ["", f"Delta's default: **{summary['default_delta'] or 'none (no delta checkpoint)'}**; the rule: "
                  f"{summary['rule']}."]
    if "delta_minus_stream_drop" in summary:
        low, high = summary["delta_minus_stream_drop_ci95"]
        lines.append(f"Its drop minus stream's on the same switches: {percent(summary['delta_minus_stream_drop'])} "
                     f"[{percent(low)}, {percent(high)}]; its interval entirely below stream's: "
                     f"{'yes' if summary['delta_interval_below_stream'] else 'no'}; reactivity kept within 0.02: "
                     f"{'yes' if summary['delta_reactivity_kept'] else 'no'}.")
    machine = summary["machine"]
    lines += ["", f"Machine: {machine['cpu_model']} ({machine['cpu_cores']} cores, {machine['torch_threads']} threads), "
                  f"{machine['device']}, torch {machine['torch_version']}; {summary['wall_time_s']} s.", ""]
    return "\n".join(lines)
