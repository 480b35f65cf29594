"""The doctor's company-network rows: stored private CAs near or past expiry, mirrors
that do not answer from this host. Pure functions over injectable inputs, like
:mod:`pipglr.ops.doctor`; :mod:`pipglr.ops.netops` gathers their inputs."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Sequence

from pipglr import netsettings
from pipglr.ops.doctor import FAIL, OK, WARN, Finding

#: A private CA expiring within this many days is a warning.
CA_WARN_DAYS = 30
#: How long the mirror check waits for a TCP answer.
MIRROR_TIMEOUT = 3.0
#: ``reach(host, port, timeout)``: None when something answers, else why not.
Reach = Callable[[str, int, float], "str | None"]


def tcp_connect(host: str, port: int, timeout: float) -> str | None:
    """Open (and close) a TCP connection; None on success, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc.strerror or exc) or type(exc).__name__


def check_ca_expiry(
    name: str, certs: Sequence[tuple[str, dt.datetime]], now: dt.datetime | None = None
) -> Finding:
    """A stored private CA (``pipglr ca add``): its certificates' (subject, expiry);
    expired blocks TLS to the servers it signed, within 30 days is a warning."""
    moment = now or dt.datetime.now(dt.UTC)
    check = f"CA {name}"
    if not certs:
        return Finding(check, FAIL, "holds no certificate", f"pipglr ca remove {name}")
    subject, soonest = min(certs, key=lambda c: c[1])
    days = (soonest - moment).total_seconds() / 86400
    renew = (
        f"ask for the current CA certificate, then `pipglr ca remove {name} && "
        f"pipglr ca add FILE --name {name}` and `pipglr down && pipglr up`"
    )
    when = f"{soonest:%Y-%m-%d}"
    if days < 0:
        return Finding(check, FAIL, f"{subject} expired on {when}", renew)
    if days < CA_WARN_DAYS:
        return Finding(check, WARN, f"{subject} expires on {when} ({int(days)} days)", renew)
    return Finding(check, OK, f"{subject} valid until {when}")


def check_mirrors(mirrors: Sequence[tuple[str, str]], reach: Reach = tcp_connect) -> list[Finding]:
    """Each stored mirror (registry, host[:port]) answers TCP from this host within 3 s.
    An unreachable mirror only slows pulls (podman falls back to the registry)."""
    rows = []
    for registry, location in mirrors:
        host, port = netsettings.split_host_port(location)
        port = port or netsettings.HTTPS_PORT
        check = f"mirror {location}"
        why = reach(host, port, MIRROR_TIMEOUT)
        if why is None:
            rows.append(Finding(check, OK, f"answers on port {port} (mirror of {registry})"))
        else:
            rows.append(Finding(
                check, WARN,
                f"unreachable from this host ({why}): pulls from {registry} wait for it, then "
                "go to the registry itself",
                f"check the address (`pipglr mirror list`), a firewall or proxy in between, or "
                f"drop it: `pipglr mirror remove {registry}`",
            ))  # fmt: skip
    return rows
