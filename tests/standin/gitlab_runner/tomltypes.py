"""config.toml values decoded as github.com/BurntSushi/toml decodes them into the Go
types of common/config.go (strings, int64, bool, ``[]string``, ``map[string]string``,
``StringOrArray``), and the Go parsers the executor applies to some of them
(``strconv.ParseInt``, ``strconv.ParseFloat``, go-units v0.5.0 ``RAMInBytes``,
``big.Rat.SetString``).

A value of the wrong TOML type fails the whole config load, as the decoder's
"incompatible types" error does. A list that is present but empty stays ``[]`` (the
decoder makes a non-nil empty slice, which the Docker client sends as ``[]``); an
absent one is ``None`` (a nil slice, sent as ``null``).
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any

_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_SPECIAL_FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_RAT_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RAT_FRACTION = re.compile(r"[+-]?[0-9]+/[0-9]+")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class TomlTypeError(ValueError):
    """The decoder's "incompatible types" error: the config does not load."""

    def __init__(self, key: str, value: object, wanted: str) -> None:
        super().__init__(
            f'toml: incompatible types: TOML value {value!r} for "{key}" cannot be '
            f"decoded into {wanted}"
        )


def go_quote(value: str) -> str:
    """Go's ``%q`` of a string (strconv.Quote, for printable text)."""
    return json.dumps(value, ensure_ascii=False)


def go_quote_list(values: list[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def string(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise TomlTypeError(f"{where}.{key}", value, "string")
    return value


def integer(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TomlTypeError(f"{where}.{key}", value, "int64")
    return value


def optional_integer(raw: dict[str, Any], key: str, where: str) -> int | None:
    return integer(raw, key, where) if key in raw else None


def boolean(raw: dict[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise TomlTypeError(f"{where}.{key}", value, "bool")
    return value


def optional_boolean(raw: dict[str, Any], key: str, where: str) -> bool | None:
    return boolean(raw, key, where) if key in raw else None


def string_list(raw: dict[str, Any], key: str, where: str) -> list[str] | None:
    """``[]string``: ``None`` when absent."""
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TomlTypeError(f"{where}.{key}", value, "[]string")
    return list(value)


def string_or_array(raw: dict[str, Any], key: str, where: str) -> list[str]:
    """common/config.go ``StringOrArray``: a string or a list of strings."""
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TomlTypeError(f"{where}.{key}", value, "StringOrArray")


def string_map(raw: dict[str, Any], key: str, where: str) -> dict[str, str] | None:
    """``map[string]string``: ``None`` when absent; table order kept."""
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TomlTypeError(f"{where}.{key}", value, "map[string]string")
    return {str(k): v for k, v in value.items()}


def string_list_map(raw: dict[str, Any], key: str, where: str) -> dict[str, list[str]]:
    """``map[string][]string`` (``services_devices``)."""
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise TomlTypeError(f"{where}.{key}", value, "map[string][]string")
    return {str(k): list(string_list(value, k, f"{where}.{key}") or []) for k in value}


def parse_int(text: str) -> int:
    """``strconv.ParseInt(text, 10, 64)`` with its error messages."""
    if not _GO_INT.fullmatch(text):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def _parse_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)`` for decimal and special forms."""
    if _GO_FLOAT.fullmatch(text) or _GO_SPECIAL_FLOAT.fullmatch(text):
        return float(text)
    raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')


def _go_int64(value: float) -> int:
    """Go's ``int64(float64)`` on amd64: truncation; out of range is MinInt64."""
    if value != value or not INT64_MIN <= value < INT64_MAX + 1:
        return INT64_MIN
    return int(value)


def ram_in_bytes(size: str) -> int:
    """go-units v0.5.0 ``RAMInBytes`` (size.go ``parseSize`` with the binary map)."""
    sep = max(size.rfind(c) for c in "01234567890. ")
    if sep == -1:
        raise ValueError(f"invalid size: '{size}'")
    if size[sep] != " ":
        number, suffix = size[: sep + 1], size[sep + 1 :]
    else:
        number, suffix = size[:sep], size[sep + 1 :]
    value = _parse_float(number)
    if value < 0:
        raise ValueError(f"invalid size: '{size}'")
    if not suffix:
        return _go_int64(value)
    lowered = suffix.lower()
    multipliers = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    if len(lowered) > 3:
        raise ValueError(f"invalid suffix: '{lowered}'")
    if lowered[0] == "b":
        if len(lowered) > 1:
            raise ValueError(f"invalid suffix: '{lowered}'")
        return _go_int64(value)
    if lowered[0] not in multipliers:
        raise ValueError(f"invalid suffix: '{lowered}'")
    if (len(lowered) == 2 and lowered[1] != "b") or (len(lowered) == 3 and lowered[1:] != "ib"):
        raise ValueError(f"invalid suffix: '{lowered}'")
    return _go_int64(value * multipliers[lowered[0]])


def rational(text: str) -> Fraction | None:
    """``new(big.Rat).SetString``: a decimal (with exponent) or ``a/b``; ``None``
    where Go answers ``ok == false``."""
    if _RAT_FRACTION.fullmatch(text):
        numerator, denominator = text.split("/")
        if int(denominator) == 0:
            return None
        return Fraction(int(numerator), int(denominator))
    if _RAT_DECIMAL.fullmatch(text):
        return Fraction(text)
    return None


def nano_cpus(value: str) -> int:
    """common/config.go ``computeNanoCPUs``: ``cpus`` times 1e9 as ``Float64``, then
    ``int64``; empty is 0."""
    if value == "":
        return 0
    cpu = rational(value)
    if cpu is None:
        raise ValueError(f"failed to parse {value} as a rational number")
    return _go_int64(float(cpu * 1_000_000_000))
