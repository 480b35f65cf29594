"""The proxy of a request from the environment, as gitlab-runner's HTTP client picks it.

network/client.go ``createTransport`` sets ``Proxy: http.ProxyFromEnvironment``, which is
golang.org/x/net/http/httpproxy ``FromEnvironment().ProxyFunc()`` (proxy.go):

- ``HTTPS_PROXY``/``https_proxy`` for https URLs, ``HTTP_PROXY``/``http_proxy`` for http
  (upper case first; ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set, CGI);
  a proxy without a scheme is taken as ``http://``;
- no proxy for ``localhost`` or a loopback address (``useProxy``);
- ``NO_PROXY``/``no_proxy``: ``*`` disables it; entries are CIDRs (the host's IP inside),
  IPs (equal), ``host`` (that host and its subdomains) or ``.host`` (subdomains only),
  each with an optional ``:port`` that must then match.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass


def _get(env: Mapping[str, str], name: str) -> str:
    """httpproxy ``getEnvAny``: upper case, then lower case."""
    return env.get(name) or env.get(name.lower()) or ""


@dataclass(frozen=True)
class Proxy:
    """A chosen proxy: where to connect and the ``Proxy-Authorization`` it needs."""

    host: str
    port: int
    scheme: str
    userinfo: str

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"


def _parse_proxy(value: str) -> Proxy | None:
    """httpproxy ``parseProxy``: a value without a scheme gets ``http://``."""
    if not value:
        return None
    parts = urllib.parse.urlsplit(value if "://" in value else f"http://{value}")
    if not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    return Proxy(parts.hostname, parts.port or default, parts.scheme, userinfo)


def _matches(entry: str, host: str, port: int) -> bool:
    """One ``NO_PROXY`` entry against a host and port (proxy.go ``init`` matchers)."""
    entry = entry.strip().lower()
    if not entry:
        return False
    try:
        network = ipaddress.ip_network(entry, strict=False) if "/" in entry else None
    except ValueError:
        network = None
    if network is not None:
        try:
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False
    name, entry_port = entry, 0
    if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
        name, _, port_text = entry.rpartition(":")
        entry_port = int(port_text) if port_text.isdigit() else 0
    name = name.strip("[]")
    if entry_port and entry_port != port:
        return False
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(host)
    except ValueError:
        pass
    if name.startswith("*."):
        name = name[1:]
    if name.startswith("."):
        return host.endswith(name)
    return host == name or host.endswith(f".{name}")


def proxy_for(url: str, env: Mapping[str, str]) -> Proxy | None:
    """``ProxyFunc`` for ``url``: the proxy to use, or None for a direct connection."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https":
        chosen = _parse_proxy(_get(env, "HTTPS_PROXY"))
    elif parts.scheme == "http" and not env.get("REQUEST_METHOD"):
        chosen = _parse_proxy(_get(env, "HTTP_PROXY"))
    else:
        chosen = None
    if chosen is None or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    port = parts.port or (443 if parts.scheme == "https" else 80)
    no_proxy = _get(env, "NO_PROXY")
    if no_proxy.strip() == "*":
        return None
    if any(_matches(entry, host, port) for entry in no_proxy.split(",")):
        return None
    return chosen
