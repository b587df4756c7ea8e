"""One line per quick-suite run, then each world pooled over its seeds.

    python rows.py RUNS/off-s0 RUNS/off-s1 RUNS/c0.8-s0 ...
    python rows.py --paired off:c0.8 RUNS/off-s0 ... RUNS/c0.8-s0 ...


A folder named LABEL-sSEED holds one `worldsim eval --suite quick` output (metrics.json); folders
with the same LABEL are pooled: counts are summed (enemies, coins, true enemies shown, drawn enemies
beside a true one, IDM pairs at steps 17-32, visible switches recognised), PSNR and the other
shares averaged over seeds. `--paired A:B` (repeatable) adds, for the seeds both labels ran, the
mean per-seed difference B - A of a few measures with its 95 % t-interval and how many seeds rose.
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


# two-sided 95 % quantiles of Student's t by degrees of freedom (1-15)
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131]
PAIRED = ["enemies", "shown", "coins", "TF", "@8", "@32", "idm17-32", "react"]


def paired_line(label: str, differences: list[float]) -> str:
    n = len(differences)
    mean = sum(differences) / n
    if n < 2:
        return f"  {label} {mean:+.3f} (one seed)"
    sd = (sum((d - mean) ** 2 for d in differences) / (n - 1)) ** 0.5
    half = T95[min(n - 2, len(T95) - 1)] * sd / n ** 0.5
    rose = sum(d > 0 for d in differences)
    return f"  {label} {mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}] higher on {rose} of {n}"


arguments = sys.argv[1:]
pairs = []
while arguments and arguments[0] == "--paired":
    pairs.append(arguments[1].split(":"))
    arguments = arguments[2:]
pooled: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
averaged: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
per_seed: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
for path in arguments:
    name = path.rstrip("/").split("/")[-1]
    metrics = json.load(open(path.rstrip("/") + "/metrics.json"))
    values = {label: get(metrics, key) for label, key in KEYS}
    print(name, " ".join(f"{label} {value:.3f}" for label, value in values.items()))
    world, seed = name.rsplit("-s", 1)
    per_seed[world][seed] = values
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
for before, after in pairs:
    seeds = sorted(set(per_seed[before]) & set(per_seed[after]), key=int)
    print(f"paired {after} - {before} over seeds {', '.join(seeds)}:")
    for label in PAIRED:
        print(paired_line(label, [per_seed[after][s][label] - per_seed[before][s][label] for s in seeds]))
