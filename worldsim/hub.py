"""Checkpoint folders: strict safetensors I/O, config.json validation, name resolution, model card, Hub.

A checkpoint is a folder that is at the same time a Hugging Face Hub model repo:

    config.json               {"format", "format_version", "worldsim_version", "world", "event_texts", "metadata"}
    tokenizer.json            the event tokenizer (`Tokenizer.to_dict()`)
    autoencoder.safetensors   one file per module, so each file stays small
    transformer.safetensors
    events.safetensors
    reward.safetensors
    context.safetensors       {"frames": uint8 [K,H,W,3]} real start frames (K may be 0)
    README.md                 the generated model card

Only safetensors and JSON are ever read, nothing is unpickled. Loading is strict: a missing or
unexpected tensor, a shape or dtype mismatch, an unknown or missing config key is a `CheckpointError`
that names it; `check_finite=True` also rejects NaN or infinite weights. Every file is written
atomically (temporary name, fsync, rename).

A name resolves as: bundled world (`worldsim/pretrained/<name>`) -> local folder -> Hub repo id
(`huggingface_hub.snapshot_download` with huggingface_hub's own arguments, `HubDownload`: `revision`,
`cache_dir`, `token`, `force_download`, and offline from the cache when `local_files_only=True` or
`HF_HUB_OFFLINE=1`). A failed resolution lists every place it tried.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldsim import __version__
from worldsim.data.atomic import atomic_write_bytes
from worldsim.pretrained import BUNDLED_WORLDS, DEFAULT_WORLD, bundled_folder

if TYPE_CHECKING:  # torch is only needed by callers that already hold tensors
    import torch

    from worldsim.games import GameSpec

FORMAT = "worldsim-checkpoint"
FORMAT_VERSION = 10
# The keys each format added, at the meaning an older world had without them. Format 2 and before:
# no local path (format 1); during format 2 a pixel-level autoencoder stem and, on the local path,
# the action-chosen kernel every local path had by then; no learned cell positions (added by
# format 3). Format 3: the generator was conditioned on every event text's own vector (format 4
# adds snapping an understood text to its known event). Format 5 adds lining the local path's older
# predecessors up by the scroll (off before). Format 6 adds the sampler's share of fresh noise
# (all fresh before). Format 7 adds the reward model's head, per-cell scores pooled over the cells
# (the flattened map before). Format 8 adds the local path's history reader (none before). Format 9
# adds starting frames from the reader's guess (off before) and a reader the stem does not read
# (the stem read every reader before). Format 10 adds the event's change as a condition of its own
# (none before). The current format writes every key.
_KEYS_ADDED_BY = {
    3: {"transformer": {"local_channels": 0, "local_blocks": 1, "local_frames": 0, "local_action_conv": True,
                        "local_positions": False},
        "autoencoder": {"patch_size": 1}},
    4: {"sampling": {"snap_events": False}},
    5: {"transformer": {"local_align_history": False}},
    6: {"sampling": {"fresh_noise": 1.0}},
    7: {"reward": {"head": "flatten"}},
    8: {"transformer": {"local_reader_channels": 0, "local_reader_blocks": 4}},
    9: {"transformer": {"local_reader_feeds_stem": True}, "sampling": {"reader_start": 0.0}},
    10: {"transformer": {"event_change": False}},
}

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "README.md"
CONTEXT_FILE = "context.safetensors"
# WorldModel attribute -> weights file.
MODULE_FILES: dict[str, str] = {
    "autoencoder": "autoencoder.safetensors",
    "transformer": "transformer.safetensors",
    "event_encoder": "events.safetensors",
    "reward_model": "reward.safetensors",
}
# What a Hub download fetches: our files only, never pickles or anything else in the repo.
HUB_PATTERNS: list[str] = [CONFIG_FILE, TOKENIZER_FILE, CARD_FILE, "*.safetensors"]

_CONFIG_KEYS = ("format", "format_version", "worldsim_version", "world", "event_texts", "metadata")


class CheckpointError(ValueError):
    """A checkpoint file is malformed, incomplete or does not match the model it is loaded into."""


class CheckpointNotFoundError(FileNotFoundError):
    """No checkpoint could be found under a name; the message lists every place tried."""


# ----------------------------------------------------------------------------------------------
# Atomic files


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None


# ----------------------------------------------------------------------------------------------
# Tensors


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor]) -> None:
    """Save named tensors as safetensors (CPU, contiguous, no shared storage), atomically."""
    from safetensors.torch import save

    # clone(): safetensors refuses tensors that share storage (tied weights, views).
    plain = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in tensors.items()}
    atomic_write_bytes(path, save(plain, metadata={"format": "pt", "worldsim_version": __version__}))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (CPU tensors); a missing or corrupt file is a CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        return load_file(str(path))
    except SafetensorError as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None


def check_tensors(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], source: str
) -> None:
    """Raise a CheckpointError naming every missing, unexpected, wrongly shaped or typed tensor.

    The dtype must match exactly: loading would silently convert integer weights, say, into
    floats (and float16 files into float32), hiding a file that was not written for this model.
    """
    problems = [f"missing tensor {name!r}" for name in expected if name not in found]
    problems += [f"unexpected tensor {name!r}" for name in found if name not in expected]
    for name, tensor in expected.items():
        if name not in found:
            continue
        if found[name].shape != tensor.shape:
            problems.append(f"tensor {name!r} has shape {tuple(found[name].shape)}, expected {tuple(tensor.shape)}")
        if found[name].dtype != tensor.dtype:
            problems.append(f"tensor {name!r} has dtype {found[name].dtype}, expected {tensor.dtype}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def check_finite(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointError naming the floating-point tensors that hold NaN or infinite values.

    One pass over the weights (a few milliseconds per million values): NaN weights load without
    complaint and then produce black frames, so a download can be checked before it is used.
    """
    bad = [name for name, tensor in tensors.items()
           if tensor.is_floating_point() and not bool(tensor.isfinite().all())]  # fmt: skip
    if bad:
        raise CheckpointError(f"{source}: non-finite values (NaN or inf) in tensor(s) {', '.join(map(repr, bad))}")


def read_module_state(module: torch.nn.Module, path: Path, finite: bool = False) -> dict[str, torch.Tensor]:
    """Read and strictly check the weights of `module` from `path` without touching the module.

    `finite=True` also rejects NaN or infinite values (`check_finite`).
    """
    tensors = load_tensors(path)
    check_tensors(module.state_dict(), tensors, str(path))
    if finite:
        check_finite(tensors, str(path))
    return tensors


# ----------------------------------------------------------------------------------------------
# config.json


@dataclass
class CheckpointConfig:
    """The validated content of config.json (the world config is still a plain dict here)."""

    world: dict[str, Any]
    event_texts: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    worldsim_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "worldsim_version": self.worldsim_version,
            "world": self.world,
            "event_texts": list(self.event_texts),
            "metadata": self.metadata,
        }


def _upgrade_world(world: dict, version: int) -> dict:
    """The `world` section of an older format, with the keys added since at their old meaning."""
    for added_in, sections in sorted(_KEYS_ADDED_BY.items()):
        if version < added_in:
            world = {**world, **{section: {**defaults, **world[section]} for section, defaults in sections.items()
                                 if isinstance(world.get(section), dict)}}
    return world


def parse_checkpoint_config(obj: Any, source: str) -> CheckpointConfig:
    """Validate the top level of config.json; the `world` section is checked by WorldConfig.from_dict."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: expected a JSON object, got {type(obj).__name__}")
    missing = [key for key in _CONFIG_KEYS if key not in obj]
    unknown = [key for key in obj if key not in _CONFIG_KEYS]
    if missing or unknown:
        parts = [f"missing key {key!r}" for key in missing] + [f"unknown key {key!r}" for key in unknown]
        raise CheckpointError(f"{source}: " + "; ".join(parts))
    if obj["format"] != FORMAT:
        raise CheckpointError(f"{source}: key 'format' is {obj['format']!r}, expected {FORMAT!r}")
    version = obj["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: key 'format_version' is {version!r}; this worldsim reads 1..{FORMAT_VERSION}"
        )
    _expect_type(obj, "worldsim_version", str, source)
    _expect_type(obj, "world", dict, source)
    _expect_type(obj, "metadata", dict, source)
    texts = obj["event_texts"]
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise CheckpointError(f"{source}: key 'event_texts' must be a list of strings")
    return CheckpointConfig(
        world=_upgrade_world(obj["world"], version),
        event_texts=texts,
        metadata=obj["metadata"],
        worldsim_version=obj["worldsim_version"],
    )


def _expect_type(obj: dict, key: str, kind: type, source: str) -> None:
    if not isinstance(obj[key], kind):
        raise CheckpointError(
            f"{source}: key {key!r} must be {kind.__name__}, got {type(obj[key]).__name__}"
        )


# ----------------------------------------------------------------------------------------------
# Name resolution


@dataclass(frozen=True)
class HubDownload:
    """How a Hub repo is fetched: huggingface_hub's `snapshot_download` / `from_pretrained` arguments.

    revision: branch, tag or commit to pin (None: main). cache_dir: the Hub cache folder (None:
    `HF_HUB_CACHE` or huggingface_hub's default). token: an access token for private repos (None: the
    saved login). force_download: fetch again even if cached. local_files_only: only the cache, no
    network (None: follow `HF_HUB_OFFLINE`, read at call time).
    """

    revision: str | None = None
    cache_dir: str | os.PathLike | None = None
    token: str | bool | None = None
    force_download: bool = False
    local_files_only: bool | None = None

    def __post_init__(self) -> None:
        for name in ("revision", "cache_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (str, os.PathLike)) or not os.fspath(value)):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
        if self.token is not None and not isinstance(self.token, (str, bool)):
            raise ValueError(f"token must be a string, a bool or None, got {type(self.token).__name__}")
        for name in ("force_download", "local_files_only"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "local_files_only" and value is None):
                raise ValueError(f"{name} must be True or False, got {value!r}")

    def offline(self) -> bool:
        return hub_offline() if self.local_files_only is None else self.local_files_only

    def cache_folder(self) -> str | None:
        folder = self.cache_dir if self.cache_dir is not None else os.environ.get("HF_HUB_CACHE")
        return os.path.expanduser(os.fspath(folder)) if folder else None


def resolve_checkpoint(name_or_path: str | os.PathLike | None = None, download: HubDownload | None = None) -> Path:
    """The local folder of a checkpoint: bundled name -> local folder -> Hub repo id.

    `download.revision` pins a Hub branch, tag or commit; when it is given only the Hub is consulted.
    """
    download = download or HubDownload()
    name = DEFAULT_WORLD if name_or_path is None else os.fspath(name_or_path)
    tried: list[str] = []
    if download.revision is None:
        for lookup in (_find_bundled, _find_local):
            folder = lookup(name, tried)
            if folder is not None:
                return folder
    else:
        tried.append(
            f"bundled worlds and local folders: skipped because revision={download.revision!r} pins a Hub repo"
        )
    folder = _find_on_hub(name, download, tried)
    if folder is not None:
        return folder
    listing = "\n".join(f"  - {entry}" for entry in tried)
    raise CheckpointNotFoundError(f"no worldsim checkpoint found for {name!r}; tried:\n{listing}")


def _find_bundled(name: str, tried: list[str]) -> Path | None:
    folder = bundled_folder(name)
    if folder is None:
        tried.append(f"bundled world: {name!r} is not one of {sorted(BUNDLED_WORLDS)}")
        return None
    if (folder / CONFIG_FILE).is_file():
        return folder
    tried.append(
        f"bundled world {name!r}: {folder} holds no checkpoint yet; its weights are produced by "
        f"`{BUNDLED_WORLDS[name]}` and then copied there with save_pretrained"
    )
    return None


def _find_local(name: str, tried: list[str]) -> Path | None:
    folder = Path(name).expanduser()
    if not folder.is_dir():
        tried.append(f"local folder: {folder.resolve()} does not exist")
        return None
    if not (folder / CONFIG_FILE).is_file():
        tried.append(f"local folder: {folder.resolve()} has no {CONFIG_FILE}")
        return None
    return folder


def _find_on_hub(name: str, download: HubDownload, tried: list[str]) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if name.count("/") != 1:
            raise HFValidationError("a repo id has the form 'org/name'")
        validate_repo_id(name)
    except HFValidationError as error:
        tried.append(f"Hugging Face Hub: {name!r} is not a repo id ({error})")
        return None
    offline = download.offline()
    where = (f"Hugging Face Hub repo {name!r} (revision {download.revision or 'main'}, "
             f"{'offline cache' if offline else 'online'})")  # fmt: skip
    try:
        folder = Path(
            snapshot_download(
                name,
                revision=download.revision,
                cache_dir=download.cache_folder(),
                token=download.token,
                force_download=download.force_download,
                local_files_only=offline,
                allow_patterns=HUB_PATTERNS,
                library_name="worldsim",
                library_version=__version__,
            )
        )
    except Exception as error:  # every Hub failure becomes one line of the "tried" list
        tried.append(f"{where}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        return None
    if not (folder / CONFIG_FILE).is_file():
        tried.append(f"{where}: downloaded to {folder} but it has no {CONFIG_FILE}")
        return None
    return folder


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, but read now rather than at import time."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is None:
        return bool(constants.HF_HUB_OFFLINE)
    return value.strip().lower() in {"1", "on", "yes", "true"}


# ----------------------------------------------------------------------------------------------
# Model card and upload

LICENSE = "apache-2.0"  # worldsim's own licence; the weights it trains are released under it too
CARD_TAGS = ["worldsim", "world-model", "video-generation", "reinforcement-learning", "gymnasium"]


def model_card(
    config: CheckpointConfig,
    parameter_counts: Mapping[str, int],
    num_context_frames: int,
    repo_id: str | None = None,
) -> str:
    """A README.md for the Hub (`huggingface_hub.ModelCard`): metadata header + generated body."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(library_name="worldsim", license=LICENSE, tags=list(CARD_TAGS),
                         model_name=config.metadata.get("name"))  # fmt: skip
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + _card_body(config, parameter_counts,
                                                                        num_context_frames, repo_id)))


def _card_body(
    config: CheckpointConfig, parameter_counts: Mapping[str, int], num_context_frames: int, repo_id: str | None
) -> str:
    """The card's markdown: how to load it, the model, events, measures, training and files."""
    load_name = repo_id or "path/to/this/folder"
    world = config.world
    lines = [
        f"# {config.metadata.get('name', repo_id or 'worldsim world')}",
        "",
        "A causal few-step video diffusion world model for worldsim: it generates one frame per action, "
        "conditioned on free-text events, and runs as a game engine or a Gymnasium environment.",
        "",
        "```python",
        "import worldsim",
        f'wm = worldsim.load("{load_name}", device="cpu")',
        "sim = wm.simulator(batch_size=1, seed=0)",
        'frames = sim.reset(event="a sunny meadow")',
        "frames, reward, terminated = sim.step([0])",
        "```",
        "",
        "## Model",
        "",
        "| module | parameters |",
        "|---|---|",
    ]
    lines += [f"| {module} | {count:,} |" for module, count in parameter_counts.items()]
    lines += [f"| **total** | {sum(parameter_counts.values()):,} |", ""]
    lines += _world_summary(world, num_context_frames, _game(config))
    if config.event_texts:
        lines += ["", "## Events it knows", ""] + [f"- {text}" for text in config.event_texts]
    evaluation = config.metadata.get("evaluation")
    if evaluation:
        lines += ["", *_evaluation_section(evaluation, _game(config))]
    training = {key: value for key, value in config.metadata.items() if key not in ("name", "evaluation")}
    lines += ["", "## Training", ""]
    if training:
        lines += ["```json", json.dumps(training, indent=2, sort_keys=True), "```"]
    else:
        lines += ["No training metadata recorded (random or externally trained weights)."]
    lines += [
        "",
        "## Files",
        "",
        f"worldsim checkpoint format {FORMAT_VERSION}, written by worldsim {config.worldsim_version}: "
        "`config.json`, `tokenizer.json`, and safetensors weights per module "
        f"({', '.join(MODULE_FILES.values())}, {CONTEXT_FILE}). No pickled files.",
        "",
    ]
    return "\n".join(lines)


def _game(config: CheckpointConfig) -> "GameSpec":
    from worldsim.games import game_for_metadata

    return game_for_metadata(config.metadata, int(config.world["num_actions"]))


def _evaluation_section(evaluation: Mapping[str, Any], game: "GameSpec") -> list[str]:
    """The measured-fidelity table `worldsim eval --update-card` stored in the metadata."""
    against = (f"the {game.display_name} truth" if game.ground_truth is not None
               else f"recorded play of {game.display_name}")
    lines = [f"## Measured against {against}", "",
             f"`worldsim eval --suite {evaluation['suite']}` (seed {evaluation['seed']}), {evaluation['date']}, "
             f"{evaluation['machine']}, {evaluation['wall_time_s']} s. Columns are defined in worldsim's "
             "docs/METRICS.md (TF = teacher-forced next frame; PSNR@h = frame h of a free rollout).", "",
             "| measure | value |", "|---|---|"]
    return lines + [f"| {name} | {value} |" for name, value in evaluation["measures"].items()]


def _fresh_noise_note(share: float) -> str:
    """The card's note on the sampler's share of fresh noise, when it is not the usual all-fresh."""
    return "" if share == 1.0 else f", fresh noise share {share} (the rest the noise each step implies)"


def _reader_note(net: Mapping[str, Any]) -> str:
    """The card's note on the local path's history reader, when there is one."""
    if not net.get("local_reader_channels"):
        return ""
    return ", a history reader" + (" read by the stem" if net.get("local_reader_feeds_stem", True) else "")


def _reader_start_note(level: float) -> str:
    """The card's note on starting frames from the history reader's guess, when that is on."""
    return "" if not level else f", frames start from the history reader's guess noised to {level}"


def _world_summary(world: Mapping[str, Any], num_context_frames: int, game: "GameSpec") -> list[str]:
    """Headline settings of a `WorldConfig.to_dict()` and the game it plays."""
    net, sampling, events = world["transformer"], world["sampling"], world["events"]
    size, latent = world["image_size"], net["latent_size"]
    rows = {
        "frames": f"{size}x{size} RGB",
        "game": game.display_name,
        "actions": f"{world['num_actions']} discrete ({', '.join(game.action_names)})",
        "latents": f"{net['latent_channels']} x {latent}x{latent}",
        "transformer": f"dim {net['dim']}, depth {net['depth']}, {net['num_heads']} heads, "
        f"{(latent // net['patch_size']) ** 2} tokens per frame",
        "local path": (f"{net['local_channels']} channels at latent resolution, {net['local_frames']} previous "
                       f"latents{', action-chosen kernel' if net.get('local_action_conv') else ''}"
                       f"{', older ones lined up by the scroll' if net.get('local_align_history') else ''}"
                       f"{_reader_note(net)}"
                       if net.get("local_channels") else "none"),
        "kv cache": f"{net['sink_frames']} sink + {net['window_frames']} window frames",
        "sampling": f"{sampling['num_steps']} steps (first frame {sampling['first_frame_steps']}), "
        f"sigma shift {sampling['sigma_shift']}, re-cache on switch {sampling['recache_on_switch']}"
        + _fresh_noise_note(sampling.get("fresh_noise", 1.0)) + _reader_start_note(sampling.get("reader_start", 0.0)),
        "event encoder": f"{events['dim']}-d vectors, at most {events['max_tokens']} tokens"
        + (", the change since the frame before a condition of its own" if net.get("event_change") else ""),
        "context frames": str(num_context_frames),
    }
    return ["| setting | value |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows.items()]


def upload_folder(
    folder: Path,
    repo_id: str,
    *,
    branch: str | None = None,
    create_pr: bool | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload worldsim world",
) -> str:
    """Create `repo_id` if needed and upload the checkpoint files of `folder` in one commit.

    As `ModelHubMixin.push_to_hub`: `branch` is the branch to commit to (created from main when it
    does not exist yet; None = main) and `create_pr=True` opens a pull request against it instead.
    Returns the commit URL (or the pull request's).
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    if branch is not None:
        api.create_branch(repo_id, branch=branch, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        revision=branch,
        create_pr=create_pr,
        commit_message=commit_message,
        allow_patterns=HUB_PATTERNS,
    )
    return str(getattr(info, "pr_url", None) or getattr(info, "commit_url", info))
