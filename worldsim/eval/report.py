"""Writing an evaluation: `metrics.json` (keys documented in docs/METRICS.md), `report.md` and the PNGs.

One checkpoint → one folder. A comparison → one folder per checkpoint plus, at the top, the
ablation table, comparison plots and a `metrics.json` holding every checkpoint's metrics.
Undefined values (NaN, e.g. a precision with nothing predicted) are written as JSON `null`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from worldsim.data.atomic import atomic_write_bytes, atomic_write_json
from worldsim.eval.figures import write_figures
from worldsim.eval.probes import TARGETS
from worldsim.eval.suite import SuiteResult

METRICS_FORMAT_VERSION = 1


def json_ready(value: Any) -> Any:
    """Recursively turn numpy scalars into Python numbers and NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(path: Path, document: dict[str, Any]) -> None:
    atomic_write_json(path, json_ready(document))  # NaN/inf become null: metrics.json stays strict JSON


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _percent(value: Any, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f} %"


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The ablation table's columns for one checkpoint."""
    fidelity, horizons = metrics["fidelity"], list(metrics["fidelity"]["rollout_psnr_db"])
    row = {"TF PSNR": fidelity["teacher_forced_psnr_db"]}
    row.update({f"PSNR@{h}": fidelity["rollout_psnr_db"][h] for h in horizons})
    row.update({
        "drift FD slope/window": metrics["drift"]["fd_slope_per_window"],
        "drift tile-TV slope/window": metrics["drift"]["tile_tv_slope_per_window"],
        "reactivity": metrics["reactivity"]["recognised_share"],
        "latency (frames)": metrics["reactivity"]["mean_latency_frames"],
        "consistency drop": metrics["consistency"]["tile_agreement_drop"],
        "IDM acc.": metrics["controllability"]["inverse_dynamics_accuracy_generated"],
        "reward P/R": (metrics["reward"]["precision"], metrics["reward"]["recall"]),
        "termination P/R": (metrics["termination"]["precision"], metrics["termination"]["recall"]),
    })
    return row


def card_evaluation(document: dict[str, Any]) -> dict[str, Any]:
    """What a model card states about one checkpoint's evaluation: the suite, the machine and the
    ablation table's columns as printed cells (so the card needs no formatting code of its own)."""
    machine = document["machine"]
    return {
        "suite": document["suite"]["name"], "seed": document["suite"]["seed"],
        "date": machine.get("date", ""), "wall_time_s": document["wall_time_s"],
        "machine": machine.get("device_name", machine.get("cpu_model", "?")),
        "measures": {column: _cell(value) for column, value in headline(document).items()},
    }


def _cell(value: Any) -> str:
    if isinstance(value, tuple):
        return " / ".join(_number(v, 2) for v in value)
    return _number(value, 3 if isinstance(value, float) and abs(value) < 10 else 2)


def ablation_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown table: one row per labelled checkpoint."""
    columns = list(headline(rows[0][1]))
    lines = ["| checkpoint | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for label, metrics in rows:
        values = headline(metrics)
        lines.append(f"| {label} | " + " | ".join(_cell(values[c]) for c in columns) + " |")
    return "\n".join(lines)


def _probe_section(probes: dict[str, Any]) -> list[str]:
    held_out = probes.get("held_out", {})
    lines = ["## Probes (held-out real frames)", "",
             f"Probes from `{probes.get('folder')}`, tested on {held_out.get('frames', '?')} frames of unseen maps.",
             "", "| probe | accuracy | target | met |", "|---|---|---|---|"]
    for key, target in TARGETS.items():
        measured = held_out.get(key)
        if measured is None:
            verdict = "–"
        else:
            verdict = "yes" if measured >= target else f"no ({_percent(target - measured, 2)} short)"
        lines.append(f"| {key} | {_percent(measured, 2)} | {_percent(target)} | {verdict} |")
    by_group = held_out.get("event_accuracy_by_group", {})
    ceilings = held_out.get("event_visibility_ceiling_by_group", {})
    if by_group:
        groups = ", ".join(
            f"{g} {_percent(v)}" + (f" (visibility ceiling {_percent(ceilings[g])})" if g in ceilings else "")
            for g, v in by_group.items())
        lines += ["", f"Event accuracy by group: {groups}. The target applies to the groups that tint or cover "
                  "every frame; enemies and lava show only where their sites are in view (see docs/METRICS.md)."]
    return lines + [""]


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("measure", "value")) -> list[str]:
    return [f"| {header[0]} | {header[1]} |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows), ""]


def _fidelity_section(fidelity: dict[str, Any]) -> list[str]:
    rows = [("teacher-forced next-frame PSNR", f"{_number(fidelity['teacher_forced_psnr_db'], 2)} dB"),
            ("teacher-forced next-frame SSIM", _number(fidelity["teacher_forced_ssim"]))]
    rows += [(f"rollout PSNR / SSIM at horizon {h}", f"{_number(psnr, 2)} dB / {_number(fidelity['rollout_ssim'][h])}")
             for h, psnr in fidelity["rollout_psnr_db"].items()]
    return ["## Fidelity", "", f"{fidelity['rollouts']} rollouts from a true start frame, true actions and events "
            f"({fidelity['teacher_forced_rollouts']} of them also teacher-forced).", "",
            *_table(rows), "![horizon](horizon.png)", ""]


def _drift_section(drift: dict[str, Any]) -> list[str]:
    lines = ["## Drift", "",
             f"{drift['rollouts']} rollouts of {drift['frames']} frames with event switches. Per "
             f"{drift['window_frames']}-frame window: distances to the real replay's frames; the real floor is the "
             "same distance between two real replays on different maps.", "",
             "| measure | model | real floor |", "|---|---|---|"]
    for key, name in (("fd", "Fréchet distance (probe features)"), ("tile_tv", "tile-histogram TV")):
        model, floor = drift[f"{key}_by_window"][-1], drift[f"{key}_real_floor_by_window"][-1]
        lines.append(f"| {name}, last window | {_number(model)} | {_number(floor)} |")
        lines.append(f"| {name}, slope per window | {_number(drift[f'{key}_slope_per_window'], 4)} | "
                     f"{_number(drift[f'{key}_real_floor_slope_per_window'], 4)} |")
    return lines + ["", "![drift](drift.png)", ""]


def _reactivity_section(react: dict[str, Any]) -> list[str]:
    rows = [("recognised within k", _percent(react["recognised_share"])),
            ("mean latency (recognised)", f"{_number(react['mean_latency_frames'], 2)} frames"),
            (f"recognised, among the {react['visible_switches']} switches the classifier sees in real frames",
             _percent(react["recognised_share_visible"])),
            ("real frames recognised within k", _percent(react["truth_recognised_share"]))]
    by_group = ", ".join(f"{g} {_percent(v['recognised_share'])}" for g, v in react["by_group"].items())
    return ["## Event reactivity", "",
            f"{react['switches']} switches to held-out paraphrases; recognised = the event classifier agrees for "
            f"{react['hold_frames']} frames in a row within k = {react['within_frames']} frames.", "",
            *_table(rows), f"By group: {by_group}", ""]


def _consistency_section(consistency: dict[str, Any]) -> list[str]:
    rows = [("tile agreement after a switch", _percent(consistency["tile_agreement_switch"])),
            ("tile agreement, same frames without the switch", _percent(consistency["tile_agreement_no_switch"])),
            ("drop caused by the switch", _percent(consistency["tile_agreement_drop"]))]
    return ["## Event consistency", "", *_table(rows), "![switch](switch.png)", ""]


def _control_and_rewards_section(metrics: dict[str, Any]) -> list[str]:
    control = metrics["controllability"]
    lines = ["## Controllability", "",
             f"Inverse dynamics on {control['pairs']} frame pairs where the real player moved: "
             f"{_percent(control['inverse_dynamics_accuracy_generated'])} on generated frames, "
             f"{_percent(control['inverse_dynamics_accuracy_real'])} on the real ones.", "",
             "## Reward and termination", "",
             "| signal | precision | recall | predicted | real |", "|---|---|---|---|---|"]
    for name in ("reward", "termination"):
        found = metrics[name]
        lines.append(f"| {name} (±{found['tolerance_frames']} frame) | {_percent(found['precision'])} | "
                     f"{_percent(found['recall'])} | {found['predicted']} | {found['actual']} |")
    return lines + [""]


def _sections(metrics: dict[str, Any]) -> list[str]:
    return (_fidelity_section(metrics["fidelity"]) + _drift_section(metrics["drift"])
            + _reactivity_section(metrics["reactivity"]) + _consistency_section(metrics["consistency"])
            + _control_and_rewards_section(metrics))


def _header(title: str, document: dict[str, Any]) -> list[str]:
    machine = document["machine"]
    return [f"# {title}", "",
            f"Suite `{document['suite']['name']}` (seed {document['suite']['seed']}), {machine.get('date', '')}, "
            f"{machine.get('device_name', machine.get('cpu_model', '?'))}, torch {machine.get('torch_version', '?')}, "
            f"{document['wall_time_s']} s.", ""]


def write_single(folder: Path, result: SuiteResult, document: dict[str, Any]) -> dict[str, Any]:
    """Write one checkpoint's metrics.json, report.md and figures; returns the metrics document."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_figures([(document["checkpoint"]["label"], result)], folder, film_strips=True)
    document = {**document, **result.metrics, "plots": plots}
    _write_json(folder / "metrics.json", document)
    strips = [f"![{p}]({p})" for p in plots if p.startswith("filmstrip")]
    lines = _header(f"worldsim evaluation: {document['checkpoint']['label']}", document)
    lines += [f"Checkpoint `{document['checkpoint']['path']}`.", ""]
    lines += _probe_section(document["probes"]) + _sections(document)
    lines += ["## Film strips (truth above model)", "", *strips]
    atomic_write_bytes(folder / "report.md", ("\n".join(lines) + "\n").encode("utf-8"))
    return document


def write_comparison(folder: Path, runs: list[tuple[str, SuiteResult, dict[str, Any]]],
                     shared: dict[str, Any]) -> dict[str, Any]:
    """Per-checkpoint folders plus the top-level ablation report; returns the top-level document."""
    documents = [write_single(folder / subfolder, result, document) for subfolder, result, document in runs]
    labels = [d["checkpoint"]["label"] for d in documents]
    plots = write_figures([(label, result) for label, (_, result, _) in zip(labels, runs)], folder, film_strips=False)
    top = {**shared, "checkpoints": documents, "plots": plots,
           "ablation_table": [{"label": d["checkpoint"]["label"], **headline(d)} for d in documents]}
    _write_json(folder / "metrics.json", top)
    lines = _header("worldsim ablation", top)
    lines += ["Every checkpoint replayed the same seeds, maps, actions and events.", "",
              ablation_table(list(zip(labels, documents))), "",
              "Columns: teacher-forced next-frame PSNR (dB); rollout PSNR at each horizon (dB); slopes of the drift "
              "distances per window (0 = no drift); share of switches recognised within k frames and mean latency; "
              "tile-agreement drop after a switch versus no switch (lower = the map survives); inverse-dynamics "
              "accuracy on generated frames; reward and termination precision / recall.", "",
              "Per-checkpoint reports: " + ", ".join(f"[{label}]({subfolder}/report.md)"
                                                     for (subfolder, _, _), label in zip(runs, labels)), ""]
    lines += _probe_section(shared["probes"]) + [f"![{p}]({p})" for p in plots]
    atomic_write_bytes(folder / "report.md", ("\n".join(lines) + "\n").encode("utf-8"))
    return top
