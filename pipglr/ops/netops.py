"""Company-network settings on the host: ``pipglr mirror|ca|proxy|registry``.

The settings live in two optional podman secrets (:data:`pipglr.layout.NETWORK_SECRET`,
a TOML document of :class:`pipglr.netsettings.NetworkSettings`;
:data:`pipglr.layout.REGISTRY_AUTH_SECRET`, a docker ``config.json``).
:class:`SecretStore` reads and writes them: podman 4.3 cannot print a secret, so a
throw-away container of the image (no network) ``cat``\\ s it; a write is checked first,
staged under another name, then swapped in as
:meth:`pipglr.ops.configsecret.ConfigSecret.replace_config` does, with a backup of the
old text. :class:`NetworkOps` are the commands: every input
is checked where it enters (nothing is written on bad input) and every change is one
line ending with :data:`RESTART` (the secrets are copied into the container when it is
created). :func:`status_fields` and :func:`doctor_findings` are the network parts of
``pipglr status`` and ``pipglr doctor``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipglr import layout, netsettings
from pipglr.build import labels
from pipglr.errors import ConfigError, EngineError, PipglrError, UsageError
from pipglr.netsettings import CA, Mirror, NetworkSettings, Proxy
from pipglr.ops import certs, configsecret, doctor, netdoctor
from pipglr.ops.outer import Outer

RESTART = "restart pipglr to apply: pipglr down && pipglr up"


@dataclass
class SecretStore:
    """The optional secrets of the operator's podman, read through ``image``."""

    outer: Outer
    image: str

    def names(self) -> list[str]:
        return self.outer.run("secret", "ls", "--format", "{{.Name}}").stdout.split()

    def read(self, name: str) -> str:
        """The secret's text; an absent secret reads as empty."""
        if name not in self.names():
            return ""
        return self._read_present(name)

    def _read_present(self, name: str) -> str:
        done = self.outer.run(
            "run", "--rm", "--pull", "never", "--network", "none", "--user", "0",
            "--secret", f"{name},mode=0400", "--entrypoint", "cat",
            self.image, str(layout.SECRET_DIR / name), check=False,
        )  # fmt: skip
        if done.returncode != 0:
            why = configsecret.last_line(done.stderr)
            raise EngineError(
                f"reading the {name} secret through {self.image} failed ({why}): "
                "pass the pipglr image (built or pulled) with --image"
            )
        return done.stdout

    def write(self, name: str, text: str) -> Path | None:
        """Make ``text`` (checked by the caller) the secret ``name``; ``""`` removes it.
        Returns the backup of the previous text (None: there was none)."""
        old = self._read_present(name) if name in self.names() else None
        if old == text or (old is None and not text):
            return None
        if text:
            self._stage(name, text)
        backup = _backup(name, old) if old is not None else None
        if not text:
            self.outer.run("secret", "rm", name)
            return backup
        configsecret.put_secret(self.outer, name, text, old)
        return backup

    def _stage(self, name: str, text: str) -> None:
        """Let podman accept ``text`` under a staging name before the real one is touched."""
        configsecret.stage_secret(self.outer, f"{name}-staging", name, text)


def _backup(name: str, text: str) -> Path:
    """Keep ``text`` of ``name`` (the newest few per secret: configsecret.BACKUPS_KEPT)."""
    return configsecret.backup(text, name)


def host_port(value: str) -> str:
    """A registry or mirror as host[:port]; a URL is refused as such (netsettings would
    read ``https://m`` as host ``https`` with a bad port)."""
    if "/" in value:
        raise UsageError(
            f"{value!r} is not host[:port] (no scheme, no path): e.g. mirror.example.com:5000"
        )
    return netsettings.check_host_port(value)


def changed(what: str, backup: Path | None) -> str:
    """The one line a change prints."""
    kept = f" (backup: {backup})" if backup else ""
    return f"{what}{kept}; {RESTART}"


def ca_name(path: Path) -> str:
    """The default CA name: the file's stem with other characters made ``-``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._")[:64]
    return netsettings.check_name(stem or "ca")


def _no_proxy(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    for name in names:
        if any(c.isspace() or c in "\"'=" for c in name):
            raise UsageError(f"--no-proxy entry {name!r}: give host names, domains or CIDRs, "
                             "separated by commas")  # fmt: skip
    return names


@dataclass
class NetworkOps:
    """``pipglr mirror|ca|proxy|registry`` over the two secrets."""

    store: SecretStore

    @classmethod
    def of(cls, outer: Outer, image: str) -> NetworkOps:
        return cls(SecretStore(outer, image))

    # -- the network document ---------------------------------------------------------
    def settings(self) -> NetworkSettings:
        text = self.store.read(layout.NETWORK_SECRET)
        return NetworkSettings.from_toml(text) if text.strip() else NetworkSettings()

    def _save(self, settings: NetworkSettings) -> Path | None:
        if settings == NetworkSettings():
            return self.store.write(layout.NETWORK_SECRET, "")
        text = settings.to_toml()
        if NetworkSettings.from_toml(text) != settings:
            raise ConfigError(
                f"the {layout.NETWORK_SECRET} document does not read back as written: "
                "nothing changed (a pipglr bug: please report it)"
            )
        return self.store.write(layout.NETWORK_SECRET, text)

    def mirror_add(self, registry: str, location: str, insecure: bool = False) -> str:
        mirror = Mirror(host_port(registry), host_port(location), insecure)
        if mirror.registry == mirror.location:
            raise UsageError(f"{location} cannot be a mirror of itself: name the mirror's address")
        backup = self._save(self.settings().with_mirror(mirror))
        plain = " (insecure: plain HTTP or unverified TLS)" if insecure else ""
        return changed(f"mirror {mirror.location} of {mirror.registry} stored{plain}", backup)

    def mirror_list(self) -> list[str]:
        return [f"{m.registry}  {m.location}{'  insecure' if m.insecure else ''}"
                for m in self.settings().mirrors]  # fmt: skip

    def mirror_remove(self, registry: str) -> str:
        name = host_port(registry)
        backup = self._save(self.settings().without_mirrors(name))
        return changed(f"mirrors of {name} removed", backup)

    def ca_add(self, file: str, name: str | None = None) -> str:
        path = Path(file)
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise UsageError(f"{file}: cannot read it ({exc.strerror or exc})") from None
        found = certs.describe(text, file)
        ca = CA(netsettings.check_name(name) if name else ca_name(path),
                "".join(netsettings.split_pem(text)))  # fmt: skip
        backup = self._save(self.settings().with_ca(ca))
        first = found[0]
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        leaf = "" if first.is_ca else " (not a CA certificate: trusted as it is)"
        return changed(f"CA {ca.name} stored: {first.subject}{leaf}, expires "
                       f"{first.not_after:%Y-%m-%d}{more}", backup)  # fmt: skip

    def ca_list(self, now: dt.datetime | None = None) -> list[str]:
        moment = now or dt.datetime.now(dt.UTC)
        lines = []
        for ca in self.settings().cas:
            for cert in certs.parse(ca.pem, f"CA {ca.name}"):
                state = "EXPIRED" if cert.not_after < moment else "expires"
                lines.append(f"{ca.name}  {cert.subject}  {state} {cert.not_after:%Y-%m-%d}  "
                             f"sha256 {cert.sha256}")  # fmt: skip
        return lines

    def ca_remove(self, name: str) -> str:
        backup = self._save(self.settings().without_ca(name))
        return changed(f"CA {name} removed", backup)

    def proxy_set(
        self,
        url: str | None = None,
        http: str | None = None,
        https: str | None = None,
        no_proxy: str | None = None,
    ) -> str:
        """Store the proxy: ``url`` for both schemes, or each one; what is not given
        stays as stored (an empty ``http``/``https`` drops that one)."""
        if url is not None:
            http = url if http is None else http
            https = url if https is None else https
        if http is None and https is None and no_proxy is None:
            raise UsageError("give the proxy: pipglr proxy set URL (or --http/--https/--no-proxy)")
        # Checked before the stored settings are even read.
        http, https = (netsettings.check_proxy_url(u) if u else u for u in (http, https))
        exclusions = None if no_proxy is None else _no_proxy(no_proxy)
        settings = self.settings()
        old = settings.proxy
        proxy = Proxy(
            old.http if http is None else http,
            old.https if https is None else https,
            old.no_proxy if exclusions is None else exclusions,
        )
        if not proxy.configured:
            raise UsageError("no proxy URL left: give one, or `pipglr proxy clear`")
        backup = self._save(settings.with_proxy(proxy))
        return changed(f"proxy stored: {'; '.join(self.proxy_show(proxy))}", backup)

    def proxy_show(self, proxy: Proxy | None = None) -> list[str]:
        shown = self.settings().proxy if proxy is None else proxy
        if not shown.configured:
            return []
        return [f"{key} {netsettings.redact_url(value) if key != 'no_proxy' else value}"
                for key, value in (("http", shown.http), ("https", shown.https),
                                   ("no_proxy", ",".join(shown.no_proxy))) if value]  # fmt: skip

    def proxy_clear(self) -> str:
        settings = self.settings()
        if settings.proxy == Proxy():
            return "no proxy stored: nothing changed"
        backup = self._save(settings.with_proxy(Proxy()))
        return changed("proxy removed", backup)

    # -- registry logins -------------------------------------------------------------------
    def login(self, registry: str, username: str, password: str) -> str:
        name = host_port(registry)
        old = self.store.read(layout.REGISTRY_AUTH_SECRET)
        text = netsettings.with_login(old, name, username, password)
        if netsettings.logins(text).get(name) != username:
            raise ConfigError("the new login does not read back: nothing changed")
        backup = self.store.write(layout.REGISTRY_AUTH_SECRET, text)
        return changed(f"login for {name} as {username} stored", backup)

    def logout(self, registry: str) -> str:
        old = self.store.read(layout.REGISTRY_AUTH_SECRET)
        text = netsettings.without_login(old, registry)
        backup = self.store.write(layout.REGISTRY_AUTH_SECRET,
                                  text if netsettings.logins(text) else "")  # fmt: skip
        return changed(f"login for {netsettings.check_host_port(registry)} removed", backup)

    def login_list(self) -> list[str]:
        found = netsettings.logins(self.store.read(layout.REGISTRY_AUTH_SECRET))
        return [f"{registry}  {user}" for registry, user in sorted(found.items())]


# -- status and doctor -------------------------------------------------------------------
def mounted_secrets(info: Mapping[str, Any]) -> list[str]:
    """The optional secrets ``podman container inspect`` shows mounted (Config.Secrets)."""
    config = info.get("Config")
    entries = config.get("Secrets") if isinstance(config, dict) else None
    names = {e.get("Name") for e in entries or [] if isinstance(e, dict)}
    return [name for name in labels.OPTIONAL_SECRETS if name in names]


def opened(text: str) -> list[str]:
    """The egress guard's record (:data:`pipglr.layout.EGRESS_OPENED`) as lines."""
    try:
        entries = json.loads(text)
        return [f"{e['host']}:{e['port']} ({e['reason']}; {', '.join(e.get('addresses', []))})"
                for e in entries]  # fmt: skip
    except (ValueError, TypeError, KeyError) as exc:
        return [f"unreadable {layout.EGRESS_OPENED} ({type(exc).__name__})"]


def status_fields(info: Mapping[str, Any], egress_text: str | None) -> dict[str, object]:
    """``network``: the optional secrets mounted; ``egress_opened``: what the egress
    guard opened for them and why (omitted when it wrote nothing)."""
    mounted = mounted_secrets(info)
    fields: dict[str, object] = {"network": mounted or "defaults (no network secrets mounted)"}
    if egress_text is not None:
        fields["egress_opened"] = opened(egress_text)
    return fields


def doctor_findings(
    ops: NetworkOps, now: dt.datetime | None = None, reach: netdoctor.Reach = netdoctor.tcp_connect
) -> list[doctor.Finding]:
    """The doctor's rows for the stored network settings (none without the secret)."""
    try:
        if layout.NETWORK_SECRET not in ops.store.names():
            return []
        settings = ops.settings()
        cas = [(ca.name, certs.parse(ca.pem, f"CA {ca.name}")) for ca in settings.cas]
    except (PipglrError, OSError) as exc:
        return [doctor.Finding("network settings", doctor.WARN, f"not checked: {exc}",
                               "pass the image that runs pipglr with --image")]  # fmt: skip
    rows = [
        netdoctor.check_ca_expiry(name, [(c.subject, c.not_after) for c in found], now)
        for name, found in cas
    ]
    return rows + netdoctor.check_mirrors(_mirror_pairs(settings.mirrors), reach)


def _mirror_pairs(mirrors: Sequence[Mirror]) -> list[tuple[str, str]]:
    return [(m.registry, m.location) for m in mirrors]
