"""``network-setup``: this boot's files for the company-network settings.

Runs as root at every boot (``pipglr-network.service``), before the egress guard, the
podman setup, the nested API service and the runner, which require it: a malformed
settings secret is one line and keeps jobs from running. It reads

- the optional :data:`pipglr.layout.NETWORK_PATH` secret (absent: no settings),
- the container's environment (``/proc/1/environ``: ``pipglr up --env HTTP_PROXY=...``,
  either case, overrides the secret's proxy),
- the registry names of the optional login secret :data:`pipglr.layout.REGISTRY_AUTH_PATH`
  (never a password: see :func:`pipglr.netsettings.logins`),

and derives with :mod:`pipglr.netsettings`, into :data:`pipglr.layout.NET_RUN_DIR`
(tmpfs, root, 0755):

- :data:`~pipglr.layout.CA_BUNDLE` (0644, always): the system roots plus the private
  CAs; the image's trust store ``/etc/ssl/certs/ca-certificates.crt`` links to it;
- :data:`~pipglr.layout.REGISTRIES_DROPIN` (0644, only with mirrors): the nested
  podman's ``registries.conf.d`` drop-in (linked there by the podman setup);
- ``certs.d/HOST/ca.crt`` (0644, only with private CAs): per mirror and login registry;
- :data:`~pipglr.layout.PROXY_ENV_FILE` (0600, always, empty without a proxy): the
  ``EnvironmentFile`` of the runner and the API service (systemd reads it as root);
- :data:`~pipglr.layout.CA_FACTS` (0644, always, ``[]`` without private CAs): each
  private CA certificate's name, subject, expiry (``not_after``, epoch seconds) and
  SHA-256 fingerprint, for the metrics exporter (:func:`ca_facts`; a certificate
  that does not parse is left out);
- :data:`JOBS_FILE` (0644): what the runner's working copy gives every job
  (:func:`pipglr.netboot.job_settings`, read by :mod:`pipglr.guest.runnerstate`).
  It holds the proxy variables, so a proxy URL with a password in it is readable by
  the runner and podman users — jobs get the same URL in their environment anyway.

The egress guard computes what it opens from the same inputs with :func:`load`
(it reads the secrets itself rather than a file written here). Standard library plus
``tomlkit`` (python3-tomlkit) and ``cryptography`` (python3-cryptography, imported
only to write :data:`~pipglr.layout.CA_FACTS`): this module runs in the image.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from pipglr import layout, netboot, netsettings
from pipglr.errors import ConfigError, UsageError
from pipglr.guest import netguard, netroutes

#: What :func:`pipglr.netboot.job_settings` gives every job (JSON, 0644).
JOBS_FILE = layout.NET_RUN_DIR / "jobs.json"
#: The per-registry certificate directories of the nested podman (containers-certs.d(5)):
#: ``CERTS_D_DIR/HOST[:PORT]/CERTS_D_FILE`` (:func:`pipglr.netboot.certs_d_path`).
CERTS_D_DIR = layout.NET_RUN_DIR / "certs.d"
CERTS_D_FILE = "ca.crt"


@dataclass(frozen=True)
class Inputs:
    """Everything the boot files are derived from."""

    settings: netsettings.NetworkSettings
    environment: Mapping[str, str]
    login_registries: tuple[str, ...]

    def proxy_environment(self, own_addresses: Iterable[str] = ()) -> dict[str, str]:
        """The proxy variables (:func:`pipglr.netboot.proxy_environment`); an ``--env``
        proxy URL without a scheme is a :class:`ConfigError` naming the option."""
        try:
            return netboot.proxy_environment(self.settings.proxy, self.environment, own_addresses)
        except UsageError as exc:
            raise ConfigError(
                f"the container's --env: {exc}; recreate the container with a fixed value"
            ) from None

    def openings(self) -> list[netboot.Opening]:
        """What the egress guard opens for these settings (the proxy URLs do not depend
        on the container's addresses)."""
        return netboot.openings(self.settings, self.proxy_environment(), self.login_registries)


def read_settings(path: Path) -> netsettings.NetworkSettings:
    """The network settings secret; absent: empty settings; malformed: ConfigError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return netsettings.NetworkSettings()
    except OSError as exc:
        raise ConfigError(
            f"{path} is not readable ({exc.strerror}): recreate the container with `pipglr up`"
        ) from None
    return netsettings.NetworkSettings.from_toml(text)


def read_login_registries(path: Path) -> tuple[str, ...]:
    """The registries the login secret holds a login for (absent: none)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise ConfigError(
            f"{path} is not readable ({exc.strerror}): recreate the container with `pipglr up`"
        ) from None
    return tuple(_host_port(name) for name in netsettings.logins(text) if _host_port(name))


def _host_port(name: str) -> str:
    """A login's registry as host[:port]; "" for a key that is not (a hand-written
    ``https://index.docker.io/v1/``: the runner still uses it, nothing is opened for it)."""
    try:
        return netsettings.check_host_port(name)
    except UsageError:
        return ""


def load(
    network_path: Path = Path(str(layout.NETWORK_PATH)),
    auth_path: Path = Path(str(layout.REGISTRY_AUTH_PATH)),
    environ_path: Path = Path("/proc/1/environ"),
) -> Inputs:
    """Read this container's inputs (root: the secrets and PID 1's environment)."""
    return Inputs(
        read_settings(network_path),
        netguard.container_environment(environ_path.read_bytes()),
        read_login_registries(auth_path),
    )


# -- writing -------------------------------------------------------------------------------
def _write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` atomically with ``text``, created with ``mode`` (umask aside)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = path.with_name(f".{path.name}.new")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(text)
    os.replace(new, path)


def _in(run_dir: Path, path: PurePosixPath) -> Path:
    """``path`` (under :data:`layout.NET_RUN_DIR`) below ``run_dir`` instead."""
    return run_dir / path.relative_to(layout.NET_RUN_DIR)


def proxy_env_file(variables: Mapping[str, str]) -> str:
    """An ``EnvironmentFile`` (systemd.exec(5)): ``KEY="VALUE"`` lines, ``\\`` and ``"``
    escaped."""
    quoted = {k: v.replace("\\", "\\\\").replace('"', '\\"') for k, v in variables.items()}
    return "".join(f'{key}="{value}"\n' for key, value in quoted.items())


def read_job_settings(path: Path = Path(str(JOBS_FILE))) -> netboot.JobSettings | None:
    """What :func:`setup` wrote to :data:`JOBS_FILE`; None when there is no such file
    (the network unit has not run: nothing to add)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{path} is damaged ({exc}): `systemctl restart {layout.NETWORK_UNIT}`"
        ) from None
    tls = data.get("tls_ca_file")
    return netboot.JobSettings(
        tuple(str(e) for e in data.get("environment", [])),
        tuple(str(v) for v in data.get("volumes", [])),
        str(tls) if tls else None,
    )


def setup(
    inputs: Inputs,
    addresses: Iterable[str],
    system_bundle: Path = Path(str(layout.SYSTEM_CA_BUNDLE)),
    run_dir: Path = Path(str(layout.NET_RUN_DIR)),
) -> str:
    """Write this boot's files into ``run_dir``; return the summary line."""
    settings = inputs.settings
    proxy_env = inputs.proxy_environment(addresses)
    try:
        roots = system_bundle.read_text()
    except OSError as exc:
        raise ConfigError(
            f"the image's system roots {system_bundle} are unreadable ({exc.strerror}): "
            "rebuild the image"
        ) from None
    run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    run_dir.chmod(0o755)
    _write(_in(run_dir, layout.CA_BUNDLE), netboot.ca_bundle(roots, settings.cas), 0o644)
    dropin = _in(run_dir, layout.REGISTRIES_DROPIN)
    if settings.mirrors:
        _write(dropin, netboot.registries_conf(settings.mirrors), 0o644)
    else:
        dropin.unlink(missing_ok=True)
    certs_d = _in(run_dir, CERTS_D_DIR)
    shutil.rmtree(certs_d, ignore_errors=True)
    hosts = netboot.certs_d_hosts(settings, inputs.login_registries) if settings.cas else []
    private = "".join(ca.pem for ca in settings.cas)
    for host in hosts:
        _write(_in(run_dir, netboot.certs_d_path(host)) / CERTS_D_FILE, private, 0o644)
        (certs_d / host).chmod(0o755)
    if hosts:
        certs_d.chmod(0o755)
    _write(_in(run_dir, layout.PROXY_ENV_FILE), proxy_env_file(proxy_env), 0o600)
    cas = json.dumps(ca_facts(settings.cas), indent=1) + "\n"
    _write(_in(run_dir, layout.CA_FACTS), cas, 0o644)
    jobs = netboot.job_settings(bool(settings.cas), proxy_env)
    _write(_in(run_dir, JOBS_FILE), json.dumps(asdict(jobs), indent=1) + "\n", 0o644)
    return summary(inputs, proxy_env)


def ca_facts(cas: Iterable[netsettings.CA]) -> list[dict[str, object]]:
    """Each certificate of each private CA (a CA's PEM may hold several): ``name``,
    ``subject`` (RFC 4514), ``not_after`` (epoch seconds), ``fingerprint`` (SHA-256,
    lower-case hex). One that does not parse is left out: the host side checked it
    when it was added, and the trust bundle carries it regardless."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    facts: list[dict[str, object]] = []
    for ca in cas:
        try:
            pems = netsettings.split_pem(ca.pem)
        except UsageError:
            continue
        for pem in pems:
            try:
                cert = x509.load_pem_x509_certificate(pem.encode())
            except ValueError:
                continue
            facts.append({
                "name": ca.name,
                "subject": cert.subject.rfc4514_string(),
                "not_after": int(cert.not_valid_after_utc.timestamp()),
                "fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
            })  # fmt: skip
    return facts


def summary(inputs: Inputs, proxy_env: Mapping[str, str]) -> str:
    """One line: what was set up (a proxy's password masked)."""
    settings = inputs.settings
    mirrors = ", ".join(f"{m.location} for {m.registry}" for m in settings.mirrors)
    parts = [
        f"{len(settings.mirrors)} mirror(s)" + (f" ({mirrors})" if mirrors else ""),
        f"{len(settings.cas)} private CA(s)"
        + (f" ({', '.join(c.name for c in settings.cas)})" if settings.cas else ""),
        f"{len(inputs.login_registries)} registry login(s)",
    ]
    urls = [
        netsettings.redact_url(proxy_env[k])
        for k in ("HTTP_PROXY", "HTTPS_PROXY")
        if k in proxy_env
    ]
    parts.append(f"proxy {' and '.join(dict.fromkeys(urls))}" if urls else "no proxy")
    return "network settings: " + "; ".join(parts)


def main() -> str:
    """The ``network-setup`` command: read this container's inputs, write the files."""
    return setup(load(), netroutes.own_addresses())
