"""The training probe (enemies kept, holding / stepping) on a world whose local path sees only its
newest KEEP predecessors, the older ones marked unknown (zeros at level 1, as before a clip's
start): how much of the enemies' patrol a world reads from frames t-4 and t-5.

    KEEP=4 python older_frames_ablation.py WORLD
"""
import os
import sys

import worldsim
import worldsim.model.transformer as transformer_module
from worldsim.eval import training_probe

KEEP = int(os.environ.get("KEEP", "6"))
original_previous_frames = transformer_module.previous_frames


def newest_only(*args, **kwargs):
    frames, levels = original_previous_frames(*args, **kwargs)
    frames, levels = frames.clone(), levels.clone()
    frames[:, :, KEEP:] = 0
    levels[:, :, KEEP:] = 1
    return frames, levels


transformer_module.previous_frames = newest_only
found = training_probe.training_diagnostics("explorer", 64)(worldsim.load(sys.argv[1]))
print(f"KEEP {KEEP}", {key: round(value, 3) for key, value in found.items() if key.startswith("sprites")})
