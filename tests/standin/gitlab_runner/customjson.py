"""The JSON the custom executor reads and writes: config_exec's output
(executors/custom/api/config.go ``ConfigExecOutput``, ``DriverInfo``, decoded by
``encoding/json.Unmarshal`` in custom.go ``dynamicConfig``), ``CI_JOB_SERVICES``
(custom.go ``getCIJobServicesEnv``, ``jsonService``) and the job response file
(custom.go ``createJobResponseFile``: ``json.NewEncoder(file).Encode(e.Build.Job)``).

Go's decoder matches keys case-insensitively (an exact match first), leaves a field
alone for ``null``, ignores unknown keys and fails on a value of the wrong type; its
encoder escapes ``<``, ``>``, ``&``, U+2028 and U+2029 and ends ``Encode`` with a newline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .jobspec import Image


class ConfigJSONError(ValueError):
    """``json.Unmarshal``'s error (the executor wraps it: "error while parsing JSON
    output: ...")."""


@dataclass
class ConfigExecOutput:
    """``ConfigExecOutput``: ``None`` where the JSON left the pointer nil."""

    driver_name: str | None = None
    driver_version: str | None = None
    has_driver: bool = False
    hostname: str | None = None
    builds_dir: str | None = None
    cache_dir: str | None = None
    builds_dir_is_shared: bool | None = None
    job_env: dict[str, str] | None = None
    shell: str | None = None


_KINDS = {str: "string", bool: "bool", int: "number", float: "number", list: "array"}


def _kind(value: object) -> str:
    return "object" if isinstance(value, dict) else _KINDS.get(type(value), "value")


def _field(obj: dict[str, Any], name: str) -> Any:
    """The value for ``name``: exact key, else the first case-insensitive match."""
    if name in obj:
        return obj[name]
    for key, value in obj.items():
        if key.lower() == name:
            return value
    return None


def _typed(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = _field(obj, name)
    if value is None:
        return None
    if type(value) is not kind:
        go_type = "bool" if kind is bool else "string"
        raise ConfigJSONError(
            f"json: cannot unmarshal {_kind(value)} into Go struct field "
            f"{where}.{name} of type {go_type}"
        )
    return value


def parse_config_output(data: bytes) -> ConfigExecOutput:
    """``json.Unmarshal(jsonConfig, config)``."""
    try:
        raw = json.loads(data.decode(errors="replace"))
    except ValueError as exc:
        raise ConfigJSONError(str(exc)) from exc
    if raw is None:
        return ConfigExecOutput()
    if not isinstance(raw, dict):
        raise ConfigJSONError(
            f"json: cannot unmarshal {_kind(raw)} into Go value of type custom.ConfigExecOutput"
        )
    where = "ConfigExecOutput"
    out = ConfigExecOutput(
        hostname=_typed(raw, "hostname", str, where),
        builds_dir=_typed(raw, "builds_dir", str, where),
        cache_dir=_typed(raw, "cache_dir", str, where),
        builds_dir_is_shared=_typed(raw, "builds_dir_is_shared", bool, where),
        shell=_typed(raw, "shell", str, where),
    )
    driver = _field(raw, "driver")
    if driver is not None:
        if not isinstance(driver, dict):
            raise ConfigJSONError(
                f"json: cannot unmarshal {_kind(driver)} into Go struct field "
                f"{where}.driver of type api.DriverInfo"
            )
        out.has_driver = True
        out.driver_name = _typed(driver, "name", str, f"{where}.driver")
        out.driver_version = _typed(driver, "version", str, f"{where}.driver")
    job_env = _field(raw, "job_env")
    if job_env is not None:
        if not isinstance(job_env, dict):
            raise ConfigJSONError(
                f"json: cannot unmarshal {_kind(job_env)} into Go struct field "
                f"{where}.job_env of type map[string]string"
            )
        for value in job_env.values():
            if value is not None and not isinstance(value, str):
                raise ConfigJSONError(
                    f"json: cannot unmarshal {_kind(value)} into Go struct field "
                    f"{where}.job_env of type string"
                )
        out.job_env = {key: value or "" for key, value in job_env.items()}
    return out


def go_json(value: object) -> str:
    """``json.Marshal``: compact, HTML-safe escapes, UTF-8 kept."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def job_services(services: list[dict[str, Any]]) -> str:
    """``getCIJobServicesEnv``: ``""`` without services, else the ``jsonService`` list
    (a payload's absent/null ``entrypoint``/``command`` stays ``null``)."""
    if not services:
        return ""
    entries = []
    for raw in services:
        image = Image.from_dict(raw)
        entries.append(
            {
                "name": image.name,
                "alias": (image.aliases() or [""])[0],
                "entrypoint": raw.get("entrypoint"),
                "command": raw.get("command"),
            }
        )
    return go_json(entries)


def job_response(payload: dict[str, Any]) -> str:
    """``Encode(e.Build.Job)``: the payload as received (see the module's caveat in
    :mod:`.custom`), one line."""
    return go_json(payload) + "\n"
