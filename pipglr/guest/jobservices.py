"""The job's services (``services:`` of the job) as sibling containers on the job's
network, reachable by their aliases.

The runner passes them as ``CUSTOM_ENV_CI_JOB_SERVICES``, a JSON list of
``{name, alias, entrypoint, command}`` (executors/custom/custom.go
``getCIJobServicesEnv``, ``jsonService``; ``alias`` is the first of the job's aliases).
Each gets the aliases the docker executor gives it
(helpers/container/services/services.go ``SplitNameAndVersion``: the image without
tag, digest and registry port, ``/`` → ``__`` and, when different, ``/`` → ``-``) plus
its own alias. Its environment is what the docker executor gives a service
(executors/docker/docker.go ``createService``, ``getServiceVariables``): the job's
public variables from ``$JOB_RESPONSE_FILE`` and the service's own ``variables`` (from
the payload's ``services`` entry of the same index and name), plus the company-network
environment (:func:`pipglr.guest.netconfig.read_job_settings`).

Refused, with one line: a malformed list, a service without an image name, an alias
that is not a DNS label, and ``docker:*dind*`` (the Docker daemon needs a privileged
container; this executor runs everything unprivileged). Services are started, not
waited for (no health check as the docker executor's ``waitForServices``): a job
that needs a service's port waits for it itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipglr.guest.jobcontainer import Job, SystemFailure

_ALIAS = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_PORT = re.compile(r"^([^/:]+):[0-9]+(/.*)$")


@dataclass(frozen=True)
class Service:
    """One service of the job."""

    image: str
    aliases: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)


def name_aliases(image: str) -> list[str]:
    """services.go ``SplitNameAndVersion``'s aliases: ``registry.example:5000/ns/img:1``
    → ``registry.example__ns__img``, ``registry.example-ns-img``."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    name = _PORT.sub(r"\1\2", name)
    aliases = [name.replace("/", "__")]
    if name.replace("/", "-") != aliases[0]:
        aliases.append(name.replace("/", "-"))
    return aliases


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SystemFailure(f"CI_JOB_SERVICES: {what} must be a list of strings")
    return tuple(value)


def _payload(env: Mapping[str, str]) -> dict[str, Any]:
    try:
        data = json.loads(Path(env.get("JOB_RESPONSE_FILE", "")).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _variables(entries: Any, public_only: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            continue
        if public_only and not (entry.get("public") or entry.get("internal")):
            continue
        found.setdefault(entry["key"], str(entry.get("value", "")))
    return found


def parse(env: Mapping[str, str]) -> list[Service]:
    """The job's services, or a :class:`SystemFailure` line for what cannot run."""
    text = env.get("CUSTOM_ENV_CI_JOB_SERVICES", "")
    if not text.strip():
        return []
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise SystemFailure(f"CI_JOB_SERVICES is not JSON ({exc})") from None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise SystemFailure("CI_JOB_SERVICES is not a list of services")
    payload = _payload(env)
    public = _variables(payload.get("variables"), public_only=True)
    given = payload.get("services")
    described: list[Any] = given if isinstance(given, list) else []
    services = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not str(entry.get("name") or "").strip():
            raise SystemFailure(f"CI_JOB_SERVICES: service {index + 1} has no image name")
        image = str(entry["name"]).strip()
        last = image.split("@", 1)[0].rsplit("/", 1)[-1]
        if last.split(":", 1)[0] == "docker" and "dind" in last:
            raise SystemFailure(
                f"service {image}: Docker-in-Docker needs a privileged container; this "
                "custom executor runs jobs and services unprivileged (use podman or "
                "buildah in the job: README 'Image builds in jobs')"
            )
        aliases = name_aliases(image)
        own = str(entry.get("alias") or "")
        for alias in own.replace(",", " ").split():
            if not _ALIAS.match(alias):
                raise SystemFailure(f"service {image}: alias {alias!r} is not a host name")
            aliases.append(alias)
        variables = dict(public)
        own_entry = described[index] if index < len(described) else None
        if isinstance(own_entry, dict) and own_entry.get("name") == entry["name"]:
            variables.update(_variables(own_entry.get("variables"), public_only=False))
        services.append(
            Service(
                image, tuple(dict.fromkeys(aliases)),
                _strings(entry.get("entrypoint"), "entrypoint"),
                _strings(entry.get("command"), "command"), variables,
            )
        )  # fmt: skip
    return services


def service_spec(
    job: Job,
    index: int,
    service: Service,
    binds: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``containers.create`` arguments of a service: its image's own entrypoint and
    command unless the job overrides them, on the job's network with its aliases."""
    volumes: dict[str, dict[str, str]] = {}
    for bind in binds:
        source, dest, *mode = bind.split(":")
        volumes[source] = {"bind": dest, "mode": mode[0] if mode else "rw"}
    spec: dict[str, Any] = {
        "image": service.image,
        "name": f"{job.name}-service-{index}",
        "labels": job.labels("service"),
        "environment": {**dict(environment or {}), **service.variables},
        "volumes": volumes,
        # The bridge explicitly: the libpod API takes a rootless container's networks
        # with options (aliases) only in bridge mode, and podman 5.4 refused them
        # without it ("networks ... can only be used with Bridge mode networking").
        "network_mode": "bridge",
        "networks": {job.name: {"aliases": list(service.aliases)}},
        "privileged": False,
    }
    if service.entrypoint:
        spec["entrypoint"] = list(service.entrypoint)
    if service.command:
        spec["command"] = list(service.command)
    return spec
