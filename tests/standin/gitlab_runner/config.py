"""config.toml: load, typed views with gitlab-runner's field names, save.

Field names and defaults follow common/config.go (``Config``, ``RunnerConfig``,
``RunnerCredentials``, ``DockerConfig``) of the pinned release. The raw document is kept
so a save (register, token rotation) writes back every key the file had.
"""

from __future__ import annotations

import datetime
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tomlwriter

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
class DockerConfig:
    """``[runners.docker]`` (common/config.go ``DockerConfig``): the keys the stand-in uses."""

    host: str = ""
    image: str = ""
    privileged: bool = False
    services_privileged: bool | None = None
    volumes: list[str] = field(default_factory=list)
    pull_policy: list[str] = field(default_factory=list)
    cache_dir: str = ""
    disable_cache: bool = False
    helper_image: str = ""
    network_mode: str = ""
    network_mtu: int = 0
    enable_ipv6: bool = False
    wait_for_services_timeout: int = 0
    hostname: str = ""
    user: str = ""
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    runtime: str = ""
    shm_size: int = 0
    volume_driver: str = ""
    disable_entrypoint_overwrite: bool = False
    mac_address: str = ""
    container_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DockerConfig:
        """Parse ``[runners.docker]``."""
        list_keys = ("volumes", "dns", "dns_search", "extra_hosts", "cap_add", "cap_drop")
        lists = {key: _str_list(raw.get(key)) for key in (*list_keys, "security_opt", "devices")}
        services_privileged = raw.get("services_privileged")
        return cls(
            host=str(raw.get("host", "")),
            image=str(raw.get("image", "")),
            privileged=bool(raw.get("privileged", False)),
            services_privileged=None if services_privileged is None else bool(services_privileged),
            pull_policy=_str_list(raw.get("pull_policy")),
            cache_dir=str(raw.get("cache_dir", "")),
            disable_cache=bool(raw.get("disable_cache", False)),
            helper_image=str(raw.get("helper_image", "")),
            network_mode=str(raw.get("network_mode", "")),
            network_mtu=int(raw.get("network_mtu", 0)),
            enable_ipv6=bool(raw.get("enable_ipv6", False)),
            wait_for_services_timeout=int(raw.get("wait_for_services_timeout", 0)),
            hostname=str(raw.get("hostname", "")),
            user=str(raw.get("user", "")),
            runtime=str(raw.get("runtime", "")),
            shm_size=int(raw.get("shm_size", 0)),
            volume_driver=str(raw.get("volume_driver", "")),
            disable_entrypoint_overwrite=bool(raw.get("disable_entrypoint_overwrite", False)),
            mac_address=str(raw.get("mac_address", "")),
            container_labels={str(k): str(v) for k, v in raw.get("container_labels", {}).items()},
            **lists,
        )

    def pull_policies(self) -> list[str]:
        """common/config.go ``GetPullPolicies``: validated, default ``["always"]``."""
        for policy in self.pull_policy:
            if policy not in ("always", "if-not-present", "never"):
                raise ValueError(f'unsupported pull_policy config: "{policy}"')
        return list(self.pull_policy) or ["always"]


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
        runners=[RunnerConfig.from_dict(runner) for runner in runners],
    )


def load(path: Path) -> Config:
    """Read and parse ``path``; a missing or empty file is an empty config."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    return parse(text)


def save(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` in place (``SaveConfig``/``defaultConfigSaver``:
    ``os.MkdirAll(dir, 0700)`` then ``os.WriteFile(path, data, 0600)``, which keeps the
    mode of an existing file and works on a bind-mounted file)."""
    text = tomlwriter.dumps(document)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
