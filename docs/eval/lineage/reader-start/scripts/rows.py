"""One line per quick-suite run (metrics.json folders), and pooled enemy and coin counts.

    python rows.py RUN_DIR ...
"""
import json
import sys

KEYS = [("enemies", "sprites.enemy_count_ratio"), ("shown", "sprites.enemy_truth_shown"),
        ("beside", "sprites.enemy_beside_truth"), ("coins", "sprites.coin_count_ratio"),
        ("coin_shown", "sprites.coin_truth_shown"), ("TF", "fidelity.known_region_teacher_forced_psnr_db_mean"),
        ("@8", "fidelity.known_region_rollout_psnr_db.8"), ("@32", "fidelity.known_region_rollout_psnr_db.32"),
        ("idm17-32", "controllability.rollout_inverse_dynamics.accuracy.32"),
        ("react", "reactivity.relative_to_truth"), ("wall", "collision.read_as_noop_share"),
        ("mem4", "memory.4.agreement_with_outgoing")]


def get(metrics: dict, key: str):
    for part in key.split("."):
        metrics = metrics[part]
    return metrics


pooled: dict[str, list[int]] = {}
for path in sys.argv[1:]:
    metrics = json.load(open(path.rstrip("/") + "/metrics.json"))
    print(path.rstrip("/").split("/")[-1], " ".join(f"{name} {get(metrics, key):.3f}" for name, key in KEYS))
    label = path.rstrip("/").split("/")[-1].rsplit("-s", 1)[0]
    sprites = metrics["sprites"]
    counts = pooled.setdefault(label, [0, 0, 0, 0])
    for index, key in enumerate(("enemy_count_generated", "enemy_count_truth", "coin_count_generated", "coin_count_truth")):
        counts[index] += sprites[key]
for label, (enemies, enemies_truth, coins, coins_truth) in pooled.items():
    print(f"pooled {label}: enemies {enemies}/{enemies_truth} = {enemies / enemies_truth:.3f}, "
          f"coins {coins}/{coins_truth} = {coins / coins_truth:.3f}")
