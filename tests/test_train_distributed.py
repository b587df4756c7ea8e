"""torchrun-style data parallelism on CPU (gloo): gradients averaged, choices broadcast, one checkpoint."""
import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Regression:
    """Each rank fits its own data; with averaged gradients the replicas stay identical."""

    name = "toy-ddp"
    samples_per_step = 4

    def __init__(self, config, context):
        from worldsim.training.trainer import make_adamw

        self.config, self.context = config, context
        self.model = nn.Linear(3, 1)  # seeded per rank: different until broadcast
        self.optimizer = make_adamw(self.model.parameters(), config)
        self.choices = []

    def modules(self):
        return {"model": self.model}

    def optimizers(self):
        return {"model": self.optimizer}

    def train_step(self, step):
        from worldsim.training.distributed import broadcast_choice
        from worldsim.training.trainer import optimizer_step

        self.choices.append(broadcast_choice(lambda: [int(torch.randint(100, ())), float(torch.rand(()))],
                                             self.context))
        inputs = torch.randn(4, 3)  # each rank draws its own batch
        loss = (self.model(inputs) - inputs.sum(1, keepdim=True)).pow(2).mean()
        optimizer_step(loss, self.optimizer, self.context)
        return {"loss": loss.item()}

    def finish(self, out_dir, summary):
        out_dir.mkdir(parents=True, exist_ok=True)


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from worldsim.training.config import TrainConfig
    from worldsim.training.distributed import init_distributed
    from worldsim.training.trainer import seed_everything, train

    context = init_distributed("cpu")
    config = TrainConfig(steps=6, lr=0.05, checkpoint_every=3, log_every=2, progress=False)
    seed_everything(config.seed, context.rank)
    stage = _Regression(config, context)
    train(stage, config, Path(out) / "run", context)
    weights = torch.cat([p.detach().flatten() for p in stage.model.parameters()]).tolist()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"weights": weights, "choices": stage.choices}))
    dist.destroy_process_group()


def test_two_ranks_stay_identical_and_agree_on_random_choices(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["weights"] == rank1["weights"]
    assert rank0["choices"] == rank1["choices"] and len(rank0["choices"]) == 6
    assert isinstance(rank0["choices"][0][0], int) and isinstance(rank0["choices"][0][1], float)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert json.loads((checkpoints / "latest.json").read_text())["step"] == 6
    assert (checkpoints / "step-00000006-rng0.safetensors").is_file()
    assert (checkpoints / "step-00000006-rng1.safetensors").is_file()
