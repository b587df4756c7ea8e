"""`worldsim data info`: a summary of a dataset (counts, actions, events, rewards, disk size)."""
from __future__ import annotations

from typing import Any

import numpy as np

from worldsim.data.format import NO_EVENT
from worldsim.data.reader import Dataset


def summarize(dataset: Dataset, verify: bool = False) -> dict[str, Any]:
    """Statistics over every shard; `verify` loads whole shards and checks every checksum."""
    num_texts = len(dataset.event_texts)
    action_counts = np.zeros(dataset.num_actions, dtype=np.int64)
    event_counts = np.zeros(num_texts + 1, dtype=np.int64)  # last slot: no event
    episodes: set[int] = set()
    reward_sum, positive, negative, terminations = 0.0, 0, 0, 0
    for position in range(dataset.num_shards):
        labels = dataset.load_shard(position).as_dict() if verify else dataset.load_labels(position)
        action_counts += np.bincount(labels["actions"], minlength=dataset.num_actions)
        event_ids = np.where(labels["events"] == NO_EVENT, num_texts, labels["events"])
        event_counts += np.bincount(event_ids, minlength=num_texts + 1)
        episodes.update(np.unique(labels["episode"]).tolist())
        rewards = labels["rewards"]
        reward_sum += float(rewards.sum(dtype=np.float64))
        positive += int((rewards > 0).sum())
        negative += int((rewards < 0).sum())
        terminations += int(labels["terminated"].sum())
    return {
        "path": str(dataset.path),
        "world": dataset.world,
        "complete": dataset.complete,
        "frames": len(dataset),
        "episodes": len(episodes),
        "shards": dataset.num_shards,
        "frame_shape": list(dataset.frame_shape),
        "num_actions": dataset.num_actions,
        "action_counts": action_counts.tolist(),
        "event_frames": {text: int(n) for text, n in zip(dataset.event_texts, event_counts) if n},
        "no_event_frames": int(event_counts[-1]),
        "event_texts": num_texts,
        "reward_sum": reward_sum,
        "positive_rewards": positive,
        "negative_rewards": negative,
        "terminations": terminations,
        "disk_bytes": sum(shard.num_bytes for shard in dataset.shards),
        "generator": dataset.manifest["generator"],
        "verified": verify,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable text for `summarize`'s output."""
    frames = max(summary["frames"], 1)
    status = "complete" if summary["complete"] else _incomplete_note(summary)
    lines = [
        f"dataset      {summary['path']} ({status})",
        f"world        {summary['world']}",
        f"frames       {summary['frames']} in {summary['episodes']} episodes, "
        f"{summary['shards']} shards, frame shape {tuple(summary['frame_shape'])}",
        f"disk         {summary['disk_bytes'] / 2**20:.1f} MiB "
        f"({summary['disk_bytes'] / frames / 1024:.2f} KiB/frame)",
        f"rewards      sum {summary['reward_sum']:g}, {summary['positive_rewards']} positive, "
        f"{summary['negative_rewards']} negative; {summary['terminations']} terminations",
        f"actions      {_histogram(summary['action_counts'], frames)}",
        f"events       {summary['event_texts']} texts in the table, "
        f"{summary['no_event_frames'] / frames:.1%} of frames without an event",
    ]
    for text, count in sorted(summary["event_frames"].items(), key=lambda item: -item[1]):
        lines.append(f"  {count:>9d}  {text}")
    if summary["generator"]:
        settings = ", ".join(f"{k}={v}" for k, v in summary["generator"].items())
        lines.append(f"generator    {settings}")
    lines.append("checksums    " + ("all verified" if summary["verified"] else "not checked (use --verify)"))
    return "\n".join(lines)


def _histogram(counts: list[int], total: int) -> str:
    return "  ".join(f"{action}: {count / total:.1%}" for action, count in enumerate(counts))


def _incomplete_note(summary: dict[str, Any]) -> str:
    target = summary["generator"].get("frames")
    if target:
        return f"INCOMPLETE: {summary['frames']} of {target} frames; rerun the same command to resume"
    return "INCOMPLETE: the writer did not finish"
