"""Registry credentials for image pulls, resolved per image as gitlab-runner v18.11.4 does.

helpers/docker/auth/auth.go ``Resolver.AllConfigs`` collects credentials from, in this
order (the first source naming a registry keeps it; later ones are skipped with a debug
line, ``RegistryInfos.Append``):

1. ``DOCKER_AUTH_CONFIG`` (``getUserConfiguration``): the job's variable, else the
   runner's ``environment`` (common/build_settings.go ``validateVariables`` reads it
   from the expanded variables); source ``$DOCKER_AUTH_CONFIG``. An unusable value is
   a trace warning and the source is skipped.
2. The runner user's ``$HOME/.docker/config.json`` or ``$HOME/.dockercfg``
   (``getHomeDirConfiguration``; the docker executor's shell user is empty, so the home
   is ``$HOME`` or the passwd entry: docker ``pkg/homedir.Get``); source: the file's
   path. Errors here are dropped silently, except path traversal.
3. The job payload's ``credentials`` of type ``registry`` (``getBuildConfiguration``);
   source ``job payload (GitLab Registry)``.

``ConfigForImage`` then takes the entry whose registry path is the image's normalized
path or its closest parent (``normalizeImageRef``, ``convertToRegistryPath``: docker.io
aliases, ``https://`` prefixes, tags, host case). executors/docker/internal/pull/
manager.go ``resolveAuthConfigForImage`` logs the source and ``pullDockerImage`` sends
the entry as ``X-Registry-Auth`` (``auth.EncodeConfig``: base64url of the JSON line).
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from .buildinfo import BuildInfo
from .clientconfig import AuthConfig, ConfigError, PathTraversal, read_configs

DEFAULT_REGISTRY = "docker.io"
SOURCE_VARIABLE = "$DOCKER_AUTH_CONFIG"
SOURCE_PAYLOAD = "job payload (GitLab Registry)"
_PROTOCOL = re.compile(r"(?i)^https?://")


class Logger(Protocol):
    """auth.go ``Logger`` (the build logger)."""

    def debugln(self, *args: object) -> None: ...

    def warningln(self, *args: object) -> None: ...


@dataclass(frozen=True)
class RegistryInfo:
    """auth.go ``RegistryInfo``."""

    path: str
    source: str
    auth: AuthConfig


def _go_join(*parts: str) -> str:
    """Go's ``path.Join``: non-empty parts joined and cleaned (no trailing slash)."""
    joined = "/".join(part for part in parts if part)
    if not joined:
        return ""
    rooted = joined.startswith("/")
    out: list[str] = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and out and out[-1] != "..":
            out.pop()
        elif part != ".." or not rooted:
            out.append(part)
    cleaned = "/".join(out)
    return ("/" + cleaned) if rooted else (cleaned or ".")


def lower_hostname(path: str) -> str:
    """auth.go ``pathWithLowerCaseHostname``."""
    host, slash, rest = path.partition("/")
    return host.lower() + slash + rest


def normalize_image_ref(image: str) -> str:
    """auth.go ``normalizeImageRef``: the tag cut (at the first ``:`` of the last
    element, so ``@sha256`` of a digest stays), Docker Hub names under ``docker.io``,
    ``index.docker.io`` shortened, the host lower-cased."""
    directory, _, last = image.rpartition("/")
    normalized = _go_join(directory + ("/" if directory else ""), last.partition(":")[0])
    parts = normalized.split("/", 1)
    first = parts[0]
    if len(parts) == 1 or ("." not in first and ":" not in first and first.lower() != "localhost"):
        normalized = _go_join(DEFAULT_REGISTRY, normalized)
    elif first.lower() == "index." + DEFAULT_REGISTRY:
        normalized = normalized.partition(".")[2]
    return lower_hostname(normalized)


def registry_path(server_address: str) -> str:
    """auth.go ``convertToRegistryPath``: the registry path an auth entry is for."""
    if _PROTOCOL.match(server_address):
        host = _PROTOCOL.sub("", server_address).split("/", 1)[0].lower()
        return DEFAULT_REGISTRY if host == "index." + DEFAULT_REGISTRY else host
    path = server_address.removesuffix("/")
    tag, slash = path.rfind(":"), path.rfind("/")
    if slash != -1 and tag > slash:
        path = path[:tag]
    return lower_hostname(path)


def _go_json_string(text: str) -> str:
    """encoding/json string encoding: HTML characters and U+2028/9 escaped, invalid
    UTF-8 (lone surrogates here) replaced by U+FFFD."""
    text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    encoded = json.dumps(text, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(char, escape)
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def encode_config(auth: AuthConfig | None) -> str:
    """auth.go ``EncodeConfig``: ``""`` for none, else base64url (padded) of
    ``json.Encoder``'s line (``omitempty`` fields in struct order, trailing newline)."""
    if auth is None:
        return ""
    members = [
        f"{_go_json_string(f.name)}:{_go_json_string(getattr(auth, f.name))}"
        for f in fields(auth)
        if getattr(auth, f.name)
    ]
    line = "{" + ",".join(members) + "}\n"
    return base64.urlsafe_b64encode(line.encode()).decode()


def home_dir() -> str:
    """docker pkg/homedir ``Get``: ``$HOME``, else the passwd entry's home."""
    home = os.environ.get("HOME", "")
    if not home:
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            home = ""
    return home


def _read_home_config(home: str) -> tuple[str, list[AuthConfig] | None]:
    """auth.go ``readDockerConfigsFromHomeDir`` + ``getHomeDirConfiguration``."""
    if not home:
        return "", None  # errNoHomeDir, dropped by getHomeDirConfiguration
    for name in (".docker/config.json", ".dockercfg"):
        path = Path(home) / name
        try:
            text = path.read_bytes().decode(errors="replace")
        except OSError:
            continue
        try:
            return str(path), read_configs(text)
        except PathTraversal:
            raise
        except ConfigError:
            return "", None
    return "", []


class Resolver:
    """auth.go ``Resolver`` for one job: its ``DOCKER_AUTH_CONFIG`` and payload
    ``credentials``."""

    def __init__(
        self,
        docker_auth_config: str,
        credentials: list[dict[str, Any]],
        home: Callable[[], str] = home_dir,
    ) -> None:
        self.docker_auth_config = docker_auth_config
        self.credentials = credentials
        self.home = home

    @classmethod
    def for_build(cls, info: BuildInfo) -> Resolver:
        """The job's setting (``Build.GetDockerAuthConfig``) and ``Build.Credentials``."""
        setting = info.all_variables().value("DOCKER_AUTH_CONFIG")
        return cls(setting, list(info.job.raw.get("credentials") or []))

    def _user_configuration(self) -> tuple[str, list[AuthConfig] | None]:
        """``getUserConfiguration``."""
        try:
            configs = read_configs(self.docker_auth_config)
        except PathTraversal:
            raise
        except ConfigError as exc:
            raise _SourceError(SOURCE_VARIABLE, str(exc)) from None
        return ("", None) if configs is None else (SOURCE_VARIABLE, configs)

    def _build_configuration(self) -> tuple[str, list[AuthConfig] | None]:
        """``getBuildConfiguration``: entries of type ``registry``."""
        configs = [
            AuthConfig(
                username=str(entry.get("username") or ""),
                password=str(entry.get("password") or ""),
                serveraddress=str(entry.get("url") or ""),
            )
            for entry in self.credentials
            if isinstance(entry, dict) and entry.get("type") == "registry"
        ]
        return SOURCE_PAYLOAD, configs

    def all_configs(self, logger: Logger) -> list[RegistryInfo]:
        """``AllConfigs``: every source in order; raises :class:`PathTraversal`."""
        found: list[RegistryInfo] = []
        sources = (self._user_configuration, lambda: _read_home_config(self.home()),
                   self._build_configuration)  # fmt: skip
        for source_of in sources:
            try:
                source, configs = source_of()
            except _SourceError as exc:
                logger.warningln(
                    f"Failed to resolve credentials from {exc.source}: {exc.message}. "
                    "Credentials from this source will not be used."
                )
                continue
            if not configs:
                continue
            hostnames = []
            for config in configs:
                path = registry_path(config.serveraddress)
                hostnames.append(path)
                known = next((info for info in found if info.path == path), None)
                if known is not None:
                    logger.debugln(
                        f"Not adding Docker credentials: credentials for {json.dumps(path)} "
                        f"already set from {json.dumps(known.source)}, ignoring credentials "
                        f"from {json.dumps(source)}"
                    )
                    continue
                found.append(RegistryInfo(path, source, config))
            if source:
                logger.debugln(
                    f"Loaded Docker credentials, source = {json.dumps(source)}, "
                    f"hostnames = [{' '.join(hostnames)}], error = <nil>"
                )
        return found

    def config_for_image(self, image: str, logger: Logger) -> RegistryInfo | None:
        """``ConfigForImage``: the entry for the image's path or its closest parent."""
        infos = self.all_configs(logger)
        if not infos:
            return None
        path = normalize_image_ref(image)
        while path:
            for info in infos:
                if info.path == path:
                    return info
            path = path.rpartition("/")[0] if "/" in path else ""
        return None


class _SourceError(Exception):
    """A source that cannot be read (its name and upstream's error text)."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source, self.message = source, message
