"""Dataset format: writer -> reader round trip, strict validation, clear errors naming the shard."""
from __future__ import annotations

import io
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from worldsim.data import Dataset, DatasetError, DatasetWriter, ShardArrays
from worldsim.data.atomic import sha256_bytes
from worldsim.data.format import ARRAY_DTYPES, EXTRA_DTYPES, MANIFEST_NAME

FRAME_SHAPE = (6, 5, 3)
TEXTS = ["night falls", "it starts snowing"]


def write_toy(path: Path, steps: int = 70, shard_frames: int = 25, seed: int = 0) -> dict:
    """Write a toy dataset and return the arrays that went in."""
    rng = np.random.default_rng(seed)
    expected = {name: [] for name in ARRAY_DTYPES}
    episode = 0
    with DatasetWriter(path, "toy", FRAME_SHAPE, num_actions=4, event_texts=TEXTS,
                       shard_frames=shard_frames) as writer:
        for step in range(steps):
            frame = rng.integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
            action, event = int(rng.integers(4)), int(rng.integers(-1, len(TEXTS)))
            reward, terminated = float(rng.normal()), step % 17 == 16
            writer.add(frame, action, reward, terminated, event)
            for name, value in zip(ARRAY_DTYPES, (frame, action, event, reward, terminated, episode)):
                expected[name].append(value)
            episode += terminated
    return {name: np.array(values, dtype=ARRAY_DTYPES[name]) for name, values in expected.items()}


def test_shard_arrays_fields_match_the_format():
    assert tuple(f.name for f in fields(ShardArrays)) == (*ARRAY_DTYPES, "extras")
    assert not set(EXTRA_DTYPES) & set(ARRAY_DTYPES)


def test_round_trip_keeps_every_array_and_splits_shards(tmp_path):
    expected = write_toy(tmp_path / "ds")
    dataset = Dataset(tmp_path / "ds", verify=True)
    assert len(dataset) == 70 and dataset.num_shards == 3 and dataset.complete
    assert [s["frames"] for s in dataset.manifest["shards"]] == [25, 25, 20]
    assert dataset.event_texts == TEXTS and dataset.num_actions == 4 and dataset.world == "toy"
    shards = list(dataset.iter_shards())
    for name, values in expected.items():
        loaded = np.concatenate([getattr(shard, name) for shard in shards])
        assert loaded.dtype == ARRAY_DTYPES[name]
        np.testing.assert_array_equal(loaded, values, err_msg=name)
    labels = dataset.load_labels(1)
    np.testing.assert_array_equal(labels["actions"], shards[1].actions)
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.startswith(".")]


def test_episode_ids_follow_terminations_and_explicit_ends(tmp_path):
    frame = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    with DatasetWriter(tmp_path / "ds", "toy", FRAME_SHAPE, num_actions=2) as writer:
        writer.add(frame, 0)
        writer.add(frame, 1, terminated=True)
        writer.add(frame, 0)
        writer.end_episode()
        writer.end_episode()  # a second call without frames in between is a no-op
        writer.add(frame, 0)
    shard = Dataset(tmp_path / "ds").load_shard(0)
    np.testing.assert_array_equal(shard.episode, [0, 0, 1, 2])


def test_append_continues_shards_and_episode_ids(tmp_path):
    write_toy(tmp_path / "ds", steps=30)
    frame = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    with DatasetWriter(tmp_path / "ds", "toy", FRAME_SHAPE, 4, TEXTS, append=True) as writer:
        writer.add(frame, 3)
    dataset = Dataset(tmp_path / "ds", verify=True)
    assert len(dataset) == 31 and dataset.num_shards == 3
    assert dataset.load_shard(2).episode[0] == dataset.load_shard(1).episode[-1] + 1
    with pytest.raises(DatasetError, match="num_actions"):
        DatasetWriter(tmp_path / "ds", "toy", FRAME_SHAPE, 5, TEXTS, append=True)
    with pytest.raises(DatasetError, match="already holds a dataset"):
        DatasetWriter(tmp_path / "ds", "toy", FRAME_SHAPE, 4, TEXTS)


def test_writer_rejects_bad_steps_and_keeps_nothing_of_them(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", "toy", FRAME_SHAPE, num_actions=4, event_texts=TEXTS)
    good = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    with pytest.raises(ValueError, match="frame must be uint8"):
        writer.add(np.zeros((6, 5, 4), dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="frame must be uint8"):
        writer.add(good.astype(np.float32), 0)
    with pytest.raises(ValueError, match="action 4"):
        writer.add(good, 4)
    with pytest.raises(ValueError, match="event id 2"):
        writer.add(good, 0, event=2)
    with pytest.raises(ValueError, match="reward"):
        writer.add(good, 0, reward=float("nan"))
    assert writer.num_frames == 0
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.add(good, 0)


@pytest.mark.parametrize(
    "step, message",
    [
        ({"action": 1.5}, "action must be an int"),
        ({"action": 1.0}, "action must be an int"),
        ({"action": True}, "action must be an int"),
        ({"action": np.bool_(True)}, "action must be an int"),
        ({"action": "1"}, "action must be an int"),
        ({"action": np.array([1])}, "action must be an int"),
        ({"action": 1, "terminated": "yes"}, "terminated must be a bool"),
        ({"action": 1, "terminated": 1}, "terminated must be a bool"),
        ({"action": 1, "terminated": None}, "terminated must be a bool"),
        ({"action": 1, "event": 0.0}, "event must be an int"),
        ({"action": 1, "event": False}, "event must be an int"),
        ({"action": 1, "reward": "1"}, "reward must be a real number"),
        ({"action": 1, "reward": True}, "reward must be a real number"),
        ({"action": 1, "reward": float("inf")}, "reward must be finite"),
    ],
)
def test_writer_checks_the_types_of_a_step(tmp_path, step, message):
    """A float action was silently truncated (1.5 stored as 1) and "yes" taken as terminated."""
    writer = DatasetWriter(tmp_path / "ds", "toy", FRAME_SHAPE, num_actions=4, event_texts=TEXTS)
    with pytest.raises(ValueError, match=message):
        writer.add(np.zeros(FRAME_SHAPE, dtype=np.uint8), **step)
    assert writer.num_frames == 0


def test_writer_accepts_numpy_scalars(tmp_path):
    frame = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    with DatasetWriter(tmp_path / "ds", "toy", FRAME_SHAPE, num_actions=4, event_texts=TEXTS) as writer:
        writer.add(frame, np.int64(3), np.float32(0.5), np.bool_(False), np.int32(1))
        writer.add(frame, np.uint8(2), 1, True, np.array(0))
    shard = Dataset(tmp_path / "ds").load_shard(0)
    np.testing.assert_array_equal(shard.actions, [3, 2])
    np.testing.assert_array_equal(shard.events, [1, 0])
    np.testing.assert_array_equal(shard.rewards, [0.5, 1.0])
    np.testing.assert_array_equal(shard.terminated, [False, True])


def test_optional_labels_round_trip_and_older_shards_have_none(tmp_path, toy):
    plain = Dataset(toy).load_shard(0)
    assert plain.extras == {} and not set(EXTRA_DTYPES) & set(Dataset(toy).load_labels(0))
    rng = np.random.default_rng(0)
    extras = {name: rng.integers(0, 2, len(plain)).astype(dtype) for name, dtype in EXTRA_DTYPES.items()}
    labelled = ShardArrays(**{name: getattr(plain, name) for name in ARRAY_DTYPES}, extras=extras)
    replace_shard(toy, 0, npz_bytes(**labelled.as_dict()))
    loaded = Dataset(toy, verify=True).load_shard(0)
    assert set(loaded.extras) == set(EXTRA_DTYPES)
    for name, values in extras.items():
        assert loaded.extras[name].dtype == EXTRA_DTYPES[name]
        np.testing.assert_array_equal(loaded.extras[name], values)
        np.testing.assert_array_equal(Dataset(toy).load_labels(0)[name], values)


def test_interrupted_writer_keeps_committed_shards_and_is_marked_incomplete(tmp_path):
    frame = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "ds", "toy", FRAME_SHAPE, 2, shard_frames=4) as writer:
            for _ in range(10):
                writer.add(frame, 0)
            raise RuntimeError("recording crashed")
    dataset = Dataset(tmp_path / "ds", verify=True)
    assert len(dataset) == 10 and not dataset.complete


@pytest.fixture
def toy(tmp_path) -> Path:
    write_toy(tmp_path / "ds")
    return tmp_path / "ds"


def test_flipped_byte_is_a_checksum_error_naming_the_shard(toy):
    path = toy / "shard-00001.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    dataset = Dataset(toy)  # opening only checks sizes; the bytes are checked on first load
    dataset.load_shard(0)
    with pytest.raises(DatasetError, match=r"shard-00001\.npz: checksum mismatch"):
        dataset.load_shard(1)
    with pytest.raises(DatasetError, match=r"shard-00001\.npz: checksum mismatch"):
        Dataset(toy, verify=True)


def test_truncated_or_missing_shard_is_named_when_opening(toy):
    path = toy / "shard-00002.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match=r"shard-00002\.npz: file is 100 bytes .*truncated"):
        Dataset(toy)
    path.unlink()
    with pytest.raises(DatasetError, match=r"shard-00002\.npz: shard listed in the manifest is missing"):
        Dataset(toy)


def replace_shard(folder: Path, position: int, data: bytes) -> None:
    """Swap a shard's bytes and fix its manifest entry, so that only the content is wrong."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    entry = manifest["shards"][position]
    (folder / entry["file"]).write_bytes(data)
    entry.update(sha256=sha256_bytes(data), bytes=len(data))
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(rewards=a["rewards"].astype(np.float64)), "'rewards' has dtype float64"),
        (lambda a: a.update(frames=a["frames"][:, :, :4]), "'frames' has shape"),
        (lambda a: a.update(actions=a["actions"][:-1]), r"differ in length .*'actions': 24"),
        (lambda a: a.update(rewards=a["rewards"][:, None]), "'rewards' has shape"),
        (lambda a: a.pop("events"), r"holds arrays .*expected"),
        (lambda a: a.update(actions=a["actions"] + 4), r"actions outside \[0, 4\)"),
        (lambda a: a.update(events=a["events"] + 3), r"event ids outside"),
        (lambda a: a.update(episode=a["episode"][::-1].copy()), "non-decreasing"),
        (lambda a: a.update(terminated=np.ones_like(a["terminated"])), "terminated frame"),
        (lambda a: a.update(extra=np.array([object()], dtype=object)), "holds arrays"),
        (lambda a: a.update(moved=np.zeros(len(a["actions"]), np.uint8)), "'moved' has dtype uint8"),
        (lambda a: a.update(blocked=np.zeros(3, bool)), r"differ in length .*'blocked': 3"),
        (lambda a: a.update(coins_visible=np.zeros((25, 2), np.uint8)), "'coins_visible' has shape"),
    ],
)
def test_malformed_shard_content_is_an_error_naming_the_shard(toy, change, message):
    arrays = Dataset(toy).load_shard(0).as_dict()
    change(arrays)
    replace_shard(toy, 0, npz_bytes(**arrays))
    with pytest.raises(DatasetError, match=rf"shard-00000\.npz.*{message}"):
        Dataset(toy).load_shard(0)


def test_pickled_arrays_are_refused(toy):
    arrays = Dataset(toy).load_shard(0).as_dict()
    arrays["events"] = arrays["events"].astype(object)
    replace_shard(toy, 0, npz_bytes(**arrays))
    with pytest.raises(DatasetError, match=r"shard-00000\.npz: unreadable shard.*pickle"):
        Dataset(toy).load_shard(0)


def test_not_a_zip_is_an_error_naming_the_shard(toy):
    replace_shard(toy, 1, b"definitely not a zip archive")
    with pytest.raises(DatasetError, match=r"shard-00001\.npz: unreadable shard"):
        Dataset(toy).load_shard(1)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(version=99), "format version 99 is newer"),
        (lambda m: m.update(colour="red"), r"unknown key\(s\) \['colour'\]"),
        (lambda m: m.pop("num_actions"), r"missing key\(s\) \['num_actions'\]"),
        (lambda m: m.update(frame_shape=[6, 5]), "'frame_shape' must be"),
        (lambda m: m["shards"][0].update(sha256="abc"), r"shards\[0\]: 'sha256'"),
        (lambda m: m["shards"][1].update(file="other.npz"), r"shards\[1\]: file 'other.npz'"),
        (lambda m: m["shards"].reverse(), "unique and increasing"),
    ],
)
def test_malformed_manifest_is_an_error_naming_the_key(toy, edit, message):
    manifest = json.loads((toy / MANIFEST_NAME).read_text())
    edit(manifest)
    (toy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=rf"manifest\.json.*{message}"):
        Dataset(toy)


def test_manifest_that_is_not_json_or_missing(tmp_path, toy):
    with pytest.raises(DatasetError, match="manifest.json: not found"):
        Dataset(tmp_path / "nowhere")
    (toy / MANIFEST_NAME).write_text("{ not json")
    with pytest.raises(DatasetError, match="manifest.json: not valid JSON"):
        Dataset(toy)
