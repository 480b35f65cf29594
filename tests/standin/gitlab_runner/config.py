"""config.toml: load, typed views with gitlab-runner's field names, save.

Field names and defaults follow common/config.go (``Config``, ``RunnerConfig``,
``RunnerCredentials``; ``DockerConfig`` in :mod:`.dockerconfig`) of the pinned release.
The raw document is kept so a save (register, token rotation) writes back every key the
file had.
"""

from __future__ import annotations

import datetime
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tomlwriter
from .dockerconfig import DockerConfig as DockerConfig

ZERO_TIME = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)


def _str_list(value: object) -> list[str]:
    """``StringOrArray`` (common/config.go): a string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(item) for item in value]
    raise ValueError(f"expected a string or a list of strings, got {value!r}")


def parse_time(value: object) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    if isinstance(value, str) and value:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ZERO_TIME


@dataclass
class RunnerConfig:
    """One ``[[runners]]`` entry (common/config.go ``RunnerConfig``)."""

    raw: dict[str, Any]
    name: str = ""
    url: str = ""
    id: int = 0
    token: str = ""
    token_obtained_at: datetime.datetime = ZERO_TIME
    token_expires_at: datetime.datetime = ZERO_TIME
    executor: str = ""
    limit: int = 0
    request_concurrency: int = 0
    output_limit: int = 0
    environment: list[str] = field(default_factory=list)
    tls_ca_file: str = ""
    builds_dir: str = ""
    cache_dir: str = ""
    feature_flags: dict[str, bool] = field(default_factory=dict)
    docker: DockerConfig = field(default_factory=DockerConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunnerConfig:
        """Parse one ``[[runners]]`` table."""
        return cls(
            raw=raw,
            name=str(raw.get("name", "")),
            url=str(raw.get("url", "")),
            id=int(raw.get("id", 0)),
            token=str(raw.get("token", "")),
            token_obtained_at=parse_time(raw.get("token_obtained_at")),
            token_expires_at=parse_time(raw.get("token_expires_at")),
            executor=str(raw.get("executor", "")),
            limit=int(raw.get("limit", 0)),
            request_concurrency=int(raw.get("request_concurrency", 0)),
            output_limit=int(raw.get("output_limit", 0)),
            environment=_str_list(raw.get("environment")),
            tls_ca_file=str(raw.get("tls-ca-file", "")),
            builds_dir=str(raw.get("builds_dir", "")),
            cache_dir=str(raw.get("cache_dir", "")),
            feature_flags={str(k): bool(v) for k, v in raw.get("feature_flags", {}).items()},
            docker=DockerConfig.from_dict(dict(raw.get("docker") or {})),
        )

    def request_limit(self) -> int:
        """``GetRequestConcurrency``: at least one request at a time."""
        return max(1, self.request_concurrency)


@dataclass
class Config:
    """The whole file (common/config.go ``Config``)."""

    raw: dict[str, Any]
    concurrent: int = 1
    check_interval: int = 0
    shutdown_timeout: int = 0
    log_level: str = ""
    #: the metrics and debug server's address (``ListenAddress``, ``listen_address``)
    listen_address: str = ""
    runners: list[RunnerConfig] = field(default_factory=list)

    def check_interval_seconds(self) -> float:
        """``GetCheckInterval``: ``check_interval`` seconds, 3 s when unset or <= 0."""
        return float(self.check_interval) if self.check_interval > 0 else 3.0

    def shutdown_timeout_seconds(self) -> float:
        """``GetShutdownTimeout``: default 30 s."""
        return float(self.shutdown_timeout) if self.shutdown_timeout > 0 else 30.0


def parse(text: str) -> Config:
    """Parse config.toml text (raises ``tomllib.TOMLDecodeError``/``ValueError``)."""
    raw = tomllib.loads(text)
    runners = raw.get("runners", [])
    if not isinstance(runners, list):
        raise ValueError("runners must be an array of tables ([[runners]])")
    return Config(
        raw=raw,
        concurrent=int(raw.get("concurrent", 1)),
        check_interval=int(raw.get("check_interval", 0)),
        shutdown_timeout=int(raw.get("shutdown_timeout", 0)),
        log_level=str(raw.get("log_level", "") or ""),
        listen_address=str(raw.get("listen_address", "") or ""),
        runners=[RunnerConfig.from_dict(runner) for runner in runners],
    )


def load(path: Path) -> Config:
    """Read and parse ``path``; a missing or empty file is an empty config."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    return parse(text)


#: When this process last wrote each config file (ns): ``SaveConfig`` sets the loaded
#: config's ModTime to now, so the reload loop does not take the runner's own write
#: for a change (:mod:`.reload`).
SAVED_AT: dict[Path, int] = {}


def save(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` in place (``SaveConfig``/``defaultConfigSaver``:
    ``os.MkdirAll(dir, 0700)`` then ``os.WriteFile(path, data, 0600)``, which keeps the
    mode of an existing file and works on a bind-mounted file)."""
    text = tomlwriter.dumps(document)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    SAVED_AT[path] = max(time.time_ns(), path.stat().st_mtime_ns)
