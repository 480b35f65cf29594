"""The published metrics port: ``pipglr up --metrics [ADDR:]PORT`` and ``quadlet --metrics``.

The exporter in the image (README "Monitoring") listens on :data:`pipglr.layout.METRICS_PORT`
inside the container; the operator publishes it on one host address and port. Off by
default; the address defaults to loopback (``127.0.0.1``), so only the host itself can
scrape unless the operator names another one. ``[::1]:PORT`` publishes on IPv6 loopback.
:func:`parse` checks the operator's text before anything is started; :func:`published`
reads the binding back from ``podman container inspect`` for ``pipglr status``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from pipglr import layout
from pipglr.errors import UsageError

#: The address a bare ``--metrics PORT`` publishes on.
DEFAULT_ADDRESS = "127.0.0.1"
#: The exporter's port inside the container as podman's inspect names it.
CONTAINER_PORT = f"{layout.METRICS_PORT}/tcp"
#: What every refusal ends with.
_FORMAT = "give [ADDR:]PORT, e.g. 9253, 127.0.0.1:9253 or [::1]:9253"


@dataclass(frozen=True)
class MetricsPort:
    """A host address (IPv4 or IPv6 literal, unbracketed) and port to publish on."""

    address: str
    port: int

    @property
    def host(self) -> str:
        """The address as it appears before ``:PORT`` (IPv6 in brackets)."""
        return f"[{self.address}]" if ":" in self.address else self.address

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def publish(self) -> str:
        """The value of ``podman run --publish`` (and quadlet's ``PublishPort=``)."""
        return f"{self}:{CONTAINER_PORT}"


def _port(text: str, spec: str) -> int:
    """``text`` as a port number 1-65535; refused in one line naming ``spec``."""
    if not text.isascii() or not text.isdigit():
        raise UsageError(f"--metrics {spec!r}: the port {text!r} is not a number; {_FORMAT}")
    port = int(text)
    if not 1 <= port <= 65535:
        raise UsageError(f"--metrics {spec!r}: the port {port} is not in 1-65535; {_FORMAT}")
    return port


def parse(spec: str) -> MetricsPort:
    """``[ADDR:]PORT`` as given to ``--metrics``: ADDR an IPv4 literal or a bracketed IPv6
    literal (host names are refused: podman binds an address), default ``127.0.0.1``.
    Anything else is a :class:`~pipglr.errors.UsageError` of one line."""
    text = spec.strip()
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise UsageError(f"--metrics {spec!r}: an IPv6 address needs ]:PORT after it; "
                             f"{_FORMAT}")  # fmt: skip
        address, port_text, family = inner, rest[1:], 6
    elif ":" in text:
        address, _, port_text = text.rpartition(":")
        if ":" in address:
            raise UsageError(f"--metrics {spec!r}: put an IPv6 address in brackets; {_FORMAT}")
        family = 4
    else:
        address, port_text, family = DEFAULT_ADDRESS, text, 4
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(
            f"--metrics {spec!r}: {address!r} is not an IPv{family} address (host names are "
            f"not resolved); {_FORMAT}"
        ) from None
    if parsed.version != family:
        raise UsageError(f"--metrics {spec!r}: put an IPv6 address in brackets; {_FORMAT}")
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.scope_id:
        raise UsageError(f"--metrics {spec!r}: zoned IPv6 addresses are not supported; "
                         f"{_FORMAT}")  # fmt: skip
    return MetricsPort(str(parsed), _port(port_text, spec))


def publish_args(spec: str | None) -> list[str]:
    """``podman run`` options publishing the metrics port (none when ``spec`` is None)."""
    return ["--publish", parse(spec).publish()] if spec is not None else []


def published(inspect: Mapping[str, object]) -> str | None:
    """``ADDR:PORT`` the container's exporter is published on, from ``podman container
    inspect`` (the running bindings, else the configured ones); None when it is not."""
    for section, key in (("NetworkSettings", "Ports"), ("HostConfig", "PortBindings")):
        table = inspect.get(section)
        ports = table.get(key) if isinstance(table, Mapping) else None
        bindings = ports.get(CONTAINER_PORT) if isinstance(ports, Mapping) else None
        for binding in bindings if isinstance(bindings, list) else []:
            if not isinstance(binding, Mapping) or not str(binding.get("HostPort", "")):
                continue
            address = str(binding.get("HostIp") or "0.0.0.0")
            host = f"[{address}]" if ":" in address else address
            return f"{host}:{binding['HostPort']}"
    return None
