"""``[runners.docker]`` (common/config.go ``DockerConfig``, helpers/docker/credentials.go
``Credentials``, common/config.go ``Service``) and its getters: ``GetMemory`` & co.
(go-units ``RAMInBytes``, a parse error is ``logrus.Fatalf``), ``GetNanoCPUs``,
``GetServiceNanoCPUs``, ``GetOomKillDisable``, ``GetUlimits``, ``GetLogConfig``,
``GetPullPolicies``, ``GetAllowedPullPolicies``, ``GetServicesLimit``,
``IsUserAllowed``, ``GetExpandedServices``.

Which keys the stand-in replays at all is :mod:`.configkeys`' table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import log
from . import tomltypes as t

PULL_POLICIES = ("always", "if-not-present", "never")
WHERE = "runners.docker"


def exit_process(code: int) -> None:
    """``os.Exit`` (what ``logrus.Fatalf`` ends with); replaced in unit tests."""
    os._exit(code)


def fatalf(message: str) -> None:
    """``logrus.Fatalf``: the runner's log says FATAL and the whole process exits 1."""
    log.fatal(message)
    exit_process(1)


@dataclass
class ConfigService:
    """``[[runners.docker.services]]`` (common/config.go ``Service``)."""

    name: str = ""
    alias: str = ""
    command: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ConfigService:
        where = f"{WHERE}.services"
        return cls(
            name=t.string(raw, "name", where),
            alias=t.string(raw, "alias", where),
            command=t.string_list(raw, "command", where) or [],
            entrypoint=t.string_list(raw, "entrypoint", where) or [],
            environment=t.string_list(raw, "environment", where) or [],
        )


@dataclass
class DockerConfig:
    """The keys of ``[runners.docker]`` the stand-in replays (Go zero values as
    defaults; ``None`` for a list or table that is absent, i.e. a nil Go value)."""

    host: str = ""
    tls_verify: bool = False
    hostname: str = ""
    image: str = ""
    runtime: str = ""
    memory: str = ""
    memory_swap: str = ""
    memory_reservation: str = ""
    cgroup_parent: str = ""
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cpus: str = ""
    cpu_shares: int = 0
    dns: list[str] | None = None
    dns_search: list[str] | None = None
    privileged: bool = False
    services_privileged: bool | None = None
    disable_entrypoint_overwrite: bool = False
    user: str = ""
    allowed_users: list[str] | None = None
    group_add: list[str] | None = None
    userns_mode: str = ""
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    oom_kill_disable: bool = False
    oom_score_adjust: int = 0
    security_opt: list[str] | None = None
    services_security_opt: list[str] | None = None
    devices: list[str] | None = None
    device_cgroup_rules: list[str] | None = None
    services_devices: dict[str, list[str]] = field(default_factory=dict)
    disable_cache: bool = False
    volumes: list[str] = field(default_factory=list)
    volume_driver: str = ""
    volume_driver_ops: dict[str, str] | None = None
    cache_dir: str = ""
    extra_hosts: list[str] | None = None
    volumes_from: list[str] | None = None
    network_mode: str = ""
    ipcmode: str = ""
    mac_address: str = ""
    links: list[str] | None = None
    services: list[ConfigService] = field(default_factory=list)
    services_limit: int | None = None
    service_memory: str = ""
    service_memory_swap: str = ""
    service_memory_reservation: str = ""
    service_cgroup_parent: str = ""
    service_cpuset_cpus: str = ""
    service_cpus: str = ""
    service_cpu_shares: int = 0
    wait_for_services_timeout: int = 0
    allowed_images: list[str] = field(default_factory=list)
    allowed_privileged_images: list[str] = field(default_factory=list)
    allowed_privileged_services: list[str] = field(default_factory=list)
    allowed_pull_policies: list[str] = field(default_factory=list)
    allowed_services: list[str] = field(default_factory=list)
    pull_policy: list[str] = field(default_factory=list)
    isolation: str = ""
    shm_size: int = 0
    tmpfs: dict[str, str] | None = None
    services_tmpfs: dict[str, str] | None = None
    sysctls: dict[str, str] | None = None
    helper_image: str = ""
    container_labels: dict[str, str] = field(default_factory=dict)
    enable_ipv6: bool = False
    ulimit: dict[str, str] | None = None
    network_mtu: int = 0
    log_options: dict[str, str] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DockerConfig:
        """Decode ``[runners.docker]`` into the Go field types (see :mod:`.tomltypes`)."""
        values: dict[str, Any] = {}
        for name, kind in _KINDS.items():
            values[name] = kind(raw, name, WHERE)
        services = raw.get("services") or []
        if not isinstance(services, list) or not all(isinstance(s, dict) for s in services):
            raise t.TomlTypeError(f"{WHERE}.services", services, "[]Service")
        values["services"] = [ConfigService.from_dict(s) for s in services]
        return cls(**values)

    # --- getters (common/config.go) ------------------------------------------------------
    def memory_bytes(self, value: str, field_name: str) -> int:
        """``getMemoryBytes``: a size go-units cannot parse is fatal for the runner."""
        if value == "":
            return 0
        try:
            return t.ram_in_bytes(value)
        except ValueError as exc:
            fatalf(f"Error parsing docker {field_name}: {exc}")
            raise

    def nano_cpus(self) -> int:
        """``GetNanoCPUs`` (``ValueError``: "failed to parse X as a rational number")."""
        return t.nano_cpus(self.cpus)

    def service_nano_cpus(self) -> int:
        """``GetServiceNanoCPUs``."""
        return t.nano_cpus(self.service_cpus)

    def ulimits(self) -> list[dict[str, Any]]:
        """``GetUlimits``: ``soft[:hard]`` per name (hard = soft when alone); always a
        list, empty without ``ulimit`` (``make(..., 0, n)``). Go iterates the map in
        random order; the stand-in keeps the table's order. Both parse errors say "soft",
        as upstream's do."""
        found: list[dict[str, Any]] = []
        for name, limits in (self.ulimit or {}).items():
            before, sep, after = limits.partition(":")
            try:
                soft = t.parse_int(before)
                hard = t.parse_int(after) if sep else soft
            except ValueError as exc:
                raise ValueError(f"invalid soft limit value: {exc}") from exc
            found.append({"Name": name, "Hard": hard, "Soft": soft})
        return found

    def log_config(self) -> dict[str, Any]:
        """``GetLogConfig``: json-file, with ``log_options`` (only env and labels)."""
        if not self.log_options:
            return {"Type": "json-file", "Config": None}
        allowed = ["env", "labels"]
        invalid = sorted(key for key in self.log_options if key not in allowed)
        if invalid:
            raise ValueError(
                f"invalid log options: only {t.go_quote_list(allowed)} are allowed, "
                f"but found: {t.go_quote_list(invalid)}"
            )
        return {"Type": "json-file", "Config": dict(sorted(self.log_options.items()))}

    def pull_policies(self) -> list[str]:
        """``GetPullPolicies``: validated, default ``["always"]``."""
        for policy in self.pull_policy:
            if policy not in PULL_POLICIES:
                raise ValueError(f"unsupported pull_policy config: {t.go_quote(policy)}")
        return list(self.pull_policy) or ["always"]

    def allowed_pull_policies_or_default(self) -> list[str]:
        """``GetAllowedPullPolicies``: ``allowed_pull_policies``, else the pull policies."""
        if not self.allowed_pull_policies:
            return self.pull_policies()
        for policy in self.allowed_pull_policies:
            if policy not in PULL_POLICIES:
                raise ValueError(f"unsupported allowed_pull_policies config: {t.go_quote(policy)}")
        return list(self.allowed_pull_policies)

    def get_services_limit(self) -> int:
        """``GetServicesLimit``: -1 (no limit) when unset."""
        return -1 if self.services_limit is None else self.services_limit

    def is_user_allowed(self, user: str) -> bool:
        """``IsUserAllowed``: the image's user, any user without a list, else the list
        (default: the configured ``user``)."""
        if user == "" or (not self.allowed_users and self.user == ""):
            return True
        return user in (self.allowed_users or [self.user])


_KINDS: dict[str, Any] = {
    name: kind
    for kind, names in (
        (t.string, "host hostname image runtime memory memory_swap memory_reservation "
         "cgroup_parent cpuset_cpus cpuset_mems cpus user userns_mode volume_driver "
         "cache_dir network_mode ipcmode mac_address service_memory service_memory_swap "
         "service_memory_reservation service_cgroup_parent service_cpuset_cpus "
         "service_cpus isolation helper_image"),
        (t.integer, "cpu_shares oom_score_adjust service_cpu_shares "
         "wait_for_services_timeout shm_size network_mtu"),
        (t.boolean, "tls_verify privileged disable_entrypoint_overwrite oom_kill_disable "
         "disable_cache enable_ipv6"),
        (t.optional_boolean, "services_privileged"),
        (t.optional_integer, "services_limit"),
        (t.string_list, "dns dns_search allowed_users group_add cap_add cap_drop "
         "security_opt services_security_opt devices device_cgroup_rules extra_hosts "
         "volumes_from links"),
        (lambda r, k, w: t.string_list(r, k, w) or [], "volumes allowed_images "
         "allowed_privileged_images allowed_privileged_services allowed_pull_policies "
         "allowed_services"),
        (t.string_or_array, "pull_policy"),
        (t.string_map, "volume_driver_ops tmpfs services_tmpfs sysctls ulimit log_options"),
        (lambda r, k, w: t.string_map(r, k, w) or {}, "container_labels"),
        (t.string_list_map, "services_devices"),
    )
    for name in names.split()
}  # fmt: skip
