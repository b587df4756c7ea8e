"""Training metrics: a CSV file (the record), TensorBoard when installed (for looking at curves).

The CSV holds one row per logged step. When a run resumes, rows after the resumed step (logged
after the last checkpoint, before the kill) are dropped, so the file reads as one clean run. A
metric that appears for the first time mid-run (e.g. a variant's statistic) widens the header;
the file is rewritten atomically with the new column.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from worldsim.data.atomic import atomic_write_bytes

__all__ = ["MetricLog", "read_metrics"]


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics CSV as floats (empty cells become NaN)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: float(v) if v != "" else math.nan for k, v in row.items()} for row in csv.DictReader(handle)]


class MetricLog:
    """Append-only CSV of metrics (+ optional TensorBoard), safe to resume."""

    def __init__(self, path: Path, resume_step: int | None = None, tensorboard_dir: Path | None = None):
        self.path = Path(path)
        self.rows = [r for r in read_metrics(self.path) if resume_step is not None and r["step"] <= resume_step]
        self.fields = ["step"]
        for row in self.rows:
            self.fields += [k for k in row if k not in self.fields]
        self._rewrite()
        self._tensorboard = _open_tensorboard(tensorboard_dir, resume_step) if tensorboard_dir else None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": float(step), **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        new_fields = [k for k in row if k not in self.fields]
        if new_fields:
            self.fields += new_fields
            self._rewrite()
        else:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, self.fields).writerow(self._format(row))
        if self._tensorboard is not None:
            for key, value in metrics.items():
                self._tensorboard.add_scalar(key, value, step)

    def _format(self, row: dict[str, float]) -> dict[str, str]:
        return {k: ("" if math.isnan(v) else (str(int(v)) if k == "step" else f"{v:.6g}")) for k, v in row.items()}

    def _rewrite(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.fields)
        writer.writeheader()
        writer.writerows(self._format(r) for r in self.rows)
        atomic_write_bytes(self.path, buffer.getvalue().encode())

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def _open_tensorboard(directory: Path, resume_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the tensorboard package is optional
        return None
    return SummaryWriter(str(directory), purge_step=None if resume_step is None else resume_step + 1)
