"""Evaluation against a game's ground truth (measures and keys: docs/METRICS.md).

- `truth`: the game the ground-truth suite replays, reached through its `GameSpec` (its true
  simulator, actions, events and tile classes); a recorded game is measured by `recorded` instead;
- `metrics`: pure numpy metrics (PSNR, SSIM and their masked forms, Fréchet distance, slopes,
  precision/recall, switch latency, tile agreement, 95 % intervals); `regions`: the known and
  continuously visible parts of a frame, from the player's true track;
- `probes` (+ `probe_nets`, `true_frames`): frame parser, event classifier, inverse dynamics and
  Fréchet features, trained on real frames (`python -m worldsim.eval.probes --out DIR`);
- `scenarios`, `replay`: seeded scripts replayed in the truth, in a Simulator and teacher-forced;
- `branch_contexts`, `next_frame`, `action_branch`: true contexts branched under every action (the
  action-branch test and collision probe, also logged by training); `memory_test`: out-and-back
  walks; `rollout_measures`: known region, imagined tiles, sprites, inverse dynamics by step;
- `suite`: the tiny / quick / full suites; `targets`: the quality bar; `report`, `figures`,
  `plots`: the outputs;
- `evaluation.evaluate` and `cli` (`worldsim eval`).
"""
