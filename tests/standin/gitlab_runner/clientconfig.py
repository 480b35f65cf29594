"""Docker client configuration (``config.json`` / ``DOCKER_AUTH_CONFIG``) as gitlab-runner
v18.11.4 reads it for image pulls.

helpers/docker/auth/auth.go ``readConfigsFromReader`` loads the text with docker/cli
v28.5.2 cli/config/configfile/file.go ``ConfigFile.LoadFromReader`` (Go's
``json.Decoder``: the first JSON value, case-insensitive field names, the first type
error reported after decoding; every ``auths`` entry's ``auth`` split by ``decodeAuth``
into username and password, its key becoming ``ServerAddress``), then takes
``credsStore`` (``readConfigsFromCredentialsStore``) and ``credHelpers``
(``readConfigsFromCredentialsHelper``) through docker-credential-helpers v0.9.5
client/client.go ``List``/``Get``.

Not replayed: credential helper programs are never run. A helper that is not on PATH
fails exactly as upstream's ``exec`` does; one that is on PATH fails with an error that
says the stand-in does not run helpers. Go's JSON *syntax* error texts are approximated
from Python's decoder (type errors and base64 errors are Go's own texts).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from typing import Any

#: docker/cli cli/config/credentials/native_store.go ``remoteCredentialsPrefix``.
HELPER_PREFIX = "docker-credential-"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUES = {char: value for value, char in enumerate(_B64)}
_KINDS = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}
#: strconv.Quote's escapes of control characters (the rest are ``\xNN``).
_ESCAPES = {char: "\\" + name for char, name in zip("\a\b\f\n\r\t\v", "abfnrtv", strict=True)}


class _Object(list[tuple[str, Any]]):
    """A decoded JSON object: its ``(key, value)`` pairs in order, duplicates kept."""


class ConfigError(Exception):
    """The configuration cannot be used (upstream's error text)."""


class PathTraversal(ConfigError):
    """auth.go ``errPathTraversal``: a helper name with a path in it."""

    def __init__(self) -> None:
        super().__init__("path traversal is not allowed")


@dataclass(frozen=True)
class AuthConfig:
    """docker/cli cli/config/types/authconfig.go ``AuthConfig`` (JSON field order)."""

    username: str = ""
    password: str = ""
    auth: str = ""
    email: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""


def go_quote_char(char: str) -> str:
    """encoding/json scanner.go ``quoteChar``: how a syntax error names a character."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    if char < " " or char == "\x7f":
        return "'" + _ESCAPES.get(char, f"\\x{ord(char):02x}") + "'"
    return f"'{char}'"


def go_base64_decode(text: str) -> bytes:
    """encoding/base64 ``StdEncoding.Decode`` (``decodeQuantum``): newlines are skipped,
    padding is required; raises ``illegal base64 data at input byte N`` as Go does."""
    src = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    si = 0

    def corrupt(offset: int) -> ConfigError:
        return ConfigError(f"illegal base64 data at input byte {offset}")

    while si < len(src):
        quantum: list[int] = []
        trailing = False
        while len(quantum) < 4:
            if si == len(src):
                if not quantum:
                    return bytes(out)
                raise corrupt(si - len(quantum))
            char = chr(src[si])
            si += 1
            if char in _B64_VALUES:
                quantum.append(_B64_VALUES[char])
                continue
            if char in "\r\n":
                continue
            if char != "=" or len(quantum) < 2:
                raise corrupt(si - 1)
            if len(quantum) == 2:
                while si < len(src) and chr(src[si]) in "\r\n":
                    si += 1
                if si == len(src):
                    raise corrupt(len(src))
                if chr(src[si]) != "=":
                    raise corrupt(si - 1)
                si += 1
            while si < len(src) and chr(src[si]) in "\r\n":
                si += 1
            if si < len(src):
                trailing = True
            break
        value = 0
        for index in range(4):
            value = value << 6 | (quantum[index] if index < len(quantum) else 0)
        out += value.to_bytes(3, "big")[: len(quantum) - 1]
        if trailing:
            raise corrupt(si)
    return bytes(out)


def decode_auth(auth: str) -> tuple[str, str]:
    """configfile/file.go ``decodeAuth``: base64 ``user:password``."""
    if not auth:
        return "", ""
    raw = go_base64_decode(auth)
    # Go decodes into a buffer of DecodedLen bytes; the unused tail stays zero.
    raw += b"\0" * (len(auth.encode()) // 4 * 3 - len(raw))
    username, colon, password = raw.decode(errors="replace").partition(":")
    if not colon or not username:
        raise ConfigError("Invalid auth configuration file")
    return username, password.strip("\0")


def _kind(value: Any) -> str:
    return "object" if isinstance(value, _Object) else _KINDS.get(type(value), "object")


def _type_error(value: Any, where: str, go_type: str) -> str:
    """encoding/json ``UnmarshalTypeError.Error``."""
    target = f"Go struct field {where}" if where else "Go value"
    return f"json: cannot unmarshal {_kind(value)} into {target} of type {go_type}"


class _Decoder:
    """The subset of Go's ``json.Unmarshal`` into ``ConfigFile`` that matters here:
    keys match fields case-insensitively, later keys win, maps merge, ``null`` is a
    no-op for strings and clears maps; the first type error is kept, decoding goes on."""

    def __init__(self) -> None:
        self.error: str | None = None

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def fields(self, pairs: list[tuple[str, Any]], names: tuple[str, ...]) -> list[tuple[str, Any]]:
        """``(field, value)`` for keys naming one of ``names`` (exact or case-folded)."""
        found = []
        for key, value in pairs:
            name = key if key in names else next((n for n in names if n.lower() == key.lower()), "")
            if name:
                found.append((name, value))
        return found

    def string(self, value: Any, where: str, current: str) -> str:
        if value is None:
            return current
        if not isinstance(value, str):
            self.fail(_type_error(value, where, "string"))
            return current
        return value

    def auth_config(self, value: Any) -> AuthConfig:
        if value is None:
            return AuthConfig()
        if not isinstance(value, _Object):
            self.fail(_type_error(value, "ConfigFile.auths", "types.AuthConfig"))
            return AuthConfig()
        config: dict[str, str] = {}
        for name, item in self.fields(value, tuple(AuthConfig.__dataclass_fields__)):
            config[name] = self.string(item, f"AuthConfig.auths.{name}", config.get(name, ""))
        return AuthConfig(**config)

    def string_map(
        self, value: Any, where: str, current: dict[str, Any] | None, element: str
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, _Object):
            self.fail(_type_error(value, where, element))
            return current
        merged = dict(current or {})
        for key, item in value:
            if element.endswith("AuthConfig"):
                merged[key] = self.auth_config(item)
            else:
                merged[key] = self.string(item, where, "")
        return merged


@dataclass
class ConfigFile:
    """docker/cli configfile/file.go ``ConfigFile``: the fields the runner reads."""

    auths: dict[str, AuthConfig] | None = None
    creds_store: str = ""
    cred_helpers: dict[str, str] | None = None

    def contains_auth(self) -> bool:
        """``ContainsAuth``."""
        return bool(self.creds_store or self.cred_helpers or self.auths)


def _syntax_error(text: str, error: json.JSONDecodeError) -> str:
    """Go's ``SyntaxError`` text for what Python's decoder found (approximate)."""
    if error.pos >= len(text) or error.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    if error.msg.startswith("Illegal trailing comma"):  # Python 3.13+
        after = text[error.pos :].lstrip(", \t\r\n")
        if not after:
            return "unexpected EOF"
        wanted = "object key string" if error.msg.endswith("object") else "value"
        return f"invalid character {go_quote_char(after[0])} looking for beginning of {wanted}"
    pos = error.pos + (1 if error.msg.startswith("Invalid \\escape") else 0)
    context = {
        "Expecting value": "looking for beginning of value",
        "Expecting property name enclosed in double quotes": (
            "looking for beginning of object key string"
        ),
        "Expecting ':' delimiter": "after object key",
        "Invalid control character at": "in string literal",
        "Invalid \\escape": "in string escape code",
    }.get(error.msg)
    if context is None:
        opener = _innermost_open(text[:pos])
        context = "after array element" if opener == "[" else "after object key:value pair"
    return f"invalid character {go_quote_char(text[pos])} {context}"


def _innermost_open(prefix: str) -> str:
    """The bracket still open at the end of ``prefix`` (outside strings)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in prefix:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def load(text: str) -> ConfigFile:
    """``LoadFromReader``: decode the first JSON value (empty text: an empty config),
    then split every ``auths`` entry's ``auth`` and set its ``ServerAddress``."""
    stripped = text.lstrip(" \t\r\n")
    if not stripped:
        return ConfigFile()
    decoder = json.JSONDecoder(object_pairs_hook=_Object, parse_constant=_reject_constant)
    try:
        value, _ = decoder.raw_decode(stripped)
    except json.JSONDecodeError as exc:
        raise ConfigError(_syntax_error(stripped, exc)) from None
    except ValueError as exc:
        raise ConfigError(
            f"invalid character {go_quote_char(str(exc).lstrip('-')[0])} "
            "looking for beginning of value"
        ) from None
    config = ConfigFile()
    go = _Decoder()
    if isinstance(value, _Object) or value is None:
        names = ("auths", "credsStore", "credHelpers")
        for name, item in go.fields(value or [], names):
            if name == "auths":
                config.auths = go.string_map(
                    item, "ConfigFile.auths", config.auths, "map[string]types.AuthConfig"
                )
            elif name == "credsStore":
                config.creds_store = go.string(item, "ConfigFile.credsStore", config.creds_store)
            else:
                config.cred_helpers = go.string_map(
                    item, "ConfigFile.credHelpers", config.cred_helpers, "map[string]string"
                )
    else:
        go.fail(_type_error(value, "", "configfile.ConfigFile"))
    if go.error is not None:
        raise ConfigError(go.error)
    auths = {}
    for address, entry in (config.auths or {}).items():
        if entry.auth:
            username, password = decode_auth(entry.auth)
            entry = replace(entry, username=username, password=password)
        auths[address] = replace(entry, auth="", serveraddress=address)
    config.auths = auths if config.auths is not None else None
    return config


def go_base(path: str) -> str:
    """Go's ``filepath.Base``."""
    if not path:
        return "."
    trimmed = path.rstrip("/")
    return trimmed.rpartition("/")[2] if trimmed else "/"


def _helper_error(action: str, helper: str) -> ConfigError:
    """docker-credential-helpers client.go ``List``/``Get`` when the program cannot run."""
    program = HELPER_PREFIX + helper
    if shutil.which(program) is None:
        cause = f'exec: "{program}": executable file not found in $PATH'
    else:
        cause = f"the gitlab-runner stand-in does not run credential helpers ({program})"
    return ConfigError(f"error {action} credentials - err: {cause}, out: ``")


def read_configs(text: str) -> list[AuthConfig] | None:
    """auth.go ``readConfigsFromReader``: ``None`` when no auth is configured, else the
    ``auths`` entries, then credential store and helper entries, sorted by key
    (``withStableOrder``). Helpers are checked for path traversal first, as upstream."""
    config = load(text)
    if not config.contains_auth():
        return None
    auths = dict(config.auths or {})
    if config.creds_store:
        if config.creds_store != go_base(config.creds_store):
            raise PathTraversal()
        raise _helper_error("listing", config.creds_store)
    if config.cred_helpers is not None:
        # Go ranges over the map in random order; the stand-in goes by key.
        for _, helper in sorted(config.cred_helpers.items()):
            if helper != go_base(helper):
                raise PathTraversal()
            raise _helper_error("getting", helper)
    return [auths[address] for address in sorted(auths)]
