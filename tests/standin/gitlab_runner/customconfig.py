"""``[runners.custom]`` (common/config.go ``CustomConfig``) with the custom executor's
timeout getters (executors/custom/config.go ``GetConfigExecTimeout``,
``GetPrepareExecTimeout``, ``GetCleanupScriptTimeout``, ``GetGracefulKillTimeout``,
``GetForceKillTimeout``, ``getDuration``; defaults: executors/custom/consts.go and
helpers/process/killer.go ``GracefulTimeout``/``KillTimeout``), and the stand-in's key
guard for a custom runner (the docker one is :mod:`.configkeys`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import configkeys
from .errors import RUNNER_SYSTEM_FAILURE, BuildError

#: executors/custom/consts.go
DEFAULT_CONFIG_EXEC_TIMEOUT = 3600.0
DEFAULT_PREPARE_EXEC_TIMEOUT = 3600.0
DEFAULT_CLEANUP_EXEC_TIMEOUT = 3600.0
#: helpers/process/killer.go ``GracefulTimeout`` (10 min) and ``KillTimeout`` (10 s)
GRACEFUL_TIMEOUT = 600.0
KILL_TIMEOUT = 10.0

#: ``CustomConfig``'s toml keys, all replayed by :mod:`.custom`.
CUSTOM_KEYS = (
    "config_exec",
    "config_args",
    "config_exec_timeout",
    "prepare_exec",
    "prepare_args",
    "prepare_exec_timeout",
    "run_exec",
    "run_args",
    "cleanup_exec",
    "cleanup_args",
    "cleanup_exec_timeout",
    "graceful_kill_timeout",
    "force_kill_timeout",
)
#: ``[[runners]]`` keys a custom runner reads beyond the common ones of
#: :data:`configkeys.MODELLED_RUNNER_KEYS`.
CUSTOM_RUNNER_KEYS = {
    "custom": "customconfig.py CustomConfig",
    "shell": "buildinfo.py shell (updateShell)",
    "custom_build_dir": "custom.py start_build (CustomBuildEnabled)",
}


def _duration(value: int | None, default: float) -> float:
    """``getDuration``: seconds; unset or <= 0 is the default."""
    return float(value) if value is not None and value > 0 else default


def _optional_int(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    return None if value is None else int(value)


@dataclass
class CustomConfig:
    """``CustomConfig``."""

    config_exec: str = ""
    config_args: list[str] = field(default_factory=list)
    config_exec_timeout: int | None = None
    prepare_exec: str = ""
    prepare_args: list[str] = field(default_factory=list)
    prepare_exec_timeout: int | None = None
    run_exec: str = ""
    run_args: list[str] = field(default_factory=list)
    cleanup_exec: str = ""
    cleanup_args: list[str] = field(default_factory=list)
    cleanup_exec_timeout: int | None = None
    graceful_kill_timeout: int | None = None
    force_kill_timeout: int | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CustomConfig:
        """Parse the ``[runners.custom]`` table."""

        def strings(key: str) -> list[str]:
            return [str(item) for item in raw.get(key) or []]

        return cls(
            config_exec=str(raw.get("config_exec", "")),
            config_args=strings("config_args"),
            config_exec_timeout=_optional_int(raw, "config_exec_timeout"),
            prepare_exec=str(raw.get("prepare_exec", "")),
            prepare_args=strings("prepare_args"),
            prepare_exec_timeout=_optional_int(raw, "prepare_exec_timeout"),
            run_exec=str(raw.get("run_exec", "")),
            run_args=strings("run_args"),
            cleanup_exec=str(raw.get("cleanup_exec", "")),
            cleanup_args=strings("cleanup_args"),
            cleanup_exec_timeout=_optional_int(raw, "cleanup_exec_timeout"),
            graceful_kill_timeout=_optional_int(raw, "graceful_kill_timeout"),
            force_kill_timeout=_optional_int(raw, "force_kill_timeout"),
        )

    def config_timeout(self) -> float:
        """``GetConfigExecTimeout``."""
        return _duration(self.config_exec_timeout, DEFAULT_CONFIG_EXEC_TIMEOUT)

    def prepare_timeout(self) -> float:
        """``GetPrepareExecTimeout``."""
        return _duration(self.prepare_exec_timeout, DEFAULT_PREPARE_EXEC_TIMEOUT)

    def cleanup_timeout(self) -> float:
        """``GetCleanupScriptTimeout``."""
        return _duration(self.cleanup_exec_timeout, DEFAULT_CLEANUP_EXEC_TIMEOUT)

    def graceful_kill(self) -> float:
        """``GetGracefulKillTimeout``."""
        return _duration(self.graceful_kill_timeout, GRACEFUL_TIMEOUT)

    def force_kill(self) -> float:
        """``GetForceKillTimeout``."""
        return _duration(self.force_kill_timeout, KILL_TIMEOUT)


def load(raw: dict[str, Any]) -> CustomConfig:
    """custom.go ``prepareConfig``: a ``[runners.custom]`` table with ``run_exec``, else a
    BuildError ("custom executor not configured" / "... is missing RunExec")."""
    section = raw.get("custom")
    if not isinstance(section, dict):
        raise BuildError("custom executor not configured")
    config = CustomConfig.from_dict(section)
    if not config.run_exec:
        raise BuildError("custom executor is missing RunExec")
    return config


def unreplayed(raw: dict[str, Any]) -> list[str]:
    """Keys of a custom runner's table the stand-in does not replay, set to a non-zero
    value: ``[runners.docker]`` does not matter here, the custom ones do."""
    found: list[str] = []
    for key, value in raw.items():
        if key in CUSTOM_RUNNER_KEYS or key == "docker":
            continue
        if key in configkeys.IRRELEVANT_RUNNER_KEYS:
            continue
        if key not in configkeys.MODELLED_RUNNER_KEYS and not configkeys.is_zero(value):
            found.append(f"runners.{key}")
    section = raw.get("custom")
    for key, value in (section if isinstance(section, dict) else {}).items():
        if key not in CUSTOM_KEYS and not configkeys.is_zero(value):
            found.append(f"runners.custom.{key}")
    return found


def check(raw: dict[str, Any]) -> None:
    """Fail the job (runner system failure) when ``raw`` sets a key not replayed."""
    keys = unreplayed(raw)
    if keys:
        raise BuildError(configkeys.message(keys), RUNNER_SYSTEM_FAILURE)
