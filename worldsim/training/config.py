"""Dataclass configs for training stages: strict loading from JSON/TOML and `--set key=value` overrides.

Every stage config is a dataclass deriving from `TrainConfig`. A config file (JSON, or TOML read
with the standard library's `tomllib`; on Python 3.10 with its backport `tomli`, a dependency
there) may set any subset of its fields; nested dataclass fields are nested
tables / objects, and overrides address them with dotted keys (`--set model.depth=4`). Unknown
keys and values of the wrong type are rejected with an error naming the key, before anything runs.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union

__all__ = ["ConfigError", "TrainConfig", "load_config", "apply_overrides", "config_to_dict"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: `tomli` is tomllib's backport (a dependency there)
    try:
        import tomli as tomllib
    except ImportError:  # JSON configs still work; a TOML one is a clear error
        tomllib = None
_DECODE_ERRORS: tuple[type[Exception], ...] = (json.JSONDecodeError,) + (
    (tomllib.TOMLDecodeError,) if tomllib is not None else ()
)

C = TypeVar("C")


class ConfigError(ValueError):
    """A config file or override names an unknown key or gives a value of the wrong type."""


@dataclass
class TrainConfig:
    """Fields every stage shares; stages subclass this and add their own."""

    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    progress: bool = True
    tensorboard: bool = False  # needs the tensorboard package
    # > 0: every N steps the stage's diagnostics (where it has them: the action-branch test, the
    # collision probe) are logged, so a run that does not separate its moves shows within minutes.
    diagnose_every: int = 0
    # > 0: this invocation stops after this many minutes of wall time (checkpoint and final world
    # written as at the end), so a run fits a lease or a session; `--resume` continues toward `steps`.
    max_minutes: float = 0.0

    def validate(self) -> None:
        """Reject values no run could use; stages extend this with their own checks."""
        positive = ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.diagnose_every < 0:
            raise ConfigError(f"diagnose_every must be >= 0, got {self.diagnose_every}")
        if not (math.isfinite(self.max_minutes) and self.max_minutes >= 0):
            raise ConfigError(f"max_minutes must be a finite number >= 0, got {self.max_minutes}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr}")
        for name in ("weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("tensorboard = true needs the tensorboard package (pip install tensorboard), "
                              "or set tensorboard = false (metrics.csv is always written)")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_inner(tp: Any) -> Any | None:
    """`X | None` / `Optional[X]` -> X; anything else -> None."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check a JSON/TOML value against a field type; ints are accepted where floats are expected."""
    inner = _optional_inner(tp)
    if inner is not None:
        return None if value is None else _coerce(value, inner, key)
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table/object, got {value!r}")
        key_type, value_type = typing.get_args(tp) or (Any, Any)
        return {_coerce(k, key_type, key): _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def _build(cls: type[C], data: dict[str, Any], prefix: str = "") -> C:
    """Instantiate dataclass `cls` from a mapping, recursing into nested dataclasses."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table/object, got {data!r}")
    types_by_name = _field_types(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s} for {cls.__name__}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = types_by_name[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _parse_override_value(text: str, tp: Any, key: str) -> Any:
    """Parse the right-hand side of `key=value` for a field of type `tp`."""
    inner = _optional_inner(tp)
    if inner is not None:
        return None if text.lower() in ("none", "null") else _parse_override_value(text, inner, key)
    if tp is str:
        return text
    if tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {text!r}")
    if typing.get_origin(tp) in (tuple, list) and not text.lstrip().startswith("["):
        text = "[" + text + "]"  # allow `--set sizes=1,2,3`
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{key}: cannot parse {text!r} as {getattr(tp, '__name__', tp)}") from None
    return _coerce(value, tp, key)


def apply_overrides(config: C, overrides: list[str] | tuple[str, ...]) -> C:
    """Return a copy of `config` with `key=value` (dotted keys for nested fields) applied."""
    data = dataclasses.asdict(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        cls: Any = type(config)
        target = data
        parts = key.split(".")
        for depth, part in enumerate(parts):
            types_by_name = _field_types(cls)
            if part not in types_by_name:
                known = ", ".join(sorted(types_by_name))
                raise ConfigError(f"unknown config key {key!r} ({part!r} not in {cls.__name__}: {known})")
            tp = types_by_name[part]
            if depth < len(parts) - 1:
                if not dataclasses.is_dataclass(tp):
                    raise ConfigError(f"config key {key!r}: {part!r} has no sub-keys")
                cls, target = tp, target[part]
            else:
                if dataclasses.is_dataclass(tp):
                    raise ConfigError(f"config key {key!r} is a section; set one of its keys")
                target[part] = _parse_override_value(text, tp, key)
    return _build(type(config), data)


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                base: C | None = None) -> C:
    """Defaults of `cls` (or `base`), then a JSON/TOML file's values, then `key=value` overrides; validated."""
    config = cls() if base is None else base
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        if path.suffix == ".toml" and tomllib is None:
            raise ConfigError(f"config file {path}: reading TOML on Python 3.10 needs the tomli package "
                              "(pip install tomli), or give the config as .json")
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(path.read_text())
            elif path.suffix == ".json":
                data = json.loads(path.read_text())
            else:
                raise ConfigError(f"config file {path} must end in .json or .toml")
        except _DECODE_ERRORS as error:
            raise ConfigError(f"config file {path} is not valid: {error}") from None
        merged = dataclasses.asdict(config)
        _merge(merged, data)
        config = _build(cls, merged)
    config = apply_overrides(config, list(overrides))
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    """Deep-merge `update` into `base` so a file may set only some keys of a nested section."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
