"""Company-network settings: registry mirrors, private CAs, a proxy, registry logins.

The operator's ``pipglr mirror/ca/proxy`` commands keep the first three in one podman
secret, :data:`pipglr.layout.NETWORK_SECRET` (a TOML document, :class:`NetworkSettings`);
``pipglr registry login`` keeps the logins in another,
:data:`pipglr.layout.REGISTRY_AUTH_SECRET` (a docker client ``config.json``, what
gitlab-runner reads from its user's ``$HOME/.docker/config.json``). ``pipglr up`` mounts
both when they exist; what the image derives from them at boot is :mod:`pipglr.netboot`.
This module is the documents and their checks, shared by host and image (standard
library plus ``tomlkit``, which the image has as Debian's python3-tomlkit).

Every value is checked where it enters (:func:`check_host_port`, :func:`check_proxy_url`,
:func:`split_pem`): bad input is one line naming the cause and the fix.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomlkit

from pipglr import layout
from pipglr.errors import ConfigError, UsageError

#: A DNS name (labels of letters, digits and hyphens) or an IPv4 address.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)
HTTPS_PORT = 443
HTTP_PORT = 80
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


# -- checks ----------------------------------------------------------------------------
def split_host_port(value: str) -> tuple[str, int | None]:
    """``host``, ``host:port`` or ``[v6]:port`` → (host, port or None); raises UsageError."""
    text = value.strip()
    if "/" in text or "@" in text:
        raise UsageError(
            f"{value!r} is not host[:port] (no scheme, no path): e.g. mirror.example.com:5000"
        )
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if not sep or (rest and port_text is None):
            raise UsageError(f"{value!r} is not host[:port]: e.g. mirror.example.com:5000")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"{value!r}: {host!r} is not an IPv6 address") from None
    else:
        host, _, port_text_raw = text.partition(":")
        port_text = port_text_raw if ":" in text else None
        if not _HOSTNAME.match(host):
            raise UsageError(
                f"{value!r} is not host[:port] (no scheme, no path): e.g. mirror.example.com:5000"
            )
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{value!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def check_host_port(value: str) -> str:
    """A registry or mirror given as host[:port]; returns it normalized (lower case)."""
    host, port = split_host_port(value)
    host = host.lower()
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def check_proxy_url(value: str) -> str:
    """A proxy URL: ``http://`` or ``https://``, a host, an optional port, nothing else."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or "://" not in text:
        raise UsageError(
            f"proxy {value!r} has no http:// or https:// scheme: e.g. http://proxy.example.com:3128"
        )
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"proxy {value!r}: the port must be a number from 1 to 65535") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"proxy {value!r} must be scheme://host[:port] with no path")
    del port
    return text.rstrip("/")


def redact_url(url: str) -> str:
    """``url`` with a password (if any) shown as ``***``: what is printed or logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def check_name(value: str) -> str:
    """A CA name: letters, digits, ``.``, ``_``, ``-`` (it names a file)."""
    if not _NAME.match(value):
        raise UsageError(f"CA name {value!r}: use letters, digits, '.', '_' or '-' (64 at most)")
    return value


def split_pem(text: str) -> list[str]:
    """The certificates of a PEM text, each as one normalized PEM block.

    Raises UsageError when there is none or a block is not base64 (what ``openssl``
    would reject too); the host side parses each further (:mod:`pipglr.ops.certs`).
    """
    blocks: list[str] = []
    for match in _PEM_BLOCK.finditer(text):
        body = "".join(match["body"].split())
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(
                "a CERTIFICATE block is not valid base64: is the file damaged?"
            ) from None
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        del der
        blocks.append("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) +
                      "\n-----END CERTIFICATE-----\n")  # fmt: skip
    if not blocks:
        raise UsageError("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")
    return blocks


# -- the settings document ---------------------------------------------------------------
@dataclass(frozen=True)
class Mirror:
    """Pull ``registry``'s images from ``location`` first (host[:port])."""

    registry: str
    location: str
    insecure: bool = False


@dataclass(frozen=True)
class CA:
    """A private certificate authority: a name and its PEM certificate(s)."""

    name: str
    pem: str


@dataclass(frozen=True)
class Proxy:
    """The proxy everything of pipglr uses: URLs and the operator's exclusions."""

    http: str = ""
    https: str = ""
    no_proxy: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.http or self.https)


@dataclass(frozen=True)
class NetworkSettings:
    """The :data:`pipglr.layout.NETWORK_SECRET` document."""

    mirrors: tuple[Mirror, ...] = ()
    cas: tuple[CA, ...] = ()
    proxy: Proxy = field(default_factory=Proxy)

    @property
    def empty(self) -> bool:
        return not (self.mirrors or self.cas or self.proxy.configured)

    def with_mirror(self, mirror: Mirror) -> NetworkSettings:
        """Add a mirror (after the registry's others: tried in order); same one again:
        its ``insecure`` is replaced."""
        kept = tuple(m for m in self.mirrors
                     if (m.registry, m.location) != (mirror.registry, mirror.location))  # fmt: skip
        return replace(self, mirrors=(*kept, mirror))

    def without_mirrors(self, registry: str) -> NetworkSettings:
        kept = tuple(m for m in self.mirrors if m.registry != registry)
        if len(kept) == len(self.mirrors):
            raise UsageError(f"no mirror for {registry}: `pipglr mirror list` shows them")
        return replace(self, mirrors=kept)

    def with_ca(self, ca: CA) -> NetworkSettings:
        if any(c.name == ca.name for c in self.cas):
            raise UsageError(f"a CA named {ca.name!r} exists: remove it first or pass --name")
        return replace(self, cas=(*self.cas, ca))

    def without_ca(self, name: str) -> NetworkSettings:
        kept = tuple(c for c in self.cas if c.name != name)
        if len(kept) == len(self.cas):
            raise UsageError(f"no CA named {name!r}: `pipglr ca list` shows them")
        return replace(self, cas=kept)

    def with_proxy(self, proxy: Proxy) -> NetworkSettings:
        return replace(self, proxy=proxy)

    def to_toml(self) -> str:
        """The document (tomlkit: every table where TOML puts it)."""
        doc = tomlkit.document()
        doc.add(tomlkit.comment("pipglr company-network settings: `pipglr mirror|ca|proxy`;"
                                " restart pipglr to apply"))  # fmt: skip
        if self.proxy.configured or self.proxy.no_proxy:
            proxy = tomlkit.table()
            proxy["http"] = self.proxy.http
            proxy["https"] = self.proxy.https
            proxy["no_proxy"] = list(self.proxy.no_proxy)
            doc["proxy"] = proxy
        if self.mirrors:
            mirrors = tomlkit.aot()
            for mirror in self.mirrors:
                mirrors.append(tomlkit.item({"registry": mirror.registry,
                                             "location": mirror.location,
                                             "insecure": mirror.insecure}))  # fmt: skip
            doc["mirror"] = mirrors
        if self.cas:
            cas = tomlkit.aot()
            for ca in self.cas:
                entry = tomlkit.table()
                entry["name"] = ca.name
                entry["pem"] = tomlkit.string(ca.pem, multiline=True)
                cas.append(entry)
            doc["ca"] = cas
        return tomlkit.dumps(doc)

    @classmethod
    def from_toml(cls, text: str) -> NetworkSettings:
        """Parse and check the document; ConfigError names what is wrong."""
        where = f"the {layout.NETWORK_SECRET} secret"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{where} is not TOML ({exc}): rewrite it with `pipglr mirror|ca|proxy`"
            ) from None
        try:
            mirrors = tuple(
                Mirror(
                    check_host_port(str(m["registry"])),
                    check_host_port(str(m["location"])),
                    bool(m.get("insecure", False)),
                )  # fmt: skip
                for m in _tables(data.get("mirror", []))
            )
            cas = tuple(CA(check_name(str(c["name"])), "".join(split_pem(str(c["pem"]))))
                        for c in _tables(data.get("ca", [])))  # fmt: skip
            raw = data.get("proxy", {})
            if not isinstance(raw, dict):
                raise UsageError("[proxy] must be a table")
            proxy = Proxy(
                check_proxy_url(raw["http"]) if raw.get("http") else "",
                check_proxy_url(raw["https"]) if raw.get("https") else "",
                tuple(str(n) for n in raw.get("no_proxy", [])),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"{where} lacks {exc}: rewrite it with `pipglr mirror|ca|proxy`"
            ) from None
        except UsageError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cls(mirrors, cas, proxy)


def _tables(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TypeError("an array of tables")
    return value


# -- registry logins (docker config.json) ---------------------------------------------------
def logins(config_text: str) -> dict[str, str]:
    """Registry → user name of a docker ``config.json`` (never the password)."""
    found: dict[str, str] = {}
    for registry, entry in _auths(config_text).items():
        user = ""
        auth = entry.get("auth")
        if isinstance(auth, str):
            try:
                user = base64.b64decode(auth).decode(errors="replace").partition(":")[0]
            except (binascii.Error, ValueError):
                user = "?"
        found[registry] = str(entry.get("username") or user)
    return found


def _auths(config_text: str) -> dict[str, dict[str, Any]]:
    if not config_text.strip():
        return {}
    try:
        data = json.loads(config_text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"the {layout.REGISTRY_AUTH_SECRET} secret is not JSON ({exc})") from None
    auths = data.get("auths", {}) if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        raise ConfigError(f'the {layout.REGISTRY_AUTH_SECRET} secret has no "auths" object')
    return {str(k): v for k, v in auths.items() if isinstance(v, dict)}


def with_login(config_text: str, registry: str, username: str, password: str) -> str:
    """``config_text`` with ``registry``'s entry (re)placed, as ``docker login`` writes it."""
    if not username or ":" in username:
        raise UsageError("the user name must be non-empty and hold no ':'")
    if not password:
        raise UsageError("empty password: pass it on stdin")
    auths = _auths(config_text)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths[check_host_port(registry)] = {"auth": token}
    return json.dumps({"auths": auths}, indent=1, sort_keys=True) + "\n"


def without_login(config_text: str, registry: str) -> str:
    auths = _auths(config_text)
    if auths.pop(check_host_port(registry), None) is None:
        raise UsageError(f"no login for {registry}: `pipglr registry list` shows them")
    return json.dumps({"auths": auths}, indent=1, sort_keys=True) + "\n"
