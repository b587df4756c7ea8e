"""What a measurement ran on: the machine description stored beside every measured figure
(bench, eval, probes, examples, benchmarks). Written with `worldsim.data.atomic`."""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldsim import __version__

if TYPE_CHECKING:
    import torch

__all__ = ["cpu_model", "describe_machine"]


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: "torch.device") -> dict[str, Any]:
    import torch

    machine = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "worldsim_version": __version__,
        "device": str(device),
        "device_name": cpu_model(),
        # Other work on the machine while measuring (shared CI or dev boxes): read the figures with it.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        machine["device_name"] = torch.cuda.get_device_name(device)
        machine["cuda_version"] = torch.version.cuda
    return machine
