"""Inference: few-step frame samplers over the KV cache, the rolling window, and the Simulator.

- frame_sampler: frame-wise / chunk-wise few-step sampling, clean re-encode fused where exact;
- rolling: the rolling-window sampler (frames in flight at increasing noise levels);
- recache: LongLive-style re-encoding of cached frames when an event switches (ablation flag);
- noise: per-row counter-based noise (batch-independent, device-independent);
- inputs: validation of everything users hand the Simulator;
- simulator: the stateful, batched Simulator behind `WorldModel.simulator`.
"""
from worldsim.sampling.frame_sampler import (
    CleanFrames,
    Conditions,
    commit,
    denoise_step,
    fused_commit_is_exact,
    predict_velocity,
    sample_frames,
    step_sigmas,
)
from worldsim.sampling.noise import RowNoise, gaussian_noise, seeds_for_batch
from worldsim.sampling.rolling import RollingSampler
from worldsim.sampling.simulator import Simulator

__all__ = [
    "CleanFrames",
    "Conditions",
    "RollingSampler",
    "RowNoise",
    "Simulator",
    "commit",
    "denoise_step",
    "fused_commit_is_exact",
    "gaussian_noise",
    "predict_velocity",
    "sample_frames",
    "seeds_for_batch",
    "step_sigmas",
]
