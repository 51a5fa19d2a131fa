"""A run's hyper-parameters: ``run.config`` and the loaders for its sources.

Not to be confused with ``Settings`` (how nbtrack itself behaves).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError
from .values import (
    MAX_CONFIG_VALUE_BYTES,
    MAX_DEPTH,
    MAX_VALUES,
    TooComplex,
    check_expansion,
    encoded_size,
    json_friendly,
)

DEFAULTS_FILE = "config-defaults.yaml"
_WANDB_KEYS = ("wandb_version", "_wandb")


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        return False


def check_key(key: Any, argument: str = "config") -> str:
    if not isinstance(key, str):
        raise UsageError(f"{argument}: keys must be strings, got {key!r}")
    if "." in key:
        parts = key.split(".")
        nested = "{" + ": {".join(repr(p) for p in parts[:-1]) + f": {{{parts[-1]!r}: ...}}" + "}" * (len(parts) - 1)
        raise UsageError(
            f"{argument}: key {key!r} contains '.', which config keys may not; nest it instead, e.g. {nested}"
        )
    return key


def _check_nested_keys(value: Any, argument: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            check_key(k, argument)
            _check_nested_keys(v, argument)
    elif isinstance(value, list):
        for v in value:
            _check_nested_keys(v, argument)


def clean_value(key: str, value: Any, argument: str = "config") -> Any:
    """Convert one config value to a JSON-friendly one and enforce the size limit."""
    try:
        value = json_friendly(value)
    except TooComplex as exc:
        raise UsageError(
            f"{argument}: the value of {key!r} {exc}; config values may nest at most {MAX_DEPTH} "
            f"levels and expand to at most {MAX_VALUES:,} values, without cycles"
        ) from None
    _check_nested_keys(value, argument)
    size = encoded_size(value)
    if size > MAX_CONFIG_VALUE_BYTES:
        raise UsageError(
            f"{argument}: the value of {key!r} is {size / 1e6:.1f} MB as JSON; config values "
            f"must be at most {MAX_CONFIG_VALUE_BYTES // (1024 * 1024)} MB. Log large data "
            "with run.log() or save it as a file instead"
        )
    return value


class Config:
    """A run's hyper-parameters, read and written like a dict or as attributes.

    Parameters
    ----------
    data
        Initial values (already loaded and filtered).
    allow_val_change
        Whether a key that is set may later be given a different value.
    on_change
        Called with a copy of the whole config after every change.
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        allow_val_change: bool = False,
        on_change: Callable[[dict], None] | None = None,
    ) -> None:
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_allow_val_change", allow_val_change)
        object.__setattr__(self, "_on_change", on_change)
        object.__setattr__(self, "_locked", None)
        for key, value in (data or {}).items():
            self._data[check_key(key)] = clean_value(key, value)

    # --------------------------------------------------------------- reading
    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._data == other._data
        return isinstance(other, Mapping) and self._data == dict(other)

    def keys(self):
        return self._data.keys()

    def values(self):
        return self._data.values()

    def items(self):
        return self._data.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._data))

    def __repr__(self) -> str:
        return f"Config({self._data!r})"

    # --------------------------------------------------------------- writing
    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_"):
            raise AttributeError(f"config keys may not start with '_': {key!r}")
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        self._check_open()
        del self._data[key]
        self._changed()

    def update(self, values: Mapping[str, Any] | Any, allow_val_change: bool | None = None) -> None:
        """Set several keys at once.

        Raises
        ------
        ConfigError
            If a key already holds a different value and changes are not allowed,
            by this call's ``allow_val_change`` or the run's.
        """
        self._check_open()
        incoming = load_config(values, argument="config.update")
        allow = self._allow_val_change if allow_val_change is None else allow_val_change
        cleaned = {}
        for key, value in incoming.items():
            check_key(key)
            value = clean_value(key, value)
            if not allow and key in self._data and not _same(self._data[key], value):
                raise ConfigError(
                    f"config key {key!r} is already {self._data[key]!r}; refusing to change it "
                    f"to {value!r} because allow_val_change is False. Pass "
                    "allow_val_change=True to init() or to config.update(), or log values "
                    "that change during training with run.log()"
                )
            cleaned[key] = value
        if cleaned:
            self._data.update(cleaned)
            self._changed()

    def setdefaults(self, values: Mapping[str, Any]) -> None:
        """Set the keys that are not set yet; leave the others alone."""
        self.update({k: v for k, v in load_config(values).items() if k not in self._data})

    def _lock(self, reason: str) -> None:
        """Refuse every later change, saying ``reason`` (the run has finished)."""
        object.__setattr__(self, "_locked", reason)

    def _check_open(self) -> None:
        if self._locked:
            raise UsageError(f"config cannot be changed: {self._locked}")

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(dict(self._data))


def _read_yaml(path: Path, argument: str) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(
            f"{argument}: no YAML file at {str(path)!r}; a string config is read as the path of a YAML file"
        ) from None
    except OSError as exc:
        raise UsageError(f"{argument}: cannot read {str(path)!r}: {exc}") from None
    data = load_yaml(text, f"{argument}: {str(path)!r}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(
            f"{argument}: {str(path)!r} must hold a mapping of keys to values, got a {type(data).__name__}"
        )
    return unwrap_value_desc(data)


class InvalidYaml(UsageError):
    """Text that does not parse as YAML."""


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML safely: plain data only (``safe_load``), and a document whose aliases
    expand it beyond ``MAX_VALUES`` values, or nest it deeper than ``MAX_DEPTH``, or make
    it contain itself, is refused at once (a few hundred bytes of aliases can otherwise
    stand for billions of values).

    Raises
    ------
    UsageError
        Naming ``where``, for invalid YAML and for such documents.
    """
    import yaml  # only when YAML is used: keeps `import nbtrack` light

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidYaml(f"{where} is not valid YAML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{where} nests too deeply to read (at most {MAX_DEPTH} levels)") from None
    try:
        check_expansion(data)
    except TooComplex as exc:
        raise UsageError(
            f"{where} is refused: its YAML {exc} (YAML aliases may repeat a part; at most "
            f"{MAX_VALUES:,} values and {MAX_DEPTH} levels are accepted)"
        ) from None
    return data


def unwrap_value_desc(data: dict[str, Any]) -> dict[str, Any]:
    """Accept the ``key: {value: ..., desc: ...}`` form of YAML configs users bring from wandb.

    The form is recognised when the file has a ``wandb_version`` key or when every
    entry is a mapping with a ``value`` and nothing but an optional ``desc``.
    """
    entries = {k: v for k, v in data.items() if k not in _WANDB_KEYS}

    def wrapped(v: Any) -> bool:
        return isinstance(v, dict) and "value" in v and set(v) <= {"value", "desc"}

    if entries and ("wandb_version" in data or all(wrapped(v) for v in entries.values())):
        return {k: v["value"] if wrapped(v) else v for k, v in entries.items()}
    return entries if "_wandb" in data else data


def load_config(source: Any, argument: str = "config") -> dict[str, Any]:
    """Read a config source: a mapping, a YAML path, argparse/absl flags or any object."""
    if source is None:
        return {}
    if isinstance(source, Config):
        return dict(source.items())
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (str, os.PathLike)):
        return _read_yaml(Path(source).expanduser(), argument)
    flag_values = getattr(source, "flag_values_dict", None)
    if callable(flag_values):  # absl.flags.FLAGS
        return dict(flag_values())
    if hasattr(source, "__dict__") and not isinstance(source, type):
        return {k: v for k, v in vars(source).items() if not k.startswith("_")}
    raise UsageError(
        f"{argument}: expected a dict, a path to a YAML file, an argparse.Namespace, "
        f"absl flags or an object with attributes; got {type(source).__name__}"
    )


def build_config(
    source: Any,
    *,
    include: Any = None,
    exclude: Any = None,
    cwd: Path,
    paths: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The initial config of a run: ``config-defaults.yaml``, the YAML files of ``paths``
    (``NBTRACK_CONFIG_PATHS`` or wandb's ``WANDB_CONFIG_PATHS``), then ``source``, then
    the filters."""
    if include is not None and exclude is not None:
        raise UsageError("config_include_keys and config_exclude_keys cannot be used together; pass one of them")
    data: dict[str, Any] = {}
    defaults = cwd / DEFAULTS_FILE
    if defaults.is_file():
        data.update(_read_yaml(defaults, DEFAULTS_FILE))
    for path in paths:
        data.update(_read_yaml((cwd / path).expanduser(), "NBTRACK_CONFIG_PATHS"))
    data.update(load_config(source))
    for name, keys in (("config_include_keys", include), ("config_exclude_keys", exclude)):
        if keys is None:
            continue
        if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
            raise UsageError(f"{name}: expected a list of key names (strings), got {keys!r}")
        if name == "config_include_keys":
            data = {k: v for k, v in data.items() if k in keys}
        else:
            data = {k: v for k, v in data.items() if k not in keys}
    return {check_key(key): clean_value(key, value) for key, value in data.items()}
