"""`worldsim train ...` with two experimental changes to the flow-matching stages (session 32):

- STEM_LR_SCALE (default 1): the local path's input conv (`local.stem_in`) learns at that multiple
  of the stage's rate. Its weights on predecessors 3-6 were grown from zero and stayed near it.
- SIGMA_ONE (default 0): that share of the frames' noise levels is set to 1, where the target is
  the next frame from its past alone (use with `loss_weight=uniform`: the bell vanishes at 1).

    SIGMA_ONE=0.5 python patched_teacher.py train ar-teacher --data DATA --set init=WORLD ...
"""
import os
import sys

import torch

import worldsim.training.teacher as teacher_module
from worldsim.cli import main
from worldsim.training.trainer import make_adamw

SIGMA_ONE = float(os.environ.get("SIGMA_ONE", "0"))
STEM_LR_SCALE = float(os.environ.get("STEM_LR_SCALE", "1"))
original_sample_sigma = teacher_module.sample_sigma
original_init = teacher_module.FlowMatchingStage.__init__


def sample_sigma(shape, shift, device, *args, **kwargs):
    sigma = original_sample_sigma(shape, shift, device, *args, **kwargs)
    return torch.where(torch.rand(shape, device=device) < SIGMA_ONE, torch.ones_like(sigma), sigma)


def init(self, config, context):
    original_init(self, config, context)
    stem = {id(p) for p in self.transformer.local.stem_in.parameters()}
    params = [p for module in self._trained for p in module.parameters()]
    self.optimizer = make_adamw(
        [{"params": [p for p in params if id(p) not in stem]},
         {"params": [p for p in params if id(p) in stem], "lr": config.lr * STEM_LR_SCALE}], config)


teacher_module.sample_sigma = sample_sigma
teacher_module.FlowMatchingStage.__init__ = init
sys.exit(main(sys.argv[1:]))
