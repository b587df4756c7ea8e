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
from worldsim.eval.targets import check_targets

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
        "IDM moved pairs": metrics["action_branch"]["inverse_dynamics_accuracy_moved"],
        "move/seed spread": metrics["action_branch"]["move_to_seed_spread"],
        "walls→noop": metrics["collision"]["read_as_noop_share"],
        "known TF PSNR": fidelity["known_region_teacher_forced_psnr_db_mean"],
        f"known PSNR@{horizons[-1]}": fidelity["known_region_rollout_psnr_db"][horizons[-1]],
        "memory": _first_memory(metrics["memory"]),
        "enemies/coins kept": (metrics["sprites"]["enemy_count_ratio"], metrics["sprites"]["coin_count_ratio"]),
        # reports written before the coin ledger have no such entry
        "coins appeared/frame (truth)": (metrics["sprites"].get("coin_appeared_per_frame", float("nan")),
                                         metrics["sprites"].get("coin_appeared_per_frame_truth", float("nan"))),
        "reward P/R": (metrics["reward"]["precision"], metrics["reward"]["recall"]),
        "termination P/R": (metrics["termination"]["precision"], metrics["termination"]["recall"]),
    })
    return row


def _first_memory(memory: dict[str, Any]) -> float:
    """Agreement of the longest out-and-back walk measured (NaN when none fitted the cache)."""
    lengths = sorted((int(key) for key in memory if key.isdigit()), reverse=True)
    return memory[str(lengths[0])]["agreement_with_outgoing"] if lengths else float("nan")


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


def targets_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown table: one row per target measure, one column per labelled checkpoint, each cell
    the value with its 95 % interval (percent for shares)."""
    keys = list(rows[0][1]["targets"])
    lines = ["| measure (target) | " + " | ".join(label for label, _ in rows) + " |", "|" + "---|" * (len(rows) + 1)]
    for key in keys:
        first = rows[0][1]["targets"][key]
        percent = first["target"] <= 1.0
        cells = [_interval(document["targets"][key]["value"], document["targets"][key]["ci95"], percent)
                 for _, document in rows]
        lines.append(f"| {first['meaning']} ({_wanted(first, percent)}) | " + " | ".join(cells) + " |")
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
        if "long_frames" in drift:
            lines.append(f"| {name}, slope per window over one {drift['long_frames']}-frame rollout | "
                         f"{_number(drift[f'long_{key}_slope_per_window'], 4)} | "
                         f"{_number(drift[f'long_{key}_real_floor_slope_per_window'], 4)} |")
    if "long_frames" in drift:
        lines += ["", f"The {drift['long_frames']}-frame rollout: {_number(drift['long_fps'], 1)} frames/s; resident "
                      f"memory {_number(drift['long_rss_mb_first_window'], 1)} MB after its first window, "
                      f"{_number(drift['long_rss_mb_last_window'], 1)} MB after its last."]
    return lines + ["", "![drift](drift.png)", ""]


def _reactivity_section(react: dict[str, Any]) -> list[str]:
    rows = [("recognised within k", _interval(react["recognised_share"], react["recognised_share_ci95"])),
            ("relative to the real frames' share on the same switches",
             _interval(react["relative_to_truth"], react["relative_to_truth_ci95"])),
            ("mean latency (recognised)", f"{_number(react['mean_latency_frames'], 2)} frames"),
            (f"recognised, among the {react['visible_switches']} switches the classifier sees in real frames",
             _percent(react["recognised_share_visible"])),
            ("real frames recognised within k", _interval(react["truth_recognised_share"],
                                                          react["truth_recognised_share_ci95"]))]
    by_group = ", ".join(f"{g} {_percent(v['recognised_share'])}" for g, v in react["by_group"].items())
    return ["## Event reactivity", "",
            f"{react['switches']} switches to held-out paraphrases; recognised = the event classifier agrees for "
            f"{react['hold_frames']} frames in a row within k = {react['within_frames']} frames.", "",
            *_table(rows), f"By group: {by_group}", ""]


def _event_branch_section(branch: dict[str, Any] | None) -> list[str]:
    if branch is None:  # metrics written before the test existed
        return []
    by_group = ", ".join(f"{g} {_number(v['effect_ratio'], 2)}" for g, v in branch["by_group"].items())
    return ["## Event branch (the switch frame, teacher-forced)", "",
            f"Over {branch['switches']} switches the world's switch frame differs from its no-switch frame by "
            f"{_number(branch['world_effect_grey_levels'], 2)} grey levels, the game's by "
            f"{_number(branch['truth_effect_grey_levels'], 2)}: effect ratio "
            f"{_interval(branch['effect_ratio'], branch['effect_ratio_ci95'], percent=False)}.", "",
            f"By group: {by_group}", ""]


def _consistency_section(consistency: dict[str, Any]) -> list[str]:
    rows = [("tile agreement after a switch", _percent(consistency["tile_agreement_switch"])),
            ("tile agreement, same frames without the switch", _percent(consistency["tile_agreement_no_switch"])),
            ("drop caused by the switch (interval paired by rollout)",
             _interval(consistency["tile_agreement_drop"], consistency.get("tile_agreement_drop_ci95"))),
            ("on the known map (seen before, left alone by the event)",
             _interval(consistency.get("known_map_drop"), consistency.get("known_map_drop_ci95")))]
    return ["## Event consistency", "", *_table(rows), "![switch](switch.png)", ""]


_WITH_INTERVAL = ("measure", "value [95 % interval]")


def _interval(value: Any, interval: Any, percent: bool = True, digits: int = 2) -> str:
    """`value [low, high]` (percent or plain numbers), "–" for what was not measured."""
    show = _percent if percent else (lambda v: _number(v, digits))
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return show(value)
    return f"{show(value)} [{show(interval[0])}, {show(interval[1])}]"


def _by_horizon_rows(found: dict[str, Any], keys: list[tuple[str, str]], percent: bool) -> list[tuple[str, str]]:
    rows = []
    for key, name in keys:
        for h, value in found[key].items():
            rows.append((f"{name}, frame {h}", _interval(value, found[f"{key}_ci95"][h], percent)))
    return rows


def _band_label(bands: list[str], band: str) -> str:
    """"steps 2–8": the frames after the previous reported step up to this one."""
    start = int(bands[bands.index(band) - 1]) + 1 if bands.index(band) else 1
    return f"step {band}" if start == int(band) else f"steps {start}–{band}"


def _known_region_section(metrics: dict[str, Any]) -> list[str]:
    fidelity, imagined = metrics["fidelity"], metrics["imagined"]
    rows = [("known region, teacher-forced PSNR (dB), all frames",
             _interval(fidelity["known_region_teacher_forced_psnr_db_mean"],
                       fidelity["known_region_teacher_forced_psnr_db_mean_ci95"], percent=False))]
    by_horizon = [("known_region_teacher_forced_psnr_db", "known region, teacher-forced PSNR (dB)"),
                  ("known_region_rollout_psnr_db", "known region, rollout PSNR (dB)"),
                  ("known_region_rollout_ssim", "known region, rollout SSIM"),
                  ("continuously_visible_rollout_psnr_db", "continuously visible, rollout PSNR (dB)")]
    rows += _by_horizon_rows(fidelity, by_horizon, percent=False)
    shares = ", ".join(f"{h}: {_percent(v)}" for h, v in fidelity["known_region_share"].items())
    return ["## Known region, continuously visible region and imagined tiles", "",
            "The known region is the pixels whose map tile the model saw in its context (rollouts: the start frame; "
            "teacher forcing: every true frame before) and that are in view now; newly revealed tiles can only be "
            f"imagined. Share of the frame that is known at frame {shares}.", "", *_table(rows, _WITH_INTERVAL),
            f"Imagined (newly revealed) tiles: {imagined['tiles']}; tile-class distance to the true tiles there "
            f"(total variation) {_interval(imagined['tile_tv'], imagined['tile_tv_ci95'], percent=False, digits=3)}, "
            f"between two real replays on different maps {_number(imagined['tile_tv_real_floor'])}; "
            f"exact agreement {_interval(imagined['tile_agreement'], imagined['tile_agreement_ci95'])}.", ""]


def _control_section(metrics: dict[str, Any]) -> list[str]:
    branch, collision = metrics["action_branch"], metrics["collision"]
    rollout = metrics["controllability"]["rollout_inverse_dynamics"]
    rows = [("pixel MSE between moves (same noise)",
             _interval(branch["move_spread_mse"], branch["move_spread_mse_ci95"], percent=False)),
            ("pixel MSE between noise seeds (same move)", _interval(branch["seed_spread_mse"],
                                                                   branch["seed_spread_mse_ci95"], percent=False)),
            ("moves / seeds spread", _interval(branch["move_to_seed_spread"], branch["move_to_seed_spread_ci95"],
                                               percent=False, digits=4)),
            ("truth: pixel MSE between moves", _number(branch["truth_move_spread_mse"], 1)),
            ("teacher-forced PSNR, wrong move minus true move (dB)",
             _interval(branch["wrong_minus_true_psnr_db"], branch["wrong_minus_true_psnr_db_ci95"], percent=False)),
            (f"IDM on {branch['moved_pairs']} generated moved pairs",
             f"{_interval(branch['inverse_dynamics_accuracy_moved'], branch['inverse_dynamics_accuracy_moved_ci95'])}"
             f" (real pairs {_percent(branch['truth_inverse_dynamics_accuracy_moved'])})"),
            (f"{collision['forced_moves']} forced moves into walls read as noop",
             f"{_interval(collision['read_as_noop_share'], collision['read_as_noop_share_ci95'])}"
             f" (real {_percent(collision['truth_read_as_noop_share'])})"),
            (f"{collision['still_frames']} still frames read as noop",
             f"{_interval(collision['still_read_as_noop_share'], collision['still_read_as_noop_share_ci95'])}"
             f" (real {_percent(collision['truth_still_read_as_noop_share'])})")]
    if "held_pushes" in collision:  # metrics written before the held collision test lack it
        frames = collision["held_push_frames"]
        rows += [(f"{collision['held_pushes']} moves into walls held {frames} frames: steps read as noop",
                  f"{_interval(collision['held_read_as_noop_share'], collision['held_read_as_noop_share_ci95'])}"
                  f" (frame 1 {_percent(collision['held_read_as_noop_share_by_frame'][0])}, frame {frames} "
                  f"{_percent(collision['held_read_as_noop_share_by_frame'][-1])}; the game: every step)"),
                 (f"walls kept shut for all {frames} frames of a push",
                  _interval(collision["held_wall_kept_share"], collision["held_wall_kept_share_ci95"]))]
    rows += [(f"IDM along rollouts, {_band_label(list(rollout['accuracy']), band)} ({rollout['pairs'][band]} pairs)",
              f"{_interval(value, rollout['accuracy_ci95'][band])} (real {_percent(rollout['truth_accuracy'][band])})"
              + _rollout_misses(rollout, band))
             for band, value in rollout["accuracy"].items()]
    return ["## Control: action branches, walls, inverse dynamics", "",
            f"From {branch['contexts']} true contexts of {branch['context_frames']} frames, the next frame under every "
            "action with the same noise. A world that ignores its actions has a move spread far below its seed spread, "
            "no wrong-move penalty, and reads walls and still frames as noop for the wrong reason: read the collision "
            "shares together with the IDM on moved pairs.", "", *_table(rows, _WITH_INTERVAL)]


def _rollout_misses(rollout: dict[str, Any], band: str) -> str:
    """Where a band's IDM misses sit: how many rollouts, the interval over rollouts, how many read noop."""
    # Nothing to add without misses (the bootstrap over rollouts would collapse to the point), nor for
    # metrics written before these entries.
    if not rollout.get("rollouts_with_misses", {}).get(band):
        return ""
    noop = rollout["misses_read_as_noop"][band]
    return (f"; misses in {rollout['rollouts_with_misses'][band]} of {rollout['rollouts_with_pairs'][band]} rollouts"
            f", over rollouts {_interval(rollout['accuracy'][band], rollout['accuracy_ci95_by_rollout'][band])}"
            f", {_percent(noop)} of misses read as noop")


def _memory_and_sprites_section(metrics: dict[str, Any]) -> list[str]:
    memory, sprites = metrics["memory"], metrics["sprites"]
    rows = []
    for steps in (key for key in memory if key.isdigit()):
        found = memory[steps]
        rows.append((f"N = {steps}: way back vs way out ({found['rollouts']} walks)",
                     f"{_interval(found['agreement_with_outgoing'], found['agreement_with_outgoing_ci95'])} "
                     f"(truth {_percent(found['truth_agreement'])}; vs true tiles "
                     f"{_interval(found['agreement_with_truth'], found['agreement_with_truth_ci95'])})"))
    for name in ("enemy", "coin"):
        rows.append((f"{name} count, generated / truth ({sprites[f'{name}_count_truth']} in the truth)",
                     _interval(sprites[f"{name}_count_ratio"], sprites[f"{name}_count_ratio_ci95"], percent=False)))
        rows.append((f"{name} tiles generated beside a true one / true ones shown / those on ground seen at the start",
                     f"{_interval(sprites[f'{name}_beside_truth'], sprites[f'{name}_beside_truth_ci95'])} / "
                     f"{_interval(sprites[f'{name}_truth_shown'], sprites[f'{name}_truth_shown_ci95'])} / "
                     f"{_interval(sprites[f'{name}_truth_shown_known'], sprites[f'{name}_truth_shown_known_ci95'])}"))
    for part, meaning in (("appeared", "appeared on ground in view the frame before"), ("revealed", "revealed by the scroll"),
                          ("vanished", "vanished from ground still in view")):
        key = f"coin_{part}_per_frame"
        if key in sprites:  # reports written before the coin ledger have none
            rows.append((f"coins {meaning}, per frame: generated (truth)",
                         f"{_interval(sprites[key], sprites[f'{key}_ci95'], percent=False, digits=3)} "
                         f"({_number(sprites[f'{key}_truth'], 3)})"))
    for motion in ("holding", "stepping"):
        rows.append((f"enemies {motion}, kept in the teacher-forced next frame "
                     f"({sprites['teacher_forced_enemy_tiles'][motion]} tiles)",
                     _interval(sprites["teacher_forced_enemies_kept"][motion],
                               sprites["teacher_forced_enemies_kept_ci95"][motion])))
    outcomes = sprites["teacher_forced_stepping_outcomes"]
    rows.append(("stepping enemies, teacher-forced: kept / held / stepped the wrong way / missing",
                 " / ".join(_percent(outcomes[name]) for name in ("kept", "held", "wrong_way", "missing"))))
    skipped = memory["skipped_steps"]
    note = f" Walks of N = {skipped} do not fit half the cache window and were skipped." if skipped else ""
    return ["## Memory and sprites", "",
            f"Memory: N tiles out and N back on free paths (cache window {memory['window_frames']} frames), tile "
            f"agreement (frame parser) of the way back with the way out at the same positions.{note} Sprites: parser "
            "counts along the fidelity rollouts over the truth's counts; kept enemies: those on the tile they held a frame "
            "before, and those that just stepped (their way depends on 4-6 frames of past).", "", *_table(rows)]


def _bound(value: float, percent: bool) -> str:
    return _percent(value) if percent else _number(value, 1)


def _wanted(found: dict[str, Any], percent: bool) -> str:
    """A target as text: "≥ 90.0 %", or "80.0 % to 125.0 %" where it has a ceiling."""
    ceiling = found.get("ceiling")
    if ceiling is None:
        return f"≥ {_bound(found['target'], percent)}"
    return f"{_bound(found['target'], percent)} to {_bound(ceiling, percent)}"


def _targets_section(document: dict[str, Any]) -> list[str]:
    lines = ["## Targets", "", "| measure | value [95 % interval] | target | met |", "|---|---|---|---|"]
    for key, found in document["targets"].items():
        percent = found["target"] <= 1.0
        ceiling = found.get("ceiling")
        over = ceiling is not None and found["value"] is not None and found["value"] > ceiling
        verdict = "–" if found["value"] is None else ("yes" if found["met"] else
                                                      f"no ({_number(found['shortfall'], 3)} {'over' if over else 'short'})")
        lines.append(f"| {found['meaning']} (`{key}`) | {_interval(found['value'], found['ci95'], percent)} | "
                     f"{_wanted(found, percent)} | {verdict} |")
    return lines + [""]


def _control_and_rewards_section(metrics: dict[str, Any]) -> list[str]:
    control = metrics["controllability"]
    generated = _interval(control["inverse_dynamics_accuracy_generated"],
                          control["inverse_dynamics_accuracy_generated_ci95"])
    lines = ["## Controllability", "",
             f"Inverse dynamics on {control['pairs']} frame pairs where the real player moved: {generated} on "
             f"generated frames, {_percent(control['inverse_dynamics_accuracy_real'])} on the real ones.", "",
             "## Reward and termination", "",
             "| signal | precision | recall | predicted | real |", "|---|---|---|---|---|"]
    for name in ("reward", "termination"):
        found = metrics[name]
        lines.append(f"| {name} (±{found['tolerance_frames']} frame) | {_percent(found['precision'])} | "
                     f"{_percent(found['recall'])} | {found['predicted']} | {found['actual']} |")
    return lines + [""]


def _sections(metrics: dict[str, Any]) -> list[str]:
    return (_targets_section(metrics) + _fidelity_section(metrics["fidelity"]) + _known_region_section(metrics)
            + _control_section(metrics) + _memory_and_sprites_section(metrics) + _drift_section(metrics["drift"])
            + _reactivity_section(metrics["reactivity"]) + _event_branch_section(metrics.get("event_branch"))
            + _consistency_section(metrics["consistency"]) + _control_and_rewards_section(metrics))


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
    document["targets"] = check_targets(json_ready(document))
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
              "## Targets, checkpoint by checkpoint", "",
              "Value [95 % interval] of each target measure on the same scenarios.", "",
              targets_table(list(zip(labels, documents))), "",
              "Per-checkpoint reports: " + ", ".join(f"[{label}]({subfolder}/report.md)"
                                                     for (subfolder, _, _), label in zip(runs, labels)), ""]
    lines += _probe_section(shared["probes"]) + [f"![{p}]({p})" for p in plots]
    atomic_write_bytes(folder / "report.md", ("\n".join(lines) + "\n").encode("utf-8"))
    return top
