"""One line per quick-suite run, then each world pooled over its seeds.

    python rows.py RUNS/off-s0 RUNS/off-s1 RUNS/c0.8-s0 ...

A folder named LABEL-sSEED holds one `worldsim eval --suite quick` output (metrics.json); folders
with the same LABEL are pooled: counts are summed (enemies, coins, true enemies shown, drawn enemies
beside a true one, IDM pairs at steps 17-32, visible switches recognised), PSNR and the other
shares averaged over seeds.
"""
import json
import sys
from collections import defaultdict

KEYS = [("enemies", "sprites.enemy_count_ratio"), ("shown", "sprites.enemy_truth_shown"),
        ("beside", "sprites.enemy_beside_truth"), ("coins", "sprites.coin_count_ratio"),
        ("coin_shown", "sprites.coin_truth_shown"), ("TF", "fidelity.known_region_teacher_forced_psnr_db_mean"),
        ("@8", "fidelity.known_region_rollout_psnr_db.8"), ("@32", "fidelity.known_region_rollout_psnr_db.32"),
        ("idm17-32", "controllability.rollout_inverse_dynamics.accuracy.32"),
        ("react", "reactivity.relative_to_truth"), ("wall", "collision.read_as_noop_share"),
        ("mem4", "memory.4.agreement_with_outgoing")]
AVERAGED = ["TF", "@8", "@32", "wall", "mem4", "coin_shown"]


def get(metrics: dict, key: str):
    for part in key.split("."):
        metrics = metrics[part]
    return metrics


def counts(metrics: dict) -> dict[str, float]:
    """The summable counts behind the suite's shares."""
    sprites, idm = metrics["sprites"], metrics["controllability"]["rollout_inverse_dynamics"]
    reactivity = metrics["reactivity"]
    return {
        "enemies": sprites["enemy_count_generated"], "enemies_truth": sprites["enemy_count_truth"],
        "coins": sprites["coin_count_generated"], "coins_truth": sprites["coin_count_truth"],
        "shown": sprites["enemy_truth_shown"] * sprites["enemy_count_truth"],
        "beside": sprites["enemy_beside_truth"] * sprites["enemy_count_generated"],
        "idm_right": idm["accuracy"]["32"] * idm["pairs"]["32"], "idm_pairs": idm["pairs"]["32"],
        "recognised": reactivity["recognised_share_visible"] * reactivity["visible_switches"],
        "switches": reactivity["visible_switches"],
    }


pooled: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
averaged: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
for path in sys.argv[1:]:
    name = path.rstrip("/").split("/")[-1]
    metrics = json.load(open(path.rstrip("/") + "/metrics.json"))
    values = {label: get(metrics, key) for label, key in KEYS}
    print(name, " ".join(f"{label} {value:.3f}" for label, value in values.items()))
    world = name.rsplit("-s", 1)[0]
    for key, value in counts(metrics).items():
        pooled[world][key] += value
    for label in AVERAGED:
        averaged[world][label].append(values[label])
for world, total in pooled.items():
    seeds = len(averaged[world]["TF"])
    means = " ".join(f"{label} {sum(v) / len(v):.3f}" for label, v in averaged[world].items())
    print(f"pooled {world} ({seeds} seeds): enemies {total['enemies']:.0f}/{total['enemies_truth']:.0f} = "
          f"{total['enemies'] / total['enemies_truth']:.3f}, shown {total['shown']:.0f} = "
          f"{total['shown'] / total['enemies_truth']:.3f}, beside {total['beside']:.0f} = "
          f"{total['beside'] / max(total['enemies'], 1):.3f}, coins {total['coins']:.0f}/{total['coins_truth']:.0f} = "
          f"{total['coins'] / total['coins_truth']:.3f}, IDM 17-32 {total['idm_right']:.0f}/{total['idm_pairs']:.0f}, "
          f"recognised {total['recognised']:.0f}/{total['switches']:.0f}; mean {means}")
