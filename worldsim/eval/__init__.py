"""Evaluation against the Explorer ground truth (DESIGN §8).

- `metrics`: pure numpy metrics (PSNR, SSIM, Fréchet distance, slopes, precision/recall, switch
  latency, tile agreement);
- `probes` (+ `probe_nets`, `explorer_frames`): frame parser, event classifier, inverse dynamics and
  Fréchet features, trained on real frames (`python -m worldsim.eval.probes --out DIR`);
- `scenarios`, `replay`: seeded scripts replayed in the truth, in a Simulator and teacher-forced;
- `suite`: the tiny / quick / full suites; `report`, `figures`, `plots`, `png`, `font`: the outputs;
- `evaluation.evaluate` and `cli` (`worldsim eval`).
"""
