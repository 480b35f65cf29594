"""A small TOML writer (``tomllib`` only reads).

gitlab-runner rewrites the whole config.toml when it saves it (common/config.go
``SaveConfig``, BurntSushi/toml encoder): plain keys first, then tables, nested tables
indented by two spaces per level, arrays of tables as ``[[runners]]``. This writer
produces that shape from the ``dict`` that :func:`tomllib.loads` returns, so a load and
a save keep every value (comments are lost, as with the real runner).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _is_table(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: object) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)
    )


def format_value(value: object) -> str:
    """One TOML value: string, bool, int, float, datetime, date or array of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None and value.utcoffset() == datetime.timedelta(0):
            return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
        return value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(str(k))} = {format_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _write_table(lines: list[str], path: list[str], table: Mapping[str, object]) -> None:
    indent = "  " * len(path)
    for key, value in table.items():
        if not _is_table(value) and not _is_table_array(value):
            lines.append(f"{indent}{_key(key)} = {format_value(value)}")
    for key, value in table.items():
        child = [*path, key]
        header = ".".join(_key(part) for part in child)
        child_indent = "  " * (len(child) - 1)
        if _is_table(value):
            assert isinstance(value, Mapping)
            if not path:
                lines.append("")
            lines.append(f"{child_indent}[{header}]")
            _write_table(lines, child, value)
        elif _is_table_array(value):
            assert isinstance(value, list)
            for item in value:
                if not path:
                    lines.append("")
                lines.append(f"{child_indent}[[{header}]]")
                _write_table(lines, child, item)


def dumps(document: Mapping[str, object]) -> str:
    """The TOML text of ``document``."""
    lines: list[str] = []
    _write_table(lines, [], document)
    return "\n".join(lines).lstrip("\n") + "\n"
