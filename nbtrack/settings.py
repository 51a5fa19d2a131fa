"""How nbtrack behaves: ``Settings`` and its environment variables.

``Settings`` is not a run's hyper-parameters (that is ``run.config``); it says where
runs are stored, which mode they use, how often the writer flushes, and which
defaults ``init()`` falls back on.  Precedence, highest first: explicit ``init()``
arguments, a ``Settings`` object (or dict) passed to ``init``, ``NBTRACK_*``
environment variables (read at every ``init``), then the defaults below.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import diagnostics
from .errors import UsageError, choices
from .records import Record


def _text(value: str) -> str:
    return value


def _flag(value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _tags(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


def _flag_or_false(value: str) -> bool:
    try:
        return _flag(value)
    except ValueError:
        return False


def _seconds(value: str) -> float:
    return float(value)


MAX_SECONDS = 7 * 24 * 3600.0  # a week: any longer interval or timeout is a typo


def _resume(value: str) -> Any:
    low = value.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    return value.strip()


def _paths(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


# name -> (environment variable, parser of its text, default, wandb's variable read when
# nbtrack's is unset: code written for wandb keeps its launch scripts)
_FIELDS: dict[str, tuple[str | None, Callable[[str], Any], Any, str | None]] = {
    "project": ("NBTRACK_PROJECT", _text, None, "WANDB_PROJECT"),
    "entity": ("NBTRACK_ENTITY", _text, None, "WANDB_ENTITY"),
    "mode": ("NBTRACK_MODE", _text, None, "WANDB_MODE"),
    "dir": ("NBTRACK_DIR", _text, None, "WANDB_DIR"),
    "run_id": ("NBTRACK_RUN_ID", _text, None, "WANDB_RUN_ID"),
    "run_name": ("NBTRACK_NAME", _text, None, "WANDB_NAME"),
    "run_notes": ("NBTRACK_NOTES", _text, None, "WANDB_NOTES"),
    "run_tags": ("NBTRACK_TAGS", _tags, None, "WANDB_TAGS"),
    "run_group": ("NBTRACK_RUN_GROUP", _text, None, "WANDB_RUN_GROUP"),
    "run_job_type": ("NBTRACK_JOB_TYPE", _text, None, "WANDB_JOB_TYPE"),
    "resume": ("NBTRACK_RESUME", _resume, None, "WANDB_RESUME"),
    "reinit": ("NBTRACK_REINIT", _resume, None, None),
    "save_code": ("NBTRACK_SAVE_CODE", _flag, None, "WANDB_SAVE_CODE"),
    "anonymous": ("NBTRACK_ANONYMOUS", _text, None, "WANDB_ANONYMOUS"),
    "tracking_uri": ("NBTRACK_TRACKING_URI", _text, None, None),
    "quiet": ("NBTRACK_QUIET", _flag, False, "WANDB_SILENT"),
    "notebook_name": ("NBTRACK_NOTEBOOK_NAME", _text, None, "WANDB_NOTEBOOK_NAME"),
    "config_paths": ("NBTRACK_CONFIG_PATHS", _paths, None, "WANDB_CONFIG_PATHS"),
    "disable_git": ("NBTRACK_DISABLE_GIT", _flag, False, "WANDB_DISABLE_GIT"),
    "flush_interval": ("NBTRACK_FLUSH_INTERVAL", _seconds, 0.25, None),
    "finish_timeout": ("NBTRACK_FINISH_TIMEOUT", _seconds, 30.0, None),
    "heartbeat_interval": ("NBTRACK_HEARTBEAT_INTERVAL", _seconds, 5.0, None),
    "stale_after": ("NBTRACK_STALE_AFTER", _seconds, 60.0, None),
    "system_interval": ("NBTRACK_SYSTEM_INTERVAL", _seconds, 10.0, None),
    "tracking_insecure": ("NBTRACK_TRACKING_INSECURE_TLS", _flag, None, None),
    "sync_timeout": ("NBTRACK_SYNC_TIMEOUT", _seconds, 30.0, None),
    "init_timeout": ("NBTRACK_INIT_TIMEOUT", _seconds, 10.0, "WANDB_INIT_TIMEOUT"),
}

# (save_code, resume, mode, project, entity, anonymous, force, reinit, fork_from and
# resume_from are init() arguments in nbtrack: passed as settings they say so)
_INIT_ARGUMENTS = (
    "save_code",
    "resume",
    "mode",
    "project",
    "entity",
    "anonymous",
    "force",
    "reinit",
    "fork_from",
    "resume_from",
)
# wandb.Settings names code written for wandb passes: the nbtrack field each sets (with a
# value converter), or None when it means nothing here (accepted, and said once)
WANDB_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]] | None] = {
    "silent": ("quiet", bool),
    "quiet": ("quiet", bool),
    "disable_git": ("disable_git", bool),
    "x_disable_git": ("disable_git", bool),
    "_disable_stats": ("system_interval", lambda v: 0 if v else None),
    "x_disable_stats": ("system_interval", lambda v: 0 if v else None),
    "x_stats_sampling_interval": ("system_interval", float),
    "run_id": ("run_id", str),
    "run_name": ("run_name", str),
    "run_notes": ("run_notes", str),
    "run_group": ("run_group", str),
    "run_job_type": ("run_job_type", str),
    "run_tags": ("run_tags", tuple),
    "root_dir": ("dir", str),
    "notebook_name": ("notebook_name", str),
    "init_timeout": ("init_timeout", float),
    **{
        name: None
        for name in (
            "start_method",
            "console",
            "console_multipart",
            "_disable_meta",
            "x_disable_meta",
            "disable_code",
            "disable_job_creation",
            "_service_wait",
            "x_service_wait",
            "program",
            "program_relpath",
            "base_url",
            "api_key",
            "show_info",
            "show_warnings",
            "show_errors",
            "show_emoji",
            "show_colors",
            "sync_tensorboard",
            "_require_core",
            "x_require_core",
            "_stats_pid",
            "x_stats_pid",
            "heartbeat_seconds",
            "allow_offline_artifacts",
            "code_dir",
            "host",
            "username",
            "email",
            "_disable_service",
            "x_disable_service",
            "label_disable",
            "x_label",
            "_disable_machine_info",
            "x_disable_machine_info",
            "x_primary",
        )
    },
    **dict.fromkeys(_INIT_ARGUMENTS),
}


class Settings:
    """How nbtrack behaves for one ``init`` call.

    Parameters
    ----------
    **values
        Any of the fields in ``Settings.fields()``.  ``None`` means "not set here",
        so a lower layer (environment variable, default) decides.

    Raises
    ------
    UsageError
        For a name that is not a settings field.
    """

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:
        own = {k: v for k, v in values.items() if k in _FIELDS}
        for key in sorted(set(values) - set(_FIELDS)):
            if key not in WANDB_SETTINGS:
                raise UsageError(
                    f"settings: unknown key {key!r}; accepted keys are {', '.join(sorted(_FIELDS))} "
                    "(and the wandb.Settings names docs/moving-from-wandb.md lists)"
                )
            mapped = WANDB_SETTINGS[key]
            if key in _INIT_ARGUMENTS:
                diagnostics.warn_once(f"settings:{key}", f"nbtrack: settings {key}= is ignored; pass {key}= to init()")
            elif mapped is None:
                diagnostics.warn_once(f"settings:{key}", f"nbtrack: the wandb setting {key!r} has no effect in nbtrack")
            elif values[key] is not None and mapped[0] not in own:
                converted = mapped[1](values[key])
                if converted is not None:
                    own[mapped[0]] = converted
        self._values = {k: v for k, v in own.items() if v is not None}

    @staticmethod
    def fields() -> tuple[str, ...]:
        return tuple(_FIELDS)

    @classmethod
    def coerce(cls, settings: Settings | Mapping[str, Any] | None) -> Settings:
        """Accept a ``Settings``, a dict or ``None`` (the ``settings=`` argument)."""
        if settings is None:
            return cls()
        if isinstance(settings, Settings):
            return settings
        if isinstance(settings, Mapping):
            bad = [k for k in settings if not isinstance(k, str)]
            if bad:
                raise UsageError(f"settings: keys must be strings, got {bad[0]!r}")
            return cls(**settings)
        raise UsageError(f"settings: expected an nbtrack.Settings or a dict, got {type(settings).__name__}")

    def __getattr__(self, name: str) -> Any:
        if name in _FIELDS:
            return self._values.get(name)
        raise AttributeError(name)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self._values.items())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Settings({inner})"

    def resolve(self, environ: Mapping[str, str] | None = None) -> ResolvedSettings:
        """Layer these values over ``NBTRACK_*`` variables and the defaults."""
        env = os.environ if environ is None else environ
        out: dict[str, Any] = {}
        for name, (var, parse, default, wandb_var) in _FIELDS.items():
            if name in self._values:
                out[name] = self._values[name]
                continue
            raw = env.get(var) if var else None
            if (raw is None or raw == "") and wandb_var:
                raw, var = env.get(wandb_var), wandb_var
            if name == "tracking_uri" and not raw:
                # MLflow's own variable counts when it names a server (not a local sqlite/file store)
                mlflow_uri = (env.get("MLFLOW_TRACKING_URI") or "").strip()
                raw = mlflow_uri if mlflow_uri.lower().startswith(("http://", "https://")) else None
            if raw is not None and raw != "":
                try:
                    out[name] = parse(raw)
                except ValueError as exc:
                    raise UsageError(f"{var}={raw!r} is not valid: {exc}") from None
            else:
                out[name] = default
        if out["mode"] is None and "NBTRACK_MODE" not in env and _flag_or_false(env.get("WANDB_DISABLED", "")):
            out["mode"] = "disabled"  # wandb's WANDB_DISABLED=true
        return ResolvedSettings(**out)


SECONDS_FIELDS = (
    "flush_interval",
    "finish_timeout",
    "heartbeat_interval",
    "stale_after",
    "system_interval",
    "sync_timeout",
    "init_timeout",
)


class ResolvedSettings(Record):
    """Every settings field with its value (or ``None``), after precedence and checks."""

    project: str | None
    entity: str | None
    mode: str | None
    dir: str | None
    run_id: str | None
    run_name: str | None
    run_notes: str | None
    run_tags: tuple[str, ...] | None
    run_group: str | None
    run_job_type: str | None
    resume: Any
    reinit: Any
    save_code: bool | None
    anonymous: str | None
    tracking_uri: str | None
    quiet: bool
    notebook_name: str | None
    flush_interval: float
    finish_timeout: float
    heartbeat_interval: float
    stale_after: float
    system_interval: float
    tracking_insecure: bool | None
    sync_timeout: float
    init_timeout: float
    config_paths: tuple[str, ...] | None
    disable_git: bool

    def __post_init__(self) -> None:
        for name in SECONDS_FIELDS:
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
                or not 0 <= value <= MAX_SECONDS
            ):
                var = _FIELDS[name][0]
                raise UsageError(
                    f"settings: {name} (or {var}) must be a finite number of seconds from 0 to "
                    f"{MAX_SECONDS:,.0f} (a week), got {value!r}"
                )
        if self.mode is not None and not isinstance(self.mode, str):
            raise UsageError(f"settings: mode must be one of {choices(MODES)}")


MODES = ("online", "offline", "disabled")
