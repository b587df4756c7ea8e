"""`worldsim data info`: a summary of a dataset (counts, actions, events, rewards, disk size) and
the shares that tell whether it teaches every condition: transitions that scroll the view, moves
into walls, standing still, 8-frame clips that hold an event switch, switches per event group
and direction, coin pickups, terminations and enemies in view.

Scrolling, blocked, still and enemies-in-view need the optional per-step labels a generator may
store (format.EXTRA_DTYPES); for datasets without them those shares are None ("unknown").
"""
from __future__ import annotations

from typing import Any

import numpy as np

from worldsim.data.format import EXTRA_DTYPES, NO_EVENT
from worldsim.data.reader import Dataset

CLIP_FRAMES = 8  # the clip length whose share of event switches is reported


def summarize(dataset: Dataset, verify: bool = False) -> dict[str, Any]:
    """Statistics over every shard; `verify` loads whole shards and checks every checksum."""
    num_texts = len(dataset.event_texts)
    action_counts = np.zeros(dataset.num_actions, dtype=np.int64)
    event_counts = np.zeros(num_texts + 1, dtype=np.int64)  # last slot: no event
    switch_counts = np.zeros(num_texts + 1, dtype=np.int64)  # by the text switched to
    label_sums = dict.fromkeys(("moved", "blocked", "still", "enemy_in_view"), 0)
    labelled = True
    episodes: set[int] = set()
    reward_sum, positive, negative, terminations = 0.0, 0, 0, 0
    transitions, clips, clips_with_switch = 0, 0, 0
    for position in range(dataset.num_shards):
        labels = dataset.load_shard(position).as_dict() if verify else dataset.load_labels(position)
        action_counts += np.bincount(labels["actions"], minlength=dataset.num_actions)
        event_ids = np.where(labels["events"] == NO_EVENT, num_texts, labels["events"])
        event_counts += np.bincount(event_ids, minlength=num_texts + 1)
        switched = event_switches(labels["events"], labels["episode"])
        switch_counts += np.bincount(event_ids[switched], minlength=num_texts + 1)
        transitions += int((labels["episode"][1:] == labels["episode"][:-1]).sum())
        starts = clip_starts(labels["episode"], CLIP_FRAMES)
        clips += len(starts)
        clips_with_switch += int(clips_holding(switched, starts, CLIP_FRAMES).sum())
        episodes.update(np.unique(labels["episode"]).tolist())
        rewards = labels["rewards"]
        reward_sum += float(rewards.sum(dtype=np.float64))
        positive += int((rewards > 0).sum())
        negative += int((rewards < 0).sum())
        terminations += int(labels["terminated"].sum())
        labelled = labelled and set(EXTRA_DTYPES) <= set(labels)
        if labelled:
            for name, values in _step_labels(labels).items():
                label_sums[name] += int(values.sum())
    frames = len(dataset)
    return {
        "path": str(dataset.path),
        "world": dataset.world,
        "complete": dataset.complete,
        "frames": frames,
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
        "shares": {
            **{name: (total / max(frames, 1) if labelled and frames else None)
               for name, total in label_sums.items()},
            "clips_with_switch": clips_with_switch / clips if clips else None,
            "positive_rewards": positive / max(frames, 1),
            "terminations": terminations / max(frames, 1),
        },
        "clip_frames": CLIP_FRAMES,
        "switches": switches_by_group(dataset, switch_counts[:-1]),
        "frames_per_switch": transitions / switch_counts.sum() if switch_counts.sum() else None,
        "disk_bytes": sum(shard.num_bytes for shard in dataset.shards),
        "generator": dataset.manifest["generator"],
        "verified": verify,
    }


def event_switches(events: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """bool [N]: frame i shows a different event text than frame i-1 of the same episode."""
    switched = np.zeros(len(events), dtype=bool)
    switched[1:] = (events[1:] != events[:-1]) & (episode[1:] == episode[:-1])
    return switched


def clip_starts(episode: np.ndarray, clip_frames: int) -> np.ndarray:
    """First frames of every run of `clip_frames` frames inside one episode (episodes are runs)."""
    if len(episode) < clip_frames:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(episode[: len(episode) - clip_frames + 1] == episode[clip_frames - 1:])


def clips_holding(switched: np.ndarray, starts: np.ndarray, clip_frames: int) -> np.ndarray:
    """bool per clip start: one of the clip's frames after its first is a switch."""
    before = np.concatenate([[0], np.cumsum(switched)])  # before[k] = switches in frames < k
    return before[starts + clip_frames] - before[starts + 1] > 0


def switches_by_group(dataset: Dataset, counts: np.ndarray) -> dict[str, dict[str, int]]:
    """Switch counts by event group and the event switched to (games whose events have groups), else by text."""
    totals: dict[str, dict[str, int]] = {}
    for text, count in zip(dataset.event_texts, counts.tolist()):
        group, name = _event_label(dataset.world, text)
        totals.setdefault(group, {})
        totals[group][name] = totals[group].get(name, 0) + count
    return totals


def _event_label(world: str, text: str) -> tuple[str, str]:
    """(group, name) of the event `text` names in the game's vocabulary; ("events", text) otherwise."""
    from worldsim.games import shipped_game

    game = shipped_game(world)
    if game is not None and game.events is not None:
        try:
            event = game.events.parse_event(text)
        except ValueError:
            return "events", text
        return getattr(event, "group", "events"), getattr(event, "name", event.canonical)
    return "events", text


def _step_labels(labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-step booleans behind the labelled shares."""
    return {"moved": labels["moved"], "blocked": labels["blocked"],
            "still": ~labels["moved"] & ~labels["blocked"],
            "enemy_in_view": labels["enemies_visible"] > 0}


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
        *_share_lines(summary),
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


def _share_lines(summary: dict[str, Any]) -> list[str]:
    shares = summary["shares"]
    every = summary["frames_per_switch"]
    lines = [
        f"steps        scrolling {_share(shares['moved'])}, blocked (into a wall) "
        f"{_share(shares['blocked'])}, still {_share(shares['still'])}",
        f"outcomes     positive rewards (coin pickups) {_share(shares['positive_rewards'])} of "
        f"steps, terminations {_share(shares['terminations'])}, an enemy in view in "
        f"{_share(shares['enemy_in_view'])} of frames",
        f"switches     {_share(shares['clips_with_switch'])} of {summary['clip_frames']}-frame "
        "clips hold one; " + (f"one every {every:.1f} frames" if every else "none"),
    ]
    for group, counts in summary["switches"].items():
        directions = ", ".join(f"{name} {count}" for name, count in counts.items())
        lines.append(f"  {group:<10s} {directions}")
    return lines


def _share(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1%}"


def _histogram(counts: list[int], total: int) -> str:
    return "  ".join(f"{action}: {count / total:.1%}" for action, count in enumerate(counts))


def _incomplete_note(summary: dict[str, Any]) -> str:
    target = summary["generator"].get("frames")
    if target:
        return f"INCOMPLETE: {summary['frames']} of {target} frames; rerun the same command to resume"
    return "INCOMPLETE: the writer did not finish"
