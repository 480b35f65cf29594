"""Read and change config.toml text without losing comments or layout.

tomlkit keeps the user's formatting when a value changes; every result is checked
with :mod:`pipglr.runnerconfig` before anyone writes it back. Keys are dotted paths
with numeric indexes for arrays: ``concurrent``, ``runners.0.limit``,
``runners.0.docker.privileged``. :func:`edit` hands the text to the user's editor.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError
from tomlkit.items import Item

from pipglr import runnerconfig
from pipglr.errors import ConfigError, UsageError

#: Keys whose values are credentials; redacted by :func:`redact`: runner tokens, the
#: cache credentials of ``[runners.cache.s3|gcs|azure]`` and other executors' secrets
#: (gitlab-runner common/config.go).
SECRET_KEYS = frozenset({
    "token", "registration-token", "password", "bearer_token",
    "AccessKey", "SecretKey", "SessionToken", "PrivateKey", "AccountKey",
})  # fmt: skip
#: ``environment`` entries whose variable name says it holds a credential.
SECRET_NAME = re.compile(r"(?i)token|secret|passw|pwd|credential|auth|private|key")


def _path(key: str) -> list[str | int]:
    if not key or not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", key):
        raise UsageError(f"bad key {key!r}: use a dotted path such as runners.0.limit")
    return [int(p) if p.isdigit() else p for p in key.split(".")]


def get(text: str, key: str) -> Any:
    """The value at ``key`` (plain Python types)."""
    node: Any = runnerconfig.parse(text)
    for part in _path(key):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError) as exc:
            raise UsageError(f"config.toml has no {key!r}") from exc
    return node


def parse_value(raw: str) -> Any:
    """A TOML value (``4``, ``true``, ``"x"``, ``["a"]``); anything else is a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def set_value(text: str, key: str, raw: str) -> str:
    """``text`` with ``key`` set to ``raw`` (parsed as TOML); checked before return."""
    try:
        doc = tomlkit.parse(text)
    except ParseError as exc:
        raise ConfigError(f"config.toml is not valid TOML ({exc})") from exc
    path = _path(key)
    node: Any = doc
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            if isinstance(part, int):
                raise UsageError(f"config.toml has no {key!r}") from None
            node[part] = tomlkit.table()
            node = node[part]
    last = path[-1]
    if isinstance(last, int):
        raise UsageError(f"bad key {key!r}: the last part must be a name")
    node[last] = parse_value(raw)
    result: str = tomlkit.dumps(doc)
    runnerconfig.check(runnerconfig.parse(result))
    return result


def redact(text: str) -> str:
    """``text`` with credential values replaced (the layout is kept)."""
    try:
        doc = tomlkit.parse(text)
    except ParseError as exc:
        raise ConfigError(f"config.toml is not valid TOML ({exc})") from exc

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node.keys()):
                value = node[key]
                if key in SECRET_KEYS and isinstance(value, str | Item) and str(value):
                    node[key] = _hidden(str(value))
                elif key == "environment" and isinstance(value, list):
                    for index, entry in enumerate(value):
                        name, sep, setting = str(entry).partition("=")
                        if sep and setting and SECRET_NAME.search(name):
                            value[index] = f"{name}=REDACTED"
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    redacted: str = tomlkit.dumps(doc)
    return redacted


def _hidden(value: str) -> str:
    """A credential's redacted form: a token's prefix says which one it was."""
    return f"{value[:5]}…REDACTED" if len(value) > 8 else "REDACTED"


def runner_count(text: str) -> int:
    """How many ``[[runners]]`` the config has."""
    runners = runnerconfig.parse(text).get("runners", [])
    return len(runners) if isinstance(runners, list) else 0


def edit(text: str, editor: Sequence[str]) -> str:
    """``text`` as the user leaves it after running ``editor`` (argv) on a copy.

    The copy (every token in it) is a 0600 file in a private 0700 temporary directory
    (the editor's swap and backup files land there too), removed on every way out:
    saved, unchanged, the editor failing or missing, an exception, Ctrl-C.
    """
    with tempfile.TemporaryDirectory(prefix="pipglr-edit-") as private:
        path = Path(private) / "config.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        try:
            done = subprocess.run([*editor, str(path)], check=False)
        except OSError as exc:
            raise UsageError(
                f"the editor {shlex.join(editor)!r} could not start ({exc.strerror}): set "
                "VISUAL or EDITOR to an editor installed here"
            ) from exc
        if done.returncode != 0:
            raise UsageError(
                f"the editor {shlex.join(editor)!r} exited with status {done.returncode}: "
                "config.toml is unchanged; edit again"
            )
        try:
            return path.read_text()
        except OSError as exc:
            raise UsageError(
                f"the edited copy could not be read back ({exc.strerror}): config.toml is "
                "unchanged; save the file in place when you edit again"
            ) from exc
