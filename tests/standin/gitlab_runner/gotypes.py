"""The container create body as the Go Docker client serialises it
(github.com/docker/docker v28.5.2, the version gitlab-runner v18.11.4's go.mod pins):
``api/types/container/config.go`` ``Config``, ``api/types/container/hostconfig.go``
``HostConfig`` with the embedded ``Resources``, ``api/types/network/network.go``
``NetworkingConfig``, ``api/types/network/endpoint.go`` ``EndpointSettings``, wrapped in
``api/types/container/create_request.go`` ``CreateRequest`` by
``client/container_create.go`` ``ContainerCreate``.

``encoding/json`` writes every field of a struct in declaration order (an embedded
struct's fields at its place), zero values included, except fields tagged
``omitempty`` that hold their zero value; a nil slice, map or pointer is ``null``; map
keys are sorted. Each builder starts from the zero struct and refuses a field name the
struct does not have, so a typo cannot add a key the Go client never sends.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

#: ``omitempty`` fields are not in these tables: they are added only when not zero.
CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""),
    ("Domainname", ""),
    ("User", ""),
    ("AttachStdin", False),
    ("AttachStdout", False),
    ("AttachStderr", False),
    ("ExposedPorts", "omitempty"),
    ("Tty", False),
    ("OpenStdin", False),
    ("StdinOnce", False),
    ("Env", None),
    ("Cmd", None),
    ("Healthcheck", "omitempty"),
    ("ArgsEscaped", "omitempty"),
    ("Image", ""),
    ("Volumes", None),
    ("WorkingDir", ""),
    ("Entrypoint", None),
    ("NetworkDisabled", "omitempty"),
    ("MacAddress", "omitempty"),
    ("OnBuild", None),
    ("Labels", None),
    ("StopSignal", "omitempty"),
    ("StopTimeout", "omitempty"),
    ("Shell", "omitempty"),
)

RESOURCES_FIELDS: tuple[tuple[str, Any], ...] = (
    ("CpuShares", 0),
    ("Memory", 0),
    ("NanoCpus", 0),
    ("CgroupParent", ""),
    ("BlkioWeight", 0),
    ("BlkioWeightDevice", None),
    ("BlkioDeviceReadBps", None),
    ("BlkioDeviceWriteBps", None),
    ("BlkioDeviceReadIOps", None),
    ("BlkioDeviceWriteIOps", None),
    ("CpuPeriod", 0),
    ("CpuQuota", 0),
    ("CpuRealtimePeriod", 0),
    ("CpuRealtimeRuntime", 0),
    ("CpusetCpus", ""),
    ("CpusetMems", ""),
    ("Devices", None),
    ("DeviceCgroupRules", None),
    ("DeviceRequests", None),
    ("KernelMemory", "omitempty"),
    ("KernelMemoryTCP", "omitempty"),
    ("MemoryReservation", 0),
    ("MemorySwap", 0),
    ("MemorySwappiness", None),
    ("OomKillDisable", None),
    ("PidsLimit", None),
    ("Ulimits", None),
    ("CpuCount", 0),
    ("CpuPercent", 0),
    ("IOMaximumIOps", 0),
    ("IOMaximumBandwidth", 0),
)

HOST_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Binds", None),
    ("ContainerIDFile", ""),
    ("LogConfig", {"Type": "", "Config": None}),
    ("NetworkMode", ""),
    ("PortBindings", None),
    ("RestartPolicy", {"Name": "", "MaximumRetryCount": 0}),
    ("AutoRemove", False),
    ("VolumeDriver", ""),
    ("VolumesFrom", None),
    ("ConsoleSize", [0, 0]),
    ("Annotations", "omitempty"),
    ("CapAdd", None),
    ("CapDrop", None),
    ("CgroupnsMode", ""),
    ("Dns", None),
    ("DnsOptions", None),
    ("DnsSearch", None),
    ("ExtraHosts", None),
    ("GroupAdd", None),
    ("IpcMode", ""),
    ("Cgroup", ""),
    ("Links", None),
    ("OomScoreAdj", 0),
    ("PidMode", ""),
    ("Privileged", False),
    ("PublishAllPorts", False),
    ("ReadonlyRootfs", False),
    ("SecurityOpt", None),
    ("StorageOpt", "omitempty"),
    ("Tmpfs", "omitempty"),
    ("UTSMode", ""),
    ("UsernsMode", ""),
    ("ShmSize", 0),
    ("Sysctls", "omitempty"),
    ("Runtime", "omitempty"),
    ("Isolation", ""),
    *RESOURCES_FIELDS,
    ("Mounts", "omitempty"),
    ("MaskedPaths", None),
    ("ReadonlyPaths", None),
    ("Init", "omitempty"),
)

ENDPOINT_FIELDS: tuple[tuple[str, Any], ...] = (
    ("IPAMConfig", None),
    ("Links", None),
    ("Aliases", None),
    ("MacAddress", ""),
    ("DriverOpts", None),
    ("GwPriority", 0),
    ("NetworkID", ""),
    ("EndpointID", ""),
    ("Gateway", ""),
    ("IPAddress", ""),
    ("IPPrefixLen", 0),
    ("IPv6Gateway", ""),
    ("GlobalIPv6Address", ""),
    ("GlobalIPv6PrefixLen", 0),
    ("DNSNames", None),
)

#: Fields whose Go type is a map: encoding/json sorts their keys.
_MAPS = {"Labels", "Tmpfs", "Sysctls", "StorageOpt", "Annotations", "Volumes", "ExposedPorts"}


def _is_zero(value: Any) -> bool:
    """The zero value of an ``omitempty`` field (false, 0, "", nil or empty)."""
    return value is None or value is False or value == 0 or value == "" or value in ([], {})


def go_map(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A Go map as encoding/json writes it: keys sorted; nil stays ``null``."""
    return None if values is None else {key: values[key] for key in sorted(values)}


def _struct(
    name: str, table: tuple[tuple[str, Any], ...], fields: Mapping[str, Any]
) -> dict[str, Any]:
    known = {key for key, _ in table}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"{name} has no field {', '.join(unknown)}")
    body: dict[str, Any] = {}
    for key, zero in table:
        if zero == "omitempty":
            value = fields.get(key)
            if not _is_zero(value):
                body[key] = go_map(value) if key in _MAPS else value
            continue
        value = fields.get(key, copy.deepcopy(zero))
        body[key] = go_map(value) if key in _MAPS and value is not None else value
    return body


def config(**fields: Any) -> dict[str, Any]:
    """``container.Config``."""
    return _struct("container.Config", CONFIG_FIELDS, fields)


def host_config(**fields: Any) -> dict[str, Any]:
    """``container.HostConfig`` (``Resources`` fields inline)."""
    return _struct("container.HostConfig", HOST_CONFIG_FIELDS, fields)


def endpoint_settings(**fields: Any) -> dict[str, Any]:
    """``network.EndpointSettings``."""
    return _struct("network.EndpointSettings", ENDPOINT_FIELDS, fields)


def networking_config(endpoints: Mapping[str, dict[str, Any]] | None) -> dict[str, Any]:
    """``network.NetworkingConfig``: ``EndpointsConfig`` (a map; nil is ``null``)."""
    return {"EndpointsConfig": go_map(endpoints)}


def normalize_capabilities(caps: list[str] | None) -> list[str] | None:
    """client/container_create.go ``normalizeCapabilities``: upper case, ``CAP_`` prefix
    (except ``ALL``), no duplicates, sorted; none at all is nil."""
    normalized: list[str] = []
    for cap in caps or []:
        cap = cap.upper()
        if cap != "ALL" and not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if cap not in normalized:
            normalized.append(cap)
    return sorted(normalized) or None


def create_request(
    config_body: dict[str, Any],
    host: dict[str, Any] | None,
    networking: dict[str, Any] | None,
    legacy: bool = True,
) -> dict[str, Any]:
    """``ContainerCreate``'s body: ``CreateRequest`` (the ``Config`` fields inline, then
    ``HostConfig`` and ``NetworkingConfig``, each omitted when nil), after the client's
    own changes: capabilities normalised, and with a negotiated API >= 1.44 (not
    ``legacy``) the container-wide ``MacAddress`` dropped. (It also zeroes
    ``KernelMemory`` for API >= 1.42, which the executor never sets.)"""
    body = dict(config_body)
    if not legacy:
        body.pop("MacAddress", None)
    if host is not None:
        host = dict(host)
        for key in ("CapAdd", "CapDrop"):
            host[key] = normalize_capabilities(host[key])
        body["HostConfig"] = host
    if networking is not None:
        body["NetworkingConfig"] = networking
    return body
